//! Fuzzes a SmolVLA policy folder's config.json and processor pipelines: see `brainstem_fuzz::policy_json`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brainstem_fuzz::policy_json(data));
