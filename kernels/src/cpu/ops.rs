//! Row-wise CPU ops: norms, rotary embedding, activations, broadcasting elementwise ops, and
//! the f32 dot product the attention kernel is built on.

use crate::backend::{Activation, BinaryOp, RopeParams, RopeStyle};
use crate::ledger::Cost;

/// Cost of an op that reads and writes a `[rows, cols]` f32 matrix once, with
/// `ops_per_elem` floating-point operations per element.
pub fn row_op_cost(rows: usize, cols: usize, ops_per_elem: u64) -> Cost {
    let elems = (rows * cols) as u64;
    Cost {
        float_ops: ops_per_elem * elems,
        bytes_read: 4 * elems,
        bytes_written: 4 * elems,
        ..Cost::default()
    }
}

pub fn rms_norm(xs: &[f32], gamma: &[f32], eps: f32) -> Vec<f32> {
    let cols = gamma.len();
    let mut out = vec![0f32; xs.len()];
    for (x, o) in xs.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let mean_sq = dot(x, x) / cols as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(x).zip(gamma) {
            *o = v * inv * g;
        }
    }
    out
}

pub fn layer_norm(xs: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let cols = gamma.len();
    let mut out = vec![0f32; xs.len()];
    for (x, o) in xs.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let mean = x.iter().sum::<f32>() / cols as f32;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in o.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = (v - mean) * inv * g + b;
        }
    }
    out
}

/// Rotates feature pairs of each head by `position * theta^(-2i / head_dim)`.
pub fn rope(xs: &[f32], cols: usize, p: RopeParams) -> Vec<f32> {
    let half = p.head_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| (p.theta as f64).powf(-((2 * i) as f64) / p.head_dim as f64))
        .collect();
    let mut out = xs.to_vec();
    let mut cos_sin = vec![(0f32, 0f32); half];
    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
        let pos = (p.start_pos + r) as f64;
        for (cs, &f) in cos_sin.iter_mut().zip(&inv_freq) {
            let angle = pos * f;
            *cs = (angle.cos() as f32, angle.sin() as f32);
        }
        for head in row.chunks_exact_mut(p.head_dim) {
            for (i, &(cos, sin)) in cos_sin.iter().enumerate() {
                let (a, b) = match p.style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::HalfSplit => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x1 * cos + x0 * sin;
            }
        }
    }
    out
}

pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::GeluTanh => {
            const SQRT_2_OVER_PI: f32 = 0.797_884_6;
            0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
        }
    }
}

/// `a op b` where `b` is either `a`'s shape or one row of `cols`, broadcast.
pub fn binary(a: &[f32], b: &[f32], cols: usize, op: BinaryOp) -> Vec<f32> {
    let apply = |x: f32, y: f32| match op {
        BinaryOp::Add => x + y,
        BinaryOp::Mul => x * y,
    };
    if b.len() == a.len() {
        a.iter().zip(b).map(|(&x, &y)| apply(x, y)).collect()
    } else {
        a.chunks_exact(cols)
            .flat_map(|row| row.iter().zip(b).map(|(&x, &y)| apply(x, y)))
            .collect()
    }
}

/// `sum(a * b)` over the shorter of the two, with eight independent accumulators so that
/// the compiler vectorizes it (and fuses multiply-adds where the CPU has FMA).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected just above.
        return unsafe { dot_fma(a, b) };
    }
    dot_lanes(a, b, |x, y, acc| x * y + acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b, f32::mul_add)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], fma: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] = fma(x[i], y[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_matches_the_plain_sum_on_odd_lengths() {
        for len in [0, 1, 7, 8, 9, 64, 77] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((super::dot(&a, &b) - plain).abs() < 1e-5, "length {len}");
        }
    }
}
