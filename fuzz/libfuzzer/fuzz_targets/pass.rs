#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness_audit_fuzz::Target::Pass.run(data));
