//! The k-quant formats (Q4_K, Q6_K) in 16-row VNNI tiles, against Q8_K activations.
//!
//! Q4_K: the 4-bit values stay packed (`[k8 group (32)][row][4 bytes]` as the legacy Q4
//! tiles), each row's eight 6-bit sub-block scales unpacked to bytes `[sub-block][row]`,
//! its mins to bytes `[half][row][4 sub-blocks]`, `d` and `dmin` as f16 `[row]`. The mins
//! reach the result through the activation's sub-block sums, split into two signed bytes
//! each (`ActQ8K::sub_sums`) so that four int8 dot products weight all eight. Q6_K: values
//! offset to unsigned (`q + 32`), their low 4 bits in a nibble tile and their high 2 bits
//! in a 2-bit plane (the file's size, not a byte per value), the 16 signed group scales
//! `[group][row]`, `d` per row; each group's dot starts from the offset's share,
//! `ActQ8K::q6_offsets`.
//!
//! Each sub-block's int32 dot product is scaled in f32 by `d * scale` (one convert and one
//! FMA per row, where an int32 multiply costs two slots of the two vector ports), so the
//! tiled result differs from the scalar reference's int32 sums by f32 rounding only. The
//! strip kernels take up to eight activation rows per call, unpacking each sub-block once
//! for all of them.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::blocks::{BlockQ4K, BlockQ6K, QK_K};
use super::scalar::{q4k_scale_min, q4k_values, q6k_values};
use super::tiles::{pack_nibbles, repack_strips, TILE_ROWS};

/// 16 rows of one Q4_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TileQ4K {
    pub qs: [u8; QK_K / 2 * TILE_ROWS],
    pub scales: [[u8; TILE_ROWS]; 8],
    pub mins: [u8; 8 * TILE_ROWS],
    pub d: [f16; TILE_ROWS],
    pub dmin: [f16; TILE_ROWS],
}
const _: () = assert!(std::mem::size_of::<TileQ4K>() == 2048 + 256 + 64);

/// 16 rows of one Q6_K super-block, 6-bit packing kept: the low 4 bits of each unsigned
/// value `u = q + 32` in a nibble tile like Q4_K's, the high 2 bits in `qh`
/// (`[k16 group (16)][row][4 bytes]`, byte `j` holding values `16h + j + 4i` in bits `2i..2i+2`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TileQ6K {
    pub ql: [u8; QK_K / 2 * TILE_ROWS],
    pub qh: [u8; QK_K / 4 * TILE_ROWS],
    pub scales: [[i8; TILE_ROWS]; 16],
    pub d: [f16; TILE_ROWS],
}
const _: () = assert!(std::mem::size_of::<TileQ6K>() == 16 * 210);

pub fn repack_q4k(blocks: &[BlockQ4K], rows: usize, bpr: usize) -> Vec<TileQ4K> {
    repack_strips(blocks, rows, bpr, |block, r, tile: &mut TileQ4K| {
        pack_nibbles(&q4k_values(block), r, &mut tile.qs);
        for sub in 0..8 {
            let (scale, min) = q4k_scale_min(sub, &block.scales);
            tile.scales[sub][r] = scale;
            tile.mins[64 * (sub / 4) + 4 * r + sub % 4] = min;
        }
        (tile.d[r], tile.dmin[r]) = (block.d, block.dmin);
    })
}

pub fn repack_q6k(blocks: &[BlockQ6K], rows: usize, bpr: usize) -> Vec<TileQ6K> {
    repack_strips(blocks, rows, bpr, |block, r, tile: &mut TileQ6K| {
        let u: Vec<u8> = q6k_values(block).iter().map(|&q| (q + 32) as u8).collect();
        let low: Vec<u8> = u.iter().map(|v| v & 0xF).collect();
        pack_nibbles(&low, r, &mut tile.ql);
        for h in 0..QK_K / 16 {
            for j in 0..4 {
                let high = |i: usize| (u[16 * h + 4 * i + j] >> 4) << (2 * i);
                tile.qh[64 * h + 4 * r + j] = high(0) | high(1) | high(2) | high(3);
            }
        }
        for (group, &scale) in block.scales.iter().enumerate() {
            tile.scales[group][r] = scale;
        }
        tile.d[r] = block.d;
    })
}

#[cfg(target_arch = "x86_64")]
pub mod vnni_k {
    use std::arch::x86_64::*;

