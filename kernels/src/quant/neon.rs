//! NEON row-wise dot products for aarch64: every block format brainstem reads (Q4_0, Q4_1,
//! Q8_0 against int8 blocks of 32, Q4_K and Q6_K against int8 super-blocks of 256). Signed
//! bytes are multiplied into 16-bit lanes (`smull`, whose products of two int8 values
//! always fit) and pairwise-added into 32-bit sums (`sadalp`). Legacy blocks' int32 lanes are
//! scaled into f32 vector accumulators, two blocks a step, reduced once a row; k-quant
//! sub-blocks are weighted by their integer scales in int32 (`mla`) and the super-block
//! scaled once, as the scalar reference (`scalar.rs`) does. Scales are converted from f16
//! with the base instruction set's `fcvt`. Where the CPU has the ARMv8.2 dot product (`dotprod`) and the kernel family includes it,
//! one `sdot` takes the place of the widening multiply and the two pairwise adds: four lanes
//! each sum four byte products (a different grouping, the same integer total). Each format's
//! kernel is generic over the two ([`arm::ByteDot`]) and compiled once per instruction set.
//! Elsewhere each function returns `None`. Against f32 activations, every format is
//! dequantized block by block and multiplied with four FMA chains.

use super::blocks::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ6K, BlockQ8_0};
use super::format::{DotF32Fn, DotFn, QuantFormat};

/// The `sdot` instance of the generic kernel `$kernel` where the family allows the dot
/// product, its widening instance where it allows NEON, else `None`.
#[cfg(target_arch = "aarch64")]
macro_rules! neon_kernel {
    ($kernel:ident: $ty:ty) => {{
        use crate::family::{has, Feature};
        if has(Feature::NeonDotprod) {
            // SAFETY: the CPU has the dot product (`has` checks it).
            Some((|w, a| unsafe { arm::with_sdot(|| arm::$kernel::<arm::Sdot>(w, a)) }) as $ty)
        } else if has(Feature::Neon) {
            Some((|w, a| arm::$kernel::<arm::Widen>(w, a)) as $ty)
        } else {
            None
        }
    }};
}

