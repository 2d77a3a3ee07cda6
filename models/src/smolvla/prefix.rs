//! SmolVLA's prefix: each camera through the SmolVLM2 vision tower and connector, the task's
//! tokens, and the state projected to one token, scaled and laid out as lerobot's
//! `embed_prefix` does, then run once per chunk through the backbone's text layers (cut to
//! `num_vlm_layers`). Image and language tokens attend to each other; the state token sees
//! them all and is seen by none (a prefix-LM mask). Padding (an empty camera's image tokens,
//! a padded task) is left out rather than masked: a masked position is invisible to the rest
//! and the position ids skip it, so leaving it out gives the same keys and values.

use brainstem_kernels::{AttentionMask, AttentionParams, Backend, KvCacheSpec, RopeParams, RopeStyle};

use super::expert::ROPE_BASE;
use crate::error::Result;
use crate::idefics3::ImageEncoder;
use crate::idefics3::Linear;
use crate::llama::{Llama, LlamaConfig};

/// What the prefix pass leaves for the denoising steps: every backbone layer's cache of the
/// prefix's keys and values (which self-attending expert layers extend and cut back each
/// step), and the keys and values themselves (which cross-attending layers project).
pub(super) struct PrefixCache<B: Backend> {
    pub len: usize,
    pub caches: Vec<B::KvCache>,
    pub keys_values: Vec<(B::Tensor, B::Tensor)>,
}

/// The prefix's rows before the backbone's layers: bidirectional image and language rows
/// (`[block, hidden]`), then the state row.
pub(super) struct PrefixRows {
    pub values: Vec<f32>,
    pub block: usize,
}

/// The parts of the prefix, in order, as host rows of the backbone's width.
pub(super) enum Segment<'a> {
    /// Token embeddings, as they are (image special tokens).
    Tokens(&'a [u32]),
    /// Token embeddings scaled by the square root of the width (the task).
    ScaledTokens(&'a [u32]),
    /// A camera's connector features, already scaled.
    Image(Vec<f32>),
}

/// The backbone side of SmolVLA.
pub(super) struct Backbone<B: Backend> {
    pub images: ImageEncoder<B>,
    pub text: Llama<B>,
    pub state_proj: Linear<B>,
}

impl<B: Backend> Backbone<B> {
    fn cfg(&self) -> &LlamaConfig {
        self.text.config()
    }

    /// One camera's features `[tokens, hidden]`, scaled by the square root of the width.
    pub fn encode_camera(&self, b: &B, pixels: &[f32]) -> Result<Vec<f32>> {
        let mut features = self.images.encode(b, pixels)?;
        let scale = (self.cfg().hidden_size as f64).sqrt() as f32;
        features.iter_mut().for_each(|v| *v *= scale);
        Ok(features)
    }

    /// The rows of a prefix from its segments and the normalized, padded state.
    pub fn rows(&self, b: &B, segments: &[Segment], state: &[f32]) -> Result<PrefixRows> {
        let hidden = self.cfg().hidden_size;
        let mut values = Vec::new();
        let scale = (hidden as f64).sqrt() as f32;
        for segment in segments {
            match segment {
                Segment::Tokens(ids) if !ids.is_empty() => values.extend(b.read(&self.text.embed(ids)?)?),
                Segment::ScaledTokens(ids) if !ids.is_empty() => {
                    values.extend(b.read(&self.text.embed(ids)?)?.into_iter().map(|v| v * scale))
                }
                Segment::Image(features) => values.extend_from_slice(features),
                _ => {}
            }
        }
        let block = values.len() / hidden;
        let state = self.state_proj.forward(b, &b.upload(state, 1, state.len())?)?;
        values.extend(b.read(&state)?);
        Ok(PrefixRows { values, block })
    }

    /// Runs the prefix through every backbone layer, filling `caches` (one per layer, of at
    /// least the prefix's length).
    pub fn run(&self, b: &B, rows: &PrefixRows, mut caches: Vec<B::KvCache>) -> Result<PrefixCache<B>> {
        let cfg = self.cfg();
        let len = rows.values.len() / cfg.hidden_size;
        let mut xs = b.upload(&rows.values, len, cfg.hidden_size)?;
        let rope = |heads| RopeParams {
            heads,
            head_dim: cfg.head_dim,
            theta: ROPE_BASE,
            style: RopeStyle::HalfSplit,
            start_pos: 0,
        };
        let params = AttentionParams {
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            scale: 1.0 / (cfg.head_dim as f32).sqrt(),
            mask: AttentionMask::PrefixLm {
                bidirectional: rows.block,
            },
        };
        let mut keys_values = Vec::with_capacity(caches.len());
        for (block, cache) in self.text.blocks().iter().zip(caches.iter_mut()) {
            b.kv_clear(cache);
            let [q, k, v] = block.project_qkv(b, &xs, cfg.rms_norm_eps)?;
            let q = b.rope(&q, rope(cfg.num_heads))?;
            let k = b.rope(&k, rope(cfg.num_kv_heads))?;
            let attn = b.attention(&q, &k, &v, cache, params)?;
            xs = block.tail().forward(b, &xs, &attn, cfg.rms_norm_eps)?;
            keys_values.push((k, v));
        }
        Ok(PrefixCache {
            len,
            caches,
            keys_values,
        })
    }

    /// Empty caches, one per layer, for prefixes of up to `positions` rows plus a chunk.
    pub fn caches(&self, b: &B, positions: usize) -> Result<Vec<B::KvCache>> {
        let cfg = self.cfg();
        let spec = KvCacheSpec {
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            max_positions: positions,
        };
        (0..cfg.num_layers).map(|_| Ok(b.kv_cache(spec)?)).collect()
    }
}
