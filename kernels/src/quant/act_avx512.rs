//! Activation quantization on AVX-512: the same int8 blocks as `scalar::quantize_act_q8`
//! and `scalar::quantize_act_q8k`, bit for bit (scale `absmax / 127`, rounding half away
//! from zero, saturating, NaN to 0), sixteen values per instruction. The tiled kernels
//! quantize every activation row they multiply, where the scalar loop's `roundf` calls
//! showed in decode profiles.

use super::blocks::{ActQ8, ActQ8K};
use super::scalar;

/// `scalar::quantize_act_q8` on AVX-512 where the CPU has it.
pub fn quantize_act_q8(xs: &[f32], out: &mut [ActQ8]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU reports the features the function is compiled for.
        return unsafe { x86::quantize_act_q8(xs, out) };
    }
    scalar::quantize_act_q8(xs, out)
}

/// `scalar::quantize_act_q8k` on AVX-512 where the CPU has it.
pub fn quantize_act_q8k(xs: &[f32], out: &mut [ActQ8K]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: as above.
        return unsafe { x86::quantize_act_q8k(xs, out) };
    }
    scalar::quantize_act_q8k(xs, out)
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    crate::family::has(crate::family::Feature::Avx512)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{scalar, ActQ8, ActQ8K};
    use crate::quant::blocks::{QK, QK_K};

    /// The largest magnitude in `x` (a multiple of 16 long); NaNs are skipped, as
    /// `f32::max` skips them.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn absmax(x: &[f32]) -> f32 {
        let mut m = _mm512_setzero_ps();
        for chunk in x.chunks_exact(16) {
            let v = _mm512_abs_ps(_mm512_loadu_ps(chunk.as_ptr()));
            // vmaxps returns its second operand when either is NaN.
            m = _mm512_max_ps(v, m);
        }
        _mm512_reduce_max_ps(m)
    }

    /// `(v * inv).round() as i8` for 16 values, as int32 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn round16(x: &[f32], inv: f32) -> __m512i {
        let y = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr()), _mm512_set1_ps(inv));
        let truncated = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
        let half_or_more =
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(_mm512_sub_ps(y, truncated)), _mm512_set1_ps(0.5));
        let sign = _mm512_and_ps(y, _mm512_set1_ps(-0.0));
        let away = _mm512_or_ps(sign, _mm512_set1_ps(1.0));
        let rounded = _mm512_mask_add_ps(truncated, half_or_more, truncated, away);
        let clamped = _mm512_min_ps(_mm512_max_ps(rounded, _mm512_set1_ps(-128.0)), _mm512_set1_ps(127.0));
        _mm512_maskz_cvttps_epi32(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(y, y), clamped)
    }

    /// The scale and its inverse, as the scalar version computes them.
    #[inline]
    fn scale(absmax: f32) -> (f32, f32) {
        let d = absmax / 127.0;
        (d, if d > 0.0 { 1.0 / d } else { 0.0 })
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_act_q8(xs: &[f32], out: &mut [ActQ8]) {
        for (x, o) in xs.chunks_exact(QK).zip(out.iter_mut()) {
            let (d, inv) = scale(absmax(x));
            let mut sum = 0i32;
            for (x, qs) in x.chunks_exact(16).zip(o.qs.chunks_exact_mut(16)) {
                let q = round16(x, inv);
                _mm_storeu_si128(qs.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(q));
                sum += _mm512_reduce_add_epi32(q);
            }
            o.d = d;
            o.sum = d * sum as f32;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_act_q8k(xs: &[f32], out: &mut [ActQ8K]) {
        for (x, o) in xs.chunks_exact(QK_K).zip(out.iter_mut()) {
            let (d, inv) = scale(absmax(x));
            for ((x, qs), bsum) in x.chunks_exact(16).zip(o.qs.chunks_exact_mut(16)).zip(&mut o.bsums) {
                let q = round16(x, inv);
                _mm_storeu_si128(qs.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(q));
                *bsum = _mm512_reduce_add_epi32(q) as i16;
            }
            scalar::fill_derived_sums(o);
            o.d = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytemuck::Zeroable;

    use super::*;
    use crate::quant::blocks::QK_K;

    /// Blocks that exercise the rounding: exact halves of both signs (the first value sets
    /// the scale to 1), values just under a half, zeros, NaN and infinities, a scale that
    /// underflows to zero and one whose inverse overflows, and ordinary noise.
    fn awkward_inputs() -> Vec<f32> {
        let mut xs = vec![127.0, 0.5, -0.5, 1.5, -2.5, 2.4999998, -2.4999998, 126.5, -127.0, 0.0];
        xs.resize(QK_K, 3.5);
        let mut special = vec![f32::NAN, 1.0, f32::INFINITY, -3.0, f32::NEG_INFINITY];
        special.resize(QK_K, 0.25);
        xs.extend(special);
        xs.extend(std::iter::repeat_n(1e-40f32, QK_K));
        xs.extend((0..QK_K).map(|i| if i == 7 { 2e-38 } else { 1e-39 * i as f32 }));
        xs.extend((0..QK_K).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.0137));
        xs
    }

    #[test]
    fn avx512_q8_blocks_equal_the_scalar_ones_bit_for_bit() {
        let xs = awkward_inputs();
        let (mut fast, mut reference) = (
            vec![ActQ8::zeroed(); xs.len() / 32],
            vec![ActQ8::zeroed(); xs.len() / 32],
        );
        quantize_act_q8(&xs, &mut fast);
        scalar::quantize_act_q8(&xs, &mut reference);
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            assert_eq!(
                bytemuck::bytes_of(a),
                bytemuck::bytes_of(b),
                "block {i}: {a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn avx512_q8k_blocks_equal_the_scalar_ones_bit_for_bit() {
        let xs = awkward_inputs();
        let blocks = xs.len() / QK_K;
        let (mut fast, mut reference) = (vec![ActQ8K::zeroed(); blocks], vec![ActQ8K::zeroed(); blocks]);
        quantize_act_q8k(&xs, &mut fast);
        scalar::quantize_act_q8k(&xs, &mut reference);
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            assert_eq!(bytemuck::bytes_of(a), bytemuck::bytes_of(b), "super-block {i}");
        }
    }
}
