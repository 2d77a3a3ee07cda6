//! Fuzzes the LeRobotDataset parquet reader (episode table and data file): see `brainstem_fuzz::parquet_episode`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| brainstem_fuzz::parquet_episode(data));
