//! One backend type for code that picks its device at run time: [`DeviceBackend`] holds
//! either the CPU backend or the wgpu backend and forwards every op to it, and [`Device`]
//! names which (`cpu`, `wgpu`, or `wgpu:ADAPTER`) on a command line or in a config file.

use std::fmt;
use std::str::FromStr;

use crate::backend::*;
use crate::cpu::{CpuBackend, CpuKvCache, CpuTensor, CpuWeight};
use crate::error::{KernelError, Result};
use crate::ledger::Ledger;
use crate::quant::{ActivationPrecision, HostWeight};
use crate::wgpu::{WgpuBackend, WgpuKvCache, WgpuTensor, WgpuWeight};

/// Where a model runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU backend's own thread pool.
    #[default]
    Cpu,
    /// A wgpu adapter: `None` for the best one here, else an index or part of its name.
    Wgpu(Option<String>),
}

impl Device {
    /// Opens the device: a CPU backend of `threads` workers, or the wgpu adapter.
    pub fn open(&self, threads: usize, precision: ActivationPrecision) -> Result<DeviceBackend> {
        Ok(match self {
            Device::Cpu => DeviceBackend::Cpu(CpuBackend::new(threads)?.with_activation_precision(precision)),
            Device::Wgpu(adapter) => {
                DeviceBackend::Wgpu(WgpuBackend::new(adapter.as_deref())?.with_activation_precision(precision))
            }
        })
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Device, String> {
        match s.split_once(':') {
            None if s == "cpu" => Ok(Device::Cpu),
            None if s == "wgpu" => Ok(Device::Wgpu(None)),
            Some(("wgpu", adapter)) if !adapter.is_empty() => Ok(Device::Wgpu(Some(adapter.to_string()))),
            _ => Err(format!("expected cpu, wgpu or wgpu:ADAPTER, found {s:?}")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Wgpu(None) => f.write_str("wgpu"),
            Device::Wgpu(Some(adapter)) => write!(f, "wgpu:{adapter}"),
        }
    }
}

/// The CPU or the wgpu backend. An operand from the other backend is refused by every op
/// that returns a `Result`; `dims`, `weight_dims` and `kv_len`, which cannot, report it as
/// empty, and the op it then reaches refuses it.
// There is one per partition, behind an `Arc`: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum DeviceBackend {
    Cpu(CpuBackend),
    Wgpu(WgpuBackend),
}

#[derive(Clone, Debug)]
pub enum DeviceTensor {
    Cpu(CpuTensor),
    Wgpu(WgpuTensor),
}

#[derive(Debug)]
pub enum DeviceWeight {
    Cpu(CpuWeight),
    Wgpu(WgpuWeight),
}

#[derive(Debug)]
pub enum DeviceKvCache {
    Cpu(CpuKvCache),
    Wgpu(WgpuKvCache),
}

impl DeviceBackend {
    /// The CPU backend, when this is one (for its thread pool's settings).
    pub fn as_cpu(&self) -> Option<&CpuBackend> {
        match self {
            DeviceBackend::Cpu(b) => Some(b),
            DeviceBackend::Wgpu(_) => None,
        }
    }

    pub fn as_wgpu(&self) -> Option<&WgpuBackend> {
        match self {
            DeviceBackend::Wgpu(b) => Some(b),
            DeviceBackend::Cpu(_) => None,
        }
    }

