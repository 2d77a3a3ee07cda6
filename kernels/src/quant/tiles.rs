//! Block-format matrices repacked into tiles of 16 rows for AVX-512 VNNI,
//! the way an NPU lays weights out for its MAC array: one `vpdpbusd` multiplies 4 unsigned
//! weight bytes of each of 16 rows with the same 4 signed activation bytes and accumulates
//! 16 int32 sums, so a 32-value block of 16 rows costs 8 instructions instead of 16 row-wise
//! dot products. Scales stay f16 as in the file; Q4 tiles keep 4-bit packing, so a tile
//! holds exactly the bytes of the 16 blocks it came from. This file holds the tiled matrix
//! and the legacy formats (Q4_0, Q4_1, Q8_0); the k-quant tiles live in `tiles_k.rs`, the
//! legacy tiles' f32-activation kernels in `tiles_f32.rs`.
//!
//! Every legacy format is stored as unsigned values `u` with `weight = d * u + m`: Q4_1 as it is,
//! Q4_0 with `m = -8 d`, Q8_0 with `u = q + 128` and `m = -128 d`; a block's sum is then
//! `d * d_x * sum(u * x_q) + m * d_x * sum(x_q)`, the second term from the activation
//! block's precomputed sum.

use bytemuck::{Pod, Zeroable};
use half::f16;
use rayon::prelude::*;

use super::act_avx512;
use super::blocks::{ActQ8, BlockQ4_0, BlockQ4_1, BlockQ8_0, QK, QK_K};
use super::matrix::QData;
use super::tiles_f32::{avx512_f32, pack_act_f32};
use super::tiles_k::{repack_q4k, repack_q6k, vnni_k, TileQ4K, TileQ6K};

/// Rows per tile: one 512-bit register of int32 sums.
pub const TILE_ROWS: usize = 16;

/// 16 rows of one 32-value 4-bit block: `qs` is `[k8 group (4)][row (16)][4 bytes]`, byte
/// `j` of a group holding value `8g + j` in its low nibble and `8g + 4 + j` in its high one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TileQ4 {
    pub qs: [u8; QK / 2 * TILE_ROWS],
    pub d: [f16; TILE_ROWS],
    pub m: [f16; TILE_ROWS],
}
const _: () = assert!(std::mem::size_of::<TileQ4>() == 16 * 20);

/// 16 rows of one 32-value 8-bit block, offset to unsigned: `qs` is
/// `[k4 group (8)][row (16)][4 bytes]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TileQ8 {
    pub qs: [u8; QK * TILE_ROWS],
    pub d: [f16; TILE_ROWS],
}
const _: () = assert!(std::mem::size_of::<TileQ8>() == 16 * 34);

#[derive(Clone, Debug)]
enum Tiles {
    Q4(Vec<TileQ4>),
    Q8(Vec<TileQ8>),
    Q4K(Vec<TileQ4K>),
    Q6K(Vec<TileQ6K>),
}

/// A matrix of `rows` by `cols` in tiles, `[strip][block]`; the last strip is padded with
/// zero rows.
#[derive(Clone, Debug)]
pub struct TiledMatrix {
    rows: usize,
    cols: usize,
    tiles: Tiles,
}

/// A strip kernel: 16 outputs from one strip's tiles and one row of activation blocks.
type StripFn<T, A> = unsafe fn(&[T], &[A], &mut [f32; TILE_ROWS]);
/// The same for four activation rows at once, sharing every weight load between them.
type Strip4Fn<T, A> = unsafe fn(&[T], [&[A]; 4], &mut [[f32; TILE_ROWS]; 4]);

/// The kernels of one tile format.
struct StripKernels<T, A> {
    one: StripFn<T, A>,
    four: Option<Strip4Fn<T, A>>,
}

/// Whether this CPU runs the tiled kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A block's 32 values as unsigned integers in element order, with its scale and offset.
fn unsigned_q4_0(b: &BlockQ4_0) -> ([u8; QK], f16, f16) {
    (nibbles(&b.qs), b.d, f16::from_f32(-8.0 * b.d.to_f32()))
}

