//! The kernels' integration tests, one binary: every test binary links candle, wgpu and
//! tokenizers, so one link instead of one per file. `cargo test -p brainstem-kernels --test suite
//! quant_formats` runs one file's tests (tools/test.sh does, for aarch64 under qemu).

mod common;

mod backend_suite;
mod quant_formats;
mod wgpu_against_cpu;
