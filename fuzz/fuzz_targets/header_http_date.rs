#![no_main]

#[path = "../../tests/checks/header_http_date.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
