//! AVX2 + FMA + F16C row-wise dot products: the legacy block formats (Q4_0, Q4_1, Q8_0)
//! against int8 activation blocks (unsigned x signed byte products, `vpmaddubsw`, summed into
//! int32, then scaled per block in f32; `vpdpbusd` in place of the first two where the CPU
//! has AVX-VNNI), and against f32 activations (each block widened to
//! f32 in registers, then fused multiply-adds); Q4_K and Q6_K against int8 super-blocks,
//! and against f32 activations block by block (dequantized once for one or four rows, then
//! fused multiply-adds).
//! These run where the VNNI tiles (`tiles.rs`) do not. Each public function returns the kernel only
//! when the CPU reports every feature it needs; the scalar versions in `scalar.rs` and
//! `format.rs` are the reference.

use super::blocks::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ6K, BlockQ8_0};
use super::format::{Dot4F32Fn, Dot4Fn, DotF32Fn, DotFn};

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    crate::family::has(crate::family::Feature::Avx2)
}

/// Declares `pub fn $name() -> Option<$ty>`, handing out `$kernel` once the CPU reports
/// AVX2, FMA and F16C (the closure exists only behind that check), or `$vnni` where the CPU
/// also has AVX-VNNI, and `None` elsewhere.
macro_rules! avx2_kernel {
    ($name:ident: $ty:ty = $kernel:path $(, vnni: $vnni:path)?) => {
        pub fn $name() -> Option<$ty> {
            #[cfg(target_arch = "x86_64")]
            {
                $(
                    if crate::family::has(crate::family::Feature::AvxVnni) {
                        return Some((|w, a| unsafe { $vnni(w, a) }) as $ty);
                    }
                )?
                has_avx2().then_some((|w, a| unsafe { $kernel(w, a) }) as $ty)
            }
            #[cfg(not(target_arch = "x86_64"))]
            None
        }
    };
}

