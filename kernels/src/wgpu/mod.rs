//! The wgpu backend: the models' ops as WGSL compute shaders on any Vulkan, Metal or DX12
//! adapter, software ones included. Weights are uploaded once and stay in their block
//! format; a forward pass records its dispatches into one command encoder, and only
//! [`Backend::read`] submits and waits. Block-format matrix products quantize activations to
//! int8 on the device and multiply with packed 4x8 integer dot products, as the CPU
//! backend's int8 path does; every op reports the same cost to the ledger as the CPU backend.

mod device;
mod layout;
mod pipelines;
mod recorder;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::*;
use crate::checks;
use crate::error::{KernelError, Result};
use crate::ledger::{Ledger, OpKind};
use crate::quant::{ActivationPrecision, DType, HostWeight};
pub use device::adapter_names;
use device::Gpu;
pub use pipelines::KernelStyle;
use pipelines::{format_code, Kernel, Pipelines};
pub use recorder::DeviceStats;
use recorder::{GpuBuffer, Pool, Recorder};

/// An f32 matrix in a device buffer; cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct WgpuTensor {
    buf: Arc<GpuBuffer>,
    rows: usize,
    cols: usize,
}

/// A weight on the device: block formats in their word-aligned layout, dense ones as f32.
#[derive(Debug)]
pub struct WgpuWeight {
    buf: GpuBuffer,
    dtype: DType,
    rows: usize,
    cols: usize,
    /// Bytes of the weight in its file format, which the ledger charges.
    file_bytes: usize,
}

/// Keys and values of one attention layer, allocated for every position at creation.
#[derive(Debug)]
pub struct WgpuKvCache {
    spec: KvCacheSpec,
    keys: GpuBuffer,
    values: GpuBuffer,
    len: usize,
}

/// Cosines and sines of every (position, pair) for one (theta, head size), on the device.
struct RopeTable {
    buf: Arc<GpuBuffer>,
    positions: usize,
}

/// The wgpu implementation of [`Backend`].
pub struct WgpuBackend {
    gpu: Gpu,
    pipelines: Pipelines,
    pool: Arc<Pool>,
    recorder: Recorder,
    rope_tables: Mutex<HashMap<(u32, usize), RopeTable>>,
    ledger: Ledger,
    precision: ActivationPrecision,
    style: KernelStyle,
}

/// Longest head the attention kernel holds in workgroup memory.
const MAX_HEAD_DIM: usize = 256;

impl WgpuBackend {
    /// Opens an adapter: `None` for the best one here, else an index or part of a name (see
    /// [`adapter_names`] for what is available).
    pub fn new(adapter: Option<&str>) -> Result<WgpuBackend> {
        let gpu = Gpu::open(adapter)?;
        let pipelines = Pipelines::build(&gpu)?;
        let recorder = Recorder::new(&gpu)?;
        Ok(WgpuBackend {
            pipelines,
            pool: Arc::new(Pool::default()),
            recorder,
            rope_tables: Mutex::new(HashMap::new()),
            ledger: Ledger::default(),
            precision: ActivationPrecision::default(),
            style: KernelStyle::for_adapter(gpu.info.device_type),
            gpu,
        })
    }

    /// Runs the reducing kernels in `style` instead of the one chosen for the adapter.
    pub fn with_kernel_style(mut self, style: KernelStyle) -> WgpuBackend {
        self.style = style;
        self
    }

    pub fn kernel_style(&self) -> KernelStyle {
        self.style
    }

    /// How activations meet block-quantized weights (int8 by default), as on the CPU backend.
    pub fn with_activation_precision(mut self, precision: ActivationPrecision) -> WgpuBackend {
        self.precision = precision;
        self
    }

    pub fn activation_precision(&self) -> ActivationPrecision {
        self.precision
    }

