#![no_main]
#[path = "../checks/ack_tracker.rs"]
mod check;
libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
