//! Row-wise CPU ops: norms, rotary embedding, activations, broadcasting elementwise ops, and
//! the f32 dot product the attention kernel is built on.

use rayon::prelude::*;

use crate::backend::{Activation, BinaryOp, RopeParams, RopeStyle};
#[cfg(target_arch = "x86_64")]
use crate::family::{self, Feature};

/// Rows handed to one rayon task by the row-wise ops.
const ROWS_PER_TASK: usize = 16;

/// `f(input row, output row)` for every row, in parallel on the current rayon pool.
fn map_rows(xs: &[f32], cols: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; xs.len()];
    xs.par_chunks(cols * ROWS_PER_TASK)
        .zip(out.par_chunks_mut(cols * ROWS_PER_TASK))
        .for_each(|(x, o)| {
            for (x, o) in x.chunks_exact(cols).zip(o.chunks_exact_mut(cols)) {
                f(x, o);
            }
        });
    out
}

pub fn rms_norm(xs: &[f32], gamma: &[f32], eps: f32) -> Vec<f32> {
    let cols = gamma.len();
    map_rows(xs, cols, |x, o| {
        let mean_sq = dot(x, x) / cols as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(x).zip(gamma) {
            *o = v * inv * g;
        }
    })
}

pub fn layer_norm(xs: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let cols = gamma.len();
    map_rows(xs, cols, |x, o| {
        let mean = lane_sum(x, |v| v) / cols as f32;
        let var = lane_sum(x, |v| (v - mean) * (v - mean)) / cols as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in o.iter_mut().zip(x).zip(gamma).zip(beta) {
            *o = (v - mean) * inv * g + b;
        }
    })
}

/// `sum(f(x))` in [`LANES`] partial sums, so that the loop vectorizes (a plain `sum` of f32
/// must add in order).
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f(x);
        }
    }
    lanes.iter().sum::<f32>() + tail
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
        Activation::Silu => x / (1.0 + exp_fast(-x)),
        Activation::GeluTanh => {
            const SQRT_2_OVER_PI: f32 = 0.797_884_6;
            0.5 * x * (1.0 + tanh_fast(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
        }
    }
}

/// `e^x` to about `2e-7 + 7e-8 |x|` relative error, branch-free so that loops over slices vectorize:
/// `x log2(e)` split into an integer `n` (rounded with the 1.5 * 2^23 trick) and `f` in
/// [-0.5, 0.5]; `2^f` by its degree-6 Taylor polynomial; `2^n` written into the exponent bits.
/// Inputs below -87 give (nearly) zero, above 88 saturate.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    const LN2: f32 = std::f32::consts::LN_2;
    let t = x.clamp(-87.0, 88.0) * std::f32::consts::LOG2_E;
    let rounded = t + ROUND;
    let n = rounded - ROUND;
    let f = (t - n) * LN2;
    let p = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // `rounded`'s low mantissa bits hold n (two's complement), so shifting `bits + 127` left by
    // 23 writes 2^n's exponent without a float-to-int conversion, which does not vectorize as
    // cheaply.
    p * f32::from_bits(rounded.to_bits().wrapping_add(127) << 23)
}

/// Defines `$name` to run the `#[inline(always)]` loop `$lanes` compiled for AVX-512 F and BW,
/// or for AVX2 and FMA, as far as the kernel family allows, and as it is elsewhere: plain
/// loops in [`LANES`] lanes that the compiler vectorizes for whatever it is compiled for.
macro_rules! vectorized {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $lanes:ident;) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $lanes($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $lanes($($arg),*)
                }
                if family::has(Feature::Avx512) && family::has(Feature::Avx2) {
                    // SAFETY: the CPU has AVX-512 F and BW, and FMA (`family::has` checks it).
                    return unsafe { avx512($($arg),*) };
                }
                if family::has(Feature::Avx2) {
                    // SAFETY: the CPU has AVX2 and FMA (`family::has` checks it).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $lanes($($arg),*)
        }
    };
}

vectorized! {
    /// Applies `act` to every element (the activations are branch-free, so the loop vectorizes).
    pub fn activate_slice(xs: &mut [f32], act: Activation) = activate_slice_lanes;
}

vectorized! {
    fn gate_slice(xs: &mut [f32], up: &[f32], act: Activation) = gate_slice_lanes;
}

vectorized! {
    /// `xs[i] = e^(scale xs[i] - shift)` for every element, returning their sum.
    pub fn exp_sum(xs: &mut [f32], scale: f32, shift: f32) -> f32 = exp_sum_lanes;
}

vectorized! {
    /// The largest element (negative infinity for none); NaNs are skipped.
    pub fn max_value(xs: &[f32]) -> f32 = max_value_lanes;
}

#[inline(always)]
fn activate_slice_lanes(xs: &mut [f32], act: Activation) {
    match act {
        Activation::Silu => xs.iter_mut().for_each(|x| *x = activate(*x, Activation::Silu)),
        Activation::GeluTanh => xs.iter_mut().for_each(|x| *x = activate(*x, Activation::GeluTanh)),
    }
}

/// `act(gate) * up` elementwise (a gated MLP's hidden layer), vectorized like
/// [`activate_slice`].
pub fn gated(gate: &[f32], up: &[f32], act: Activation) -> Vec<f32> {
    let mut out = gate.to_vec();
    out.par_chunks_mut(4096)
        .zip(up.par_chunks(4096))
        .for_each(|(xs, up)| gate_slice(xs, up, act));
    out
}

