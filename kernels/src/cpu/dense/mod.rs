//! Dense f32 weights on the CPU and their product with activation rows:
//! `out[n, rows] = xs[n, cols] . W[rows, cols]^T`.
//!
//! On upload the matrix is repacked into panels of [`PANEL`] output features, each panel
//! stored k-major (`panel[k][j]` is `W[panel * PANEL + j][k]`, rows past the matrix zero),
//! so a microkernel reads one contiguous stream of weights and broadcasts each activation
//! value against a whole panel row. The product is blocked as a well-blocked GEMM is: a
//! task owns one panel and up to `ROW_BLOCK` (192) activation rows of the output, so no two
//! tasks write the same element. Blocks of rows run one after another, the pool's workers
//! sharing out the panels of one block, so the workers read the same activations and each
//! panel of weights is read once a block (each worker on blocks of its own measured about a
//! tenth slower on SigLIP's 1024-row products with two workers). Inside a task the depth is
//! cut into `DEPTH_BLOCK` (256) long slices, so the 32 KiB slice of the panel that every row
//! group of the task rereads stays in L1 or L2, and the rows into the largest groups the
//! microkernel's registers hold, balanced so that no group is a short tail.
//!
//! Microkernels: AVX-512 (12 rows x 32 features, 24 accumulators) and AVX2 with FMA (6 x 16,
//! twice per panel) on x86-64, NEON (6 x 16) on aarch64, and plain Rust elsewhere, picked
//! from the active kernel family ([`crate::family`]). Each is tested against the naive
//! triple loop.

#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use rayon::prelude::*;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::family::{self, Feature};

/// Output features per panel.
pub const PANEL: usize = 32;

/// Depth (input columns) per slice of a task.
const DEPTH_BLOCK: usize = 256;

/// Activation rows per task: a 192 x 256 slice of activations (192 KiB) stays in each
/// worker's L2 while the workers pass the block's panels over it.
const ROW_BLOCK: usize = 192;

/// One call of a microkernel: `out[r][c] (+)= sum over k < depth of x[r][k] * panel[k][c]`
/// for the group's rows and the panel's first `cols` features.
#[derive(Clone, Copy)]
struct Tile {
    x: *const f32,
    x_stride: usize,
    panel: *const f32,
    depth: usize,
    out: *mut f32,
    out_stride: usize,
    cols: usize,
    accumulate: bool,
    /// Whether to prefetch the next slice of weights into L2 as this one is read.
    prefetch: bool,
}

/// A microkernel for `rows` activation rows (at most its family's [`Microkernel::max_rows`]).
///
/// # Safety
/// `tile.x` must hold `rows` rows of `tile.depth` values at `tile.x_stride`, `tile.panel`
/// `tile.depth` rows of [`PANEL`] values, and `tile.out` `rows` rows of `tile.cols` values at
/// `tile.out_stride`, none of them written by anyone else during the call.
type MicroFn = unsafe fn(tile: &Tile, rows: usize);

/// The microkernel the active family runs, and the most rows it takes at once.
#[derive(Clone, Copy)]
struct Microkernel {
    call: MicroFn,
    max_rows: usize,
}

