//! Replaying stage costs, for sweeps: the first successful call of each stage kind runs the
//! real model and records its output and the work it reported to the op ledger (for a VLA
//! chunk, the work up to each token); later calls of that kind reuse them instead of
//! recomputing. A stage's work depends on its shapes (prompt length, tokens sampled), which
//! stay the same from call to call here, so the timing the chip profile gives is the same
//! as a full run's, and a sweep over chips and placements costs one real call per stage
//! kind instead of one per simulated call.

use brainstem_models::plan::Plan;

use crate::kernels::LedgerSnapshot;
use crate::pipeline::observe::FrameEncodings;
use crate::pipeline::stages::ActionOutput;

/// A call's output and the work it did.
#[derive(Clone)]
pub struct Recorded<T> {
    pub output: T,
    pub work: LedgerSnapshot,
}

/// A chunk's tokens or values, the work done by the time each was produced, and the whole
/// chunk's work.
#[derive(Clone)]
pub struct RecordedChunk {
    pub outputs: Vec<ActionOutput>,
    pub work_at_token: Vec<LedgerSnapshot>,
    pub work: LedgerSnapshot,
}

#[derive(Default, Clone)]
pub struct Replay {
    pub vision: Option<Recorded<FrameEncodings>>,
    pub plan: Option<Recorded<Plan>>,
    pub answer: Option<Recorded<String>>,
    pub chunk: Option<RecordedChunk>,
}
