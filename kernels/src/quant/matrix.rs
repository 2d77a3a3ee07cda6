//! `QMatrix`: a weight matrix kept in its file's block format in memory, and the parallel
//! matmul that multiplies f32 activations with it (activations quantized on the fly to int8
//! blocks, int8 x int8 -> int32 dot products, per-block scales in f32).

use std::sync::Arc;

use bytemuck::Zeroable;
use rayon::prelude::*;

use super::blocks::*;
use super::dequant_gemm;
use super::format::QuantFormat;
use super::tiles::{self, TiledMatrix};
use super::{DType, HostWeight};
use crate::error::{shape_err, KernelError, Result};
use crate::strided::scatter_transposed;

/// Blocks of a quantized matrix, row-major: each row is `cols / ELEMS` whole blocks.
#[derive(Clone, Debug)]
pub enum QData {
    Q4_0(Vec<BlockQ4_0>),
    Q4_1(Vec<BlockQ4_1>),
    Q8_0(Vec<BlockQ8_0>),
    Q4K(Vec<BlockQ4K>),
    Q6K(Vec<BlockQ6K>),
}

/// Runs `$body` with `$b` bound to the block vector, whatever its format.
macro_rules! with_blocks {
    ($data:expr, $b:ident => $body:expr) => {
        match $data {
            QData::Q4_0($b) => $body,
            QData::Q4_1($b) => $body,
            QData::Q8_0($b) => $body,
            QData::Q4K($b) => $body,
            QData::Q6K($b) => $body,
        }
    };
}

/// A quantized weight matrix of `rows` outputs by `cols` inputs: the blocks as the file
/// holds them and, where the CPU has AVX-512 VNNI, the same blocks repacked into 16-row
/// tiles for the int8 path (and, for the legacy formats, the f32 path).
#[derive(Clone, Debug)]
pub struct QMatrix {
    rows: usize,
    cols: usize,
    data: QData,
    tiled: Option<Arc<TiledMatrix>>,
}

/// Rows per parallel task: enough work to amortise scheduling, enough tasks to balance.
fn rows_per_task(rows: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    rows.div_ceil(tasks).max(4)
}

impl QMatrix {
    /// Copies a host weight of a block format into aligned blocks.
    pub fn from_host(weight: &HostWeight) -> Result<QMatrix> {
        weight.validate()?;
        let (rows, cols) = weight.matrix_dims();
        let bytes: &[u8] = &weight.bytes;
        let data = match weight.dtype {
            DType::Q4_0 => QData::Q4_0(bytemuck::pod_collect_to_vec(bytes)),
            DType::Q4_1 => QData::Q4_1(bytemuck::pod_collect_to_vec(bytes)),
            DType::Q8_0 => QData::Q8_0(bytemuck::pod_collect_to_vec(bytes)),
            DType::Q4K => QData::Q4K(bytemuck::pod_collect_to_vec(bytes)),
            DType::Q6K => QData::Q6K(bytemuck::pod_collect_to_vec(bytes)),
            dtype => return Err(KernelError::UnsupportedDType { op: "QMatrix", dtype }),
        };
        let tiled = tiles::available().then(|| Arc::new(TiledMatrix::repack(&data, rows, cols)));
        Ok(QMatrix {
            rows,
            cols,
            data,
            tiled,
        })
    }

    /// The same matrix without its tiled copy: the row-wise kernels, for tests and benches.
    pub fn without_tiles(&self) -> QMatrix {
        QMatrix {
            tiled: None,
            ..self.clone()
        }
    }