fn unsigned_q4_1(b: &BlockQ4_1) -> ([u8; QK], f16, f16) {
    (nibbles(&b.qs), b.d, b.m)
}

fn nibbles(qs: &[u8; QK / 2]) -> [u8; QK] {
    std::array::from_fn(|k| if k < QK / 2 { qs[k] & 0xF } else { qs[k - QK / 2] >> 4 })
}

/// Every activation row's 16 outputs for one strip, four rows at a time where a kernel allows.
///
/// # Safety
/// The CPU must run the kernels (see [`available`]).
unsafe fn strip_all<T, A>(tiles: &[T], acts: &[A], bpr: usize, sums: &mut [f32], k: &StripKernels<T, A>) {
    let row = |t: usize| &acts[t * bpr..(t + 1) * bpr];
    let n = acts.len() / bpr;
    let mut t = 0;
    if let Some(four) = k.four {
        while t + 4 <= n {
            let mut out = [[0f32; TILE_ROWS]; 4];
            four(tiles, [row(t), row(t + 1), row(t + 2), row(t + 3)], &mut out);
            sums[t * TILE_ROWS..(t + 4) * TILE_ROWS].copy_from_slice(out.as_flattened());
            t += 4;
        }
    }
    for (t, o) in sums.chunks_exact_mut(TILE_ROWS).enumerate().skip(t) {
        let o: &mut [f32; TILE_ROWS] = o.try_into().expect("chunks of a tile's width");
        (k.one)(tiles, row(t), o);
    }
}

/// Builds the tiles of every strip in parallel; `fill` writes row `r` of a tile from the
/// block of that row (rows past the matrix stay zero).
pub(super) fn repack_strips<B: Sync, T: Pod + Send>(
    blocks: &[B],
    rows: usize,
    bpr: usize,
    fill: impl Fn(&B, usize, &mut T) + Sync,
) -> Vec<T> {
    let strips = rows.div_ceil(TILE_ROWS);
    let mut tiles = vec![T::zeroed(); strips * bpr];
    tiles.par_chunks_mut(bpr).enumerate().for_each(|(strip, tiles)| {
        for (b, tile) in tiles.iter_mut().enumerate() {
            for r in 0..TILE_ROWS.min(rows - strip * TILE_ROWS) {
                fill(&blocks[(strip * TILE_ROWS + r) * bpr + b], r, tile);
            }
        }
    });
    tiles
}

/// Writes row `r`'s unsigned 4-bit values `u` into `[k8 group][row][4 bytes]` nibble tiles.
pub(super) fn pack_nibbles(u: &[u8], r: usize, qs: &mut [u8]) {
    for g in 0..u.len() / 8 {
        for j in 0..4 {
            qs[64 * g + 4 * r + j] = u[8 * g + j] | (u[8 * g + 4 + j] << 4);
        }
    }
}

/// Writes row `r`'s byte values `u` into `[k4 group][row][4 bytes]` tiles.
pub(super) fn pack_bytes(u: impl Iterator<Item = u8>, r: usize, qs: &mut [u8]) {
    for (k, v) in u.enumerate() {
        qs[64 * (k / 4) + 4 * r + k % 4] = v;
    }
}

fn repack_q4<B: Sync>(blocks: &[B], rows: usize, bpr: usize, unsigned: fn(&B) -> ([u8; QK], f16, f16)) -> Vec<TileQ4> {
    repack_strips(blocks, rows, bpr, |block, r, tile: &mut TileQ4| {
        let (u, d, m) = unsigned(block);
        pack_nibbles(&u, r, &mut tile.qs);
        (tile.d[r], tile.m[r]) = (d, m);
    })
}

fn repack_q8(blocks: &[BlockQ8_0], rows: usize, bpr: usize) -> Vec<TileQ8> {
    repack_strips(blocks, rows, bpr, |block, r, tile: &mut TileQ8| {
        pack_bytes(block.qs.iter().map(|&q| (q as u8) ^ 0x80), r, &mut tile.qs);
        tile.d[r] = block.d;
    })
}