    pub fn activation_precision(&self) -> ActivationPrecision {
        match self {
            DeviceBackend::Cpu(b) => b.activation_precision(),
            DeviceBackend::Wgpu(b) => b.activation_precision(),
        }
    }
}

fn foreign(op: &'static str) -> KernelError {
    KernelError::InvalidArgument {
        op,
        message: "an operand lives on another device".into(),
    }
}

/// Unwraps every operand to the backend's own variant, runs `$body` there, and wraps the
/// result; an operand of the other variant is an error.
macro_rules! on_device {
    ($self:ident, $op:literal, |$b:ident $(, $arg:ident: $kind:ident)*| $body:expr, $wrap:ident) => {
        match $self {
            DeviceBackend::Cpu($b) => {
                $(let $arg = match $arg { $kind::Cpu(v) => v, _ => return Err(foreign($op)) };)*
                $body.map($wrap::Cpu)
            }
            DeviceBackend::Wgpu($b) => {
                $(let $arg = match $arg { $kind::Wgpu(v) => v, _ => return Err(foreign($op)) };)*
                $body.map($wrap::Wgpu)
            }
        }
    };
}

impl Backend for DeviceBackend {
    type Tensor = DeviceTensor;
    type Weight = DeviceWeight;
    type KvCache = DeviceKvCache;

    fn name(&self) -> String {
        match self {
            DeviceBackend::Cpu(b) => b.name(),
            DeviceBackend::Wgpu(b) => b.name(),
        }
    }