    /// Whether the int8 path runs on VNNI tiles.
    pub fn is_tiled(&self) -> bool {
        self.tiled.is_some()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn dtype(&self) -> DType {
        match &self.data {
            QData::Q4_0(_) => DType::Q4_0,
            QData::Q4_1(_) => DType::Q4_1,
            QData::Q8_0(_) => DType::Q8_0,
            QData::Q4K(_) => DType::Q4K,
            QData::Q6K(_) => DType::Q6K,
        }
    }

    /// Bytes of weight data, as stored.
    pub fn byte_len(&self) -> usize {
        self.rows * self.cols / self.dtype().block_elems() * self.dtype().block_bytes()
    }

    pub fn data(&self) -> &QData {
        &self.data
    }

    /// Dequantizes row `row` into `out` (`out.len() == cols`).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.rows || out.len() != self.cols {
            return Err(shape_err(
                "dequantize_row",
                format!("row < {} and {} outputs", self.rows, self.cols),
                format!("row {row} and {} outputs", out.len()),
            ));
        }
        fn one<W: QuantFormat>(blocks: &[W], cols: usize, row: usize, out: &mut [f32]) {
            let per_row = cols / W::ELEMS;
            W::dequantize(&blocks[row * per_row..(row + 1) * per_row], out)
        }
        with_blocks!(&self.data, b => one(b, self.cols, row, out));
        Ok(())
    }

    /// `out[n, rows] = xs[n, cols] * self^T` with the fastest kernels this CPU runs, the
    /// activations either quantized to int8 blocks or kept in f32.
    pub fn matmul(&self, xs: &[f32], n: usize, out: &mut [f32], precision: ActivationPrecision) -> Result<()> {
        self.check_matmul(xs, n, out)?;
        if let Some(tiled) = &self.tiled {
            match precision {
                ActivationPrecision::Int8 => {
                    tiled.matmul(xs, n, out);
                    return Ok(());
                }
                ActivationPrecision::F32 if tiled.matmul_f32(xs, n, out) => return Ok(()),
                ActivationPrecision::F32 => {}
            }
        }
        let (rows, cols) = (self.rows, self.cols);
        if dequant_gemm::applies(n) {
            with_blocks!(&self.data, b => dequant_gemm::matmul(b, rows, cols, xs, n, out));
            return Ok(());
        }
        with_blocks!(&self.data, b => match precision {
            ActivationPrecision::Int8 => {
                let kernels = Kernels { dot: QuantFormat::dot_kernel(), dot4: QuantFormat::dot4_kernel() };
                matmul_int8(b, rows, cols, xs, n, out, kernels)
            }
            ActivationPrecision::F32 => {
                let kernels = Kernels { dot: QuantFormat::dot_f32_kernel(), dot4: QuantFormat::dot4_f32_kernel() };
                matmul_f32(b, rows, cols, xs, n, out, kernels)
            }
        });
        Ok(())
    }

    /// The product through strips dequantized to f32 and f32 GEMM, whatever the kernel
    /// family: what `matmul` runs for many activation rows where no int8 tiles do.
    pub fn matmul_dequantized(&self, xs: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        self.check_matmul(xs, n, out)?;
        let (rows, cols) = (self.rows, self.cols);
        with_blocks!(&self.data, b => dequant_gemm::matmul(b, rows, cols, xs, n, out));
        Ok(())
    }

    /// The same product with the plain scalar dot products: the reference for `matmul`.
    pub fn matmul_scalar(&self, xs: &[f32], n: usize, out: &mut [f32], precision: ActivationPrecision) -> Result<()> {
        self.check_matmul(xs, n, out)?;
        let (rows, cols) = (self.rows, self.cols);
        with_blocks!(&self.data, b => match precision {
            ActivationPrecision::Int8 => {
                matmul_int8(b, rows, cols, xs, n, out, Kernels { dot: QuantFormat::dot_scalar, dot4: None })
            }
            ActivationPrecision::F32 => {
                matmul_f32(b, rows, cols, xs, n, out, Kernels { dot: QuantFormat::dot_f32_scalar, dot4: None })
            }
        });
        Ok(())
    }

    fn check_matmul(&self, xs: &[f32], n: usize, out: &[f32]) -> Result<()> {
        if xs.len() != n * self.cols || out.len() != n * self.rows {
            return Err(shape_err(
                "quantized matmul",
                format!("x [{n}, {}] and out [{n}, {}]", self.cols, self.rows),
                format!("x of {} and out of {} elements", xs.len(), out.len()),
            ));
        }
        Ok(())
    }
}

/// How activations meet block-quantized weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationPrecision {
    /// Quantized on the fly to int8 blocks; int8 x int8 -> int32 dot products with per-block
    /// scales, as an NPU's MAC array (and ggml) computes. The fastest, with one exception:
    /// where no int8 tiles run (kernel families without AVX-512 VNNI), a product of at least
    /// 32 activation rows goes through f32 GEMM on dequantized strips instead, which is
    /// faster there ([`multi_row_path`](super::multi_row_path) says which runs).
    #[default]
    Int8,
    /// Kept in f32 and multiplied with each weight block dequantized in registers: the exact
    /// product with the dequantized weights, as a dequantizing reference computes it.
    F32,
}

