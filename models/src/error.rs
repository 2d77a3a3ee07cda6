//! The models' error type. Every variant that concerns a file names it, and says what was
//! expected and what was found.

use std::path::PathBuf;

use brainstem_kernels::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a {format} file: expected magic {expected:?}, found {found:?}")]
    BadMagic {
        path: PathBuf,
        format: &'static str,
        expected: String,
        found: String,
    },
    #[error("{path}: truncated: {what} needs {needed} bytes at offset {offset}, the file has {len}")]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },
    #[error("{path}: malformed: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("{path}: {what} is {found}, over the limit of {limit}")]
    LimitExceeded {
        path: PathBuf,
        what: &'static str,
        limit: u64,
        found: u64,
    },
    #[error("{path}: tensor {tensor} has dtype {dtype}, which brainstem does not support")]
    UnsupportedDType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: tensor {name} is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor {name} has shape {found:?}, the config needs {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: architecture {found:?} is not supported (expected {expected})")]
    UnsupportedArchitecture {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("no tokenizer for {path}: looked for {looked}")]
    MissingTokenizer { path: PathBuf, looked: String },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("generation: {0}")]
    Generation(String),
    #[error("observation: {0}")]
    Observation(String),
    #[error("backbone {name:?} not found (nothing is downloaded); tried {}", tried.join(", "))]
    BackboneNotFound { name: String, tried: Vec<String> },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

pub type Result<T> = std::result::Result<T, ModelError>;
