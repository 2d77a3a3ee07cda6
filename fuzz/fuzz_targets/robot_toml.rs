//! Fuzzes the robot description's TOML and the safety envelope it configures: see `brainstem_fuzz::robot_toml`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brainstem_fuzz::robot_toml(data));
