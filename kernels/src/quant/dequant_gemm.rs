//! Many activation rows times a block-quantized matrix where no int8 tiles run (every kernel
//! family but AVX-512 VNNI): a strip of weight rows at a time is dequantized to f32 and
//! multiplied by every activation row with the `gemm` crate's blocked f32 microkernels.
//! Row-wise int8 dot products (`vpmaddubsw` on AVX2, `sdot` on NEON) reach about half of
//! the f32 FMA rate, which a blocked GEMM nearly fills; once a strip's dequantization is
//! shared by enough activation rows ([`MIN_ROWS`]), this is the faster product for int8 and
//! f32 activations alike. It is the exact product with the dequantized weights, as
//! [`ActivationPrecision::F32`](super::ActivationPrecision::F32) computes it.

use rayon::prelude::*;

use super::format::QuantFormat;
use crate::family::{self, Feature};
use crate::strided::{gemm_into, scatter_transposed, View};

/// Activation rows from which the product goes through f32 GEMM.
pub const MIN_ROWS: usize = 32;

/// Weight rows dequantized at a time: a 64 x 4096 strip is 1 MiB of f32.
const STRIP_ROWS: usize = 64;

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
    let per_row = cols / W::ELEMS;
    let mut transposed = vec![0f32; rows * n];
    transposed.par_chunks_mut(STRIP_ROWS * n).enumerate().for_each_init(
        || vec![0f32; STRIP_ROWS * cols],
        |strip, (task, out)| {
            let strip_rows = out.len() / n;
            let first = task * STRIP_ROWS;
            let strip = &mut strip[..strip_rows * cols];
            W::dequantize(&blocks[first * per_row..(first + strip_rows) * per_row], strip);
            let xs_t = View::matrix(xs, n, cols).transposed();
            gemm_into(out, View::matrix(strip, strip_rows, cols), xs_t, 1.0);
        },
    );
    scatter_transposed(&transposed, rows, n, out);
}
