#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_fuzz_harness::client_ops(data));
