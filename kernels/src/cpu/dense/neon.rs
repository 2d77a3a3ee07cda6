//! The aarch64 microkernel for dense f32 panels: up to 6 activation rows against 16 features
//! (four 4-lane accumulators a row, 24 of the 32 registers), once for each half of the
//! panel, each activation value fused by lane-broadcast FMA (`fmla` by element). The first
//! row group of a depth slice prefetches the next slice into L2, as on x86.

use std::arch::aarch64::*;

use super::{Microkernel, Tile, PANEL};

pub(super) const NEON: Microkernel = Microkernel {
    call: neon,
    max_rows: 6,
};

/// # Safety
/// As [`super::MicroFn`], on a CPU with NEON.
unsafe fn neon(tile: &Tile, rows: usize) {
    match rows {
        1 => neon_rows::<1>(tile),
        2 => neon_rows::<2>(tile),
        3 => neon_rows::<3>(tile),
        4 => neon_rows::<4>(tile),
        5 => neon_rows::<5>(tile),
        6 => neon_rows::<6>(tile),
        _ => unreachable!("a microkernel call of {rows} rows"),
    }
}

/// Asks for the cache line at `address` in L2 (`prfm pldl2keep`); it never faults.
#[inline(always)]
fn prefetch_l2(address: *const f32) {
    // SAFETY: a prefetch reads nothing architecturally and cannot fault, whatever the address.
    unsafe { std::arch::asm!("prfm pldl2keep, [{0}]", in(reg) address, options(nostack, readonly, preserves_flags)) };
}

#[target_feature(enable = "neon")]
unsafe fn neon_rows<const R: usize>(tile: &Tile) {
    for half in 0..2 {
        let cols = tile.cols.saturating_sub(16 * half).min(16);
        if cols == 0 {
            return;
        }
        let mut acc = [[vdupq_n_f32(0.0); 4]; R];
        for k in 0..tile.depth {
            let w = tile.panel.add(k * PANEL + 16 * half);
            if tile.prefetch && half == 0 {
                let ahead = w.wrapping_add(tile.depth * PANEL);
                prefetch_l2(ahead);
                prefetch_l2(ahead.wrapping_add(16));
            }
            let weights = [
                vld1q_f32(w),
                vld1q_f32(w.add(4)),
                vld1q_f32(w.add(8)),
                vld1q_f32(w.add(12)),
            ];
            for (r, sums) in acc.iter_mut().enumerate() {
                let a = *tile.x.add(r * tile.x_stride + k);
                for (sum, &wv) in sums.iter_mut().zip(&weights) {
                    *sum = vfmaq_n_f32(*sum, wv, a);
                }
            }
        }
        for (r, sums) in acc.iter().enumerate() {
            let mut values = [0f32; 16];
            for (q, &sum) in sums.iter().enumerate() {
                vst1q_f32(values.as_mut_ptr().add(4 * q), sum);
            }
            let out = std::slice::from_raw_parts_mut(tile.out.add(r * tile.out_stride + 16 * half), cols);
            for (o, &v) in out.iter_mut().zip(&values) {
                *o = if tile.accumulate { *o + v } else { v };
            }
        }
    }
}