    /// The adapter's name, such as "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub fn adapter_name(&self) -> &str {
        &self.gpu.info.name
    }

    /// Buffers, bind groups and submissions created so far.
    pub fn stats(&self) -> DeviceStats {
        self.recorder.stats(&self.pool)
    }

    /// A new `[rows, cols]` tensor, refused when the shaders' 32-bit indices could not reach
    /// every element.
    fn tensor(&self, rows: usize, cols: usize) -> Result<WgpuTensor> {
        let elems = rows.saturating_mul(cols);
        let buf = self.pool.take(&self.gpu, 4 * param("tensor", elems)? as u64, false)?;
        Ok(WgpuTensor {
            buf: Arc::new(buf),
            rows,
            cols,
        })
    }

    fn run(&self, kernel: Kernel, buffers: &[&GpuBuffer], params: &[u32], workgroups: usize) -> Result<()> {
        self.recorder
            .dispatch(&self.gpu, &self.pipelines, kernel, buffers, params, workgroups as u64)
    }

    /// Runs a reducing kernel in this backend's style: `cooperative` workgroups, or one
    /// invocation per item of `items`, 64 to a workgroup.
    fn run_reducing(
        &self,
        kernel: Kernel,
        buffers: &[&GpuBuffer],
        params: &[u32],
        cooperative: usize,
        items: usize,
    ) -> Result<()> {
        match self.style {
            KernelStyle::Cooperative => self.run(kernel, buffers, params, cooperative),
            KernelStyle::PerInvocation => self.run(kernel.in_style(self.style), buffers, params, items.div_ceil(64)),
        }
    }

    /// `kernel` over every element of `out`, 256 to a workgroup.
    fn elementwise(&self, kernel: Kernel, inputs: &[&WgpuTensor], out: &WgpuTensor, extra: [u32; 4]) -> Result<()> {
        let len = out.rows * out.cols;
        let mut buffers: Vec<&GpuBuffer> = inputs.iter().map(|t| t.buf.as_ref()).collect();
        buffers.push(&out.buf);
        let params = [len as u32, out.cols as u32, extra[0], extra[1], extra[2], extra[3]];
        self.run(kernel, &buffers, &params, len.div_ceil(256))
    }

    fn rope_table(&self, theta: f32, head_dim: usize, positions: usize) -> Result<Arc<GpuBuffer>> {
        let mut tables = self.rope_tables.lock().unwrap_or_else(|e| e.into_inner());
        let key = (theta.to_bits(), head_dim);
        if let Some(table) = tables.get(&key).filter(|t| t.positions >= positions) {
            return Ok(table.buf.clone());
        }
        let positions = positions.checked_next_power_of_two().unwrap_or(positions).max(1024);
        let values = rope_cos_sin(theta, head_dim, positions);
        let buf = self.pool.dedicated(&self.gpu, "rope table", 4 * values.len() as u64)?;
        self.recorder.upload(&self.gpu, &buf, bytemuck::cast_slice(&values))?;
        let buf = Arc::new(buf);
        tables.insert(
            key,
            RopeTable {
                buf: buf.clone(),
                positions,
            },
        );
        Ok(buf)
    }
}

/// `(cos, sin)` of `pos * theta^(-2i / head_dim)` in f64, rounded to f32, as the CPU backend
/// computes them.
fn rope_cos_sin(theta: f32, head_dim: usize, positions: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| (theta as f64).powf(-((2 * i) as f64) / head_dim as f64))
        .collect();
    let mut out = Vec::with_capacity(2 * positions * half);
    for pos in 0..positions {
        for &f in &inv_freq {
            let angle = pos as f64 * f;
            out.extend([angle.cos() as f32, angle.sin() as f32]);
        }
    }
    out
}

/// Bytes of an f32 array of these dimensions, saturating (the device then refuses the size).
fn f32_bytes(dims: &[usize]) -> u64 {
    dims.iter().fold(4u64, |bytes, &d| bytes.saturating_mul(d as u64))
}

fn dims(t: &WgpuTensor) -> checks::Dims {
    (t.rows, t.cols)
}

/// A `u32` shader parameter, refused when the size does not fit the shader's arithmetic.
fn param(what: &'static str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| KernelError::InvalidArgument {
        op: what,
        message: format!("{value} is past the wgpu kernels' 32-bit indices"),
    })
}

impl Backend for WgpuBackend {
    type Tensor = WgpuTensor;
    type Weight = WgpuWeight;
    type KvCache = WgpuKvCache;

