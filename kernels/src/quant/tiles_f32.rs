//! The legacy-format tiles (Q4_0, Q4_1, Q8_0) against f32 activations: each 16-row tile is
//! widened to f32 in registers, one value position at a time, and multiplied with that
//! activation broadcast, so one fused multiply-add serves 16 rows where the row-wise AVX2
//! kernel spends about one instruction per weight. The result is the exact product with the
//! dequantized weights up to f32 rounding, as `ActivationPrecision::F32` promises: a block's
//! sum is `d * sum(u x) + m * sum(x)` with the unsigned values `u` the tiles hold.

use super::blocks::{ActF32, QK};
use super::tiles::{TileQ4, TileQ8, TILE_ROWS};

/// Copies a row of activations into blocks of 32 with their sums.
pub fn pack_act_f32(xs: &[f32], out: &mut [ActF32]) {
    for (x, a) in xs.chunks_exact(QK).zip(out.iter_mut()) {
        a.x.copy_from_slice(x);
        a.sum = x.iter().sum();
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx512_f32 {
    use std::arch::x86_64::*;

    use super::{ActF32, TileQ4, TileQ8, TILE_ROWS};

    /// Bits `S..S + 4` of every 32-bit lane, as f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn nibble<const S: u32>(v: __m512i) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32::<S>(v), _mm512_set1_epi32(0xF)))
    }

    /// Bits `S..S + 8` of every 32-bit lane, as f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn byte<const S: u32>(v: __m512i) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32::<S>(v), _mm512_set1_epi32(0xFF)))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn f16x16(v: &[half::f16; TILE_ROWS]) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().cast()))
    }

    /// A legacy tile as the f32 kernels see it: 32 values per row, `weight = d * u + m`.
    trait F32Tile {
        /// Values `8k..8k + 8` for 16 rows, as f32.
        unsafe fn values8(&self, k: usize) -> [__m512; 8];
        /// `d` and `m` for 16 rows.
        unsafe fn scales(&self) -> (__m512, __m512);
    }

    impl F32Tile for TileQ4 {
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn values8(&self, k: usize) -> [__m512; 8] {
            // Byte j of a k8 group holds value 8k + j in its low nibble and 8k + 4 + j in its
            // high one.
            let v = _mm512_loadu_si512(self.qs.as_ptr().add(64 * k).cast());
            [
                nibble::<0>(v),
                nibble::<8>(v),
                nibble::<16>(v),
                nibble::<24>(v),
                nibble::<4>(v),
                nibble::<12>(v),
                nibble::<20>(v),
                nibble::<28>(v),
            ]
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn scales(&self) -> (__m512, __m512) {
            (f16x16(&self.d), f16x16(&self.m))
        }
    }

    impl F32Tile for TileQ8 {
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn values8(&self, k: usize) -> [__m512; 8] {
            // Byte j of k4 group g holds value 4g + j, offset to unsigned (`q + 128`).
            let v0 = _mm512_loadu_si512(self.qs.as_ptr().add(128 * k).cast());
            let v1 = _mm512_loadu_si512(self.qs.as_ptr().add(128 * k + 64).cast());
            [
                byte::<0>(v0),
                byte::<8>(v0),
                byte::<16>(v0),
                byte::<24>(v0),
                byte::<0>(v1),
                byte::<8>(v1),
                byte::<16>(v1),
                byte::<24>(v1),
            ]
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn scales(&self) -> (__m512, __m512) {
            let d = f16x16(&self.d);
            (d, _mm512_mul_ps(d, _mm512_set1_ps(-128.0)))
        }
    }

    /// `R` activation rows against one strip of tiles, each tile widened once for all:
    /// `d * sum(u x) + m * sum(x)` per block, added to `out`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn rows<T: F32Tile, const R: usize>(tiles: &[T], acts: [&[ActF32]; R], out: &mut [[f32; TILE_ROWS]; R]) {
        assert!(
            acts.iter().all(|a| a.len() >= tiles.len()),
            "activation rows shorter than the strip"
        );
        let mut acc: [__m512; R] = std::array::from_fn(|r| _mm512_loadu_ps(out[r].as_ptr()));
        for (i, tile) in tiles.iter().enumerate() {
            let mut dots = [[_mm512_setzero_ps(); 2]; R];
            for k in 0..4 {
                let u = tile.values8(k);
                // Two chains a row, or one where eight rows give the core enough chains.
                let chains = if R < 8 { 2 } else { 1 };
                for (dots, a) in dots.iter_mut().zip(acts) {
                    for (j, (&u, &x)) in u.iter().zip(&a.get_unchecked(i).x[8 * k..8 * k + 8]).enumerate() {
                        dots[j % chains] = _mm512_fmadd_ps(u, _mm512_set1_ps(x), dots[j % chains]);
                    }
                }
            }
            let (d, m) = tile.scales();
            for ((acc, dots), a) in acc.iter_mut().zip(dots).zip(acts) {
                *acc = _mm512_fmadd_ps(d, _mm512_add_ps(dots[0], dots[1]), *acc);
                *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(a.get_unchecked(i).sum), *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn strip_q4(tiles: &[TileQ4], acts: &[ActF32], out: &mut [f32; TILE_ROWS]) {
        rows(tiles, [acts], std::slice::from_mut(out).try_into().expect("one row"))
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn strip4_q4(tiles: &[TileQ4], acts: [&[ActF32]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn strip8_q4(tiles: &[TileQ4], acts: [&[ActF32]; 8], out: &mut [[f32; TILE_ROWS]; 8]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn strip8_q8(tiles: &[TileQ8], acts: [&[ActF32]; 8], out: &mut [[f32; TILE_ROWS]; 8]) {
        rows(tiles, acts, out)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn strip_q8(tiles: &[TileQ8], acts: &[ActF32], out: &mut [f32; TILE_ROWS]) {
        rows(tiles, [acts], std::slice::from_mut(out).try_into().expect("one row"))
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn strip4_q8(tiles: &[TileQ8], acts: [&[ActF32]; 4], out: &mut [[f32; TILE_ROWS]; 4]) {
        rows(tiles, acts, out)
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub mod avx512_f32 {
    use super::{ActF32, TileQ4, TileQ8, TILE_ROWS};

    pub unsafe fn strip_q4(_: &[TileQ4], _: &[ActF32], _: &mut [f32; TILE_ROWS]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip4_q4(_: &[TileQ4], _: [&[ActF32]; 4], _: &mut [[f32; TILE_ROWS]; 4]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip_q8(_: &[TileQ8], _: &[ActF32], _: &mut [f32; TILE_ROWS]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip4_q8(_: &[TileQ8], _: [&[ActF32]; 4], _: &mut [[f32; TILE_ROWS]; 4]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip8_q4(_: &[TileQ4], _: [&[ActF32]; 8], _: &mut [[f32; TILE_ROWS]; 8]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }

    pub unsafe fn strip8_q8(_: &[TileQ8], _: [&[ActF32]; 8], _: &mut [[f32; TILE_ROWS]; 8]) {
        unreachable!("tiles are built only where AVX-512 VNNI runs")
    }
}
