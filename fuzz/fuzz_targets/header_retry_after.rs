#![no_main]

#[path = "../../tests/checks/header_retry_after.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
