//! AVX2 + FMA + F16C dot products for the legacy block formats (Q4_0, Q4_1, Q8_0):
//! against int8 activation blocks (unsigned x signed byte products, `vpmaddubsw`, summed into
//! int32, then scaled per block in f32), and against f32 activations (each block widened to
//! f32 in registers, then fused multiply-adds). Each public function returns the kernel only
//! when the CPU reports every feature it needs; the scalar versions in `scalar.rs` and
//! `format.rs` are the reference.

use super::blocks::{ActQ8, BlockQ4_0, BlockQ4_1, BlockQ8_0};
use super::format::{DotF32Fn, DotFn};

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
pub fn dot_q4_0() -> Option<DotFn<BlockQ4_0>> {
    // SAFETY of the closure: it is handed out only after the features were detected.
    has_avx2().then_some((|w, a| unsafe { x86::dot_q4_0(w, a) }) as DotFn<BlockQ4_0>)
}

#[cfg(target_arch = "x86_64")]
pub fn dot_q4_1() -> Option<DotFn<BlockQ4_1>> {
    has_avx2().then_some((|w, a| unsafe { x86::dot_q4_1(w, a) }) as DotFn<BlockQ4_1>)
}

#[cfg(target_arch = "x86_64")]
pub fn dot_q8_0() -> Option<DotFn<BlockQ8_0>> {
    has_avx2().then_some((|w, a| unsafe { x86::dot_q8_0(w, a) }) as DotFn<BlockQ8_0>)
}

#[cfg(target_arch = "x86_64")]
pub fn dot_f32_q4_0() -> Option<DotF32Fn<BlockQ4_0>> {
    has_avx2().then_some((|w, x| unsafe { x86::dot_f32_q4_0(w, x) }) as DotF32Fn<BlockQ4_0>)
}

#[cfg(target_arch = "x86_64")]
pub fn dot_f32_q4_1() -> Option<DotF32Fn<BlockQ4_1>> {
    has_avx2().then_some((|w, x| unsafe { x86::dot_f32_q4_1(w, x) }) as DotF32Fn<BlockQ4_1>)
}

