//! brainstem-kernels: the op-level backend interface every model is written against, its
//! CPU implementation, the GGUF block formats with their int8 kernels, and the cost ledger
//! that every op reports to.

pub mod backend;
mod checks;
pub mod cpu;
pub mod device;
pub mod error;
pub mod family;
pub mod ledger;
pub mod quant;
mod strided;
pub mod wgpu;

pub use backend::{Activation, AttentionMask, AttentionParams, Backend, BinaryOp, KvCacheSpec, RopeParams, RopeStyle};
pub use cpu::{CpuBackend, CpuTensor, CpuWeight};
pub use device::{Device, DeviceBackend, DeviceTensor, DeviceWeight};
pub use error::{DeviceFault, KernelError, Result};
pub use family::KernelFamily;
pub use ledger::{Cost, Ledger, LedgerSnapshot, OpKind};
pub use quant::{ActivationPrecision, DType, HostWeight, QMatrix};
pub use wgpu::{DeviceStats, KernelStyle, WgpuBackend, WgpuTensor, WgpuWeight};