avx2_kernel!(dot_q4_0: DotFn<BlockQ4_0> = x86::dot_q4_0::<x86::Maddubs>, vnni: x86::dot_q4_0_vnni);
avx2_kernel!(dot_q4_1: DotFn<BlockQ4_1> = x86::dot_q4_1::<x86::Maddubs>, vnni: x86::dot_q4_1_vnni);
avx2_kernel!(dot_q8_0: DotFn<BlockQ8_0> = x86::dot_q8_0::<x86::Maddubs>, vnni: x86::dot_q8_0_vnni);
avx2_kernel!(dot4_q4_0: Dot4Fn<BlockQ4_0> = x86::dot4_q4_0::<x86::Maddubs>, vnni: x86::dot4_q4_0_vnni);
avx2_kernel!(dot4_q4_1: Dot4Fn<BlockQ4_1> = x86::dot4_q4_1::<x86::Maddubs>, vnni: x86::dot4_q4_1_vnni);
avx2_kernel!(dot4_q8_0: Dot4Fn<BlockQ8_0> = x86::dot4_q8_0::<x86::Maddubs>, vnni: x86::dot4_q8_0_vnni);
avx2_kernel!(dot4_f32_q4_0: Dot4F32Fn<BlockQ4_0> = x86::dot4_f32);
avx2_kernel!(dot4_f32_q4_1: Dot4F32Fn<BlockQ4_1> = x86::dot4_f32);
avx2_kernel!(dot4_f32_q8_0: Dot4F32Fn<BlockQ8_0> = x86::dot4_f32);
avx2_kernel!(dot_q4k: DotFn<BlockQ4K> = x86::dot_q4k);
avx2_kernel!(dot_q6k: DotFn<BlockQ6K> = x86::dot_q6k);
avx2_kernel!(dot_f32_q4_0: DotF32Fn<BlockQ4_0> = x86::dot_f32_q4_0);
avx2_kernel!(dot_f32_q4_1: DotF32Fn<BlockQ4_1> = x86::dot_f32_q4_1);
avx2_kernel!(dot_f32_q8_0: DotF32Fn<BlockQ8_0> = x86::dot_f32_q8_0);
avx2_kernel!(dot_f32_q4k: DotF32Fn<BlockQ4K> = x86::dot_f32_dequantized::<BlockQ4K>);
avx2_kernel!(dot_f32_q6k: DotF32Fn<BlockQ6K> = x86::dot_f32_dequantized::<BlockQ6K>);
avx2_kernel!(dot4_f32_q4k: Dot4F32Fn<BlockQ4K> = x86::dot4_f32_dequantized::<BlockQ4K>);
avx2_kernel!(dot4_f32_q6k: Dot4F32Fn<BlockQ6K> = x86::dot4_f32_dequantized::<BlockQ6K>);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ6K, BlockQ8_0};
    use crate::quant::blocks::{ActQ8, ActQ8K, QK_K};
    use crate::quant::format::QuantFormat;
    use crate::quant::scalar::q4k_scale_min;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_to_f32(bits: half::f16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits.to_bits() as i32)))
    }

    /// An f16 scale in all eight lanes. Converting all lanes keeps LLVM from inserting the
    /// value into whatever register is free, often a live accumulator, which would chain
    /// every block's scale behind the previous block's multiply-add.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_splat(v: half::f16) -> __m256 {
        _mm256_cvtph_ps(_mm_set1_epi16(v.to_bits() as i16))
    }

    /// 16 bytes of packed nibbles to 32 bytes: low nibbles in lanes 0..16, high in 16..32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles_to_bytes(qs: &[u8; 16]) -> __m256i {
        let packed = _mm_loadu_si128(qs.as_ptr().cast());
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_and_si256(both, _mm256_set1_epi8(0xF))
    }

    /// The byte dot product under the legacy formats' int8 kernels: the sums of the
    /// products of unsigned `u` and signed `s` bytes, four at a time, as 8 int32 lanes.
    pub trait ByteDot {
        /// # Safety
        /// The CPU must support the implementation's features.
        unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i;
    }

    /// AVX2: `vpmaddubsw` into 16-bit pairs, then `vpmaddwd` by one. Every product pair the
    /// kernels form fits 16 bits (unsigned side at most 15, or 128 through `dot_i8_i8`).
    pub struct Maddubs;

    /// AVX-VNNI: one `vpdpbusd`, for the CPUs that have it without AVX-512.
    pub struct Vnni;

    impl ByteDot for Maddubs {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
        }
    }

    impl ByteDot for Vnni {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
        unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
            _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
        }
    }

    /// Sum of products of signed bytes, through |a| * (b with a's sign).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_i8_i8<D: ByteDot>(a: __m256i, b: __m256i) -> __m256i {
        D::dot_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    /// Declares `$vnni`, the AVX-VNNI instance of the generic kernel `$generic`: compiled
    /// with the feature, so that `Vnni::dot_u8_i8` inlines into it.
    macro_rules! vnni_instance {
        ($vnni:ident = $generic:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
            #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
            pub unsafe fn $vnni($($arg: $ty),*) -> $ret {
                $generic::<Vnni>($($arg),*)
            }
        };
    }

    vnni_instance!(dot_q4_0_vnni = dot_q4_0(w: &[BlockQ4_0], a: &[ActQ8]) -> f32);
    vnni_instance!(dot_q4_1_vnni = dot_q4_1(w: &[BlockQ4_1], a: &[ActQ8]) -> f32);
    vnni_instance!(dot_q8_0_vnni = dot_q8_0(w: &[BlockQ8_0], a: &[ActQ8]) -> f32);
    vnni_instance!(dot4_q4_0_vnni = dot4_q4_0(w: &[BlockQ4_0], a: [&[ActQ8]; 4]) -> [f32; 4]);
    vnni_instance!(dot4_q4_1_vnni = dot4_q4_1(w: &[BlockQ4_1], a: [&[ActQ8]; 4]) -> [f32; 4]);
    vnni_instance!(dot4_q8_0_vnni = dot4_q8_0(w: &[BlockQ8_0], a: [&[ActQ8]; 4]) -> [f32; 4]);

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Sums the scaled int32 products of every block pair (`block` gives one block's 8-lane
    /// product sum and its scale), two blocks per step into two accumulators so that the
    /// multiply-add chains overlap.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn sum_blocks<W>(w: &[W], a: &[ActQ8], block: impl Fn(&W, &ActQ8) -> (__m256i, __m256)) -> f32 {
        assert!(a.len() >= w.len(), "activation row shorter than the weight row");
        let add = |acc: __m256, w: &W, a: &ActQ8| {
            let (dot, scale) = block(w, a);
            _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc)
        };
        let (pairs, rest) = w.as_chunks::<2>();
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (i, [w0, w1]) in pairs.iter().enumerate() {
            even = add(even, w0, a.get_unchecked(2 * i));
            odd = add(odd, w1, a.get_unchecked(2 * i + 1));
        }
        if let [w] = rest {
            even = add(even, w, a.get_unchecked(2 * pairs.len()));
        }
        hsum(_mm256_add_ps(even, odd))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_0<D: ByteDot>(w: &[BlockQ4_0], a: &[ActQ8]) -> f32 {
        sum_blocks(w, a, |w, a| {
            let qw = _mm256_sub_epi8(nibbles_to_bytes(&w.qs), _mm256_set1_epi8(8));
            (
                dot_i8_i8::<D>(qw, _mm256_loadu_si256(a.qs.as_ptr().cast())),
                _mm256_mul_ps(f16_splat(w.d), _mm256_set1_ps(a.d)),
            )
        })
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1<D: ByteDot>(w: &[BlockQ4_1], a: &[ActQ8]) -> f32 {
        let offsets: f32 = w.iter().zip(a).map(|(w, a)| f16_to_f32(w.m) * a.sum).sum();
        let products = sum_blocks(w, a, |w, a| {
            let qa = _mm256_loadu_si256(a.qs.as_ptr().cast());
            (
                D::dot_u8_i8(nibbles_to_bytes(&w.qs), qa),
                _mm256_mul_ps(f16_splat(w.d), _mm256_set1_ps(a.d)),
            )
        });
        products + offsets
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0<D: ByteDot>(w: &[BlockQ8_0], a: &[ActQ8]) -> f32 {
        sum_blocks(w, a, |w, a| {
            let qw = _mm256_loadu_si256(w.qs.as_ptr().cast());
            (
                dot_i8_i8::<D>(qw, _mm256_loadu_si256(a.qs.as_ptr().cast())),
                _mm256_mul_ps(f16_splat(w.d), _mm256_set1_ps(a.d)),
            )
        })
    }

    /// The low 8 bytes of `v` as 8 f32 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn widen_u8(v: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
    }

    /// Bits 0..2 of each byte of `bits`, moved to bits 4..6: the high part of a 6-bit value.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q6_high(bits: __m256i, low2: __m256i) -> __m256i {
        _mm256_slli_epi16(_mm256_and_si256(bits, low2), 4)
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
        let q = [
            widen_u8(lo),
            widen_u8(_mm_srli_si128(lo, 8)),
            widen_u8(hi),
            widen_u8(_mm_srli_si128(hi, 8)),
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
            let d = f16_splat(w.d);
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
            acc = _mm256_fmadd_ps(f16_splat(w.d), qx, acc);
            acc = _mm256_fmadd_ps(f16_splat(w.m), sx, acc);
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
            acc = _mm256_fmadd_ps(f16_splat(w.d), qx, acc);
        }
        hsum(acc)
    }

    /// One weight row against `R` f32 activation rows, in any format: each block is
    /// dequantized once by the format's own reference code (compiled here with AVX2), then
    /// two FMA chains of eight lanes per row. The k-quants use it; their scalar version sums
    /// one product at a time.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows_f32_dequantized<W: QuantFormat, const R: usize>(w: &[W], x: [&[f32]; R]) -> [f32; R] {
        assert!(
            x.iter().all(|x| x.len() >= W::ELEMS * w.len()),
            "activation rows shorter than the weight row"
        );
        let mut buf = [0f32; QK_K];
        let buf = &mut buf[..W::ELEMS];
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for (i, block) in w.iter().enumerate() {
            W::dequantize(std::slice::from_ref(block), buf);
            for (acc, x) in acc.iter_mut().zip(x) {
                let x = &x[W::ELEMS * i..W::ELEMS * (i + 1)];
                for (k, (b, x)) in buf.chunks_exact(8).zip(x.chunks_exact(8)).enumerate() {
                    let (b, x) = (_mm256_loadu_ps(b.as_ptr()), _mm256_loadu_ps(x.as_ptr()));
                    acc[k & 1] = _mm256_fmadd_ps(b, x, acc[k & 1]);
                }
            }
        }
        acc.map(|[a, b]| hsum(_mm256_add_ps(a, b)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32_dequantized<W: QuantFormat>(w: &[W], x: &[f32]) -> f32 {
        let [sum] = rows_f32_dequantized(w, [x]);
        sum
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_f32_dequantized<W: QuantFormat>(w: &[W], x: [&[f32]; 4]) -> [f32; 4] {
        rows_f32_dequantized(w, x)
    }

    /// Q4_K against Q8_K: per 64-element chunk, low nibbles are one sub-block and high
    /// nibbles the next; byte products are weighted by the 6-bit sub-block scales in int16
    /// (`vpmaddwd`), and the mins are applied once per block through the activation sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4k(w: &[BlockQ4K], a: &[ActQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        let low = _mm256_set1_epi8(0xF);
        for (w, a) in w.iter().zip(a) {
            let mut sumi = _mm256_setzero_si256();
            let mut summ = 0i32;
            for chunk in 0..4 {
                let (sc_lo, m_lo) = q4k_scale_min(2 * chunk, &w.scales);
                let (sc_hi, m_hi) = q4k_scale_min(2 * chunk + 1, &w.scales);
                summ += m_lo as i32 * (a.bsums[4 * chunk] as i32 + a.bsums[4 * chunk + 1] as i32);
                summ += m_hi as i32 * (a.bsums[4 * chunk + 2] as i32 + a.bsums[4 * chunk + 3] as i32);
                let q = _mm256_loadu_si256(w.qs.as_ptr().add(32 * chunk).cast());
                let a_lo = _mm256_loadu_si256(a.qs.as_ptr().add(64 * chunk).cast());
                let a_hi = _mm256_loadu_si256(a.qs.as_ptr().add(64 * chunk + 32).cast());
                let p_lo = _mm256_maddubs_epi16(_mm256_and_si256(q, low), a_lo);
                let p_hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), a_hi);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_lo, _mm256_set1_epi16(sc_lo as i16)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_hi, _mm256_set1_epi16(sc_hi as i16)));
            }
            let d = f16_to_f32(w.d) * a.d;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
            mins += f16_to_f32(w.dmin) * a.d * summ as f32;
        }
        hsum(acc) - mins
    }

    /// Q6_K against Q8_K: the 6-bit values are rebuilt from `ql` nibbles and `qh` bit pairs
    /// as unsigned 0..64; `sum((q - 32) * x)` is `sum(q * x) - 32 * sum(x)`, both by
    /// `vpmaddubsw`, then weighted by the signed 8-bit group scales.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q6k(w: &[BlockQ6K], a: &[ActQ8K]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let (low4, low2, bias) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
        for (w, a) in w.iter().zip(a) {
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let ql0 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half).cast());
                let ql1 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half + 32).cast());
                let qh = _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast());
                let q = [
                    _mm256_or_si256(_mm256_and_si256(ql0, low4), q6_high(qh, low2)),
                    _mm256_or_si256(_mm256_and_si256(ql1, low4), q6_high(_mm256_srli_epi16(qh, 2), low2)),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                        q6_high(_mm256_srli_epi16(qh, 4), low2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                        q6_high(_mm256_srli_epi16(qh, 6), low2),
                    ),
                ];
                for (k, q) in q.into_iter().enumerate() {
                    let x = _mm256_loadu_si256(a.qs.as_ptr().add(128 * half + 32 * k).cast());
                    let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, x), _mm256_maddubs_epi16(bias, x));
                    let g = 8 * half + 2 * k;
                    let scales = _mm256_set_m128i(
                        _mm_set1_epi16(w.scales[g + 1] as i16),
                        _mm_set1_epi16(w.scales[g] as i16),
                    );
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales));
                }
            }
            let d = f16_to_f32(w.d) * a.d;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc)
    }

    /// One weight row against four activation rows: each weight block is loaded, unpacked
    /// and made unsigned once (`|q|`), and each activation row takes q's sign.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot4_signed<D: ByteDot, W>(
        w: &[W],
        a: [&[ActQ8]; 4],
        unpack: impl Fn(&W) -> (__m256i, __m256),
    ) -> [f32; 4] {
        let n = w.len();
        assert!(
            a.iter().all(|a| a.len() >= n),
            "activation rows shorter than the weight row"
        );
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let (qw, d) = unpack(w);
            let magnitude = _mm256_sign_epi8(qw, qw);
            for (acc, a) in acc.iter_mut().zip(a) {
                let a = a.get_unchecked(i);
                let qa = _mm256_sign_epi8(_mm256_loadu_si256(a.qs.as_ptr().cast()), qw);
                let sum = D::dot_u8_i8(magnitude, qa);
                *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(sum), *acc);
            }
        }
        acc.map(|v| hsum(v))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q4_0<D: ByteDot>(w: &[BlockQ4_0], a: [&[ActQ8]; 4]) -> [f32; 4] {
        dot4_signed::<D, _>(w, a, |w| {
            (
                _mm256_sub_epi8(nibbles_to_bytes(&w.qs), _mm256_set1_epi8(8)),
                f16_splat(w.d),
            )
        })
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q8_0<D: ByteDot>(w: &[BlockQ8_0], a: [&[ActQ8]; 4]) -> [f32; 4] {
        dot4_signed::<D, _>(w, a, |w| (_mm256_loadu_si256(w.qs.as_ptr().cast()), f16_splat(w.d)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q4_1<D: ByteDot>(w: &[BlockQ4_1], a: [&[ActQ8]; 4]) -> [f32; 4] {
        let n = w.len();
        assert!(
            a.iter().all(|a| a.len() >= n),
            "activation rows shorter than the weight row"
        );
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut offsets = [0f32; 4];
        for (i, w) in w.iter().enumerate() {
            let qw = nibbles_to_bytes(&w.qs);
            let (d, m) = (f16_splat(w.d), f16_to_f32(w.m));
            for ((acc, off), a) in acc.iter_mut().zip(offsets.iter_mut()).zip(a) {
                let a = a.get_unchecked(i);
                let sum = D::dot_u8_i8(qw, _mm256_loadu_si256(a.qs.as_ptr().cast()));
                *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(sum), *acc);
                *off += m * a.sum;
            }
        }
        let mut out = [0f32; 4];
        for ((o, acc), off) in out.iter_mut().zip(acc).zip(offsets) {
            *o = hsum(acc) + off;
        }
        out
    }

    /// A legacy block widened to 32 f32 weights in four registers, scales applied.
    pub trait WidenF32 {
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        unsafe fn widen(&self) -> [__m256; 4];
    }

    /// The 32 nibbles of a block as f32, in element order (low nibbles first).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles_f32(qs: &[u8; 16]) -> [__m256; 4] {
        let packed = _mm_loadu_si128(qs.as_ptr().cast());
        let mask = _mm_set1_epi8(0xF);
        let lo = _mm_and_si128(packed, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        [
            widen_u8(lo),
            widen_u8(_mm_srli_si128(lo, 8)),
            widen_u8(hi),
            widen_u8(_mm_srli_si128(hi, 8)),
        ]
    }

    impl WidenF32 for BlockQ4_0 {
        #[inline]
        unsafe fn widen(&self) -> [__m256; 4] {
            let d = f16_splat(self.d);
            let offset = _mm256_mul_ps(d, _mm256_set1_ps(-8.0));
            nibbles_f32(&self.qs).map(|q| _mm256_fmadd_ps(q, d, offset))
        }
    }

    impl WidenF32 for BlockQ4_1 {
        #[inline]
        unsafe fn widen(&self) -> [__m256; 4] {
            let (d, m) = (f16_splat(self.d), f16_splat(self.m));
            nibbles_f32(&self.qs).map(|q| _mm256_fmadd_ps(q, d, m))
        }
    }

    impl WidenF32 for BlockQ8_0 {
        #[inline]
        unsafe fn widen(&self) -> [__m256; 4] {
            let d = f16_splat(self.d);
            std::array::from_fn(|i| {
                let q8 = _mm_loadl_epi64(self.qs.as_ptr().add(8 * i).cast());
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d)
            })
        }
    }

    /// One weight row against four f32 activation rows: each block is widened once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_f32<W: WidenF32>(w: &[W], x: [&[f32]; 4]) -> [f32; 4] {
        assert!(
            x.iter().all(|x| x.len() >= 32 * w.len()),
            "activation rows shorter than the weight row"
        );
        let mut acc = [_mm256_setzero_ps(); 4];
        for (i, w) in w.iter().enumerate() {
            let v = w.widen();
            for (acc, x) in acc.iter_mut().zip(x) {
                let x = x.as_ptr().add(32 * i);
                for (k, v) in v.iter().enumerate() {
                    *acc = _mm256_fmadd_ps(*v, _mm256_loadu_ps(x.add(8 * k)), *acc);
                }
            }
        }
        acc.map(|v| hsum(v))
    }
}