#[cfg(target_arch = "x86_64")]
pub fn dot_f32_q8_0() -> Option<DotF32Fn<BlockQ8_0>> {
    has_avx2().then_some((|w, x| unsafe { x86::dot_f32_q8_0(w, x) }) as DotF32Fn<BlockQ8_0>)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn dot_f32_q4_0() -> Option<DotF32Fn<BlockQ4_0>> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
pub fn dot_f32_q4_1() -> Option<DotF32Fn<BlockQ4_1>> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
pub fn dot_f32_q8_0() -> Option<DotF32Fn<BlockQ8_0>> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
pub fn dot_q4_0() -> Option<DotFn<BlockQ4_0>> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
pub fn dot_q4_1() -> Option<DotFn<BlockQ4_1>> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
pub fn dot_q8_0() -> Option<DotFn<BlockQ8_0>> {
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{ActQ8, BlockQ4_0, BlockQ4_1, BlockQ8_0};

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_to_f32(bits: half::f16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits.to_bits() as i32)))
    }

    /// 16 bytes of packed nibbles to 32 bytes: low nibbles in lanes 0..16, high in 16..32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles_to_bytes(qs: &[u8; 16]) -> __m256i {
        let packed = _mm_loadu_si128(qs.as_ptr().cast());
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_and_si256(both, _mm256_set1_epi8(0xF))
    }

    /// Sum of products of unsigned `u` and signed `s` bytes, as 8 int32 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    /// Sum of products of signed bytes, through |a| * (b with a's sign).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_i8_i8(a: __m256i, b: __m256i) -> __m256i {
        dot_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_0(w: &[BlockQ4_0], a: &[ActQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            let qw = _mm256_sub_epi8(nibbles_to_bytes(&w.qs), _mm256_set1_epi8(8));
            let qa = _mm256_loadu_si256(a.qs.as_ptr().cast());
            let scale = _mm256_set1_ps(f16_to_f32(w.d) * a.d);
            acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot_i8_i8(qw, qa)), acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1(w: &[BlockQ4_1], a: &[ActQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut offsets = 0f32;
        for (w, a) in w.iter().zip(a) {
            let qw = nibbles_to_bytes(&w.qs);
            let qa = _mm256_loadu_si256(a.qs.as_ptr().cast());
            let scale = _mm256_set1_ps(f16_to_f32(w.d) * a.d);
            acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot_u8_i8(qw, qa)), acc);
            offsets += f16_to_f32(w.m) * a.sum;
        }
        hsum(acc) + offsets
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(w: &[BlockQ8_0], a: &[ActQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            let qw = _mm256_loadu_si256(w.qs.as_ptr().cast());
            let qa = _mm256_loadu_si256(a.qs.as_ptr().cast());
            let scale = _mm256_set1_ps(f16_to_f32(w.d) * a.d);
            acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot_i8_i8(qw, qa)), acc);
        }
        hsum(acc)
    }

    /// Sum of `q * x` over a block of 32 unsigned nibbles (lanes as `nibbles_to_bytes`), and
    /// the sum of `x`, both as 8 f32 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles_dot_f32(qs: &[u8; 16], x: *const f32) -> (__m256, __m256) {
        let packed = _mm_loadu_si128(qs.as_ptr().cast());
        let mask = _mm_set1_epi8(0xF);
        let lo = _mm_and_si128(packed, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        let widen = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        let q = [
            widen(lo),
            widen(_mm_srli_si128(lo, 8)),
            widen(hi),
            widen(_mm_srli_si128(hi, 8)),
        ];
        let xs = [
            _mm256_loadu_ps(x),
            _mm256_loadu_ps(x.add(8)),
            _mm256_loadu_ps(x.add(16)),
            _mm256_loadu_ps(x.add(24)),
        ];
        let qx = _mm256_fmadd_ps(q[0], xs[0], _mm256_mul_ps(q[1], xs[1]));
        let qx = _mm256_fmadd_ps(q[2], xs[2], _mm256_fmadd_ps(q[3], xs[3], qx));
        let sx = _mm256_add_ps(_mm256_add_ps(xs[0], xs[1]), _mm256_add_ps(xs[2], xs[3]));
        (qx, sx)
    }

    /// Q4_0 with f32 activations: d * (sum(q x) - 8 sum(x)) per block.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32_q4_0(w: &[BlockQ4_0], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, x) in w.iter().zip(x.chunks_exact(32)) {
            let (qx, sx) = nibbles_dot_f32(&w.qs, x.as_ptr());
            let d = _mm256_set1_ps(f16_to_f32(w.d));
            acc = _mm256_fmadd_ps(d, _mm256_fmadd_ps(_mm256_set1_ps(-8.0), sx, qx), acc);
        }
        hsum(acc)
    }

    /// Q4_1 with f32 activations: d * sum(q x) + m * sum(x) per block.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32_q4_1(w: &[BlockQ4_1], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, x) in w.iter().zip(x.chunks_exact(32)) {
            let (qx, sx) = nibbles_dot_f32(&w.qs, x.as_ptr());
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w.d)), qx, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w.m)), sx, acc);
        }
        hsum(acc)
    }

    /// Q8_0 with f32 activations: d * sum(q x) per block.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32_q8_0(w: &[BlockQ8_0], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, x) in w.iter().zip(x.chunks_exact(32)) {
            let mut qx = _mm256_setzero_ps();
            for i in 0..4 {
                let q8 = _mm_loadl_epi64(w.qs.as_ptr().add(8 * i).cast());
                let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
                qx = _mm256_fmadd_ps(q, _mm256_loadu_ps(x.as_ptr().add(8 * i)), qx);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w.d)), qx, acc);
        }
        hsum(acc)
    }
}
