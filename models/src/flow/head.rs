//! The flow-matching head that lerobot's VLAs (SmolVLA, pi0) put around their action expert,
//! with the same tensor names: the noisy chunk through `action_in_proj`, joined with the
//! sinusoidal embedding of the time step by `action_time_mlp_in` and `_out` (a SiLU MLP), and
//! the expert's output through `action_out_proj` to a velocity. Also the width an expert runs
//! at when quantized (zero-padded to the block size when the block does not divide it, with
//! each RMSNorm corrected to normalize over the true width).

use brainstem_kernels::{Activation, Backend, BinaryOp, HostWeight};

use crate::error::Result;
use crate::idefics3::Linear;
use crate::llama::Loader;

/// An expert's width as stored and as run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Widths {
    pub width: usize,
    pub padded: usize,
}

impl Widths {
    /// The width the expert runs at: padded to the block of the format it is quantized to
    /// when the block does not divide it.
    pub fn new(width: usize, options: &crate::llama::LoadOptions) -> Self {
        let padded = match options.quantize {
            Some(dtype) => width.div_ceil(dtype.block_elems()) * dtype.block_elems(),
            None => width,
        };
        Self { width, padded }
    }

    pub fn both(self) -> [usize; 2] {
        [self.width, self.padded]
    }

    /// What each RMSNorm's scale is multiplied by.
    pub fn norm_scale(self) -> f32 {
        (self.width as f64 / self.padded as f64).sqrt() as f32
    }

    /// Each RMSNorm's epsilon at the padded width.
    pub fn eps(self, eps: f32) -> f32 {
        (eps as f64 * self.width as f64 / self.padded as f64) as f32
    }
}

/// The `[outputs, inputs]` linear layer `name` (weight and bias), zero-padded to `to`.
pub(crate) fn linear<B: Backend>(l: &Loader<B>, name: &str, shape: [usize; 2], to: [usize; 2]) -> Result<Linear<B>> {
    Ok(Linear {
        weight: l.matrix_to(&format!("{name}.weight"), shape, to)?,
        bias: l.vector_to(&format!("{name}.bias"), shape[0], to[0], 1.0)?,
    })
}

/// `action_time_mlp_in` split by its inputs: the action embedding's columns and the time
/// embedding's (whose product is one row per step, shared by the whole chunk).
struct TimeMlpIn<B: Backend> {
    action: B::Weight,
    time: B::Weight,
    bias: B::Tensor,
}

impl<B: Backend> TimeMlpIn<B> {
    fn load(l: &Loader<B>, widths: Widths) -> Result<Self> {
        let (width, padded) = (widths.width, widths.padded);
        let name = "model.action_time_mlp_in";
        let host = l
            .file
            .tensor_with_shape(&format!("{name}.weight"), &[width, 2 * width])?
            .to_f32()?;
        let half = |start: usize| -> Vec<f32> {
            let mut out = vec![0f32; padded * padded];
            for (row, out) in host.chunks_exact(2 * width).zip(out.chunks_exact_mut(padded)) {
                out[..width].copy_from_slice(&row[start..start + width]);
            }
            out
        };
        let upload = |values: Vec<f32>| -> Result<B::Weight> {
            let weight = HostWeight::from_f32(&values, vec![padded, padded]);
            Ok(l.backend.upload_weight(&l.options.prepare(weight)?)?)
        };
        Ok(Self {
            action: upload(half(0))?,
            time: upload(half(width))?,
            bias: l.vector_to(&format!("{name}.bias"), width, padded, 1.0)?,
        })
    }
}

/// The head: what turns a noisy chunk and a time into the expert's input rows, and the
/// expert's output rows into a velocity.
pub(crate) struct FlowHead<B: Backend> {
    action_in: Linear<B>,
    time_in: TimeMlpIn<B>,
    time_out: Linear<B>,
    action_out: Linear<B>,
    widths: Widths,
    chunk: usize,
    max_action_dim: usize,
    periods: (f64, f64),
}

impl<B: Backend> FlowHead<B> {
    /// The head of an expert `widths` wide, for chunks of `chunk` steps of `max_action_dim`
    /// values, with the time embedding's `(min_period, max_period)`.
    pub fn load(
        l: &Loader<B>,
        widths: Widths,
        chunk: usize,
        max_action_dim: usize,
        periods: (f64, f64),
    ) -> Result<Self> {
        let (w, p, a) = (widths.width, widths.padded, max_action_dim);
        Ok(Self {
            action_in: linear(l, "model.action_in_proj", [w, a], [p, a])?,
            time_in: TimeMlpIn::load(l, widths)?,
            time_out: linear(l, "model.action_time_mlp_out", [w, w], [p, p])?,
            action_out: linear(l, "model.action_out_proj", [a, w], [a, p])?,
            widths,
            chunk,
            max_action_dim,
            periods,
        })
    }

