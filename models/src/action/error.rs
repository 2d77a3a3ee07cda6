//! The action tokenizers' error type: what was expected and what was found.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ActionError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid action tokenizer configuration: {0}")]
    Config(String),
    #[error("action chunk has {found} values, expected {expected} ({steps} steps x {dims} dimensions)")]
    ChunkShape {
        expected: usize,
        found: usize,
        steps: usize,
        dims: usize,
    },
    #[error("action value {value} at index {index} is not finite")]
    NotFinite { index: usize, value: f32 },
    #[error("action token {token} is outside the action vocabulary [{first}, {last}]")]
    TokenOutOfRange { token: u32, first: u32, last: u32 },
    #[error("FAST coefficient {coefficient} at index {index} cannot be encoded: its symbol {symbol} is not a Unicode scalar value")]
    UnencodableCoefficient {
        index: usize,
        coefficient: i64,
        symbol: i64,
    },
    #[error("FAST tokens decode to invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("FAST tokens carry {found} coefficients, expected {expected}")]
    CoefficientCount { expected: usize, found: usize },
    #[error("BPE tokenizer: {0}")]
    Tokenizer(String),
}