    fn scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            DeviceBackend::Cpu(b) => b.scope(f),
            DeviceBackend::Wgpu(b) => b.scope(f),
        }
    }

    fn ledger(&self) -> &Ledger {
        match self {
            DeviceBackend::Cpu(b) => b.ledger(),
            DeviceBackend::Wgpu(b) => b.ledger(),
        }
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<DeviceTensor> {
        on_device!(self, "upload", |b| b.upload(data, rows, cols), DeviceTensor)
    }

    fn upload_weight(&self, weight: &HostWeight) -> Result<DeviceWeight> {
        on_device!(self, "upload_weight", |b| b.upload_weight(weight), DeviceWeight)
    }

    fn read(&self, x: &DeviceTensor) -> Result<Vec<f32>> {
        match (self, x) {
            (DeviceBackend::Cpu(b), DeviceTensor::Cpu(x)) => b.read(x),
            (DeviceBackend::Wgpu(b), DeviceTensor::Wgpu(x)) => b.read(x),
            _ => Err(foreign("read")),
        }
    }

    fn dims(&self, x: &DeviceTensor) -> (usize, usize) {
        match (self, x) {
            (DeviceBackend::Cpu(b), DeviceTensor::Cpu(x)) => b.dims(x),
            (DeviceBackend::Wgpu(b), DeviceTensor::Wgpu(x)) => b.dims(x),
            _ => (0, 0),
        }
    }

    fn weight_dims(&self, w: &DeviceWeight) -> (usize, usize) {
        match (self, w) {
            (DeviceBackend::Cpu(b), DeviceWeight::Cpu(w)) => b.weight_dims(w),
            (DeviceBackend::Wgpu(b), DeviceWeight::Wgpu(w)) => b.weight_dims(w),
            _ => (0, 0),
        }
    }

    fn kv_cache(&self, spec: KvCacheSpec) -> Result<DeviceKvCache> {
        on_device!(self, "kv_cache", |b| b.kv_cache(spec), DeviceKvCache)
    }

    fn kv_len(&self, cache: &DeviceKvCache) -> usize {
        match (self, cache) {
            (DeviceBackend::Cpu(b), DeviceKvCache::Cpu(c)) => b.kv_len(c),
            (DeviceBackend::Wgpu(b), DeviceKvCache::Wgpu(c)) => b.kv_len(c),
            _ => 0,
        }
    }

    fn kv_clear(&self, cache: &mut DeviceKvCache) {
        match (self, cache) {
            (DeviceBackend::Cpu(b), DeviceKvCache::Cpu(c)) => b.kv_clear(c),
            (DeviceBackend::Wgpu(b), DeviceKvCache::Wgpu(c)) => b.kv_clear(c),
            _ => {}
        }
    }

    fn kv_truncate(&self, cache: &mut DeviceKvCache, len: usize) {
        match (self, cache) {
            (DeviceBackend::Cpu(b), DeviceKvCache::Cpu(c)) => b.kv_truncate(c, len),
            (DeviceBackend::Wgpu(b), DeviceKvCache::Wgpu(c)) => b.kv_truncate(c, len),
            _ => {}
        }
    }

    fn matmul(&self, x: &DeviceTensor, w: &DeviceWeight) -> Result<DeviceTensor> {
        on_device!(
            self,
            "matmul",
            |b, x: DeviceTensor, w: DeviceWeight| b.matmul(x, w),
            DeviceTensor
        )
    }

    fn embedding(&self, table: &DeviceWeight, ids: &[u32]) -> Result<DeviceTensor> {
        on_device!(
            self,
            "embedding",
            |b, table: DeviceWeight| b.embedding(table, ids),
            DeviceTensor
        )
    }

    fn rms_norm(&self, x: &DeviceTensor, gamma: &DeviceTensor, eps: f32) -> Result<DeviceTensor> {
        on_device!(
            self,
            "rms_norm",
            |b, x: DeviceTensor, gamma: DeviceTensor| b.rms_norm(x, gamma, eps),
            DeviceTensor
        )
    }

    fn layer_norm(
        &self,
        x: &DeviceTensor,
        gamma: &DeviceTensor,
        beta: &DeviceTensor,
        eps: f32,
    ) -> Result<DeviceTensor> {
        on_device!(
            self,
            "layer_norm",
            |b, x: DeviceTensor, gamma: DeviceTensor, beta: DeviceTensor| b.layer_norm(x, gamma, beta, eps),
            DeviceTensor
        )
    }

    fn rope(&self, x: &DeviceTensor, params: RopeParams) -> Result<DeviceTensor> {
        on_device!(self, "rope", |b, x: DeviceTensor| b.rope(x, params), DeviceTensor)
    }

    fn attention(
        &self,
        q: &DeviceTensor,
        k: &DeviceTensor,
        v: &DeviceTensor,
        cache: &mut DeviceKvCache,
        params: AttentionParams,
    ) -> Result<DeviceTensor> {
        on_device!(
            self,
            "attention",
            |b, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, cache: DeviceKvCache| b
                .attention(q, k, v, cache, params),
            DeviceTensor
        )
    }

    fn activation(&self, x: &DeviceTensor, act: Activation) -> Result<DeviceTensor> {
        on_device!(
            self,
            "activation",
            |b, x: DeviceTensor| b.activation(x, act),
            DeviceTensor
        )
    }

    fn gated(&self, gate: &DeviceTensor, up: &DeviceTensor, act: Activation) -> Result<DeviceTensor> {
        on_device!(
            self,
            "gated",
            |b, gate: DeviceTensor, up: DeviceTensor| b.gated(gate, up, act),
            DeviceTensor
        )
    }

    fn binary(&self, a: &DeviceTensor, x: &DeviceTensor, op: BinaryOp) -> Result<DeviceTensor> {
        on_device!(
            self,
            "binary",
            |b, a: DeviceTensor, x: DeviceTensor| b.binary(a, x, op),
            DeviceTensor
        )
    }

    fn rows(&self, x: &DeviceTensor, start: usize, len: usize) -> Result<DeviceTensor> {
        on_device!(self, "rows", |b, x: DeviceTensor| b.rows(x, start, len), DeviceTensor)
    }

    fn columns(&self, x: &DeviceTensor, start: usize, len: usize) -> Result<DeviceTensor> {
        on_device!(
            self,
            "columns",
            |b, x: DeviceTensor| b.columns(x, start, len),
            DeviceTensor
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for text in ["cpu", "wgpu", "wgpu:0", "wgpu:llvmpipe"] {
            assert_eq!(text.parse::<Device>().unwrap().to_string(), text);
        }
        for bad in ["gpu", "wgpu:", "cpu:1", ""] {
            assert!(bad.parse::<Device>().is_err(), "{bad:?}");
        }
    }
}