impl TiledMatrix {
    /// Repacks a matrix into tiles (any block format brainstem reads).
    pub fn repack(data: &QData, rows: usize, cols: usize) -> TiledMatrix {
        let tiles = match data {
            QData::Q4_0(b) => Tiles::Q4(repack_q4(b, rows, cols / QK, unsigned_q4_0)),
            QData::Q4_1(b) => Tiles::Q4(repack_q4(b, rows, cols / QK, unsigned_q4_1)),
            QData::Q8_0(b) => Tiles::Q8(repack_q8(b, rows, cols / QK)),
            QData::Q4K(b) => Tiles::Q4K(repack_q4k(b, rows, cols / QK_K)),
            QData::Q6K(b) => Tiles::Q6K(repack_q6k(b, rows, cols / QK_K)),
        };
        TiledMatrix { rows, cols, tiles }
    }

    /// `out[n, rows] = xs[n, cols] * W^T` with int8 activations. The caller checks shapes
    /// and that [`available`] is true.
    pub fn matmul(&self, xs: &[f32], n: usize, out: &mut [f32]) {
        match &self.tiles {
            Tiles::Q4(t) => {
                let kernels = StripKernels {
                    one: vnni::strip_q4,
                    four: Some(vnni::strip4_q4),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8, QK, kernels)
            }
            Tiles::Q8(t) => {
                let kernels = StripKernels {
                    one: vnni::strip_q8,
                    four: Some(vnni::strip4_q8),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8, QK, kernels)
            }
            Tiles::Q4K(t) => {
                let kernels = StripKernels {
                    one: vnni_k::strip_q4k,
                    four: Some(vnni_k::strip4_q4k),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8k, QK_K, kernels)
            }
            Tiles::Q6K(t) => {
                let kernels = StripKernels {
                    one: vnni_k::strip_q6k,
                    four: Some(vnni_k::strip4_q6k),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8k, QK_K, kernels)
            }
        }
    }

    /// `out[n, rows] = xs[n, cols] * W^T` with f32 activations, for the legacy formats; false
    /// for the k-quants, which have no f32 tiles (the caller runs its row-wise kernels).
    pub fn matmul_f32(&self, xs: &[f32], n: usize, out: &mut [f32]) -> bool {
        match &self.tiles {
            Tiles::Q4(t) => {
                let kernels = StripKernels {
                    one: avx512_f32::strip_q4,
                    four: Some(avx512_f32::strip4_q4),
                };
                self.run(t, xs, n, out, pack_act_f32, QK, kernels);
                true
            }
            Tiles::Q8(t) => {
                let kernels = StripKernels {
                    one: avx512_f32::strip_q8,
                    four: Some(avx512_f32::strip4_q8),
                };
                self.run(t, xs, n, out, pack_act_f32, QK, kernels);
                true
            }
            Tiles::Q4K(_) | Tiles::Q6K(_) => false,
        }
    }

