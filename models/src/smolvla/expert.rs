//! SmolVLA's action expert: a narrower Llama-style decoder whose layers run beside the
//! backbone's text layers, and the flow-matching head around it. Each denoising step embeds
//! the noisy chunk with the time step (a sinusoidal embedding through a SiLU MLP), runs the
//! expert's layers, which self-attend over the prefix's cached keys and values and the chunk's
//! own, or cross-attend to the prefix's keys and values projected by the layer's own `k_proj`
//! and `v_proj`, and projects the result to a velocity.
//!
//! SmolVLA's expert is 0.75 of the backbone's width (720 for SmolVLM2-500M), which the block
//! formats' 32- and 256-wide blocks do not divide. Quantized, the expert therefore runs at a
//! padded width: every matrix gains zero rows and columns there, so the padded features stay
//! zero through projections, residuals and SiLU, and each RMSNorm, which would average over
//! the padded width, has its epsilon and scale corrected (`eps * w / p`, `gamma * sqrt(w / p)`
//! for width `w` padded to `p`) so that it normalizes as over the true width.

use brainstem_kernels::{
    Activation, AttentionMask, AttentionParams, Backend, BinaryOp, HostWeight, KvCacheSpec, RopeParams, RopeStyle,
};

use super::config::{AttentionMode, SmolVlaConfig};
use super::prefix::PrefixCache;
use crate::error::{ModelError, Result};
use crate::idefics3::Linear;
use crate::llama::LlamaConfig;
use crate::llama::{Loader, Stacked, Tail};

/// lerobot's rotary embedding base for SmolVLA (`apply_rope`'s `max_wavelength`), whatever
/// the backbone's config says.
pub(super) const ROPE_BASE: f32 = 10_000.0;

/// The expert's shape, derived from the backbone's text config as lerobot derives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpertShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    /// For each backbone layer, the expert layer that runs beside it, if any.
    pub layer_of: Vec<Option<usize>>,
    /// For each backbone layer, whether the expert self-attends there (else cross-attends).
    pub self_attends: Vec<bool>,
    pub layers: usize,
}

/// lerobot's `get_intermediate_size`: two thirds of the width, times four, rounded up to a
/// multiple of 256.
fn intermediate_size(hidden: usize) -> usize {
    let h = 4 * (2 * hidden / 3);
    h.div_ceil(256) * 256
}

impl ExpertShape {
    pub fn new(cfg: &SmolVlaConfig, text: &LlamaConfig, vlm_layers: usize) -> std::result::Result<Self, String> {
        let hidden = (text.hidden_size as f64 * cfg.expert_width_multiplier) as usize;
        let layers = match cfg.num_expert_layers {
            n if n > 0 => n as usize,
            _ => vlm_layers,
        };
        if layers == 0 || !vlm_layers.is_multiple_of(layers) {
            return Err(format!(
                "the expert's {layers} layers must divide the backbone's {vlm_layers}"
            ));
        }
        let multiple = vlm_layers / layers;
        let layer_of = (0..vlm_layers)
            .map(|i| (i == 0 || i % multiple == 0).then_some(i / multiple))
            .collect();
        let every = cfg.self_attn_every_n_layers;
        let self_attends = (0..vlm_layers)
            .map(|i| cfg.attention_mode == AttentionMode::SelfAttention || (every > 0 && i as i64 % every == 0))
            .collect();
        Ok(Self {
            hidden,
            intermediate: intermediate_size(hidden),
            heads: text.num_heads,
            kv_heads: text.num_kv_heads,
            head_dim: text.head_dim,
            eps: text.rms_norm_eps,
            layer_of,
            self_attends,
            layers,
        })
    }

    fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// Names of the expert's tensors.
const EXPERT: &str = "model.vlm_with_expert.lm_expert.";

/// One expert layer: its norms, projections and MLP.
struct ExpertLayer<B: Backend> {
    attn_norm: B::Tensor,
    q: B::Weight,
    /// k and v, of the expert's hidden state (self-attention) or of the backbone's keys and
    /// values (cross-attention).
    kv: Stacked<B>,
    tail: Tail<B>,
}

/// The expert's width as stored and as run.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Widths {
    width: usize,
    padded: usize,
}

impl Widths {
    /// The width the expert runs at: padded to the block of the format it is quantized to
    /// when the block does not divide it.
    fn new(width: usize, options: &crate::llama::LoadOptions) -> Self {
        let padded = match options.quantize {
            Some(dtype) => width.div_ceil(dtype.block_elems()) * dtype.block_elems(),
            None => width,
        };
        Self { width, padded }
    }

