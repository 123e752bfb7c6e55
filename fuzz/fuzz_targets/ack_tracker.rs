#![no_main]
#[path = "../../tests/checks/ack_tracker.rs"]
mod check;
libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
