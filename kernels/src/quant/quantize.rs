//! Weight quantizers that write GGUF's block layouts: the k-quant formats (Q4_K, Q6_K) here,
//! the legacy ones (Q4_0, Q4_1, Q8_0) in [`scalar`], and [`quantize`], which turns f32 values
//! into the raw little-endian bytes of any [`DType`] as a GGUF file stores them.
//!
//! The k-quant layouts are defined by the dequantizers in [`scalar`] (which match gguf-py bit
//! for bit); each packer here is their exact inverse. The algorithm is a plain one, not
//! llama.cpp's iterative search: ideal scales from each group's range, quantized against
//! the block's scale unit to whichever neighbour fits the group's values best.

use bytemuck::Zeroable;
use half::{bf16, f16};
use rayon::prelude::*;

use super::blocks::*;
use super::{scalar, DType};
use crate::error::Result;

/// Blocks handed to one parallel task: enough work to amortise scheduling.
const BLOCKS_PER_TASK: usize = 256;

/// Quantizes `values` into the raw little-endian bytes of `dtype` (dense formats by
/// conversion). `values.len()` must be a whole number of blocks.
pub fn quantize(dtype: DType, values: &[f32]) -> Result<Vec<u8>> {
    let len = dtype.bytes_for(values.len())?;
    let bytes = match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        DType::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        DType::Q4_0 => in_parallel(values, QK, scalar::quantize_q4_0),
        DType::Q4_1 => in_parallel(values, QK, scalar::quantize_q4_1),
        DType::Q8_0 => in_parallel(values, QK, scalar::quantize_q8_0),
        DType::Q4K => in_parallel(values, QK_K, quantize_q4k),
        DType::Q6K => in_parallel(values, QK_K, quantize_q6k),
    };
    debug_assert_eq!(bytes.len(), len);
    Ok(bytes)
}

/// Runs a block quantizer over strips of `values` in parallel and returns the blocks' bytes.
fn in_parallel<B: bytemuck::Pod + Send>(values: &[f32], block: usize, f: fn(&[f32]) -> Vec<B>) -> Vec<u8> {
    let blocks: Vec<B> = values.par_chunks(block * BLOCKS_PER_TASK).flat_map_iter(f).collect();
    bytemuck::cast_slice(&blocks).to_vec()
}

/// The smallest f16 not below `x` (for `x >= 0`), so that the largest scale of a block
/// still fits its integer range. Values beyond f16's range become infinity.
fn f16_at_least(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() < x {
        f16::from_bits(h.to_bits() + 1)
    } else {
        h
    }
}

/// `x / unit` rounded down and up, clamped to `0..=max` (both 0 when `unit` is 0).
fn floor_ceil(x: f32, unit: f32, max: u8) -> [u8; 2] {
    if unit > 0.0 {
        let r = x / unit;
        [r.floor(), r.ceil()].map(|v| v.clamp(0.0, max as f32) as u8)
    } else {
        [0, 0]
    }
}

/// Rounds each of `x` to the nearest level `q * step - offset` with `q` in `0..=top`,
/// writes the levels into `q` and returns the squared error.
fn fit_levels(x: &[f32], step: f32, offset: f32, top: u8, q: &mut [u8]) -> f32 {
    let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
    let mut sse = 0.0;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((v + offset) * inv).round().clamp(0.0, top as f32) as u8;
        let err = v - (*q as f32 * step - offset);
        sse += err * err;
    }
    sse
}

fn min_max(xs: &[f32]) -> (f32, f32) {
    xs.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    })
}

