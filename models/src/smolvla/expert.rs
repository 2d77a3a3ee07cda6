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

use brainstem_kernels::{AttentionMask, AttentionParams, Backend, KvCacheSpec, RopeParams, RopeStyle};

use super::config::{AttentionMode, SmolVlaConfig};
use super::prefix::PrefixCache;
use crate::error::{ModelError, Result};
use crate::flow::head::{FlowHead, Widths};
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

/// The action expert and the flow-matching head.
pub(super) struct Expert<B: Backend> {
    shape: ExpertShape,
    layers: Vec<ExpertLayer<B>>,
    norm: B::Tensor,
    head: FlowHead<B>,
    widths: Widths,
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
        let (w, p) = (widths.width, widths.padded);
        let periods = (cfg.min_period, cfg.max_period);
        Ok(Self {
            norm: l.vector_to(&format!("{EXPERT}norm.weight"), w, p, widths.norm_scale())?,
            head: FlowHead::load(l, widths, cfg.chunk_size, cfg.max_action_dim, periods)?,
            widths,
            layers,
            shape,
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
        let mut hidden = self.head.embed(b, x_t, time)?;
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
        self.head.velocity(b, &hidden)
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
}

fn parts_err() -> ModelError {
    ModelError::Generation("the stacked k and v projection returned the wrong number of parts".into())
}
