//! The kernels' error type: every failure says which op or format, what was expected and
//! what was found.

use crate::quant::DType;

/// Errors raised by the backend interface and its implementations.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{op}: shape mismatch, expected {expected}, found {found}")]
    Shape {
        op: &'static str,
        expected: String,
        found: String,
    },
    #[error("{op}: dtype {dtype} is not supported here")]
    UnsupportedDType { op: &'static str, dtype: DType },
    #[error("weight data holds {found} bytes, but {dtype} {shape:?} needs {expected}")]
    WeightBytes {
        dtype: DType,
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("{dtype} rows must hold a multiple of {block} elements, found {cols}")]
    BlockAlignment { dtype: DType, block: usize, cols: usize },
    #[error("embedding: token id {id} is outside the table of {rows} rows")]
    TokenOutOfRange { id: u32, rows: usize },
    #[error("kv cache: {needed} positions needed, capacity is {capacity}")]
    KvCacheFull { needed: usize, capacity: usize },
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    #[error("wgpu: no adapter: {0}")]
    NoAdapter(String),
    #[error("wgpu on {adapter}: {fault}: {message}")]
    Device {
        adapter: String,
        fault: DeviceFault,
        message: String,
    },
}

/// What went wrong on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceFault {
    /// The adapter refused the device request (missing features or limits).
    Refused,
    OutOfMemory,
    /// The device was lost (driver reset, GPU removed, timeout).
    Lost,
    /// The adapter would not compile a shader or build its pipeline.
    ShaderRejected,
    /// A buffer or dispatch exceeds a limit of the adapter.
    Limit,
    /// Any other error the device reported.
    Validation,
}

impl std::fmt::Display for DeviceFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceFault::Refused => "device request refused",
            DeviceFault::OutOfMemory => "out of memory",
            DeviceFault::Lost => "device lost",
            DeviceFault::ShaderRejected => "shader rejected",
            DeviceFault::Limit => "over a device limit",
            DeviceFault::Validation => "device error",
        })
    }
}

/// Result alias for kernel operations.
pub type Result<T> = std::result::Result<T, KernelError>;

pub(crate) fn shape_err(op: &'static str, expected: impl ToString, found: impl ToString) -> KernelError {
    KernelError::Shape {
        op,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}
