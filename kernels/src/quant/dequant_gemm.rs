//! Many activation rows times a block-quantized matrix where no int8 tiles run (every kernel
//! family but AVX-512 VNNI): a strip of weight rows at a time is dequantized to f32, packed
//! into panels and multiplied by every activation row with the dense f32 microkernels
//! (`cpu::dense`), which follow the kernel family. Row-wise int8 dot products (`vpmaddubsw`
//! on AVX2, `sdot` on NEON) reach about half of the f32 FMA rate, which a blocked GEMM nearly
//! fills; once a strip's dequantization is shared by enough activation rows ([`MIN_ROWS`]),
//! this is the faster product for int8 and f32 activations alike. It is the exact product
//! with the dequantized weights, as
//! [`ActivationPrecision::F32`](super::ActivationPrecision::F32) computes it.

use rayon::prelude::*;

use super::format::QuantFormat;
use crate::cpu::dense::{DenseMatrix, OutBlock};
use crate::family::{self, Feature};

/// Activation rows from which the product goes through f32 GEMM.
pub const MIN_ROWS: usize = 32;

/// Weight rows dequantized at a time: four panels, a 128 x 4096 strip is 2 MiB of f32.
const STRIP_ROWS: usize = 128;

/// Whether an `n`-row product without int8 tiles goes through f32 GEMM.
pub fn applies(n: usize) -> bool {
    n >= MIN_ROWS && !family::has(Feature::Avx512Vnni)
}

/// How this process multiplies many activation rows by a block-quantized matrix, for
/// reports.
pub fn multi_row_path() -> &'static str {
    match family::has(Feature::Avx512Vnni) {
        true => "int8 VNNI tiles",
        false => "strips dequantized to f32, then f32 GEMM",
    }
}

/// `out[n, rows] = xs[n, cols] . W[rows, cols]^T` for `blocks`, the matrix's rows of
/// `cols / W::ELEMS` blocks each.
pub fn matmul<W: QuantFormat>(blocks: &[W], rows: usize, cols: usize, xs: &[f32], n: usize, out: &mut [f32]) {
    assert!(xs.len() == n * cols && out.len() == n * rows && blocks.len() * W::ELEMS == rows * cols);
    if n == 0 || rows == 0 || cols == 0 {
        out.fill(0.0);
        return;
    }
    let per_row = cols / W::ELEMS;
    let out = OutBlock {
        base: out.as_mut_ptr(),
        stride: rows,
    };
    let out = &out;
    (0..rows.div_ceil(STRIP_ROWS)).into_par_iter().for_each_init(
        || (vec![0f32; STRIP_ROWS * cols], DenseMatrix::new(&[], 0, cols)),
        |(strip, panels), task| {
            let first = task * STRIP_ROWS;
            let strip_rows = STRIP_ROWS.min(rows - first);
            let strip = &mut strip[..strip_rows * cols];
            W::dequantize(&blocks[first * per_row..(first + strip_rows) * per_row], strip);
            panels.repack(strip, strip_rows, cols);
            let columns = OutBlock {
                base: out.base.wrapping_add(first),
                stride: rows,
            };
            // SAFETY: `out` holds n rows of `rows` values; this task alone writes columns
            // `first..first + strip_rows` of them.
            unsafe { panels.matmul_serial_into(xs, n, &columns) };
        },
    );
}