/// Both byte-dot instances of every legacy int8 kernel against the scalar reference: the
/// format dispatch runs only one of them on a given CPU.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use bytemuck::Zeroable;
    use half::f16;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::x86::{self, ByteDot, Maddubs, Vnni};
    use super::*;
    use crate::quant::blocks::{ActQ8, QK};
    use crate::quant::scalar;

    const BLOCKS: usize = 7;

    fn random_blocks<B: bytemuck::Pod>(rng: &mut SmallRng, scales: impl Fn(&mut B, f16)) -> Vec<B> {
        (0..BLOCKS)
            .map(|_| {
                let mut b = B::zeroed();
                rng.fill(bytemuck::bytes_of_mut(&mut b));
                scales(&mut b, f16::from_f32(rng.random_range(-0.1..0.1)));
                b
            })
            .collect()
    }

    fn activation_rows(rng: &mut SmallRng) -> Vec<Vec<ActQ8>> {
        (0..4)
            .map(|_| {
                let xs: Vec<f32> = (0..BLOCKS * QK).map(|_| rng.random_range(-2.0..2.0)).collect();
                let mut a = vec![ActQ8::zeroed(); BLOCKS];
                scalar::quantize_act_q8(&xs, &mut a);
                a
            })
            .collect()
    }

    /// One weight row's one- and four-row kernels, with byte dot `D`, against `reference`.
    unsafe fn check<W, D: ByteDot>(
        w: &[W],
        acts: &[Vec<ActQ8>],
        one: unsafe fn(&[W], &[ActQ8]) -> f32,
        four: unsafe fn(&[W], [&[ActQ8]; 4]) -> [f32; 4],
        reference: fn(&[W], &[ActQ8]) -> f32,
    ) {
        let rows: [&[ActQ8]; 4] = std::array::from_fn(|r| acts[r].as_slice());
        let four = four(w, rows);
        for (r, a) in rows.iter().enumerate() {
            let expected = reference(w, a);
            let close = |v: f32| (v - expected).abs() <= 1e-5 * expected.abs().max(1.0);
            assert!(close(one(w, a)), "{}: one row {r}", std::any::type_name::<D>());
            assert!(close(four[r]), "{}: four rows, row {r}", std::any::type_name::<D>());
        }
    }

    unsafe fn check_formats<D: ByteDot>(rng: &mut SmallRng) {
        let acts = activation_rows(rng);
        let q4_0 = random_blocks(rng, |b: &mut BlockQ4_0, d| b.d = d);
        check::<_, D>(&q4_0, &acts, x86::dot_q4_0::<D>, x86::dot4_q4_0::<D>, scalar::dot_q4_0);
        let q4_1 = random_blocks(rng, |b: &mut BlockQ4_1, d| (b.d, b.m) = (d, d));
        check::<_, D>(&q4_1, &acts, x86::dot_q4_1::<D>, x86::dot4_q4_1::<D>, scalar::dot_q4_1);
        let q8_0 = random_blocks(rng, |b: &mut BlockQ8_0, d| b.d = d);
        check::<_, D>(&q8_0, &acts, x86::dot_q8_0::<D>, x86::dot4_q8_0::<D>, scalar::dot_q8_0);
    }

    #[test]
    fn maddubs_and_vnni_kernels_match_the_scalar_reference() {
        let mut rng = SmallRng::seed_from_u64(5);
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")) {
            return;
        }
        // SAFETY: the CPU reports AVX2, FMA and F16C, and AVX-VNNI before the Vnni instances.
        unsafe {
            check_formats::<Maddubs>(&mut rng);
            if is_x86_feature_detected!("avxvnni") {
                check_formats::<Vnni>(&mut rng);
            }
        }
    }
}
