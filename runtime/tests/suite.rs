//! The runtime's integration tests, one binary: every test binary links candle, wgpu and
//! tokenizers, so one link instead of one per file; `cargo test -p brainstem-runtime --test suite
//! motion_decoder` runs one file's tests. `no_allocation` stays a binary of its own: it installs a
//! counting global allocator, which must see that test's allocations and nobody else's.

mod common;

mod c_abi;
mod dataset;
mod eval;
mod flow_policy;
mod fuzz_regressions;
mod motion_decoder;
mod pipeline;
mod robot_feedback;
mod sim_bridge;
mod sweep;
mod untrusted_sizes;
