//! The models' integration tests, one binary: every test binary links candle, wgpu and
//! tokenizers, so one link instead of one per file; `cargo test -p brainstem-models --test suite
//! llama_parity` runs one file's tests.

mod common;

mod action_tokens;
mod bad_input;
mod fuzz_readers;
mod idefics3_parity;
mod llama_parity;
mod pi0_parity;
mod pi0fast_parity;
mod plan_constraint;
mod quantize;
mod smollm2_gguf;
mod smolvla_bad_input;
mod smolvla_parity;
mod smolvlm_shaped;
mod vla;
mod vlm_bad_input;
