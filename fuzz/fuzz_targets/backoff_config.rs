#![no_main]

#[path = "../../tests/checks/backoff_config.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
