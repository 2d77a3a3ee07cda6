//! Fuzzes the GGUF reader (`WeightFile` on a `.gguf`): see `brainstem_fuzz::weights`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brainstem_fuzz::weights("fuzz.gguf", data));
