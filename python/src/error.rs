//! Rust errors as Python exceptions: [`BrainstemError`] (a `RuntimeError`) carries the Rust
//! error's message with its causes; arguments of the wrong kind or shape are `TypeError` and
//! `ValueError`, as Python code expects.

use std::error::Error;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::PyErr;

create_exception!(
    brainstem,
    BrainstemError,
    PyRuntimeError,
    "An error from brainstem: a model, configuration, observation or runtime it refused, with what it expected and what it found."
);

/// The error and each of its causes, joined as `anyhow` prints them.
pub fn message(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A brainstem error as a Python exception.
pub fn to_py(error: impl Error) -> PyErr {
    BrainstemError::new_err(message(&error))
}
