//! Fuzzes the runtime's TOML configuration: see `brainstem_fuzz::runtime_toml`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brainstem_fuzz::runtime_toml(data));
