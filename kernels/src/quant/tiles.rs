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

/// A strip kernel: adds 16 outputs from one strip's tiles and one row of activation blocks to `out`.
type StripFn<T, A> = unsafe fn(&[T], &[A], &mut [f32; TILE_ROWS]);
/// The same for `W` activation rows at once, sharing every weight load between them.
type StripWideFn<T, A, const W: usize> = unsafe fn(&[T], [&[A]; W], &mut [[f32; TILE_ROWS]; W]);

/// The kernels of one tile format: one activation row, and optionally four and eight.
struct StripKernels<T, A> {
    one: StripFn<T, A>,
    four: Option<StripWideFn<T, A, 4>>,
    eight: Option<StripWideFn<T, A, 8>>,
}

/// Whether the tiled kernels run: the CPU has AVX-512 VNNI and the active kernel family
/// includes it.
pub fn available() -> bool {
    crate::family::has(crate::family::Feature::Avx512Vnni)
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

/// Bytes of weight tiles a strip kernel call reads: a chunk of a strip this size stays in
/// a core's L1 data cache (48 KiB here) beside the activation blocks of eight rows, while
/// every activation row passes over it.
const L1_WEIGHT_BYTES: usize = 16 << 10;

/// Adds every activation row's 16 outputs for one strip to `sums`, one L1-sized chunk of the
/// strip's blocks at a time: eight rows per kernel call, then four, then one, as far as the
/// format has kernels.
///
/// # Safety
/// The CPU must run the kernels (see [`available`]).
unsafe fn strip_all<T, A>(tiles: &[T], acts: &[A], bpr: usize, sums: &mut [f32], k: &StripKernels<T, A>) {
    let chunk = (L1_WEIGHT_BYTES / std::mem::size_of::<T>()).max(1);
    for start in (0..bpr).step_by(chunk) {
        let blocks = start..(start + chunk).min(bpr);
        let row = |t: usize| &acts[t * bpr..(t + 1) * bpr][blocks.clone()];
        let tiles = &tiles[blocks.clone()];
        let rows = sums.len() / TILE_ROWS;
        let mut t = strip_wide(tiles, &row, 0, rows, sums, k.eight);
        t = strip_wide(tiles, &row, t, rows, sums, k.four);
        for (t, o) in sums.as_chunks_mut::<TILE_ROWS>().0.iter_mut().enumerate().skip(t) {
            (k.one)(tiles, row(t), o);
        }
    }
}

/// Runs `W`-row kernel calls from activation row `t` while `W` of the `rows` remain; returns
/// the first row left.
///
/// # Safety
/// As [`strip_all`].
unsafe fn strip_wide<'a, T, A: 'a, const W: usize>(
    tiles: &[T],
    row: &impl Fn(usize) -> &'a [A],
    mut t: usize,
    rows: usize,
    sums: &mut [f32],
    kernel: Option<StripWideFn<T, A, W>>,
) -> usize {
    let Some(kernel) = kernel else { return t };
    while t + W <= rows {
        let out = sums[t * TILE_ROWS..(t + W) * TILE_ROWS].as_chunks_mut::<TILE_ROWS>().0;
        kernel(
            tiles,
            std::array::from_fn(|r| row(t + r)),
            out.try_into().expect("W rows"),
        );
        t += W;
    }
    t
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
                    eight: Some(vnni::strip8_q4),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8, QK, kernels)
            }
            Tiles::Q8(t) => {
                let kernels = StripKernels {
                    one: vnni::strip_q8,
                    four: Some(vnni::strip4_q8),
                    eight: Some(vnni::strip8_q8),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8, QK, kernels)
            }
            Tiles::Q4K(t) => {
                let kernels = StripKernels {
                    one: vnni_k::strip_q4k,
                    four: Some(vnni_k::strip4_q4k),
                    eight: Some(vnni_k::strip8_q4k),
                };
                self.run(t, xs, n, out, act_avx512::quantize_act_q8k, QK_K, kernels)
            }
            Tiles::Q6K(t) => {
                let kernels = StripKernels {
                    one: vnni_k::strip_q6k,
                    four: Some(vnni_k::strip4_q6k),
                    eight: Some(vnni_k::strip8_q6k),
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
                    eight: Some(avx512_f32::strip8_q4),
                };
                self.run(t, xs, n, out, pack_act_f32, QK, kernels);
                true
            }
            Tiles::Q8(t) => {
                let kernels = StripKernels {
                    one: avx512_f32::strip_q8,
                    four: Some(avx512_f32::strip4_q8),
                    eight: Some(avx512_f32::strip8_q8),
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
        // The kernels add into `sums`, so its pages must be written before they are read.
        let mut sums = crate::cpu::memory::written_zeros(strips * n * TILE_ROWS);
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

    /// One activation row's int32 dot product with `u`, the unpacked weights of one block
    /// or sub-block (register `i` against activation bytes `qs[at[i]..]`), starting from
    /// `init`. A row that runs alone gets up to four chains and two to seven rows two each,
    /// so that `vpdpbusd`'s latency does not bound them; eight rows give the core enough
    /// chains with one each.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(crate) unsafe fn dot<const R: usize, const N: usize>(
        u: &[__m512i; N],
        qs: &[i8],
        at: [usize; N],
        init: __m512i,
    ) -> __m512i {
        let chains = match R {
            1 => (N / 2).min(4),
            2..8 => 2,
            _ => 1,
        };
        let mut dots = [
            init,
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
        ];
        for (i, (u, at)) in u.iter().zip(at).enumerate() {
            dots[i % chains] = _mm512_dpbusd_epi32(dots[i % chains], *u, broadcast4(qs, at));
        }
        match chains {
            1 => dots[0],
            2 => _mm512_add_epi32(dots[0], dots[1]),
            _ => _mm512_add_epi32(_mm512_add_epi32(dots[0], dots[1]), _mm512_add_epi32(dots[2], dots[3])),
        }
    }

    /// A legacy tile as the strip kernel sees it: one 32-value block of 16 rows.
    trait LegacyTile {
        /// Where each unpacked register's four activation bytes start in the block.
        const AT: [usize; 8];
        /// The block's unsigned weights, four values of 16 rows per register.
        unsafe fn unpack(&self) -> [__m512i; 8];
        /// `acc` plus the block's contribution, from its int32 dot product with `a`.
        unsafe fn finish(&self, a: &ActQ8, dot: __m512i, acc: __m512) -> __m512;
    }

    impl LegacyTile for TileQ4 {
        const AT: [usize; 8] = [0, 8, 16, 24, 4, 12, 20, 28];

        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn unpack(&self) -> [__m512i; 8] {
            let low = _mm512_set1_epi8(0xF);
            let v: [__m512i; 4] = std::array::from_fn(|g| _mm512_loadu_si512(self.qs.as_ptr().add(64 * g).cast()));
            let high = |v: __m512i| _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
            [
                _mm512_and_si512(v[0], low),
                _mm512_and_si512(v[1], low),
                _mm512_and_si512(v[2], low),
                _mm512_and_si512(v[3], low),
                high(v[0]),
                high(v[1]),
                high(v[2]),
                high(v[3]),
            ]
        }

        /// `d * d_x * dot + m * d_x * sum(x_q)`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn finish(&self, a: &ActQ8, dot: __m512i, acc: __m512) -> __m512 {
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(self.d.as_ptr().cast()));
            let m = _mm512_cvtph_ps(_mm256_loadu_si256(self.m.as_ptr().cast()));
            let acc = _mm512_fmadd_ps(d, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(a.d)), acc);
            _mm512_fmadd_ps(m, _mm512_set1_ps(a.sum), acc)
        }
    }

    impl LegacyTile for TileQ8 {
        const AT: [usize; 8] = [0, 4, 8, 12, 16, 20, 24, 28];

        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn unpack(&self) -> [__m512i; 8] {
            std::array::from_fn(|g| _mm512_loadu_si512(self.qs.as_ptr().add(64 * g).cast()))
        }

        /// `d * (d_x * sum(u x_q) - 128 * d_x * sum(x_q))`, `u = q + 128`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn finish(&self, a: &ActQ8, dot: __m512i, acc: __m512) -> __m512 {
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(self.d.as_ptr().cast()));
            let scaled = _mm512_fmsub_ps(
                _mm512_cvtepi32_ps(dot),
                _mm512_set1_ps(a.d),
                _mm512_set1_ps(128.0 * a.sum),
            );
            _mm512_fmadd_ps(d, scaled, acc)
        }
    }

    /// `R` activation rows against one strip of legacy tiles, added to `out`: each weight
    /// load feeds every row.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows<T: LegacyTile, const R: usize>(tiles: &[T], acts: [&[ActQ8]; R], out: &mut [[f32; TILE_ROWS]; R]) {
        assert!(
            acts.iter().all(|a| a.len() >= tiles.len()),
            "activation row shorter than the strip"
        );
        let mut acc: [__m512; R] = std::array::from_fn(|r| _mm512_loadu_ps(out[r].as_ptr()));
        for (i, tile) in tiles.iter().enumerate() {
            let u = tile.unpack();
            for (acc, a) in acc.iter_mut().zip(acts) {
                let a = a.get_unchecked(i);
                let dot = dot::<R, 8>(&u, &a.qs, T::AT, _mm512_setzero_si512());
                *acc = tile.finish(a, dot, *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }

    /// One activation row's slice as the one-row kernels take it.
    fn one<const W: usize>(out: &mut [f32; W]) -> &mut [[f32; W]; 1] {
        std::slice::from_mut(out).try_into().expect("one row")
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip_q4(tiles: &[TileQ4], acts: &[ActQ8], out: &mut [f32; TILE_ROWS]) {
        rows(tiles, [acts], one(out))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip4_q4(tiles: &[TileQ4], acts: [&[ActQ8]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip8_q4(tiles: &[TileQ4], acts: [&[ActQ8]; 8], out: &mut [[f32; TILE_ROWS]; 8]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip_q8(tiles: &[TileQ8], acts: &[ActQ8], out: &mut [f32; TILE_ROWS]) {
        rows(tiles, [acts], one(out))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip4_q8(tiles: &[TileQ8], acts: [&[ActQ8]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip8_q8(tiles: &[TileQ8], acts: [&[ActQ8]; 8], out: &mut [[f32; TILE_ROWS]; 8]) {
        rows(tiles, acts, out)
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

    pub unsafe fn strip8_q4(_: &[TileQ4], _: [&[ActQ8]; 8], _: &mut [[f32; TILE_ROWS]; 8]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip8_q8(_: &[TileQ8], _: [&[ActQ8]; 8], _: &mut [[f32; TILE_ROWS]; 8]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }
}
