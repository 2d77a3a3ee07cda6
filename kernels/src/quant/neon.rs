//! NEON row-wise dot products for aarch64: the legacy block formats (Q4_0, Q4_1, Q8_0)
//! against int8 activation blocks. Signed bytes are multiplied into 16-bit lanes
//! (`smull`, whose products of two int8 values always fit) and pairwise-added into 32-bit
//! sums (`sadalp`), one block at a time, then scaled in f32 as the scalar reference
//! (`scalar.rs`) does. NEON is part of every aarch64 CPU, so these need no run-time check;
//! elsewhere each function returns `None`.

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0};
use super::format::DotFn;

/// Q4_0 against int8 blocks, on aarch64.
pub fn dot_q4_0() -> Option<DotFn<BlockQ4_0>> {
    #[cfg(target_arch = "aarch64")]
    return Some(arm::dot_q4_0);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Q4_1 against int8 blocks, on aarch64.
pub fn dot_q4_1() -> Option<DotFn<BlockQ4_1>> {
    #[cfg(target_arch = "aarch64")]
    return Some(arm::dot_q4_1);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Q8_0 against int8 blocks, on aarch64.
pub fn dot_q8_0() -> Option<DotFn<BlockQ8_0>> {
    #[cfg(target_arch = "aarch64")]
    return Some(arm::dot_q8_0);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::{BlockQ4_0, BlockQ4_1, BlockQ8_0};
    use crate::quant::blocks::ActQ8;

    /// Sum of the products of 32 signed weight bytes (`w0`, `w1`) with a block's activations.
    #[inline]
    fn dot32(w0: int8x16_t, w1: int8x16_t, a: &ActQ8) -> i32 {
        // SAFETY: NEON is part of the aarch64 baseline, and `a.qs` holds 32 bytes.
        unsafe {
            let x0 = vld1q_s8(a.qs.as_ptr());
            let x1 = vld1q_s8(a.qs.as_ptr().add(16));
            let mut sum = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
            sum = vpadalq_s16(sum, vmull_high_s8(w0, x0));
            sum = vpadalq_s16(sum, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));
            sum = vpadalq_s16(sum, vmull_high_s8(w1, x1));
            vaddvq_s32(sum)
        }
    }

    /// A block's 32 nibbles as bytes in element order: low nibbles, then high nibbles.
    #[inline]
    fn nibbles(qs: &[u8; 16]) -> (int8x16_t, int8x16_t) {
        // SAFETY: as above; `qs` holds 16 bytes.
        unsafe {
            let packed = vld1q_u8(qs.as_ptr());
            let low = vandq_u8(packed, vdupq_n_u8(0xF));
            (vreinterpretq_s8_u8(low), vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed)))
        }
    }

    pub fn dot_q4_0(w: &[BlockQ4_0], a: &[ActQ8]) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        // SAFETY: NEON is part of the aarch64 baseline.
        let eight = unsafe { vdupq_n_s8(8) };
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let (lo, hi) = nibbles(&w.qs);
                // SAFETY: as above.
                let (lo, hi) = unsafe { (vsubq_s8(lo, eight), vsubq_s8(hi, eight)) };
                w.d.to_f32() * a.d * dot32(lo, hi, a) as f32
            })
            .sum()
    }

    pub fn dot_q4_1(w: &[BlockQ4_1], a: &[ActQ8]) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let (lo, hi) = nibbles(&w.qs);
                w.d.to_f32() * a.d * dot32(lo, hi, a) as f32 + w.m.to_f32() * a.sum
            })
            .sum()
    }

    pub fn dot_q8_0(w: &[BlockQ8_0], a: &[ActQ8]) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                // SAFETY: as above; `w.qs` holds 32 bytes.
                let (w0, w1) = unsafe { (vld1q_s8(w.qs.as_ptr()), vld1q_s8(w.qs.as_ptr().add(16))) };
                w.d.to_f32() * a.d * dot32(w0, w1, a) as f32
            })
            .sum()
    }
}