impl Microkernel {
    fn for_active_family() -> Microkernel {
        #[cfg(target_arch = "x86_64")]
        {
            if family::has(Feature::Avx512) {
                return x86::AVX512;
            }
            if family::has(Feature::Avx2) {
                return x86::AVX2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        if family::has(Feature::Neon) {
            return neon::NEON;
        }
        scalar::SCALAR
    }

    /// Every microkernel this CPU can run, the active family's or not (for tests).
    #[cfg(test)]
    fn all_available() -> Vec<Microkernel> {
        let mut kernels = vec![scalar::SCALAR];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(x86::AVX512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                kernels.push(x86::AVX2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            kernels.push(neon::NEON);
        }
        kernels
    }
}

/// A dense f32 weight matrix `[rows, cols]` (one output feature per row), held in panels.
#[derive(Debug)]
pub struct DenseMatrix {
    panels: Vec<f32>,
    rows: usize,
    cols: usize,
}

impl DenseMatrix {
    /// Packs the row-major `data` (`rows * cols` values) into panels.
    pub fn new(data: &[f32], rows: usize, cols: usize) -> DenseMatrix {
        let mut matrix = DenseMatrix {
            panels: Vec::new(),
            rows: 0,
            cols: 0,
        };
        matrix.repack(data, rows, cols);
        matrix
    }

    /// Packs `data` in place of what the matrix held, reusing its memory (a strip of
    /// dequantized weights at a time, `quant::dequant_gemm`).
    pub(crate) fn repack(&mut self, data: &[f32], rows: usize, cols: usize) {
        assert_eq!(data.len(), rows * cols, "a dense matrix holds rows x cols values");
        let panels = &mut self.panels;
        panels.clear();
        panels.resize(rows.div_ceil(PANEL) * PANEL * cols, 0.0);
        for (p, panel) in panels.chunks_exact_mut(PANEL * cols.max(1)).enumerate() {
            for j in 0..PANEL.min(rows - p * PANEL) {
                let row = &data[(p * PANEL + j) * cols..][..cols];
                for (k, &v) in row.iter().enumerate() {
                    panel[k * PANEL + j] = v;
                }
            }
        }
        (self.rows, self.cols) = (rows, cols);
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Copies row `r` (one output feature's weights, an embedding table's entry) into `dst`.
    pub fn copy_row(&self, r: usize, dst: &mut [f32]) {
        assert!(r < self.rows && dst.len() == self.cols);
        let panel = &self.panels[(r / PANEL) * PANEL * self.cols..];
        for (k, d) in dst.iter_mut().enumerate() {
            *d = panel[k * PANEL + r % PANEL];
        }
    }

    /// `out[n, rows] = xs[n, cols] . W^T`, on the current rayon pool.
    pub fn matmul(&self, xs: &[f32], n: usize, out: &mut [f32]) {
        self.matmul_with(Microkernel::for_active_family(), xs, n, out);
    }

    fn matmul_with(&self, kernel: Microkernel, xs: &[f32], n: usize, out: &mut [f32]) {
        assert!(xs.len() == n * self.cols && out.len() == n * self.rows);
        if n == 0 || self.rows == 0 {
            return;
        }
        if self.cols == 0 {
            out.fill(0.0);
            return;
        }
        let panels = self.rows.div_ceil(PANEL);
        let out = OutBlock {
            base: out.as_mut_ptr(),
            stride: self.rows,
        };
        for first_row in (0..n).step_by(ROW_BLOCK) {
            let rows = ROW_BLOCK.min(n - first_row);
            (0..panels).into_par_iter().for_each(|p| {
                // SAFETY: the task of panel `p` alone writes that panel's columns of these rows.
                unsafe { self.run_task(kernel, xs, first_row, rows, p, &out) };
            });
        }
    }

    /// `out[t][c] = (xs[n, cols] . W^T)[t][c]` for every activation row `t` and feature `c`
    /// of this matrix, on the calling thread alone, where `out` is a block of a wider output
    /// (`out.stride` values a row).
    ///
    /// # Safety
    /// `out` must hold `n` rows of `self.rows` values at `out.stride`, written by no one else
    /// meanwhile; `xs` must hold `n * self.cols` values.
    pub(crate) unsafe fn matmul_serial_into(&self, xs: &[f32], n: usize, out: &OutBlock) {
        assert!(xs.len() == n * self.cols && self.cols > 0);
        let kernel = Microkernel::for_active_family();
        for first_row in (0..n).step_by(ROW_BLOCK) {
            for p in 0..self.rows.div_ceil(PANEL) {
                self.run_task(kernel, xs, first_row, ROW_BLOCK.min(n - first_row), p, out);
            }
        }
    }

    /// Output rows `first_row..first_row + rows` of panel `p`, depth slice by depth slice.
    ///
    /// # Safety
    /// No other thread may touch that block of `out` meanwhile; `out` holds `n` rows of
    /// `self.rows` values and `xs` `n * self.cols` values, with `first_row + rows <= n`.
    unsafe fn run_task(
        &self,
        kernel: Microkernel,
        xs: &[f32],
        first_row: usize,
        rows: usize,
        p: usize,
        out: &OutBlock,
    ) {
        let cols = self.cols;
        let panel = &self.panels[p * PANEL * cols..(p + 1) * PANEL * cols];
        let out_cols = PANEL.min(self.rows - p * PANEL);
        for k0 in (0..cols).step_by(DEPTH_BLOCK) {
            let depth = DEPTH_BLOCK.min(cols - k0);
            for (group, (start, len)) in row_groups(rows, kernel.max_rows).enumerate() {
                let row = first_row + start;
                let tile = Tile {
                    x: xs[row * cols + k0..].as_ptr(),
                    x_stride: cols,
                    panel: panel[k0 * PANEL..].as_ptr(),
                    depth,
                    out: out.base.add(row * out.stride + p * PANEL),
                    out_stride: out.stride,
                    cols: out_cols,
                    accumulate: k0 > 0,
                    prefetch: group == 0,
                };
                (kernel.call)(&tile, len);
            }
        }
    }
}

/// Where a product's output goes: row `t`'s first value at `base + t * stride`. Tasks share
/// it and write disjoint blocks through it.
pub(crate) struct OutBlock {
    pub base: *mut f32,
    pub stride: usize,
}

// SAFETY: tasks write disjoint elements through the pointer (see `DenseMatrix::matmul` and
// `DenseMatrix::matmul_serial_into`).
unsafe impl Sync for OutBlock {}

/// `rows` split into the fewest groups of at most `max_rows`, as equal as they can be:
/// (first row, length) of each.
fn row_groups(rows: usize, max_rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let groups = rows.div_ceil(max_rows);
    let (base, longer) = (rows / groups, rows % groups);
    (0..groups).map(move |g| (g * base + g.min(longer), base + usize::from(g < longer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &[f32], rows: usize, cols: usize, xs: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * rows];
        for t in 0..n {
            for r in 0..rows {
                let sum: f64 = (0..cols)
                    .map(|k| f64::from(xs[t * cols + k]) * f64::from(w[r * cols + k]))
                    .sum();
                out[t * rows + r] = sum as f32;
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn row_groups_cover_the_rows_in_near_equal_groups() {
        for rows in 1..60 {
            for max in [1, 6, 12] {
                let groups: Vec<_> = row_groups(rows, max).collect();
                assert_eq!(groups.iter().map(|g| g.1).sum::<usize>(), rows);
                assert!(groups.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
                let (lo, hi) = (groups.iter().map(|g| g.1).min(), groups.iter().map(|g| g.1).max());
                assert!(
                    hi.unwrap() <= max && hi.unwrap() - lo.unwrap() <= 1,
                    "{rows} by {max}: {groups:?}"
                );
            }
        }
    }

    #[test]
    fn every_microkernel_matches_the_triple_loop() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for kernel in Microkernel::all_available() {
            matches_the_triple_loop(&pool, kernel);
        }
    }

    fn matches_the_triple_loop(pool: &rayon::ThreadPool, kernel: Microkernel) {
        for (n, rows, cols) in [
            (1, 1, 1),
            (1, 33, 7),
            (2, 31, 300),
            (13, 64, 257),
            (50, 100, 600),
            (200, 40, 96),
            (7, 5, 0),
        ] {
            let (w, xs) = (values(rows * cols, 1), values(n * cols, 2));
            let matrix = DenseMatrix::new(&w, rows, cols);
            let mut out = vec![f32::NAN; n * rows];
            pool.install(|| matrix.matmul_with(kernel, &xs, n, &mut out));
            let expected = naive(&w, rows, cols, &xs, n);
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{n}x{cols} by {rows}: [{i}] {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn rows_read_back_from_the_panels() {
        let (rows, cols) = (37, 5);
        let w = values(rows * cols, 3);
        let matrix = DenseMatrix::new(&w, rows, cols);
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            matrix.copy_row(r, &mut row);
            assert_eq!(row, w[r * cols..(r + 1) * cols]);
        }
    }
}