#[inline(always)]
fn gate_slice_lanes(xs: &mut [f32], up: &[f32], act: Activation) {
    match act {
        Activation::Silu => xs
            .iter_mut()
            .zip(up)
            .for_each(|(x, &u)| *x = activate(*x, Activation::Silu) * u),
        Activation::GeluTanh => xs
            .iter_mut()
            .zip(up)
            .for_each(|(x, &u)| *x = activate(*x, Activation::GeluTanh) * u),
    }
}

/// Lanes of the partial sums and maxima: one 512-bit register.
const LANES: usize = 16;

#[inline(always)]
fn exp_sum_lanes(xs: &mut [f32], scale: f32, shift: f32) -> f32 {
    xs.iter_mut().for_each(|x| *x = exp_fast(*x * scale - shift));
    lane_sum(xs, |x| x)
}

#[inline(always)]
fn max_value_lanes(xs: &[f32]) -> f32 {
    let larger = |m: f32, x: f32| if x > m { x } else { m };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| larger(m, x));
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = larger(*lane, x);
        }
    }
    lanes.iter().fold(tail, |m, &x| larger(m, x))
}

/// `tanh(x) = 1 - 2 / (e^{2x} + 1)` on [`exp_fast`].
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * x) + 1.0)
}

/// `a op b` where `b` is either `a`'s shape or one row of `cols`, broadcast.
pub fn binary(a: &[f32], b: &[f32], cols: usize, op: BinaryOp) -> Vec<f32> {
    let apply = |x: f32, y: f32| match op {
        BinaryOp::Add => x + y,
        BinaryOp::Mul => x * y,
    };
    if b.len() == a.len() {
        let mut out = a.to_vec();
        out.par_chunks_mut(cols * ROWS_PER_TASK)
            .zip(b.par_chunks(cols * ROWS_PER_TASK))
            .for_each(|(o, b)| o.iter_mut().zip(b).for_each(|(x, &y)| *x = apply(*x, y)));
        out
    } else {
        map_rows(a, cols, |row, o| {
            for ((o, &x), &y) in o.iter_mut().zip(row).zip(b) {
                *o = apply(x, y);
            }
        })
    }
}

/// `sum(a * b)` over the shorter of the two, with eight independent accumulators so that
/// the compiler vectorizes it (and fuses multiply-adds where the CPU has FMA).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if family::has(Feature::Avx2) {
        // SAFETY: the CPU has AVX2 and FMA (`family::has` checks it).
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
    fn fast_exp_and_tanh_match_libm() {
        for i in -1990..=2000 {
            let x = i as f32 * 0.0437;
            let (fast, exact) = (super::exp_fast(x), x.exp());
            // Rounding x log2(e) to f32 costs up to half an ulp of it: the relative error grows
            // with |x| (to about 6e-6 at -87, where softmax weights are negligible anyway).
            let tolerance = 2e-7 + 7e-8 * x.abs();
            assert!((fast - exact).abs() <= tolerance * exact, "exp({x}): {fast} vs {exact}");
            let (fast, exact) = (super::tanh_fast(x), x.tanh());
            assert!((fast - exact).abs() <= 1e-6, "tanh({x}): {fast} vs {exact}");
        }
        assert_eq!(super::exp_fast(-1000.0), super::exp_fast(-87.0));
        assert!(super::exp_fast(-87.0) < 2e-38);
    }

    /// The vectorized reductions (AVX-512, AVX2 or plain, as the family allows) against
    /// plain loops, on lengths around the lane count.
    #[test]
    fn max_and_exp_sum_match_plain_loops_on_odd_lengths() {
        for len in [0, 1, 7, 15, 16, 17, 33, 1024, 1031] {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.73).sin() * 9.0).collect();
            let plain_max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(super::max_value(&xs), plain_max, "length {len}");
            let (scale, shift) = (0.125, plain_max * 0.125);
            let mut fast = xs.clone();
            let sum = super::exp_sum(&mut fast, scale, shift);
            let exact: Vec<f32> = xs.iter().map(|x| (x * scale - shift).exp()).collect();
            for (f, e) in fast.iter().zip(&exact) {
                assert!((f - e).abs() <= 1e-6 * e.max(1.0), "length {len}: {f} vs {e}");
            }
            assert!(
                (sum - exact.iter().sum::<f32>()).abs() <= 1e-5 * len.max(1) as f32,
                "length {len}"
            );
        }
        assert_eq!(super::max_value(&[f32::NAN, 2.0, -1.0]), 2.0);
    }

    /// The gated activations (vectorized as the family allows) against their definitions
    /// with the C library's `exp` and `tanh`.
    #[test]
    fn gated_activations_match_their_definitions() {
        use crate::backend::Activation;
        let gate: Vec<f32> = (0..5000).map(|i| (i as f32 - 2500.0) * 0.013).collect();
        let up: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.37).cos()).collect();
        let silu = super::gated(&gate, &up, Activation::Silu);
        let gelu = super::gated(&gate, &up, Activation::GeluTanh);
        for (i, (&g, &u)) in gate.iter().zip(&up).enumerate() {
            let exact_silu = g / (1.0 + (-g).exp()) * u;
            let inner = 0.797_884_6 * (g + 0.044_715 * g * g * g);
            let exact_gelu = 0.5 * g * (1.0 + inner.tanh()) * u;
            assert!(
                (silu[i] - exact_silu).abs() <= 1e-5 * exact_silu.abs().max(1.0),
                "silu({g})"
            );
            assert!(
                (gelu[i] - exact_gelu).abs() <= 1e-5 * exact_gelu.abs().max(1.0),
                "gelu({g})"
            );
        }
    }

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
