//! The `QuantFormat` trait ties each weight block format to its activation block format,
//! its scalar reference kernels and the fastest dot product this CPU runs.

use bytemuck::Pod;

use super::blocks::{self, *};
use super::{avx2, neon, scalar, DType};

/// A dot product of one row of weight blocks with the matching activation blocks.
pub type DotFn<W> = fn(&[W], &[<W as QuantFormat>::Act]) -> f32;

/// A GGUF block format that the CPU backend multiplies with int8 activations.
pub trait QuantFormat: Pod + Send + Sync {
    /// The format's dtype.
    const DTYPE: DType;
    /// Elements per block; the activation blocks hold the same number.
    const ELEMS: usize;
    /// The activation block this format's dot product consumes.
    type Act: Pod + Send + Sync;

    fn quantize_activations(xs: &[f32], out: &mut [Self::Act]);
    fn dequantize(blocks: &[Self], out: &mut [f32]);
    /// The plain scalar dot product, the reference for the fast one.
    fn dot_scalar(w: &[Self], a: &[Self::Act]) -> f32;
    /// The fastest dot product this CPU supports, chosen by run-time feature detection.
    fn dot_kernel() -> DotFn<Self> {
        Self::dot_scalar
    }

    /// Dot product with f32 activations, each block dequantized on the fly: the exact
    /// product with the dequantized weights, up to summation order.
    fn dot_f32_scalar(w: &[Self], xs: &[f32]) -> f32 {
        let mut buf = [0f32; blocks::QK_K];
        let buf = &mut buf[..Self::ELEMS];
        w.iter()
            .zip(xs.chunks_exact(Self::ELEMS))
            .map(|(block, x)| {
                Self::dequantize(std::slice::from_ref(block), buf);
                buf.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
            })
            .sum()
    }

    /// The fastest f32-activation dot product this CPU supports.
    fn dot_f32_kernel() -> DotF32Fn<Self> {
        Self::dot_f32_scalar
    }

    /// One weight row against four activation rows at once, where this CPU has a kernel
    /// that shares the weight unpacking between them (the prefill path).
    fn dot4_kernel() -> Option<Dot4Fn<Self>> {
        None
    }

    /// One weight row against four f32 activation rows, sharing the block widening.
    fn dot4_f32_kernel() -> Option<Dot4F32Fn<Self>> {
        None
    }
}

/// A dot product of one row of weight blocks with four f32 activation rows.
pub type Dot4F32Fn<W> = fn(&[W], [&[f32]; 4]) -> [f32; 4];

/// A dot product of one row of weight blocks with four rows of activation blocks.
pub type Dot4Fn<W> = fn(&[W], [&[<W as QuantFormat>::Act]; 4]) -> [f32; 4];

/// A dot product of one row of weight blocks with f32 activations.
pub type DotF32Fn<W> = fn(&[W], &[f32]) -> f32;

impl QuantFormat for BlockQ4_0 {
    const DTYPE: DType = DType::Q4_0;
    const ELEMS: usize = QK;
    type Act = ActQ8;
    fn quantize_activations(xs: &[f32], out: &mut [ActQ8]) {
        scalar::quantize_act_q8(xs, out)
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        scalar::dequantize_q4_0(blocks, out)
    }
    fn dot_scalar(w: &[Self], a: &[ActQ8]) -> f32 {
        scalar::dot_q4_0(w, a)
    }
    fn dot_kernel() -> DotFn<Self> {
        avx2::dot_q4_0().or_else(neon::dot_q4_0).unwrap_or(Self::dot_scalar)
    }
    fn dot_f32_kernel() -> DotF32Fn<Self> {
        avx2::dot_f32_q4_0()
            .or_else(neon::dot_f32::<Self>)
            .unwrap_or(Self::dot_f32_scalar)
    }
    fn dot4_kernel() -> Option<Dot4Fn<Self>> {
        avx2::dot4_q4_0()
    }
    fn dot4_f32_kernel() -> Option<Dot4F32Fn<Self>> {
        avx2::dot4_f32_q4_0()
    }
}

