#![no_main]
#[path = "../../tests/checks/bulkhead_ops.rs"]
mod check;
libfuzzer_sys::fuzz_target!(|data: &[u8]| check::run(data));