    fn name(&self) -> String {
        let precision = match self.precision {
            ActivationPrecision::Int8 => "int8",
            ActivationPrecision::F32 => "f32",
        };
        format!(
            "wgpu ({}, {:?}, {precision} activations)",
            self.gpu.info.name, self.gpu.info.backend
        )
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<WgpuTensor> {
        if data.len() != rows * cols {
            return Err(crate::error::shape_err(
                "upload",
                format!("{rows} x {cols} values"),
                data.len(),
            ));
        }
        param("upload", data.len())?;
        let t = self.tensor(rows, cols)?;
        self.recorder.upload(&self.gpu, &t.buf, bytemuck::cast_slice(data))?;
        Ok(t)
    }

    fn upload_weight(&self, weight: &HostWeight) -> Result<WgpuWeight> {
        weight.validate()?;
        let (rows, cols) = weight.matrix_dims();
        param("upload_weight", weight.elems())?;
        let (dtype, words) = match layout::device_words(weight)? {
            Some(words) => (weight.dtype, words),
            None => (DType::F32, weight.to_f32()?.into_iter().map(f32::to_bits).collect()),
        };
        let buf = self.pool.dedicated(&self.gpu, "weight", 4 * words.len() as u64)?;
        self.gpu
            .queue
            .write_buffer(&buf.buffer, 0, bytemuck::cast_slice(&words));
        Ok(WgpuWeight {
            buf,
            dtype,
            rows,
            cols,
            file_bytes: weight.bytes.len(),
        })
    }

    fn read(&self, x: &WgpuTensor) -> Result<Vec<f32>> {
        let bytes = self
            .recorder
            .read(&self.gpu, &self.pool, &x.buf, 4 * (x.rows * x.cols) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn dims(&self, x: &WgpuTensor) -> (usize, usize) {
        dims(x)
    }

    fn weight_dims(&self, w: &WgpuWeight) -> (usize, usize) {
        (w.rows, w.cols)
    }

    fn kv_cache(&self, spec: KvCacheSpec) -> Result<WgpuKvCache> {
        let bytes = f32_bytes(&[spec.max_positions, spec.kv_heads, spec.head_dim]);
        Ok(WgpuKvCache {
            spec,
            keys: self.pool.dedicated(&self.gpu, "kv cache keys", bytes)?,
            values: self.pool.dedicated(&self.gpu, "kv cache values", bytes)?,
            len: 0,
        })
    }

    fn kv_len(&self, cache: &WgpuKvCache) -> usize {
        cache.len
    }

    fn kv_clear(&self, cache: &mut WgpuKvCache) {
        cache.len = 0;
    }

    fn kv_truncate(&self, cache: &mut WgpuKvCache, len: usize) {
        cache.len = cache.len.min(len);
    }

    fn matmul(&self, x: &WgpuTensor, w: &WgpuWeight) -> Result<WgpuTensor> {
        checks::matmul_operands(dims(x), (w.rows, w.cols))?;
        let (n, m, k) = (x.rows, w.rows, w.cols);
        let out = self.tensor(n, m)?;
        let params = [
            param("matmul", n)?,
            param("matmul", m)?,
            param("matmul", k)?,
            format_code(w.dtype),
        ];
        // Cooperative: a workgroup per column and 8 rows; per invocation: per column and 4 rows.
        let (workgroups, items) = (m * n.div_ceil(8), m * n.div_ceil(4));
        if w.dtype == DType::F32 {
            let buffers = [out.buf.as_ref(), &w.buf, &x.buf];
            self.run_reducing(Kernel::MatmulDense, &buffers, &params, workgroups, items)?;
            self.ledger
                .record(OpKind::DenseMatmul, checks::matmul_cost(n, m, k, w.file_bytes, false));
            return Ok(out);
        }
        let int8 = self.precision == ActivationPrecision::Int8;
        if int8 {
            let blocks = n * k / 32;
            let xq = self.pool.take(&self.gpu, (n * k) as u64, false)?;
            let xd = self.pool.take(&self.gpu, 4 * blocks as u64, false)?;
            self.run(
                Kernel::Quantize,
                &[&x.buf, &xq, &xd],
                &[blocks as u32],
                blocks.div_ceil(64),
            )?;
            let buffers = [&w.buf, &xq, &xd, out.buf.as_ref()];
            self.run_reducing(Kernel::MatmulInt8, &buffers, &params, workgroups, items)?;
        } else {
            let buffers = [&w.buf, x.buf.as_ref(), &out.buf];
            self.run_reducing(Kernel::MatmulF32Act, &buffers, &params, workgroups, items)?;
        }
        self.ledger
            .record(OpKind::QuantMatmul, checks::matmul_cost(n, m, k, w.file_bytes, int8));
        Ok(out)
    }

    fn embedding(&self, table: &WgpuWeight, ids: &[u32]) -> Result<WgpuTensor> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(KernelError::TokenOutOfRange { id, rows: table.rows });
        }
        let cols = table.cols;
        let out = self.tensor(ids.len(), cols)?;
        let id_buf = self.pool.take(&self.gpu, 4 * ids.len() as u64, false)?;
        self.recorder.upload(&self.gpu, &id_buf, bytemuck::cast_slice(ids))?;
        let (kernel, buffers): (_, [&GpuBuffer; 3]) = if table.dtype == DType::F32 {
            (Kernel::EmbedDense, [&id_buf, &out.buf, &table.buf])
        } else {
            (Kernel::EmbedBlocks, [&table.buf, &id_buf, &out.buf])
        };
        let len = param("embedding", ids.len() * cols)?;
        let params = [len, cols as u32, format_code(table.dtype)];
        self.run(kernel, &buffers, &params, (len as usize).div_ceil(256))?;
        let row_bytes = table.file_bytes / table.rows.max(1);
        self.ledger
            .record(OpKind::Embedding, checks::embedding_cost(ids.len(), cols, row_bytes));
        Ok(out)
    }

    fn rms_norm(&self, x: &WgpuTensor, gamma: &WgpuTensor, eps: f32) -> Result<WgpuTensor> {
        checks::row_vector("rms_norm", dims(x), dims(gamma))?;
        let out = self.tensor(x.rows, x.cols)?;
        let params = [x.rows as u32, x.cols as u32, eps.to_bits()];
        let buffers = [x.buf.as_ref(), &gamma.buf, &out.buf];
        self.run_reducing(Kernel::RmsNorm, &buffers, &params, x.rows, x.rows)?;
        self.ledger.record(OpKind::Norm, checks::row_op_cost(x.rows, x.cols, 4));
        Ok(out)
    }

    fn layer_norm(&self, x: &WgpuTensor, gamma: &WgpuTensor, beta: &WgpuTensor, eps: f32) -> Result<WgpuTensor> {
        checks::row_vector("layer_norm", dims(x), dims(gamma))?;
        checks::row_vector("layer_norm", dims(x), dims(beta))?;
        let out = self.tensor(x.rows, x.cols)?;
        let params = [x.rows as u32, x.cols as u32, eps.to_bits()];
        let buffers = [x.buf.as_ref(), &gamma.buf, &beta.buf, &out.buf];
        self.run_reducing(Kernel::LayerNorm, &buffers, &params, x.rows, x.rows)?;
        self.ledger.record(OpKind::Norm, checks::row_op_cost(x.rows, x.cols, 7));
        Ok(out)
    }

    fn rope(&self, x: &WgpuTensor, p: RopeParams) -> Result<WgpuTensor> {
        checks::rope_operand(dims(x), &p)?;
        let end = param("rope", p.start_pos.saturating_add(x.rows))?;
        let table = self.rope_table(p.theta, p.head_dim, end as usize)?;
        let out = self.tensor(x.rows, x.cols)?;
        let interleaved = u32::from(p.style == RopeStyle::Interleaved);
        let params = [
            x.rows as u32,
            x.cols as u32,
            0,
            p.heads as u32,
            p.head_dim as u32,
            param("rope", p.start_pos)?,
            interleaved,
        ];
        let pairs = x.rows * x.cols / 2;
        self.run(Kernel::Rope, &[&x.buf, &out.buf, &table], &params, pairs.div_ceil(64))?;
        self.ledger.record(OpKind::Rope, checks::row_op_cost(x.rows, x.cols, 3));
        Ok(out)
    }

    fn attention(
        &self,
        q: &WgpuTensor,
        k: &WgpuTensor,
        v: &WgpuTensor,
        cache: &mut WgpuKvCache,
        p: AttentionParams,
    ) -> Result<WgpuTensor> {
        checks::attention_operands(dims(q), dims(k), dims(v), &cache.spec, cache.len, &p)?;
        if p.head_dim > MAX_HEAD_DIM {
            return Err(KernelError::InvalidArgument {
                op: "attention",
                message: format!("head size {} is past the wgpu kernel's {MAX_HEAD_DIM}", p.head_dim),
            });
        }
        let (rows, start, appended) = (q.rows, cache.len, k.rows);
        let kv_bytes = 4 * (appended * k.cols) as u64;
        let at = 4 * (start * k.cols) as u64;
        self.recorder.copy(&self.gpu, &k.buf, 0, &cache.keys, at, kv_bytes);
        self.recorder.copy(&self.gpu, &v.buf, 0, &cache.values, at, kv_bytes);
        cache.len += appended;
        let out = self.tensor(rows, q.cols)?;
        let scores = self
            .pool
            .take(&self.gpu, f32_bytes(&[rows, p.heads, cache.spec.max_positions]), false)?;
        let params = [
            rows as u32,
            p.heads as u32,
            p.kv_heads as u32,
            p.head_dim as u32,
            start as u32,
            param("attention", cache.len)?,
            u32::from(p.positional()),
            p.scale.to_bits(),
            param(
                "attention",
                match p.mask {
                    AttentionMask::PrefixLm { bidirectional } => bidirectional,
                    _ => 0,
                },
            )?,
        ];
        let buffers = [q.buf.as_ref(), &cache.keys, &cache.values, &out.buf, &scores];
        self.run_reducing(Kernel::Attend, &buffers, &params, rows * p.heads, rows * p.heads)?;
        self.ledger
            .record(OpKind::Attention, checks::attention_cost(rows, start, appended, &p));
        Ok(out)
    }

    fn activation(&self, x: &WgpuTensor, act: Activation) -> Result<WgpuTensor> {
        let out = self.tensor(x.rows, x.cols)?;
        let kernel = match act {
            Activation::Silu => Kernel::Silu,
            Activation::GeluTanh => Kernel::Gelu,
        };
        self.elementwise(kernel, &[x], &out, [0; 4])?;
        self.ledger
            .record(OpKind::Activation, checks::row_op_cost(x.rows, x.cols, 5));
        Ok(out)
    }

    fn gated(&self, gate: &WgpuTensor, up: &WgpuTensor, act: Activation) -> Result<WgpuTensor> {
        checks::same_shape("gated", dims(gate), dims(up))?;
        let out = self.tensor(gate.rows, gate.cols)?;
        let kernel = match act {
            Activation::Silu => Kernel::GatedSilu,
            Activation::GeluTanh => Kernel::GatedGelu,
        };
        self.elementwise(kernel, &[gate, up], &out, [0; 4])?;
        let mut cost = checks::row_op_cost(gate.rows, gate.cols, 6);
        cost.bytes_read *= 2;
        self.ledger.record(OpKind::Activation, cost);
        Ok(out)
    }

    fn binary(&self, a: &WgpuTensor, b: &WgpuTensor, op: BinaryOp) -> Result<WgpuTensor> {
        let broadcast = checks::binary_operands(dims(a), dims(b))?;
        let out = self.tensor(a.rows, a.cols)?;
        let kernel = match op {
            BinaryOp::Add => Kernel::Add,
            BinaryOp::Mul => Kernel::Mul,
        };
        self.elementwise(kernel, &[a, b], &out, [u32::from(broadcast), 0, 0, 0])?;
        let cost = checks::binary_cost(a.rows * a.cols, b.rows * b.cols, a.rows * a.cols);
        self.ledger.record(OpKind::Elementwise, cost);
        Ok(out)
    }

    fn rows(&self, x: &WgpuTensor, start: usize, len: usize) -> Result<WgpuTensor> {
        checks::range_end("rows", start, len, x.rows)?;
        let out = self.tensor(len, x.cols)?;
        let row_bytes = 4 * x.cols as u64;
        self.recorder.copy(
            &self.gpu,
            &x.buf,
            start as u64 * row_bytes,
            &out.buf,
            0,
            len as u64 * row_bytes,
        );
        self.ledger.record(OpKind::Copy, checks::copy_cost(len * x.cols));
        Ok(out)
    }

    fn columns(&self, x: &WgpuTensor, start: usize, len: usize) -> Result<WgpuTensor> {
        checks::range_end("columns", start, len, x.cols)?;
        let out = self.tensor(x.rows, len)?;
        self.elementwise(Kernel::CopyBlock, &[x], &out, [0, x.cols as u32, 0, start as u32])?;
        self.ledger.record(OpKind::Copy, checks::copy_cost(x.rows * len));
        Ok(out)
    }
}
