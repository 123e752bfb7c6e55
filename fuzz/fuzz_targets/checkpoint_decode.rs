#![no_main]
#[path = "../../tests/checks/checkpoint_decode.rs"]
mod check;
libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