impl QuantFormat for BlockQ4_1 {
    const DTYPE: DType = DType::Q4_1;
    const ELEMS: usize = QK;
    type Act = ActQ8;
    fn quantize_activations(xs: &[f32], out: &mut [ActQ8]) {
        scalar::quantize_act_q8(xs, out)
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        scalar::dequantize_q4_1(blocks, out)
    }
    fn dot_scalar(w: &[Self], a: &[ActQ8]) -> f32 {
        scalar::dot_q4_1(w, a)
    }
    fn dot_kernel() -> DotFn<Self> {
        avx2::dot_q4_1().or_else(neon::dot_q4_1).unwrap_or(Self::dot_scalar)
    }
    fn dot_f32_kernel() -> DotF32Fn<Self> {
        avx2::dot_f32_q4_1()
            .or_else(neon::dot_f32::<Self>)
            .unwrap_or(Self::dot_f32_scalar)
    }
    fn dot4_kernel() -> Option<Dot4Fn<Self>> {
        avx2::dot4_q4_1()
    }
    fn dot4_f32_kernel() -> Option<Dot4F32Fn<Self>> {
        avx2::dot4_f32_q4_1()
    }
}

impl QuantFormat for BlockQ8_0 {
    const DTYPE: DType = DType::Q8_0;
    const ELEMS: usize = QK;
    type Act = ActQ8;
    fn quantize_activations(xs: &[f32], out: &mut [ActQ8]) {
        scalar::quantize_act_q8(xs, out)
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        scalar::dequantize_q8_0(blocks, out)
    }
    fn dot_scalar(w: &[Self], a: &[ActQ8]) -> f32 {
        scalar::dot_q8_0(w, a)
    }
    fn dot_kernel() -> DotFn<Self> {
        avx2::dot_q8_0().or_else(neon::dot_q8_0).unwrap_or(Self::dot_scalar)
    }
    fn dot_f32_kernel() -> DotF32Fn<Self> {
        avx2::dot_f32_q8_0()
            .or_else(neon::dot_f32::<Self>)
            .unwrap_or(Self::dot_f32_scalar)
    }
    fn dot4_kernel() -> Option<Dot4Fn<Self>> {
        avx2::dot4_q8_0()
    }
    fn dot4_f32_kernel() -> Option<Dot4F32Fn<Self>> {
        avx2::dot4_f32_q8_0()
    }
}

impl QuantFormat for BlockQ4K {
    const DTYPE: DType = DType::Q4K;
    const ELEMS: usize = QK_K;
    type Act = ActQ8K;
    fn quantize_activations(xs: &[f32], out: &mut [ActQ8K]) {
        scalar::quantize_act_q8k(xs, out)
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        scalar::dequantize_q4k(blocks, out)
    }
    fn dot_scalar(w: &[Self], a: &[ActQ8K]) -> f32 {
        scalar::dot_q4k(w, a)
    }
    fn dot_kernel() -> DotFn<Self> {
        avx2::dot_q4k().or_else(neon::dot_q4k).unwrap_or(Self::dot_scalar)
    }
    fn dot_f32_kernel() -> DotF32Fn<Self> {
        avx2::dot_f32_q4k()
            .or_else(neon::dot_f32::<Self>)
            .unwrap_or(Self::dot_f32_scalar)
    }
    fn dot4_f32_kernel() -> Option<Dot4F32Fn<Self>> {
        avx2::dot4_f32_q4k()
    }
}

impl QuantFormat for BlockQ6K {
    const DTYPE: DType = DType::Q6K;
    const ELEMS: usize = QK_K;
    type Act = ActQ8K;
    fn quantize_activations(xs: &[f32], out: &mut [ActQ8K]) {
        scalar::quantize_act_q8k(xs, out)
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        scalar::dequantize_q6k(blocks, out)
    }
    fn dot_scalar(w: &[Self], a: &[ActQ8K]) -> f32 {
        scalar::dot_q6k(w, a)
    }
    fn dot_kernel() -> DotFn<Self> {
        avx2::dot_q6k().or_else(neon::dot_q6k).unwrap_or(Self::dot_scalar)
    }
    fn dot_f32_kernel() -> DotF32Fn<Self> {
        avx2::dot_f32_q6k()
            .or_else(neon::dot_f32::<Self>)
            .unwrap_or(Self::dot_f32_scalar)
    }
    fn dot4_f32_kernel() -> Option<Dot4F32Fn<Self>> {
        avx2::dot4_f32_q6k()
    }
}