    /// Prepares the activation blocks (`quantize`: int8 blocks, or f32 blocks with their
    /// sums), runs the strip kernels over every (strip, activation row) in parallel, and
    /// gathers the 16-row results into `out`: directly for one activation row, through a
    /// transposed buffer for several.
    ///
    /// The caller checks shapes and that [`available`] holds, so that every kernel call below
    /// is sound: the kernels need the CPU features `available` checks, and every slice they
    /// get is sized from the same block count.
    #[allow(clippy::too_many_arguments)]
    fn run<T: Sync, A: Pod + Send + Sync>(
        &self,
        tiles: &[T],
        xs: &[f32],
        n: usize,
        out: &mut [f32],
        quantize: fn(&[f32], &mut [A]),
        elems: usize,
        kernels: StripKernels<T, A>,
    ) {
        let bpr = self.cols / elems;
        let mut acts = vec![A::zeroed(); n * bpr];
        if n < 4 {
            for (a, x) in acts.chunks_mut(bpr).zip(xs.chunks(self.cols)) {
                quantize(x, a);
            }
        } else {
            acts.par_chunks_mut(bpr)
                .zip(xs.par_chunks(self.cols))
                .for_each(|(a, x)| quantize(x, a));
        }
        let strips = self.rows.div_ceil(TILE_ROWS);
        let per_task = strips.div_ceil(4 * rayon::current_num_threads().max(1)).max(1);
        let strip_tiles = |s: usize| &tiles[s * bpr..(s + 1) * bpr];
        if n == 1 {
            // One parallel pass, each strip's 16 sums written straight into `out`.
            out.par_chunks_mut(per_task * TILE_ROWS)
                .enumerate()
                .for_each(|(task, out)| {
                    for (i, rows) in out.chunks_mut(TILE_ROWS).enumerate() {
                        let mut sums = [0f32; TILE_ROWS];
                        // SAFETY: see the doc comment.
                        unsafe { (kernels.one)(strip_tiles(task * per_task + i), &acts, &mut sums) };
                        rows.copy_from_slice(&sums[..rows.len()]);
                    }
                });
            return;
        }
        let mut sums = vec![0f32; strips * n * TILE_ROWS];
        sums.par_chunks_mut(per_task * n * TILE_ROWS)
            .enumerate()
            .for_each(|(task, sums)| {
                for (i, strip_sums) in sums.chunks_exact_mut(n * TILE_ROWS).enumerate() {
                    // SAFETY: see the doc comment.
                    unsafe { strip_all(strip_tiles(task * per_task + i), &acts, bpr, strip_sums, &kernels) };
                }
            });
        out.par_chunks_mut(self.rows).enumerate().for_each(|(t, out_row)| {
            for (s, strip_sums) in sums.chunks_exact(n * TILE_ROWS).enumerate() {
                let valid = TILE_ROWS.min(self.rows - s * TILE_ROWS);
                out_row[s * TILE_ROWS..][..valid].copy_from_slice(&strip_sums[t * TILE_ROWS..][..valid]);
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod vnni {
    use std::arch::x86_64::*;

    use super::{ActQ8, TileQ4, TileQ8, TILE_ROWS};

    /// Four activation bytes broadcast to every 32-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(crate) unsafe fn broadcast4(qs: &[i8], at: usize) -> __m512i {
        _mm512_set1_epi32(std::ptr::read_unaligned(qs.as_ptr().add(at).cast::<i32>()))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn sum4(v: [__m512i; 4]) -> __m512i {
        _mm512_add_epi32(_mm512_add_epi32(v[0], v[1]), _mm512_add_epi32(v[2], v[3]))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip_q4(tiles: &[TileQ4], acts: &[ActQ8], out: &mut [f32; TILE_ROWS]) {
        assert!(acts.len() >= tiles.len(), "activation row shorter than the strip");
        let low = _mm512_set1_epi8(0xF);
        let mut acc = _mm512_setzero_ps();
        for (tile, a) in tiles.iter().zip(acts) {
            // Four independent chains: vpdpbusd's latency would otherwise bound the loop.
            let mut dots = [_mm512_setzero_si512(); 4];
            for g in 0..4 {
                let v = _mm512_loadu_si512(tile.qs.as_ptr().add(64 * g).cast());
                let (lo, hi) = (2 * (g & 1), 2 * (g & 1) + 1);
                dots[lo] = _mm512_dpbusd_epi32(dots[lo], _mm512_and_si512(v, low), broadcast4(&a.qs, 8 * g));
                let high = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                dots[hi] = _mm512_dpbusd_epi32(dots[hi], high, broadcast4(&a.qs, 8 * g + 4));
            }
            let dot = sum4(dots);
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast()));
            let m = _mm512_cvtph_ps(_mm256_loadu_si256(tile.m.as_ptr().cast()));
            acc = _mm512_fmadd_ps(d, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(a.d)), acc);
            acc = _mm512_fmadd_ps(m, _mm512_set1_ps(a.sum), acc);
        }
        _mm512_storeu_ps(out.as_mut_ptr(), acc);
    }

    /// Four activation rows against one strip of Q4 tiles: each weight load feeds four rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip4_q4(tiles: &[TileQ4], acts: [&[ActQ8]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        assert!(
            acts.iter().all(|a| a.len() >= tiles.len()),
            "activation row shorter than the strip"
        );
        let low = _mm512_set1_epi8(0xF);
        let mut acc = [_mm512_setzero_ps(); 4];
        for (i, tile) in tiles.iter().enumerate() {
            let mut dots = [[_mm512_setzero_si512(); 2]; 4];
            for g in 0..4 {
                let v = _mm512_loadu_si512(tile.qs.as_ptr().add(64 * g).cast());
                let (lo, hi) = (_mm512_and_si512(v, low), _mm512_and_si512(_mm512_srli_epi16(v, 4), low));
                for (dots, a) in dots.iter_mut().zip(acts) {
                    let qs = &a.get_unchecked(i).qs;
                    dots[0] = _mm512_dpbusd_epi32(dots[0], lo, broadcast4(qs, 8 * g));
                    dots[1] = _mm512_dpbusd_epi32(dots[1], hi, broadcast4(qs, 8 * g + 4));
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast()));
            let m = _mm512_cvtph_ps(_mm256_loadu_si256(tile.m.as_ptr().cast()));
            for ((acc, dots), a) in acc.iter_mut().zip(dots).zip(acts) {
                let a = a.get_unchecked(i);
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(dots[0], dots[1]));
                *acc = _mm512_fmadd_ps(d, _mm512_mul_ps(dot, _mm512_set1_ps(a.d)), *acc);
                *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(a.sum), *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }

    /// Four activation rows against one strip of Q8 tiles.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip4_q8(tiles: &[TileQ8], acts: [&[ActQ8]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        assert!(
            acts.iter().all(|a| a.len() >= tiles.len()),
            "activation row shorter than the strip"
        );
        let mut acc = [_mm512_setzero_ps(); 4];
        for (i, tile) in tiles.iter().enumerate() {
            let mut dots = [[_mm512_setzero_si512(); 2]; 4];
            for g in 0..8 {
                let v = _mm512_loadu_si512(tile.qs.as_ptr().add(64 * g).cast());
                for (dots, a) in dots.iter_mut().zip(acts) {
                    let qs = &a.get_unchecked(i).qs;
                    dots[g & 1] = _mm512_dpbusd_epi32(dots[g & 1], v, broadcast4(qs, 4 * g));
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast()));
            for ((acc, dots), a) in acc.iter_mut().zip(dots).zip(acts) {
                let a = a.get_unchecked(i);
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(dots[0], dots[1]));
                let scaled = _mm512_fmsub_ps(dot, _mm512_set1_ps(a.d), _mm512_set1_ps(128.0 * a.sum));
                *acc = _mm512_fmadd_ps(d, scaled, *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip_q8(tiles: &[TileQ8], acts: &[ActQ8], out: &mut [f32; TILE_ROWS]) {
        assert!(acts.len() >= tiles.len(), "activation row shorter than the strip");
        let mut acc = _mm512_setzero_ps();
        for (tile, a) in tiles.iter().zip(acts) {
            let mut dots = [_mm512_setzero_si512(); 4];
            for g in 0..8 {
                let v = _mm512_loadu_si512(tile.qs.as_ptr().add(64 * g).cast());
                dots[g & 3] = _mm512_dpbusd_epi32(dots[g & 3], v, broadcast4(&a.qs, 4 * g));
            }
            let dot = sum4(dots);
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(tile.d.as_ptr().cast()));
            // d * (d_x * sum(u x_q) - 128 * d_x * sum(x_q)), u = q + 128.
            let scaled = _mm512_fmsub_ps(
                _mm512_cvtepi32_ps(dot),
                _mm512_set1_ps(a.d),
                _mm512_set1_ps(128.0 * a.sum),
            );
            acc = _mm512_fmadd_ps(d, scaled, acc);
        }
        _mm512_storeu_ps(out.as_mut_ptr(), acc);
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod vnni {
    use super::{ActQ8, TileQ4, TileQ8, TILE_ROWS};

    pub unsafe fn strip_q4(_: &[TileQ4], _: &[ActQ8], _: &mut [f32; TILE_ROWS]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip_q8(_: &[TileQ8], _: &[ActQ8], _: &mut [f32; TILE_ROWS]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip4_q4(_: &[TileQ4], _: [&[ActQ8]; 4], _: &mut [[f32; TILE_ROWS]; 4]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip4_q8(_: &[TileQ8], _: [&[ActQ8]; 4], _: &mut [[f32; TILE_ROWS]; 4]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }
}