    fn both(self) -> [usize; 2] {
        [self.width, self.padded]
    }

    /// What each RMSNorm's scale is multiplied by.
    fn norm_scale(self) -> f32 {
        (self.width as f64 / self.padded as f64).sqrt() as f32
    }

    /// Each RMSNorm's epsilon at the padded width.
    fn eps(self, eps: f32) -> f32 {
        (eps as f64 * self.width as f64 / self.padded as f64) as f32
    }
}

impl<B: Backend> ExpertLayer<B> {
    fn load(
        l: &Loader<B>,
        i: usize,
        shape: &ExpertShape,
        widths: Widths,
        self_attends: bool,
        vlm_kv_dim: usize,
    ) -> Result<Self> {
        let name = |role: &str| format!("{EXPERT}layers.{i}.{role}.weight");
        let kv = [
            (name("self_attn.k_proj"), shape.kv_dim()),
            (name("self_attn.v_proj"), shape.kv_dim()),
        ];
        let (w, p) = (widths.width, widths.padded);
        let kv = match self_attends {
            true => l.stacked_to(&kv, w, p)?,
            false => l.stacked(&kv, vlm_kv_dim)?,
        };
        Ok(Self {
            attn_norm: l.vector_to(&name("input_layernorm"), w, p, widths.norm_scale())?,
            q: l.matrix_to(&name("self_attn.q_proj"), [shape.q_dim(), w], [shape.q_dim(), p])?,
            kv,
            tail: Tail::load_widened(
                l,
                &|role| name(role),
                widths.both(),
                shape.q_dim(),
                shape.intermediate,
                widths.norm_scale(),
            )?,
        })
    }
}

