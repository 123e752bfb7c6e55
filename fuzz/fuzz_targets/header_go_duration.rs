#![no_main]

#[path = "../checks/header_go_duration.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
