#![no_main]
// The body lives in the workspace crate `fuzz-targets` (replayed there on stable).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ks3_fuzz_targets::ks3_responses(data));
