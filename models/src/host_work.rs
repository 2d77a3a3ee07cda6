//! What the host-side work around a model's ops costs, in the ledger's units: tokenizing
//! text, preparing camera images and turning a model's outputs into actions. Each count is
//! the operations the host code runs per element (a comparison, a branch or an arithmetic
//! step each), so that a chip profile can charge it to the robot's host CPU, or to the chip,
//! at that processor's rate. Sampling and the constraints over a vocabulary count their own
//! work (`sampling`, `generate::TokenConstraint`).

use crate::kernels::{Backend, Cost, Ledger, OpKind};

/// Operations per byte of text a byte-pair tokenizer spends: normalizing, splitting into
/// words, and merging pairs by rank through hash lookups.
const TOKENIZE_OPS_PER_BYTE: u64 = 400;

/// Operations per output value of a bilinear resize followed by scaling: four taps with
/// their weights, and the scale and offset.
const RESIZE_OPS_PER_VALUE: u64 = 14;

/// Records `cost` as `kind` in `backend`'s ledger.
pub fn record<B: Backend>(backend: &B, kind: OpKind, cost: Cost) {
    backend.ledger().record(kind, cost);
}

/// Tokenizing `text` into `tokens` ids, recorded in `ledger`.
pub fn tokenized(ledger: &Ledger, text: &str, tokens: usize) {
    let bytes = text.len() as u64;
    ledger.record(
        OpKind::Tokenize,
        Cost::host(TOKENIZE_OPS_PER_BYTE * bytes, bytes, 4 * tokens as u64),
    );
}

/// Resampling an image of `source_bytes` into `values` scaled floats.
pub fn resized(source_bytes: usize, values: usize) -> Cost {
    Cost::host(
        RESIZE_OPS_PER_VALUE * values as u64,
        source_bytes as u64,
        4 * values as u64,
    )
}

/// `ops_each` operations on each of `values` floats read and written once.
pub fn elementwise(values: usize, ops_each: u64) -> Cost {
    let values = values as u64;
    Cost::host(ops_each * values, 4 * values, 4 * values)
}
