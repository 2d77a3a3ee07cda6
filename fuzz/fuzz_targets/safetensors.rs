//! Fuzzes the safetensors reader (`WeightFile` on a `.safetensors`): see `brainstem_fuzz::weights`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brainstem_fuzz::weights("fuzz.safetensors", data));
