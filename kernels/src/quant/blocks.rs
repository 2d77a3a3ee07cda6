//! GGUF block layouts, bit-compatible with ggml (`ggml-common.h`), and the 8-bit activation
//! blocks that activations are quantized into on the fly. Each struct carries a compile-time
//! size check.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements per block of the legacy formats (Q4_0, Q4_1, Q8_0).
pub const QK: usize = 32;
/// Elements per super-block of the k-quant formats (Q4_K, Q6_K).
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in a Q4_K block.
pub const K_SCALE_SIZE: usize = 12;

/// Q4_0: 32 weights as 4-bit unsigned values `q`, weight = (q - 8) * d. Low nibbles hold
/// elements 0..16, high nibbles elements 16..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// Q4_1: 32 weights, weight = q * d + m, nibble order as Q4_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// Q8_0: 32 weights, weight = q * d.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Q4_K: 256 weights in 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min:
/// weight = d * scale * q - dmin * min.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// Q6_K: 256 weights as 6-bit values (low 4 bits in `ql`, high 2 in `qh`) in 16 groups of 16
/// with signed 8-bit scales: weight = d * scale * (q - 32).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// 32 activations quantized to int8 with an f32 scale, and `sum` = d * sum(qs) for formats
/// with an offset (Q4_1). Internal: never written to a file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ActQ8 {
    pub d: f32,
    pub sum: f32,
    pub qs: [i8; QK],
}
const _: () = assert!(std::mem::size_of::<ActQ8>() == 40);

/// 32 activations kept in f32 with their sum, for the tiled f32 path (`tiles_f32.rs`).
/// Internal: never written to a file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ActF32 {
    pub sum: f32,
    pub x: [f32; QK],
}
const _: () = assert!(std::mem::size_of::<ActF32>() == 132);

/// 256 activations quantized to int8 with an f32 scale and the sums of each group of 16,
/// for the k-quant formats. Internal: never written to a file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ActQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
    /// Each 32-value sub-block's sum `s` in two signed bytes, so that int8 dot products can
    /// weight it: bytes 0..8 hold `s & 127`, bytes 8..16 hold `s >> 7` (`s = 128 hi + lo`).
    pub sub_sums: [i8; 16],
    /// `-32 * bsums`: the offset of Q6_K's unsigned values (`u = q + 32`) in each 16-value
    /// dot product, kept in int32 so that the tiled kernel starts each dot from it.
    pub q6_offsets: [i32; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<ActQ8K>() == 372);