/// Q4_0 against int8 blocks, on aarch64.
pub fn dot_q4_0() -> Option<DotFn<BlockQ4_0>> {
    #[cfg(target_arch = "aarch64")]
    return neon_kernel!(dot_q4_0: DotFn<BlockQ4_0>);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Q4_1 against int8 blocks, on aarch64.
pub fn dot_q4_1() -> Option<DotFn<BlockQ4_1>> {
    #[cfg(target_arch = "aarch64")]
    return neon_kernel!(dot_q4_1: DotFn<BlockQ4_1>);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Q8_0 against int8 blocks, on aarch64.
pub fn dot_q8_0() -> Option<DotFn<BlockQ8_0>> {
    #[cfg(target_arch = "aarch64")]
    return neon_kernel!(dot_q8_0: DotFn<BlockQ8_0>);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Q4_K against int8 super-blocks, on aarch64.
pub fn dot_q4k() -> Option<DotFn<BlockQ4K>> {
    #[cfg(target_arch = "aarch64")]
    return neon_kernel!(dot_q4k: DotFn<BlockQ4K>);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Q6_K against int8 super-blocks, on aarch64.
pub fn dot_q6k() -> Option<DotFn<BlockQ6K>> {
    #[cfg(target_arch = "aarch64")]
    return neon_kernel!(dot_q6k: DotFn<BlockQ6K>);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// Any format against f32 activations, on aarch64: each block dequantized by the format's
/// own reference code, then four FMA chains of four lanes.
pub fn dot_f32<W: QuantFormat>() -> Option<DotF32Fn<W>> {
    #[cfg(target_arch = "aarch64")]
    return crate::family::has(crate::family::Feature::Neon).then_some(arm::dot_f32_dequantized::<W> as _);
    #[cfg(not(target_arch = "aarch64"))]
    None
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ6K, BlockQ8_0, QuantFormat};
    use crate::quant::blocks::{ActQ8, ActQ8K, QK_K};
    use crate::quant::scalar::q4k_scale_min;

    /// Products of 16 signed bytes with 16 signed bytes, summed into four 32-bit lanes and
    /// added to `acc` (which products go to which lane is the implementation's; the kernels
    /// only add the lanes up, or scale all four alike).
    pub trait ByteDot {
        fn dot16(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;
    }

    /// Baseline NEON: widening multiplies (`smull`, `smull2`; two int8 products fit 16 bits)
    /// and pairwise adds into 32 bits (`saddlp`, `sadalp`).
    pub struct Widen;

    /// ARMv8.2's dot product: one `sdot`, each lane the sum of four byte products.
    pub struct Sdot;

    impl ByteDot for Widen {
        #[inline]
        fn dot16(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
            // SAFETY: NEON is part of the aarch64 baseline.
            unsafe {
                let pairs = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x)));
                vaddq_s32(acc, vpadalq_s16(pairs, vmull_high_s8(w, x)))
            }
        }
    }

    impl ByteDot for Sdot {
        #[inline(always)]
        fn dot16(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
            // SAFETY: only reached through `with_sdot`, whose caller checked that the CPU has
            // the dot product; the instruction reads and writes registers only.
            unsafe {
                std::arch::asm!(
                    ".arch_extension dotprod",
                    "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
                    acc = inout(vreg) acc,
                    w = in(vreg) w,
                    x = in(vreg) x,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
            acc
        }
    }

    /// Runs `kernel` compiled with the dot product enabled.
    ///
    /// # Safety
    /// The CPU must have the dot product (`dotprod`).
    #[target_feature(enable = "dotprod")]
    pub unsafe fn with_sdot<R>(kernel: impl FnOnce() -> R) -> R {
        kernel()
    }

    /// The four lanes of the products of 16 signed weight bytes with the 16 activation
    /// bytes `x[..16]`.
    #[inline(always)]
    fn dot16_lanes<D: ByteDot>(w: int8x16_t, x: &[i8]) -> int32x4_t {
        let x = &x[..16];
        // SAFETY: NEON is part of the aarch64 baseline, and `x` holds 16 bytes.
        unsafe { D::dot16(vdupq_n_s32(0), w, vld1q_s8(x.as_ptr())) }
    }

    /// The same for 32 weight bytes (`w0`, `w1`) against `x[..32]`.
    #[inline(always)]
    fn dot32_lanes<D: ByteDot>(w0: int8x16_t, w1: int8x16_t, x: &[i8]) -> int32x4_t {
        // SAFETY: as above.
        let x = &x[..32];
        // SAFETY: NEON is part of the aarch64 baseline, and `x` holds 32 bytes.
        unsafe {
            let first = D::dot16(vdupq_n_s32(0), w0, vld1q_s8(x.as_ptr()));
            D::dot16(first, w1, vld1q_s8(x.as_ptr().add(16)))
        }
    }

    /// A half-precision scale as f32, with the base instruction set's `fcvt` (the `half`
    /// crate would detect the FP16 extension at run time and call out for every block).
    #[inline(always)]
    fn f16_to_f32(h: half::f16) -> f32 {
        let out: f32;
        // SAFETY: `dup` and `fcvt` between half and single precision are ARMv8.0 base
        // instructions; they touch registers only.
        unsafe {
            std::arch::asm!(
                "dup {t:v}.4h, {bits:w}",
                "fcvt {out:s}, {t:h}",
                bits = in(reg) u32::from(h.to_bits()),
                t = out(vreg) _,
                out = lateout(vreg) out,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        out
    }

    /// The sum over blocks of each block's four int32 lanes times its scale (`block` gives
    /// both), two blocks a step into two vector accumulators added up once at the end, as the
    /// AVX2 kernels and llama.cpp do.
    #[inline(always)]
    fn sum_blocks<W>(w: &[W], a: &[ActQ8], block: impl Fn(&W, &ActQ8) -> (int32x4_t, f32)) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        let add = |acc: float32x4_t, w: &W, a: &ActQ8| {
            let (lanes, scale) = block(w, a);
            // SAFETY: NEON is part of the aarch64 baseline.
            unsafe { vfmaq_n_f32(acc, vcvtq_f32_s32(lanes), scale) }
        };
        let (pairs, rest) = w.as_chunks::<2>();
        let (acts, rest_acts) = a[..w.len()].as_chunks::<2>();
        // SAFETY: as above.
        let (mut even, mut odd) = unsafe { (vdupq_n_f32(0.0), vdupq_n_f32(0.0)) };
        for ([w0, w1], [a0, a1]) in pairs.iter().zip(acts) {
            even = add(even, w0, a0);
            odd = add(odd, w1, a1);
        }
        if let ([w], [a]) = (rest, rest_acts) {
            even = add(even, w, a);
        }
        // SAFETY: as above.
        unsafe { vaddvq_f32(vaddq_f32(even, odd)) }
    }

    /// The four lanes of 32 signed weight bytes (`w0`, `w1`) times a block's activations.
    #[inline(always)]
    fn block_lanes<D: ByteDot>(w0: int8x16_t, w1: int8x16_t, a: &ActQ8) -> int32x4_t {
        // SAFETY: NEON is part of the aarch64 baseline; `a.qs` holds 32 bytes.
        unsafe {
            let x = a.qs.as_ptr();
            D::dot16(D::dot16(vdupq_n_s32(0), w0, vld1q_s8(x)), w1, vld1q_s8(x.add(16)))
        }
    }

    /// 16 bytes' nibbles as signed bytes: the low nibbles, then the high ones.
    #[inline]
    fn nibbles(qs: &[u8]) -> (int8x16_t, int8x16_t) {
        let qs = &qs[..16];
        // SAFETY: as above; `qs` holds 16 bytes.
        unsafe {
            let packed = vld1q_u8(qs.as_ptr());
            let low = vandq_u8(packed, vdupq_n_u8(0xF));
            (vreinterpretq_s8_u8(low), vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed)))
        }
    }

    #[inline(always)]
    pub fn dot_q4_0<D: ByteDot>(w: &[BlockQ4_0], a: &[ActQ8]) -> f32 {
        // SAFETY: NEON is part of the aarch64 baseline.
        let eight = unsafe { vdupq_n_s8(8) };
        sum_blocks(w, a, |w, a| {
            let (lo, hi) = nibbles(&w.qs);
            // SAFETY: as above.
            let (lo, hi) = unsafe { (vsubq_s8(lo, eight), vsubq_s8(hi, eight)) };
            (block_lanes::<D>(lo, hi, a), f16_to_f32(w.d) * a.d)
        })
    }

    #[inline(always)]
    pub fn dot_q4_1<D: ByteDot>(w: &[BlockQ4_1], a: &[ActQ8]) -> f32 {
        let offsets: f32 = w.iter().zip(a).map(|(w, a)| f16_to_f32(w.m) * a.sum).sum();
        let products = sum_blocks(w, a, |w, a| {
            let (lo, hi) = nibbles(&w.qs);
            (block_lanes::<D>(lo, hi, a), f16_to_f32(w.d) * a.d)
        });
        products + offsets
    }

    #[inline(always)]
    pub fn dot_q8_0<D: ByteDot>(w: &[BlockQ8_0], a: &[ActQ8]) -> f32 {
        sum_blocks(w, a, |w, a| {
            // SAFETY: NEON is part of the aarch64 baseline; `w.qs` holds 32 bytes.
            let (w0, w1) = unsafe { (vld1q_s8(w.qs.as_ptr()), vld1q_s8(w.qs.as_ptr().add(16))) };
            (block_lanes::<D>(w0, w1, a), f16_to_f32(w.d) * a.d)
        })
    }

    /// Per 64 values: the low nibbles of 32 bytes are sub-block `2c`, the high ones `2c + 1`.
    #[inline(always)]
    pub fn dot_q4k<D: ByteDot>(w: &[BlockQ4K], a: &[ActQ8K]) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                // SAFETY: NEON is part of the aarch64 baseline.
                let mut sumi = unsafe { vdupq_n_s32(0) };
                let mut summ = 0i32;
                for chunk in 0..QK_K / 64 {
                    let (first, second) = (nibbles(&w.qs[32 * chunk..]), nibbles(&w.qs[32 * chunk + 16..]));
                    let x = &a.qs[64 * chunk..];
                    for (half, (w0, w1)) in [(first.0, second.0), (first.1, second.1)].into_iter().enumerate() {
                        let sub = 2 * chunk + half;
                        let (scale, min) = q4k_scale_min(sub, &w.scales);
                        let dot = dot32_lanes::<D>(w0, w1, &x[32 * half..]);
                        // SAFETY: as above.
                        sumi = unsafe { vmlaq_n_s32(sumi, dot, scale as i32) };
                        summ += min as i32 * (a.bsums[2 * sub] as i32 + a.bsums[2 * sub + 1] as i32);
                    }
                }
                // SAFETY: as above.
                let sumi = unsafe { vaddvq_s32(sumi) };
                a.d * (f16_to_f32(w.d) * sumi as f32 - f16_to_f32(w.dmin) * summ as f32)
            })
            .sum()
    }

    /// Per 128 values: byte `l` of `ql` (and `l + 32`) holds two values' low 4 bits, byte `l`
    /// of `qh` the high 2 bits of four; each 16-byte vector built is one group of 16.
    #[inline(always)]
    pub fn dot_q6k<D: ByteDot>(w: &[BlockQ6K], a: &[ActQ8K]) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                // SAFETY: NEON is part of the aarch64 baseline; every load reads 16 bytes
                // inside `ql` (128), `qh` (64) or `a.qs` (256) at offsets bounded below.
                let sumi = unsafe {
                    let (low4, two, offset) = (vdupq_n_u8(0xF), vdupq_n_u8(3), vdupq_n_s8(32));
                    let mut sumi = vdupq_n_s32(0);
                    for half in 0..2 {
                        for l in [0, 16] {
                            let ql0 = vld1q_u8(w.ql.as_ptr().add(64 * half + l));
                            let ql1 = vld1q_u8(w.ql.as_ptr().add(64 * half + 32 + l));
                            let qh = vld1q_u8(w.qh.as_ptr().add(32 * half + l));
                            let high =
                                |shift: u8| vshlq_n_u8::<4>(vandq_u8(vshlq_u8(qh, vdupq_n_s8(-(shift as i8))), two));
                            let values = [
                                vorrq_u8(vandq_u8(ql0, low4), high(0)),
                                vorrq_u8(vandq_u8(ql1, low4), high(2)),
                                vorrq_u8(vshrq_n_u8::<4>(ql0), high(4)),
                                vorrq_u8(vshrq_n_u8::<4>(ql1), high(6)),
                            ];
                            for (k, v) in values.into_iter().enumerate() {
                                let start = 128 * half + 32 * k + l;
                                let q = vsubq_s8(vreinterpretq_s8_u8(v), offset);
                                let dot = dot16_lanes::<D>(q, &a.qs[start..]);
                                sumi = vmlaq_n_s32(sumi, dot, w.scales[start / 16] as i32);
                            }
                        }
                    }
                    vaddvq_s32(sumi)
                };
                a.d * f16_to_f32(w.d) * sumi as f32
            })
            .sum()
    }

    pub fn dot_f32_dequantized<W: QuantFormat>(w: &[W], x: &[f32]) -> f32 {
        let mut buf = [0f32; QK_K];
        let buf = &mut buf[..W::ELEMS];
        // SAFETY: NEON is part of the aarch64 baseline; every load reads 4 floats inside a
        // 16-float chunk of `buf` or `x`.
        unsafe {
            let mut acc = [vdupq_n_f32(0.0); 4];
            for (block, x) in w.iter().zip(x.chunks_exact(W::ELEMS)) {
                W::dequantize(std::slice::from_ref(block), buf);
                for (b, x) in buf.chunks_exact(16).zip(x.chunks_exact(16)) {
                    for (i, acc) in acc.iter_mut().enumerate() {
                        *acc = vfmaq_f32(*acc, vld1q_f32(b.as_ptr().add(4 * i)), vld1q_f32(x.as_ptr().add(4 * i)));
                    }
                }
            }
            vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])))
        }
    }
}
