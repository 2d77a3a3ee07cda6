//! The runtime's error type: every configuration error names the key and the reason.

use std::path::PathBuf;

use brainstem_models::action::ActionError;
use brainstem_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
    #[error("invalid configuration: `{key}`: {reason}")]
    Config { key: String, reason: String },
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Kernel(#[from] brainstem_models::kernels::KernelError),
    #[error("invalid observation: {0}")]
    Observation(String),
    #[error(transparent)]
    Dataset(#[from] crate::offline::dataset::DatasetError),
    #[error("could not start a runtime thread: {0}")]
    Thread(String),
    #[error(transparent)]
    Sim(#[from] crate::offline::sim::SimError),
}

impl RuntimeError {
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A TOML parse error of `text`, placed by line (toml's message names the key).
    pub fn toml(text: &str, error: &toml::de::Error) -> Self {
        let key = match error.span() {
            Some(span) => format!("line {}", text[..span.start.min(text.len())].lines().count().max(1)),
            None => "document".into(),
        };
        Self::config(key, error.message())
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
