#![no_main]

#[path = "../../tests/checks/header_rfc3339.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