/// The `[outputs, inputs]` linear layer `name` (weight and bias), zero-padded to `to`.
pub(super) fn linear<B: Backend>(l: &Loader<B>, name: &str, shape: [usize; 2], to: [usize; 2]) -> Result<Linear<B>> {
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

/// The action expert and the flow-matching head.
pub(super) struct Expert<B: Backend> {
    shape: ExpertShape,
    layers: Vec<ExpertLayer<B>>,
    norm: B::Tensor,
    action_in: Linear<B>,
    time_in: TimeMlpIn<B>,
    time_out: Linear<B>,
    action_out: Linear<B>,
    widths: Widths,
    chunk: usize,
    max_action_dim: usize,
    min_period: f64,
    max_period: f64,
}

impl<B: Backend> Expert<B> {
    pub(super) fn load(l: &Loader<B>, cfg: &SmolVlaConfig, shape: ExpertShape, vlm_kv_dim: usize) -> Result<Self> {
        let widths = Widths::new(shape.hidden, &l.options);
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            let used_at = shape.layer_of.iter().position(|&e| e == Some(i)).unwrap_or(0);
            let self_attends = shape.self_attends[used_at];
            layers.push(ExpertLayer::load(l, i, &shape, widths, self_attends, vlm_kv_dim)?);
        }
        let (w, p, a) = (widths.width, widths.padded, cfg.max_action_dim);
        Ok(Self {
            norm: l.vector_to(&format!("{EXPERT}norm.weight"), w, p, widths.norm_scale())?,
            action_in: linear(l, "model.action_in_proj", [w, a], [p, a])?,
            time_in: TimeMlpIn::load(l, widths)?,
            time_out: linear(l, "model.action_time_mlp_out", [w, w], [p, p])?,
            action_out: linear(l, "model.action_out_proj", [a, w], [a, p])?,
            widths,
            layers,
            shape,
            chunk: cfg.chunk_size,
            max_action_dim: cfg.max_action_dim,
            min_period: cfg.min_period,
            max_period: cfg.max_period,
        })
    }

    pub(super) fn shape(&self) -> &ExpertShape {
        &self.shape
    }

    /// An empty cache for the keys and values a cross-attending layer reads each step.
    pub(super) fn cross_cache(&self, b: &B, prefix_len: usize) -> Result<B::KvCache> {
        Ok(b.kv_cache(KvCacheSpec {
            kv_heads: self.shape.kv_heads,
            head_dim: self.shape.head_dim,
            max_positions: prefix_len.max(1),
        })?)
    }

    /// The prefix's keys and values as each cross-attending layer sees them (projected by its
    /// own `k_proj` and `v_proj`): the same at every denoising step, so computed once a chunk.
    pub(super) fn cross_keys(&self, b: &B, prefix: &PrefixCache<B>) -> Result<Vec<Option<[B::Tensor; 2]>>> {
        let mut out = Vec::with_capacity(self.shape.layer_of.len());
        for (i, layer) in self.shape.layer_of.iter().enumerate() {
            let projected = match layer {
                Some(e) if !self.shape.self_attends[i] => {
                    let (k, v) = &prefix.keys_values[i];
                    let kv = &self.layers[*e].kv;
                    let [k, _]: [B::Tensor; 2] = kv.forward(b, k)?.try_into().map_err(|_| parts_err())?;
                    let [_, v]: [B::Tensor; 2] = kv.forward(b, v)?.try_into().map_err(|_| parts_err())?;
                    Some([k, v])
                }
                _ => None,
            };
            out.push(projected);
        }
        Ok(out)
    }

    /// One denoising step: the velocity `[chunk, max_action_dim]` at noisy chunk `x_t` and
    /// time `t`.
    pub(super) fn velocity(
        &self,
        b: &B,
        x_t: &[f32],
        time: f32,
        prefix: &mut PrefixCache<B>,
        cross: &[Option<[B::Tensor; 2]>],
        cross_cache: &mut B::KvCache,
    ) -> Result<Vec<f32>> {
        let mut hidden = self.embed_suffix(b, x_t, time)?;
        let prefix_len = prefix.len;
        for (i, layer) in self.shape.layer_of.iter().enumerate() {
            let Some(e) = layer else { continue };
            let layer = &self.layers[*e];
            let normed = b.rms_norm(&hidden, &layer.attn_norm, self.eps())?;
            let q = b.matmul(&normed, &layer.q)?;
            let attn = match &cross[i] {
                None => {
                    let [k, v]: [B::Tensor; 2] = layer.kv.forward(b, &normed)?.try_into().map_err(|_| parts_err())?;
                    let q = b.rope(&q, self.rope(self.shape.heads, prefix_len))?;
                    let k = b.rope(&k, self.rope(self.shape.kv_heads, prefix_len))?;
                    let cache = &mut prefix.caches[i];
                    let attn = b.attention(&q, &k, &v, cache, self.attention(AttentionMask::Causal));
                    b.kv_truncate(cache, prefix_len);
                    attn?
                }
                Some([k, v]) => {
                    let q = b.rope(&q, self.rope(self.shape.heads, 0))?;
                    b.kv_clear(cross_cache);
                    b.attention(&q, k, v, cross_cache, self.attention(AttentionMask::Full))?
                }
            };
            hidden = layer.tail.forward(b, &hidden, &attn, self.eps())?;
        }
        let hidden = b.rms_norm(&hidden, &self.norm, self.eps())?;
        Ok(b.read(&self.action_out.forward(b, &hidden)?)?)
    }

    /// The RMSNorms' epsilon at the width the expert runs at.
    fn eps(&self) -> f32 {
        self.widths.eps(self.shape.eps)
    }

    fn rope(&self, heads: usize, start_pos: usize) -> RopeParams {
        RopeParams {
            heads,
            head_dim: self.shape.head_dim,
            theta: ROPE_BASE,
            style: RopeStyle::HalfSplit,
            start_pos,
        }
    }

    /// Attention of the chunk's rows: causal among themselves after the whole prefix when
    /// they self-attend (lerobot gives every action token its own attention block), every
    /// prefix position when they cross-attend.
    fn attention(&self, mask: AttentionMask) -> AttentionParams {
        AttentionParams {
            heads: self.shape.heads,
            kv_heads: self.shape.kv_heads,
            head_dim: self.shape.head_dim,
            scale: 1.0 / (self.shape.head_dim as f32).sqrt(),
            mask,
        }
    }

    /// The noisy chunk and the time step as the expert's input rows.
    fn embed_suffix(&self, b: &B, x_t: &[f32], time: f32) -> Result<B::Tensor> {
        let actions = b.upload(x_t, self.chunk, self.max_action_dim)?;
        let actions = self.action_in.forward(b, &actions)?;
        let mut time = time_embedding(time, self.shape.hidden, self.min_period, self.max_period);
        time.resize(self.widths.padded, 0.0);
        let time = b.matmul(&b.upload(&time, 1, self.widths.padded)?, &self.time_in.time)?;
        let time = b.binary(&time, &self.time_in.bias, BinaryOp::Add)?;
        let joined = b.binary(&b.matmul(&actions, &self.time_in.action)?, &time, BinaryOp::Add)?;
        let joined = b.activation(&joined, Activation::Silu)?;
        self.time_out.forward(b, &joined)
    }
}

fn parts_err() -> ModelError {
    ModelError::Generation("the stacked k and v projection returned the wrong number of parts".into())
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
