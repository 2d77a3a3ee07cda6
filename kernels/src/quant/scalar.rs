//! Plain scalar reference code for every block format: dequantization, the on-the-fly 8-bit
//! quantization of activations, weight quantization for the legacy formats, and the int8 dot
//! products. The SIMD kernels are tested against these.

use bytemuck::Zeroable;
use half::{bf16, f16};

use super::blocks::*;
use super::DType;

/// Dequantizes raw little-endian bytes of `dtype` into `out`; `bytes` must hold exactly
/// `out.len()` elements (checked by the caller through `DType::bytes_for`).
pub fn dequantize_bytes(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::Q4_0 => dequantize_q4_0(&bytemuck::pod_collect_to_vec(bytes), out),
        DType::Q4_1 => dequantize_q4_1(&bytemuck::pod_collect_to_vec(bytes), out),
        DType::Q8_0 => dequantize_q8_0(&bytemuck::pod_collect_to_vec(bytes), out),
        DType::Q4K => dequantize_q4k(&bytemuck::pod_collect_to_vec(bytes), out),
        DType::Q6K => dequantize_q6k(&bytemuck::pod_collect_to_vec(bytes), out),
    }
}

pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (j, &q) in b.qs.iter().enumerate() {
            o[j] = ((q & 0xF) as i32 - 8) as f32 * d;
            o[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub fn dequantize_q4_1(blocks: &[BlockQ4_1], out: &mut [f32]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (j, &q) in b.qs.iter().enumerate() {
            o[j] = (q & 0xF) as f32 * d + m;
            o[j + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
}

pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K block.
pub fn q4k_scale_min(j: usize, s: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// The 256 unsigned 4-bit values of a Q4_K block in element order.
pub(crate) fn q4k_values(b: &BlockQ4K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for chunk in 0..QK_K / 64 {
        for l in 0..32 {
            let byte = b.qs[32 * chunk + l];
            q[64 * chunk + l] = byte & 0xF;
            q[64 * chunk + 32 + l] = byte >> 4;
        }
    }
    q
}

pub fn dequantize_q4k(blocks: &[BlockQ4K], out: &mut [f32]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        let q = q4k_values(b);
        for (sub, (o, q)) in o.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
            let (sc, m) = q4k_scale_min(sub, &b.scales);
            let (scale, offset) = (d * sc as f32, dmin * m as f32);
            for (o, &q) in o.iter_mut().zip(q) {
                *o = scale * q as f32 - offset;
            }
        }
    }
}

/// The 256 signed 6-bit values (-32..32) of a Q6_K block in element order.
pub(crate) fn q6k_values(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for half in 0..2 {
        let (ql, qh) = (&b.ql[64 * half..], &b.qh[32 * half..]);
        let out = &mut q[128 * half..];
        for l in 0..32 {
            out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    q
}

pub fn dequantize_q6k(blocks: &[BlockQ6K], out: &mut [f32]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let q = q6k_values(b);
        for (g, (o, q)) in o.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let scale = d * b.scales[g] as f32;
            for (o, &q) in o.iter_mut().zip(q) {
                *o = scale * q as f32;
            }
        }
    }
}

fn absmax(xs: &[f32]) -> f32 {
    xs.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// Quantizes activations into blocks of 32 int8 values (symmetric, scale = absmax / 127).
pub fn quantize_act_q8(xs: &[f32], out: &mut [ActQ8]) {
    for (x, o) in xs.chunks_exact(QK).zip(out.iter_mut()) {
        let d = absmax(x) / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in o.qs.iter_mut().zip(x) {
            *q = (v * inv).round() as i8;
            sum += *q as i32;
        }
        o.d = d;
        o.sum = d * sum as f32;
    }
}

/// Quantizes activations into super-blocks of 256 int8 values with per-16 sums.
pub fn quantize_act_q8k(xs: &[f32], out: &mut [ActQ8K]) {
    for (x, o) in xs.chunks_exact(QK_K).zip(out.iter_mut()) {
        let d = absmax(x) / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in o.qs.iter_mut().zip(x) {
            *q = (v * inv).round() as i8;
        }
        for (s, q) in o.bsums.iter_mut().zip(o.qs.chunks_exact(16)) {
            *s = q.iter().map(|&q| q as i16).sum();
        }
        fill_derived_sums(o);
        o.d = d;
    }
}

/// Fills a super-block's `sub_sums` and `q6_offsets` from its `bsums`.
pub(super) fn fill_derived_sums(o: &mut ActQ8K) {
    for sub in 0..QK_K / 32 {
        let sum = o.bsums[2 * sub] + o.bsums[2 * sub + 1];
        (o.sub_sums[sub], o.sub_sums[8 + sub]) = ((sum & 127) as i8, (sum >> 7) as i8);
    }
    for (offset, &bsum) in o.q6_offsets.iter_mut().zip(&o.bsums) {
        *offset = -32 * bsum as i32;
    }
}

/// Quantizes weights to Q8_0 (round to nearest, scale = absmax / 127).
pub fn quantize_q8_0(xs: &[f32]) -> Vec<BlockQ8_0> {
    xs.chunks_exact(QK)
        .map(|x| {
            let d = absmax(x) / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut b = BlockQ8_0::zeroed();
            b.d = f16::from_f32(d);
            for (q, &v) in b.qs.iter_mut().zip(x) {
                *q = (v * inv).round() as i8;
            }
            b
        })
        .collect()
}

/// Quantizes weights to Q4_0 as ggml does: the value of largest magnitude maps to -8.
pub fn quantize_q4_0(xs: &[f32]) -> Vec<BlockQ4_0> {
    xs.chunks_exact(QK)
        .map(|x| {
            let max = x.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let d = max / -8.0;
            let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = |v: f32| ((v * inv + 8.5) as i32).clamp(0, 15) as u8;
            let mut b = BlockQ4_0::zeroed();
            b.d = f16::from_f32(d);
            for j in 0..QK / 2 {
                b.qs[j] = q(x[j]) | (q(x[j + QK / 2]) << 4);
            }
            b
        })
        .collect()
}

/// Quantizes weights to Q4_1: 16 levels between the block's min and max.
pub fn quantize_q4_1(xs: &[f32]) -> Vec<BlockQ4_1> {
    xs.chunks_exact(QK)
        .map(|x| {
            let min = x.iter().copied().fold(f32::INFINITY, f32::min);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let d = (max - min) / 15.0;
            let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = |v: f32| (((v - min) * inv + 0.5) as i32).clamp(0, 15) as u8;
            let mut b = BlockQ4_1::zeroed();
            b.d = f16::from_f32(d);
            b.m = f16::from_f32(min);
            for j in 0..QK / 2 {
                b.qs[j] = q(x[j]) | (q(x[j + QK / 2]) << 4);
            }
            b
        })
        .collect()
}

fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&a, &b)| a as i32 * b as i32).sum()
}

pub fn dot_q4_0(w: &[BlockQ4_0], a: &[ActQ8]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(w, a)| {
            let mut sum = 0i32;
            for j in 0..QK / 2 {
                sum += ((w.qs[j] & 0xF) as i32 - 8) * a.qs[j] as i32;
                sum += ((w.qs[j] >> 4) as i32 - 8) * a.qs[j + QK / 2] as i32;
            }
            w.d.to_f32() * a.d * sum as f32
        })
        .sum()
}