/// The dot products one matmul runs: one weight row with one activation row, and, where
/// the CPU has it, one weight row with four activation rows sharing the weight unpacking.
struct Kernels<W, A> {
    dot: fn(&[W], &[A]) -> f32,
    dot4: Option<RowsDot4<W, A>>,
}

/// One weight row against four activation rows.
type RowsDot4<W, A> = fn(&[W], [&[A]; 4]) -> [f32; 4];

/// `n` activation rows of `stride` items each.
struct ActRows<'a, A> {
    data: &'a [A],
    stride: usize,
    n: usize,
}

impl<A> ActRows<'_, A> {
    fn row(&self, t: usize) -> &[A] {
        &self.data[t * self.stride..(t + 1) * self.stride]
    }
}

/// Quantizes each of the `n` activation rows to int8 blocks, then multiplies.
fn matmul_int8<W: QuantFormat>(
    blocks: &[W],
    rows: usize,
    cols: usize,
    xs: &[f32],
    n: usize,
    out: &mut [f32],
    kernels: Kernels<W, W::Act>,
) {
    let per_row = cols / W::ELEMS;
    let mut acts = vec![W::Act::zeroed(); n * per_row];
    for (x, a) in xs.chunks_exact(cols).zip(acts.chunks_exact_mut(per_row)) {
        W::quantize_activations(x, a);
    }
    let acts = ActRows {
        data: &acts,
        stride: per_row,
        n,
    };
    matmul_rows(blocks, rows, per_row, &acts, out, &kernels)
}

/// Multiplies with f32 activations, each weight block dequantized on the fly.
fn matmul_f32<W: QuantFormat>(
    blocks: &[W],
    rows: usize,
    cols: usize,
    xs: &[f32],
    n: usize,
    out: &mut [f32],
    kernels: Kernels<W, f32>,
) {
    let acts = ActRows {
        data: xs,
        stride: cols,
        n,
    };
    matmul_rows(blocks, rows, cols / W::ELEMS, &acts, out, &kernels)
}

/// Dots one weight row with every activation row, four at a time where a kernel allows.
fn dot_all<W, A>(w: &[W], acts: &ActRows<A>, out: &mut [f32], k: &Kernels<W, A>) {
    let mut t = 0;
    if let Some(dot4) = k.dot4 {
        while t + 4 <= acts.n {
            let group = [acts.row(t), acts.row(t + 1), acts.row(t + 2), acts.row(t + 3)];
            out[t..t + 4].copy_from_slice(&dot4(w, group));
            t += 4;
        }
    }
    for (t, o) in out.iter_mut().enumerate().skip(t) {
        *o = (k.dot)(w, acts.row(t));
    }
}

/// Computes output rows in parallel: every task takes a strip of weight rows (`per_row`
/// blocks each) and dots each with all activation rows while the strip is hot in cache.
fn matmul_rows<W: Sync, A: Sync>(
    blocks: &[W],
    rows: usize,
    per_row: usize,
    acts: &ActRows<A>,
    out: &mut [f32],
    kernels: &Kernels<W, A>,
) {
    let strip = rows_per_task(rows);
    let n = acts.n;
    if n == 1 {
        out.par_chunks_mut(strip).enumerate().for_each(|(task, out)| {
            for (i, o) in out.iter_mut().enumerate() {
                let row = task * strip + i;
                *o = (kernels.dot)(&blocks[row * per_row..(row + 1) * per_row], acts.data);
            }
        });
        return;
    }
    let mut transposed = vec![0f32; rows * n];
    transposed
        .par_chunks_mut(strip * n)
        .enumerate()
        .for_each(|(task, out)| {
            for (i, out_row) in out.chunks_exact_mut(n).enumerate() {
                let row = task * strip + i;
                dot_all(&blocks[row * per_row..(row + 1) * per_row], acts, out_row, kernels);
            }
        });
    scatter_transposed(&transposed, rows, n, out);
}