/// Quantizes weights to Q4_K: each sub-block of 32 gets a 6-bit scale and a 6-bit min
/// (weight = d * scale * q - dmin * min, q in 0..16).
///
/// The ideal offset of a sub-block is how far it reaches below zero (a min above zero is
/// clamped to zero, as in llama.cpp, so the 6-bit min stays unsigned) and its ideal step
/// reaches its max in 15 steps; `dmin` and `d` are the largest of these over 63. Each
/// sub-block then takes whichever of the floor and ceiling of its 6-bit scale and min
/// gives the least squared error. Always rounding up would cover the range but stretch
/// every grid the same way: on weights that already sit on a 16-level grid (a Q4_1 file
/// being requantized) that biases every sub-block upward, which a model notices.
pub fn quantize_q4k(xs: &[f32]) -> Vec<BlockQ4K> {
    xs.chunks_exact(QK_K).map(quantize_block_q4k).collect()
}

fn quantize_block_q4k(x: &[f32]) -> BlockQ4K {
    let ranges: Vec<(f32, f32)> = x.chunks_exact(32).map(min_max).collect();
    let offsets: Vec<f32> = ranges.iter().map(|&(lo, _)| (-lo).max(0.0)).collect();
    let steps: Vec<f32> = ranges
        .iter()
        .map(|&(lo, hi)| (hi - lo.min(0.0)).max(0.0) / 15.0)
        .collect();
    let dmin = f16_at_least(offsets.iter().fold(0f32, |m, &o| m.max(o)) / 63.0);
    let d = f16_at_least(steps.iter().fold(0f32, |m, &s| m.max(s)) / 63.0);
    let (d32, dmin32) = (d.to_f32(), dmin.to_f32());
    let (mut scales, mut mins, mut q) = ([0u8; 8], [0u8; 8], [0u8; QK_K]);
    for (sub, (x, q)) in x.chunks_exact(32).zip(q.chunks_exact_mut(32)).enumerate() {
        let mut best = (f32::INFINITY, 0, 0, [0u8; 32]);
        for sc in floor_ceil(steps[sub], d32, 63) {
            for m in floor_ceil(offsets[sub], dmin32, 63) {
                let mut levels = [0u8; 32];
                let sse = fit_levels(x, d32 * sc as f32, dmin32 * m as f32, 15, &mut levels);
                if sse < best.0 {
                    best = (sse, sc, m, levels);
                }
            }
        }
        (scales[sub], mins[sub]) = (best.1, best.2);
        q.copy_from_slice(&best.3);
    }
    let mut b = BlockQ4K::zeroed();
    b.d = d;
    b.dmin = dmin;
    b.scales = pack_q4k_scales(&scales, &mins);
    b.qs = pack_q4k_values(&q);
    b
}

/// Packs eight 6-bit scales and mins exactly as [`scalar::q4k_scale_min`] unpacks them:
/// sub-blocks 0..4 take the low 6 bits of bytes 0..8, sub-blocks 4..8 keep their low
/// nibbles in bytes 8..12 and their top 2 bits in the spare bits of bytes 0..8.
pub fn pack_q4k_scales(scales: &[u8; 8], mins: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..4 {
        let (sc_hi, m_hi) = (scales[j + 4], mins[j + 4]);
        s[j] = scales[j] | ((sc_hi >> 4) << 6);
        s[j + 4] = mins[j] | ((m_hi >> 4) << 6);
        s[j + 8] = (sc_hi & 0xF) | ((m_hi & 0xF) << 4);
    }
    s
}

/// Packs 256 4-bit values: in each chunk of 64, byte `l` holds element `l` in its low
/// nibble and element `32 + l` in its high nibble.
fn pack_q4k_values(q: &[u8; QK_K]) -> [u8; QK_K / 2] {
    let mut qs = [0u8; QK_K / 2];
    for chunk in 0..QK_K / 64 {
        for l in 0..32 {
            qs[32 * chunk + l] = q[64 * chunk + l] | (q[64 * chunk + 32 + l] << 4);
        }
    }
    qs
}

/// Quantizes weights to Q6_K: each group of 16 ideally gets a step of absmax / 31 (values
/// in -31..=31); `d` is the largest step over 127, and each group takes whichever of the
/// floor and ceiling of its int8 scale gives the least squared error (values in -32..=31).
pub fn quantize_q6k(xs: &[f32]) -> Vec<BlockQ6K> {
    xs.chunks_exact(QK_K).map(quantize_block_q6k).collect()
}

