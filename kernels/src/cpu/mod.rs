//! The CPU backend: activations are host `Vec<f32>` matrices, dense weights are packed
//! into panels for our f32 microkernels (`dense`), block-format weights stay quantized and go
//! through our int8 kernels. Every op runs inside the backend's own rayon pool, so a partition's
//! threads never spill into another partition's; a `scope` (a forward pass) keeps that
//! pool's workers awake between its ops (`warm`).

pub mod affinity;
mod attention;
pub mod dense;
pub(crate) mod memory;
mod ops;
mod warm;

use std::sync::Arc;

use rayon::prelude::*;

use crate::backend::*;
use crate::checks;
use crate::error::{shape_err, KernelError, Result};
use crate::ledger::{Cost, Ledger, OpKind};
use crate::quant::{ActivationPrecision, DType, HostWeight, QMatrix};
pub use dense::DenseMatrix;
pub use memory::retain_freed_memory;
pub use warm::{WarmPool, WARM_IDLE_LIMIT};

/// An f32 matrix in host memory; cloning shares the data.
#[derive(Clone, Debug)]
pub struct CpuTensor {
    data: Arc<Vec<f32>>,
    rows: usize,
    cols: usize,
}

impl CpuTensor {
    fn new(data: Vec<f32>, rows: usize, cols: usize) -> CpuTensor {
        debug_assert_eq!(data.len(), rows * cols);
        CpuTensor {
            data: Arc::new(data),
            rows,
            cols,
        }
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

/// A weight on the CPU: dense f32 (f16 and bf16 are widened on upload) or block-quantized.
#[derive(Debug)]
pub enum CpuWeight {
    Dense(DenseMatrix),
    Quantized(QMatrix),
}

/// Keys and values of one attention layer, `[position, kv_heads * head_dim]` each.
#[derive(Debug)]
pub struct CpuKvCache {
    spec: KvCacheSpec,
    keys: Vec<f32>,
    values: Vec<f32>,
    len: usize,
}

/// The CPU implementation of [`Backend`].
pub struct CpuBackend {
    pool: WarmPool,
    ledger: Ledger,
    precision: ActivationPrecision,
}

impl CpuBackend {
    /// A backend with its own pool of `threads` worker threads.
    pub fn new(threads: usize) -> Result<CpuBackend> {
        crate::family::from_env()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("brainstem-cpu-{i}"))
            .build()
            .map_err(|e| KernelError::InvalidArgument {
                op: "CpuBackend::new",
                message: e.to_string(),
            })?;
        Ok(CpuBackend {
            pool: WarmPool::new(pool),
            ledger: Ledger::default(),
            precision: ActivationPrecision::default(),
        })
    }

    /// A backend whose `threads` workers are pinned to `cores` (worker `i` to
    /// `cores[i % cores.len()]`). Returns the outcome for each worker: the core, or why the
    /// system would not pin it (the worker then runs unpinned).
    pub fn pinned(threads: usize, cores: &[usize]) -> Result<(CpuBackend, Vec<std::result::Result<usize, String>>)> {
        let backend = Self::new(threads)?;
        if cores.is_empty() {
            return Err(KernelError::InvalidArgument {
                op: "CpuBackend::pinned",
                message: "no cores to pin to".into(),
            });
        }
        let outcomes = backend
            .pool
            .pool()
            .broadcast(|worker| affinity::pin_current_thread(cores[worker.index() % cores.len()]));
        Ok((backend, outcomes))
    }

    /// Runs `f` once on every worker thread (given its index), for per-thread settings such
    /// as scheduling priority.
    pub fn on_each_worker<R: Send>(&self, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
        self.pool.pool().broadcast(|worker| f(worker.index()))
    }

    /// How activations meet block-quantized weights (int8 by default).
    pub fn with_activation_precision(mut self, precision: ActivationPrecision) -> CpuBackend {
        self.precision = precision;
        self
    }

    pub fn activation_precision(&self) -> ActivationPrecision {
        self.precision
    }

    pub fn threads(&self) -> usize {
        self.pool.pool().current_num_threads()
    }

    fn record(&self, kind: OpKind, cost: Cost) {
        self.ledger.record(kind, cost);
    }
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Weight = CpuWeight;
    type KvCache = CpuKvCache;

    fn name(&self) -> String {
        let precision = match self.precision {
            ActivationPrecision::Int8 => "int8",
            ActivationPrecision::F32 => "f32",
        };
        format!("cpu ({} threads, {precision} activations)", self.threads())
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install_warm(f)
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<CpuTensor> {
        if data.len() != rows * cols {
            return Err(shape_err("upload", format!("{rows} x {cols} values"), data.len()));
        }
        Ok(CpuTensor::new(data.to_vec(), rows, cols))
    }

    fn upload_weight(&self, weight: &HostWeight) -> Result<CpuWeight> {
        weight.validate()?;
        let (rows, cols) = weight.matrix_dims();
        match weight.dtype {
            DType::F32 | DType::F16 | DType::BF16 => {
                Ok(CpuWeight::Dense(DenseMatrix::new(&weight.to_f32()?, rows, cols)))
            }
            _ => Ok(CpuWeight::Quantized(QMatrix::from_host(weight)?)),
        }
    }

    fn read(&self, x: &CpuTensor) -> Result<Vec<f32>> {
        Ok(x.data.as_ref().clone())
    }

    fn dims(&self, x: &CpuTensor) -> (usize, usize) {
        (x.rows, x.cols)
    }

    fn weight_dims(&self, w: &CpuWeight) -> (usize, usize) {
        match w {
            CpuWeight::Dense(d) => (d.rows(), d.cols()),
            CpuWeight::Quantized(q) => (q.rows(), q.cols()),
        }
    }

    fn kv_cache(&self, spec: KvCacheSpec) -> Result<CpuKvCache> {
        Ok(CpuKvCache {
            spec,
            keys: Vec::new(),
            values: Vec::new(),
            len: 0,
        })
    }

    fn kv_len(&self, cache: &CpuKvCache) -> usize {
        cache.len
    }

    fn kv_clear(&self, cache: &mut CpuKvCache) {
        self.kv_truncate(cache, 0);
    }

    fn kv_truncate(&self, cache: &mut CpuKvCache, len: usize) {
        let kv_dim = cache.spec.kv_heads * cache.spec.head_dim;
        let len = len.min(cache.len);
        cache.keys.truncate(len * kv_dim);
        cache.values.truncate(len * kv_dim);
        cache.len = len;
    }

    fn matmul(&self, x: &CpuTensor, w: &CpuWeight) -> Result<CpuTensor> {
        let (rows, cols) = self.weight_dims(w);
        checks::matmul_operands((x.rows, x.cols), (rows, cols))?;
        let n = x.rows;
        let out = match w {
            CpuWeight::Quantized(q) => {
                let mut out = vec![0f32; n * rows];
                self.pool.install(|| q.matmul(&x.data, n, &mut out, self.precision))?;
                let int8 = self.precision == ActivationPrecision::Int8;
                let cost = checks::matmul_cost(n, rows, cols, q.byte_len(), int8);
                self.record(OpKind::QuantMatmul, cost);
                out
            }
            CpuWeight::Dense(d) => {
                let mut out = vec![0f32; n * rows];
                self.pool.install(|| d.matmul(&x.data, n, &mut out));
                let cost = checks::matmul_cost(n, rows, cols, 4 * rows * cols, false);
                self.record(OpKind::DenseMatmul, cost);
                out
            }
        };
        Ok(CpuTensor::new(out, n, rows))
    }

    fn embedding(&self, table: &CpuWeight, ids: &[u32]) -> Result<CpuTensor> {
        let (rows, cols) = self.weight_dims(table);
        let mut out = vec![0f32; ids.len() * cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(cols)) {
            let r = id as usize;
            if r >= rows {
                return Err(KernelError::TokenOutOfRange { id, rows });
            }
            match table {
                CpuWeight::Quantized(q) => q.dequantize_row(r, row)?,
                CpuWeight::Dense(d) => d.copy_row(r, row),
            }
        }
        let row_bytes = match table {
            CpuWeight::Quantized(q) => q.byte_len() / rows,
            CpuWeight::Dense(_) => 4 * cols,
        };
        self.record(OpKind::Embedding, checks::embedding_cost(ids.len(), cols, row_bytes));
        Ok(CpuTensor::new(out, ids.len(), cols))
    }

    fn rms_norm(&self, x: &CpuTensor, gamma: &CpuTensor, eps: f32) -> Result<CpuTensor> {
        checks::row_vector("rms_norm", (x.rows, x.cols), (gamma.rows, gamma.cols))?;
        let out = self.pool.install(|| ops::rms_norm(&x.data, &gamma.data, eps));
        self.record(OpKind::Norm, checks::row_op_cost(x.rows, x.cols, 4));
        Ok(CpuTensor::new(out, x.rows, x.cols))
    }

    fn layer_norm(&self, x: &CpuTensor, gamma: &CpuTensor, beta: &CpuTensor, eps: f32) -> Result<CpuTensor> {
        checks::row_vector("layer_norm", (x.rows, x.cols), (gamma.rows, gamma.cols))?;
        checks::row_vector("layer_norm", (x.rows, x.cols), (beta.rows, beta.cols))?;
        let out = self
            .pool
            .install(|| ops::layer_norm(&x.data, &gamma.data, &beta.data, eps));
        self.record(OpKind::Norm, checks::row_op_cost(x.rows, x.cols, 7));
        Ok(CpuTensor::new(out, x.rows, x.cols))
    }

    fn rope(&self, x: &CpuTensor, params: RopeParams) -> Result<CpuTensor> {
        checks::rope_operand((x.rows, x.cols), &params)?;
        let out = ops::rope(&x.data, x.cols, params);
        self.record(OpKind::Rope, checks::row_op_cost(x.rows, x.cols, 3));
        Ok(CpuTensor::new(out, x.rows, x.cols))
    }

    fn attention(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        cache: &mut CpuKvCache,
        params: AttentionParams,
    ) -> Result<CpuTensor> {
        let (out, cost) = self.pool.install(|| attention::attend(q, k, v, cache, params))?;
        self.record(OpKind::Attention, cost);
        Ok(out)
    }

    fn activation(&self, x: &CpuTensor, act: Activation) -> Result<CpuTensor> {
        let mut out = x.data.to_vec();
        self.pool.install(|| {
            out.par_chunks_mut(4096)
                .for_each(|chunk| ops::activate_slice(chunk, act))
        });
        self.record(OpKind::Activation, checks::row_op_cost(x.rows, x.cols, 5));
        Ok(CpuTensor::new(out, x.rows, x.cols))
    }

    fn gated(&self, gate: &CpuTensor, up: &CpuTensor, act: Activation) -> Result<CpuTensor> {
        checks::same_shape("gated", (gate.rows, gate.cols), (up.rows, up.cols))?;
        let out = self.pool.install(|| ops::gated(&gate.data, &up.data, act));
        let mut cost = checks::row_op_cost(gate.rows, gate.cols, 6);
        cost.bytes_read *= 2;
        self.record(OpKind::Activation, cost);
        Ok(CpuTensor::new(out, gate.rows, gate.cols))
    }

    fn binary(&self, a: &CpuTensor, b: &CpuTensor, op: BinaryOp) -> Result<CpuTensor> {
        checks::binary_operands((a.rows, a.cols), (b.rows, b.cols))?;
        let out = self.pool.install(|| ops::binary(&a.data, &b.data, a.cols, op));
        let cost = checks::binary_cost(a.data.len(), b.data.len(), out.len());
        self.record(OpKind::Elementwise, cost);
        Ok(CpuTensor::new(out, a.rows, a.cols))
    }

    fn rows(&self, x: &CpuTensor, start: usize, len: usize) -> Result<CpuTensor> {
        let end = checks::range_end("rows", start, len, x.rows)?;
        let out = x.data[start * x.cols..end * x.cols].to_vec();
        self.record(OpKind::Copy, checks::copy_cost(out.len()));
        Ok(CpuTensor::new(out, len, x.cols))
    }

    fn columns(&self, x: &CpuTensor, start: usize, len: usize) -> Result<CpuTensor> {
        let end = checks::range_end("columns", start, len, x.cols)?;
        let mut out = Vec::with_capacity(x.rows * len);
        for row in x.data.chunks_exact(x.cols) {
            out.extend_from_slice(&row[start..end]);
        }
        self.record(OpKind::Copy, checks::copy_cost(out.len()));
        Ok(CpuTensor::new(out, x.rows, len))
    }
}