pub fn dot_q4_1(w: &[BlockQ4_1], a: &[ActQ8]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(w, a)| {
            let mut sum = 0i32;
            for j in 0..QK / 2 {
                sum += (w.qs[j] & 0xF) as i32 * a.qs[j] as i32;
                sum += (w.qs[j] >> 4) as i32 * a.qs[j + QK / 2] as i32;
            }
            w.d.to_f32() * a.d * sum as f32 + w.m.to_f32() * a.sum
        })
        .sum()
}

pub fn dot_q8_0(w: &[BlockQ8_0], a: &[ActQ8]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(w, a)| w.d.to_f32() * a.d * dot_i8(&w.qs, &a.qs) as f32)
        .sum()
}

pub fn dot_q4k(w: &[BlockQ4K], a: &[ActQ8K]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(w, a)| {
            let q = q4k_values(w);
            let (mut sumi, mut summ) = (0i32, 0i32);
            for sub in 0..8 {
                let (sc, m) = q4k_scale_min(sub, &w.scales);
                let range = 32 * sub..32 * sub + 32;
                let dot: i32 = q[range.clone()]
                    .iter()
                    .zip(&a.qs[range])
                    .map(|(&q, &x)| q as i32 * x as i32)
                    .sum();
                sumi += sc as i32 * dot;
                summ += m as i32 * (a.bsums[2 * sub] as i32 + a.bsums[2 * sub + 1] as i32);
            }
            a.d * (w.d.to_f32() * sumi as f32 - w.dmin.to_f32() * summ as f32)
        })
        .sum()
}

pub fn dot_q6k(w: &[BlockQ6K], a: &[ActQ8K]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(w, a)| {
            let q = q6k_values(w);
            let sumi: i32 = (0..16)
                .map(|g| w.scales[g] as i32 * dot_i8(&q[16 * g..16 * g + 16], &a.qs[16 * g..16 * g + 16]))
                .sum();
            a.d * w.d.to_f32() * sumi as f32
        })
        .sum()
}