    /// The noisy chunk `x_t` (`[chunk, max_action_dim]`) at time `time` as the expert's input
    /// rows `[chunk, padded width]`.
    pub fn embed(&self, b: &B, x_t: &[f32], time: f32) -> Result<B::Tensor> {
        let actions = b.upload(x_t, self.chunk, self.max_action_dim)?;
        let actions = self.action_in.forward(b, &actions)?;
        let (min_period, max_period) = self.periods;
        let mut time = time_embedding(time, self.widths.width, min_period, max_period);
        time.resize(self.widths.padded, 0.0);
        let time = b.matmul(&b.upload(&time, 1, self.widths.padded)?, &self.time_in.time)?;
        let time = b.binary(&time, &self.time_in.bias, BinaryOp::Add)?;
        let joined = b.binary(&b.matmul(&actions, &self.time_in.action)?, &time, BinaryOp::Add)?;
        let joined = b.activation(&joined, Activation::Silu)?;
        self.time_out.forward(b, &joined)
    }

    /// The expert's normed output rows to the velocity `[chunk, max_action_dim]` on the host.
    pub fn velocity(&self, b: &B, hidden: &B::Tensor) -> Result<Vec<f32>> {
        Ok(b.read(&self.action_out.forward(b, hidden)?)?)
    }
}

/// openpi's sine-cosine embedding of a time step in [0, 1], computed in f64 as lerobot does
/// on the CPU: periods spaced geometrically from `min_period` to `max_period`, the sines then
/// the cosines.
pub fn time_embedding(time: f32, width: usize, min_period: f64, max_period: f64) -> Vec<f32> {
    let half = width / 2;
    let step = if half > 1 { 1.0 / (half - 1) as f64 } else { 0.0 };
    let angles: Vec<f64> = (0..half)
        .map(|i| {
            let fraction = linspace_point(i, half, step);
            let period = min_period * (max_period / min_period).powf(fraction);
            1.0 / period * 2.0 * std::f64::consts::PI * f64::from(time)
        })
        .collect();
    let sines = angles.iter().map(|a| a.sin() as f32);
    let cosines = angles.iter().map(|a| a.cos() as f32);
    sines.chain(cosines).collect()
}

/// Point `i` of `torch.linspace(0, 1, n)`: counted from the start in the first half and from
/// the end in the second, as PyTorch computes it.
fn linspace_point(i: usize, n: usize, step: f64) -> f64 {
    if i < n / 2 {
        step * i as f64
    } else {
        1.0 - step * (n - 1 - i) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainstem_kernels::CpuBackend;

    /// An RMSNorm over the padded width, with the corrected scale and epsilon, gives the
    /// unpadded norm's values (and zeros in the padding).
    #[test]
    fn a_padded_rms_norm_normalizes_over_the_true_width() {
        let b = CpuBackend::new(1).unwrap();
        let widths = Widths { width: 45, padded: 64 };
        let x: Vec<f32> = (0..2 * 45).map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5).collect();
        let gamma: Vec<f32> = (0..45).map(|i| 0.5 + i as f32 / 45.0).collect();
        let eps = 1e-2;
        let plain = b
            .read(
                &b.rms_norm(&b.upload(&x, 2, 45).unwrap(), &b.upload(&gamma, 1, 45).unwrap(), eps)
                    .unwrap(),
            )
            .unwrap();
        let pad = |v: &[f32], rows: usize, scale: f32| -> Vec<f32> {
            v.chunks(45)
                .take(rows)
                .flat_map(|row| row.iter().map(|g| g * scale).chain(std::iter::repeat_n(0.0, 19)))
                .collect()
        };
        let (xp, gp) = (pad(&x, 2, 1.0), pad(&gamma, 1, widths.norm_scale()));
        let padded = b
            .read(
                &b.rms_norm(
                    &b.upload(&xp, 2, 64).unwrap(),
                    &b.upload(&gp, 1, 64).unwrap(),
                    widths.eps(eps),
                )
                .unwrap(),
            )
            .unwrap();
        for (row, (ours, theirs)) in padded.chunks(64).zip(plain.chunks(45)).enumerate() {
            for (a, b) in ours[..45].iter().zip(theirs) {
                assert!((a - b).abs() < 1e-5, "row {row}: {a} vs {b}");
            }
            assert!(ours[45..].iter().all(|&v| v == 0.0));
        }
    }
}
