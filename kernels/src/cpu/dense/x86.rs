//! x86-64 microkernels for dense f32 panels. AVX-512: up to 12 activation rows against the
//! panel's 32 features, two 16-lane accumulators a row (24 of the 32 registers), each
//! activation value broadcast once and fused into both; the panel's columns past the matrix
//! are masked off on the way out. AVX2 with FMA: up to 6 rows against 16 features (12 of the
//! 16 registers), once for each half of the panel. The first row group of a depth slice
//! prefetches the next slice of weights into L2 as it reads its own (a weight matrix used
//! once a step, as an action expert's, streams from memory; measured 3 to 5% off SmolVLA's
//! f32 denoising steps).

use std::arch::x86_64::*;

use super::{Microkernel, Tile, PANEL};

pub(super) const AVX512: Microkernel = Microkernel {
    call: avx512,
    max_rows: 12,
};

pub(super) const AVX2: Microkernel = Microkernel {
    call: avx2,
    max_rows: 6,
};

/// Calls `$kernel::<R>` for the run-time row count `$rows` (1 to 12).
macro_rules! by_rows {
    ($kernel:ident, $tile:expr, $rows:expr, $($r:literal)+) => {
        match $rows {
            $($r => $kernel::<$r>($tile),)+
            _ => unreachable!("a microkernel call of {} rows", $rows),
        }
    };
}

/// # Safety
/// As [`super::MicroFn`], on a CPU with AVX-512 F.
unsafe fn avx512(tile: &Tile, rows: usize) {
    by_rows!(avx512_rows, tile, rows, 1 2 3 4 5 6 7 8 9 10 11 12)
}

/// # Safety
/// As [`super::MicroFn`], on a CPU with AVX2 and FMA.
unsafe fn avx2(tile: &Tile, rows: usize) {
    by_rows!(avx2_rows, tile, rows, 1 2 3 4 5 6)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_rows<const R: usize>(tile: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for k in 0..tile.depth {
        let w = tile.panel.add(k * PANEL);
        if tile.prefetch {
            let ahead = w.wrapping_add(tile.depth * PANEL) as *const i8;
            _mm_prefetch::<_MM_HINT_T1>(ahead);
            _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(64));
        }
        let (w0, w1) = (_mm512_loadu_ps(w), _mm512_loadu_ps(w.add(16)));
        for (r, sums) in acc.iter_mut().enumerate() {
            let a = _mm512_set1_ps(*tile.x.add(r * tile.x_stride + k));
            sums[0] = _mm512_fmadd_ps(a, w0, sums[0]);
            sums[1] = _mm512_fmadd_ps(a, w1, sums[1]);
        }
    }
    let masks = [lanes(tile.cols), lanes(tile.cols.saturating_sub(16))];
    for (r, sums) in acc.iter().enumerate() {
        let out = tile.out.add(r * tile.out_stride);
        for (half, (&sum, &mask)) in sums.iter().zip(&masks).enumerate() {
            let dst = out.add(16 * half);
            let value = match tile.accumulate {
                true => _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, dst)),
                false => sum,
            };
            _mm512_mask_storeu_ps(dst, mask, value);
        }
    }
}

/// The mask of the first `count` of 16 lanes.
fn lanes(count: usize) -> __mmask16 {
    ((1u32 << count.min(16)) - 1) as __mmask16
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_rows<const R: usize>(tile: &Tile) {
    for half in 0..2 {
        let cols = tile.cols.saturating_sub(16 * half).min(16);
        if cols == 0 {
            return;
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for k in 0..tile.depth {
            let w = tile.panel.add(k * PANEL + 16 * half);
            if tile.prefetch && half == 0 {
                let ahead = w.wrapping_add(tile.depth * PANEL) as *const i8;
                _mm_prefetch::<_MM_HINT_T1>(ahead);
                _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(64));
            }
            let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
            for (r, sums) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*tile.x.add(r * tile.x_stride + k));
                sums[0] = _mm256_fmadd_ps(a, w0, sums[0]);
                sums[1] = _mm256_fmadd_ps(a, w1, sums[1]);
            }
        }
        for (r, sums) in acc.iter().enumerate() {
            let mut values = [0f32; 16];
            _mm256_storeu_ps(values.as_mut_ptr(), sums[0]);
            _mm256_storeu_ps(values.as_mut_ptr().add(8), sums[1]);
            let out = std::slice::from_raw_parts_mut(tile.out.add(r * tile.out_stride + 16 * half), cols);
            for (o, &v) in out.iter_mut().zip(&values) {
                *o = if tile.accumulate { *o + v } else { v };
            }
        }
    }
}