    use super::{TileQ4K, TileQ6K, TILE_ROWS};
    use crate::quant::blocks::ActQ8K;
    use crate::quant::tiles::vnni::{broadcast4, dot};

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn f16x16(v: &[half::f16; TILE_ROWS]) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().cast()))
    }

    /// 16 bytes (one per row) widened to int32 lanes, unsigned or signed.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn u8x16(v: &[u8; TILE_ROWS]) -> __m512i {
        _mm512_cvtepu8_epi32(_mm_loadu_si128(v.as_ptr().cast()))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn i8x16(v: &[i8; TILE_ROWS]) -> __m512i {
        _mm512_cvtepi8_epi32(_mm_loadu_si128(v.as_ptr().cast()))
    }

    /// The 4-bit values of sub-block `sub` for 16 rows: low nibbles (values `8g + j`) then
    /// high nibbles (`8g + 4 + j`) of its four k8 groups.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q4k_unpack(tile: &TileQ4K, sub: usize) -> [[__m512i; 2]; 4] {
        let low = _mm512_set1_epi8(0xF);
        let mut u = [[_mm512_setzero_si512(); 2]; 4];
        for (i, u) in u.iter_mut().enumerate() {
            let v = _mm512_loadu_si512(tile.qs.as_ptr().add(64 * (4 * sub + i)).cast());
            *u = [_mm512_and_si512(v, low), _mm512_and_si512(_mm512_srli_epi16(v, 4), low)];
        }
        u
    }

    /// Every activation row's dot with one sub-block or group, times its f32 scales
    /// (`d * scale` per weight row), added to that row's f32 sum.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn add_scaled<const R: usize, const N: usize>(
        u: &[__m512i; N],
        acts: [&ActQ8K; R],
        at: [usize; N],
        init: impl Fn(&ActQ8K) -> __m512i,
        scales: __m512,
        sums: &mut [__m512; R],
    ) {
        for (sum, a) in sums.iter_mut().zip(acts) {
            let dot = dot::<R, N>(u, &a.qs, at, init(a));
            *sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scales, *sum);
        }
    }

    /// `sum(mins * sub-block sums)` for 16 rows, from the sums' two seven-bit digits.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q4k_mins(tile: &TileQ4K, a: &ActQ8K) -> __m512i {
        let m0 = _mm512_loadu_si512(tile.mins.as_ptr().cast());
        let m1 = _mm512_loadu_si512(tile.mins.as_ptr().add(64).cast());
        let zero = _mm512_setzero_si512();
        let low = _mm512_dpbusd_epi32(zero, m0, broadcast4(&a.sub_sums, 0));
        let low = _mm512_dpbusd_epi32(low, m1, broadcast4(&a.sub_sums, 4));
        let high = _mm512_dpbusd_epi32(zero, m0, broadcast4(&a.sub_sums, 8));
        let high = _mm512_dpbusd_epi32(high, m1, broadcast4(&a.sub_sums, 12));
        _mm512_add_epi32(low, _mm512_slli_epi32(high, 7))
    }

    /// `a.d * (sum - dmin * summ)` added to `acc`, `sum` already carrying `d`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q4k_finish(tile: &TileQ4K, a: &ActQ8K, sum: __m512, acc: __m512) -> __m512 {
        let mins = _mm512_cvtepi32_ps(q4k_mins(tile, a));
        _mm512_fmadd_ps(
            _mm512_set1_ps(a.d),
            _mm512_fnmadd_ps(f16x16(&tile.dmin), mins, sum),
            acc,
        )
    }

    /// The unsigned 6-bit values of 16-value group `h` for 16 rows: four registers holding
    /// values `16h + 4i + j` (i = 0..4) in byte `j` of each row's 32-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q6k_unpack(tile: &TileQ6K, h: usize) -> [__m512i; 4] {
        let (low4, bits45) = (_mm512_set1_epi8(0xF), _mm512_set1_epi8(0x30));
        let v0 = _mm512_loadu_si512(tile.ql.as_ptr().add(128 * h).cast());
        let v1 = _mm512_loadu_si512(tile.ql.as_ptr().add(128 * h + 64).cast());
        let hb = _mm512_loadu_si512(tile.qh.as_ptr().add(64 * h).cast());
        // Value i's high bits, at bits 2i..2i+2 of each byte, moved to bits 4..6. The 16-bit
        // shifts carry bits across bytes only outside the mask.
        let high = [
            _mm512_and_si512(_mm512_slli_epi16(hb, 4), bits45),
            _mm512_and_si512(_mm512_slli_epi16(hb, 2), bits45),
            _mm512_and_si512(hb, bits45),
            _mm512_and_si512(_mm512_srli_epi16(hb, 2), bits45),
        ];
        // (nibble & 0xF) | high in one instruction: 0xEC is `(a & c) | b`.
        let join = |nibbles: __m512i, high: __m512i| _mm512_ternarylogic_epi32::<0xEC>(nibbles, high, low4);
        [
            join(v0, high[0]),
            join(_mm512_srli_epi16(v0, 4), high[1]),
            join(v1, high[2]),
            join(_mm512_srli_epi16(v1, 4), high[3]),
        ]
    }

    /// A k-quant tile as the strip kernel sees it: one super-block of 16 rows.
    trait KTile {
        /// Each activation row's f32 sum over the super-block, `d` and the sub-block scales
        /// applied; each sub-block is unpacked once for all rows.
        unsafe fn sums<const R: usize>(&self, acts: [&ActQ8K; R]) -> [__m512; R];
        /// `acc` plus the super-block's contribution, from `sum`.
        unsafe fn finish(&self, a: &ActQ8K, sum: __m512, acc: __m512) -> __m512;
    }

    impl KTile for TileQ4K {
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn sums<const R: usize>(&self, acts: [&ActQ8K; R]) -> [__m512; R] {
            let d = f16x16(&self.d);
            let mut sums = [_mm512_setzero_ps(); R];
            for sub in 0..8 {
                let scales = _mm512_mul_ps(d, _mm512_cvtepi32_ps(u8x16(&self.scales[sub])));
                // Low nibbles of the four k8 groups, then their high nibbles.
                let [[l0, h0], [l1, h1], [l2, h2], [l3, h3]] = q4k_unpack(self, sub);
                let at = [0, 8, 16, 24, 4, 12, 20, 28].map(|at| 32 * sub + at);
                let zero = |_: &ActQ8K| _mm512_setzero_si512();
                add_scaled(&[l0, l1, l2, l3, h0, h1, h2, h3], acts, at, zero, scales, &mut sums);
            }
            sums
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn finish(&self, a: &ActQ8K, sum: __m512, acc: __m512) -> __m512 {
            q4k_finish(self, a, sum, acc)
        }
    }

    impl KTile for TileQ6K {
        /// Each group's dot starts from `-32 * bsum`: `sum((u - 32) x) = sum(u x) - 32 sum(x)`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn sums<const R: usize>(&self, acts: [&ActQ8K; R]) -> [__m512; R] {
            let d = f16x16(&self.d);
            let mut sums = [_mm512_setzero_ps(); R];
            for group in 0..16 {
                let scales = _mm512_mul_ps(d, _mm512_cvtepi32_ps(i8x16(&self.scales[group])));
                let at = [0, 4, 8, 12].map(|at| 16 * group + at);
                let offset = |a: &ActQ8K| _mm512_set1_epi32(a.q6_offsets[group]);
                add_scaled(&q6k_unpack(self, group), acts, at, offset, scales, &mut sums);
            }
            sums
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn finish(&self, a: &ActQ8K, sum: __m512, acc: __m512) -> __m512 {
            _mm512_fmadd_ps(_mm512_set1_ps(a.d), sum, acc)
        }
    }

    /// `R` activation rows against one strip of k-quant tiles, added to `out`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows<T: KTile, const R: usize>(tiles: &[T], acts: [&[ActQ8K]; R], out: &mut [[f32; TILE_ROWS]; R]) {
        assert!(
            acts.iter().all(|a| a.len() >= tiles.len()),
            "activation row shorter than the strip"
        );
        let mut acc: [__m512; R] = std::array::from_fn(|r| _mm512_loadu_ps(out[r].as_ptr()));
        for (i, tile) in tiles.iter().enumerate() {
            let block: [&ActQ8K; R] = std::array::from_fn(|r| acts[r].get_unchecked(i));
            let sums = tile.sums(block);
            for ((acc, sum), a) in acc.iter_mut().zip(sums).zip(block) {
                *acc = tile.finish(a, sum, *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip_q4k(tiles: &[TileQ4K], acts: &[ActQ8K], out: &mut [f32; TILE_ROWS]) {
        rows(tiles, [acts], std::slice::from_mut(out).try_into().expect("one row"))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip4_q4k(tiles: &[TileQ4K], acts: [&[ActQ8K]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip8_q4k(tiles: &[TileQ4K], acts: [&[ActQ8K]; 8], out: &mut [[f32; TILE_ROWS]; 8]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip8_q6k(tiles: &[TileQ6K], acts: [&[ActQ8K]; 8], out: &mut [[f32; TILE_ROWS]; 8]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip_q6k(tiles: &[TileQ6K], acts: &[ActQ8K], out: &mut [f32; TILE_ROWS]) {
        rows(tiles, [acts], std::slice::from_mut(out).try_into().expect("one row"))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn strip4_q6k(tiles: &[TileQ6K], acts: [&[ActQ8K]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        rows(tiles, acts, out)
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub mod vnni_k {
    use super::{TileQ4K, TileQ6K, TILE_ROWS};
    use crate::quant::blocks::ActQ8K;

    pub unsafe fn strip_q4k(_: &[TileQ4K], _: &[ActQ8K], _: &mut [f32; TILE_ROWS]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip_q6k(_: &[TileQ6K], _: &[ActQ8K], _: &mut [f32; TILE_ROWS]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip4_q4k(_: &[TileQ4K], _: [&[ActQ8K]; 4], _: &mut [[f32; TILE_ROWS]; 4]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip4_q6k(_: &[TileQ6K], _: [&[ActQ8K]; 4], _: &mut [[f32; TILE_ROWS]; 4]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip8_q4k(_: &[TileQ4K], _: [&[ActQ8K]; 8], _: &mut [[f32; TILE_ROWS]; 8]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip8_q6k(_: &[TileQ6K], _: [&[ActQ8K]; 8], _: &mut [[f32; TILE_ROWS]; 8]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }
}