fn quantize_block_q6k(x: &[f32]) -> BlockQ6K {
    let steps: Vec<f32> = x
        .chunks_exact(16)
        .map(|g| g.iter().fold(0f32, |m, v| m.max(v.abs())) / 31.0)
        .collect();
    let d = f16_at_least(steps.iter().fold(0f32, |m, &s| m.max(s)) / 127.0);
    let mut b = BlockQ6K::zeroed();
    b.d = d;
    let mut q = [0u8; QK_K];
    for (g, (x, q)) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)).enumerate() {
        let mut best = (f32::INFINITY, 0, [0u8; 16]);
        for sc in floor_ceil(steps[g], d.to_f32(), 127) {
            let step = d.to_f32() * sc as f32;
            let mut levels = [0u8; 16];
            // Stored as q + 32: the level of value 0 is 32 steps above the bottom.
            let sse = fit_levels(x, step, 32.0 * step, 63, &mut levels);
            if sse < best.0 {
                best = (sse, sc, levels);
            }
        }
        b.scales[g] = best.1 as i8;
        q.copy_from_slice(&best.2);
    }
    pack_q6k_values(&q, &mut b);
    b
}

/// Packs 256 unsigned 6-bit values (q + 32) as the Q6_K dequantizer reads them: per half
/// of 128, `ql` holds low nibbles of elements l / l+64 and l+32 / l+96, and `qh` the top
/// 2 bits of elements l, l+32, l+64, l+96 in bit pairs 0, 2, 4, 6.
fn pack_q6k_values(q: &[u8; QK_K], b: &mut BlockQ6K) {
    for half in 0..2 {
        let q = &q[128 * half..128 * (half + 1)];
        let (ql, qh) = (&mut b.ql[64 * half..], &mut b.qh[32 * half..]);
        for l in 0..32 {
            let (v0, v1, v2, v3) = (q[l], q[l + 32], q[l + 64], q[l + 96]);
            ql[l] = (v0 & 0xF) | ((v2 & 0xF) << 4);
            ql[l + 32] = (v1 & 0xF) | ((v3 & 0xF) << 4);
            qh[l] = (v0 >> 4) | ((v1 >> 4) << 2) | ((v2 >> 4) << 4) | ((v3 >> 4) << 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::error::KernelError;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = SmallRng::seed_from_u64(seed);
        // Mixed magnitudes per sub-block, and some all-positive stretches, so that the
        // scales and mins differ between sub-blocks.
        (0..n)
            .map(|i| {
                let amp = 0.01 + (i / 32 % 7) as f32 * 0.3;
                let shift = if i / 64 % 3 == 0 { amp } else { 0.0 };
                rng.random_range(-amp..amp) + shift
            })
            .collect()
    }

    fn round_trip(dtype: DType, xs: &[f32]) -> Vec<f32> {
        let bytes = quantize(dtype, xs).unwrap();
        let mut out = vec![f32::NAN; xs.len()];
        scalar::dequantize_bytes(dtype, &bytes, &mut out);
        out
    }

    fn absmax(xs: &[f32]) -> f32 {
        xs.iter().fold(0f32, |m, v| m.max(v.abs()))
    }

    /// Q4_K bound, per sub-block of 32 with range R = max(hi, 0) - min(lo, 0) in a block of
    /// absmax A. The ideal step is s = R / 15 and offset o = max(-lo, 0); the 6-bit scale
    /// and min are a floor or ceiling, off by less than one unit d <= (2A / 15) / 63 and
    /// dmin <= A / 63. Inside the range, rounding errs by at most half a step, (s + d) / 2;
    /// a value clamped at the top errs by less than 15 d + dmin, at the bottom by less than
    /// dmin. So the error is below R / 30 + 15.5 d + dmin <= R / 30 + A / 20.
    fn q4k_bound(sub: &[f32], block_absmax: f32) -> f32 {
        let (lo, hi) = min_max(sub);
        let range = hi.max(0.0) - lo.min(0.0);
        range / 30.0 + block_absmax / 20.0 + 1e-6 * block_absmax
    }

    /// Q6_K bound, per group of 16 with absmax a in a block of absmax A: the ideal step is
    /// s = a / 31 and the int8 scale is off by less than d = A / 31 / 127. Rounding errs by
    /// (s + d) / 2 and clamping an end value by less than 31 d: below a / 62 + A / 120.
    fn q6k_bound(group: &[f32], block_absmax: f32) -> f32 {
        absmax(group) / 62.0 + block_absmax / 120.0 + 1e-6 * block_absmax
    }

    /// Mean and root-mean-square of the round-trip error.
    fn error_stats(dtype: DType, xs: &[f32]) -> (f32, f32) {
        let ys = round_trip(dtype, xs);
        let n = xs.len() as f32;
        let mean = xs.iter().zip(&ys).map(|(x, y)| y - x).sum::<f32>() / n;
        let rms = (xs.iter().zip(&ys).map(|(x, y)| (y - x) * (y - x)).sum::<f32>() / n).sqrt();
        (mean, rms)
    }

    /// Bell-shaped weights (a sum of three uniforms) with one outlier sub-block of six
    /// times the spread per 256, as trained matrices have, on a 16-level grid per 32 from
    /// each block's min to its max: what a Q4_1 file dequantizes to.
    fn q4_1_grid(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let xs: Vec<f32> = (0..n)
            .map(|i| {
                let spread = if i % QK_K < 32 { 0.6 } else { 0.1 };
                (0..3).map(|_| rng.random_range(-spread..spread)).sum()
            })
            .collect();
        round_trip(DType::Q4_1, &xs)
    }

    /// The rms error of rounding uniformly spread values to the ideal step of each group
    /// (`step(group)`): step / sqrt(12).
    fn ideal_rms(xs: &[f32], group: usize, step: StepFn) -> f32 {
        let groups = xs.chunks(group).map(|g| step(g).powi(2) / 12.0);
        (groups.sum::<f32>() / (xs.len() / group) as f32).sqrt()
    }

    /// The ideal step of a group of weights.
    type StepFn = fn(&[f32]) -> f32;

    fn q4k_step(sub: &[f32]) -> f32 {
        let (lo, hi) = min_max(sub);
        (hi.max(0.0) - lo.min(0.0)) / 15.0
    }

    fn q6k_step(group: &[f32]) -> f32 {
        absmax(group) / 31.0
    }

    #[test]
    fn rms_error_is_near_ideal_rounding_and_unbiased() {
        let checks: [(DType, usize, StepFn); 2] = [(DType::Q4K, 32, q4k_step), (DType::Q6K, 16, q6k_step)];
        for (dtype, group, step) in checks {
            let xs = random(64 * QK_K, 3);
            let (mean, rms) = error_stats(dtype, &xs);
            // Uniform rounding to the ideal step, with some room for the quantized scales
            // (the search over two scales does a little better than that on this data).
            let ideal = ideal_rms(&xs, group, step);
            assert!(rms < 1.1 * ideal, "{dtype}: rms error {rms}, ideal {ideal}");
            // The mean of 16k errors of that rms is ~rms / 128 when unbiased.
            assert!(mean.abs() < rms / 10.0, "{dtype}: mean error {mean}, rms {rms}");
            // Weights already on a 16-level grid (a Q4_1 file being requantized) alias with
            // the new grid: rounding every scale up (an earlier version) stretched the
            // grids alike and biased SmolLM2's ffn_down by a third of the error's rms,
            // enough to derail generation; picking the better neighbour leaves no bias.
            let grid = q4_1_grid(64 * QK_K, 3);
            let (mean, rms) = error_stats(dtype, &grid);
            let ideal = ideal_rms(&grid, group, step);
            assert!(rms < 1.1 * ideal, "{dtype} on a grid: rms error {rms}, ideal {ideal}");
            assert!(
                mean.abs() < rms / 10.0,
                "{dtype} on a grid: mean error {mean}, rms {rms}"
            );
        }
    }

    fn check(dtype: DType, xs: &[f32], group: usize, bound: fn(&[f32], f32) -> f32) {
        let ys = round_trip(dtype, xs);
        for (b, (x, y)) in xs.chunks(QK_K).zip(ys.chunks(QK_K)).enumerate() {
            let a = absmax(x);
            for (g, (x, y)) in x.chunks(group).zip(y.chunks(group)).enumerate() {
                let limit = bound(x, a);
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    assert!(
                        (u - v).abs() <= limit,
                        "{dtype} block {b} group {g} element {i}: {u} -> {v}, bound {limit}"
                    );
                }
            }
        }
    }

    #[test]
    fn q4k_round_trip_is_within_its_bound() {
        for seed in 0..4 {
            check(DType::Q4K, &random(8 * QK_K, seed), 32, q4k_bound);
        }
    }

    #[test]
    fn q6k_round_trip_is_within_its_bound() {
        for seed in 0..4 {
            check(DType::Q6K, &random(8 * QK_K, seed), 16, q6k_bound);
        }
    }

    #[test]
    fn constant_and_zero_blocks_round_trip_without_nan() {
        let mut xs = vec![0f32; QK_K];
        xs.extend(vec![0.75f32; QK_K]);
        xs.extend(vec![-2.5f32; QK_K]);
        // One sub-block of zeros inside an otherwise non-zero block.
        xs.extend((0..QK_K).map(|i| if i < 32 { 0.0 } else { 1e-3 * i as f32 }));
        check(DType::Q4K, &xs, 32, q4k_bound);
        check(DType::Q6K, &xs, 16, q6k_bound);
        for dtype in [DType::Q4K, DType::Q6K] {
            let ys = round_trip(dtype, &xs);
            assert!(ys.iter().all(|v| v.is_finite()), "{dtype}");
            assert!(ys[..QK_K].iter().all(|&v| v == 0.0), "{dtype}: zeros stay zero");
        }
    }

    #[test]
    fn scale_packing_inverts_the_dequantizer() {
        let scales = [0, 1, 17, 63, 32, 48, 5, 60];
        let mins = [63, 0, 31, 2, 47, 16, 59, 1];
        let packed = pack_q4k_scales(&scales, &mins);
        for j in 0..8 {
            assert_eq!(scalar::q4k_scale_min(j, &packed), (scales[j], mins[j]), "sub-block {j}");
        }
    }

    #[test]
    fn every_format_writes_the_gguf_byte_count() {
        let xs = random(2 * QK_K, 9);
        for dtype in DType::ALL {
            let bytes = quantize(dtype, &xs).unwrap();
            assert_eq!(bytes.len(), dtype.bytes_for(xs.len()).unwrap(), "{dtype}");
            let ys = round_trip(dtype, &xs);
            let worst = xs.iter().zip(&ys).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // The coarsest, Q4_0, errs by at most absmax / 16 on one side of zero and
            // absmax / 8 where +8 steps are clamped to +7; the data keep that under 0.23.
            assert!(worst < 0.25, "{dtype}: worst error {worst}");
        }
        assert_eq!(quantize(DType::F32, &xs).unwrap(), bytemuck::cast_slice::<f32, u8>(&xs));
    }

    #[test]
    fn partial_blocks_are_a_typed_error() {
        for dtype in [DType::Q4_0, DType::Q8_0, DType::Q4K, DType::Q6K] {
            let err = quantize(dtype, &[1.0; 48]).unwrap_err();
            assert!(
                matches!(err, KernelError::BlockAlignment { cols: 48, .. }),
                "{dtype}: {err:?}"
            );
        }
        assert!(quantize(DType::F16, &[1.0; 3]).is_ok());
    }
}
