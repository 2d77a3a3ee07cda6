//! pi0's action expert (the 300M Gemma of openpi's `PaliGemmaWithExpertModel`) and the rows it
//! runs. The suffix after the prefix is the state (one row from `state_proj`) and the noisy
//! chunk with the time step (the flow head's rows). lerobot puts the state in a block of its
//! own: it attends to the prefix and itself, never to the chunk, so its keys and values at
//! every layer do not change from one denoising step to the next. They are computed once a
//! chunk ([`Expert::add_state`]) and kept in each layer's cache after the prefix's; each step
//! then runs only the chunk's rows, which attend to the prefix, the state and each other
//! ([`Expert::velocity`]), and cuts the caches back.

use brainstem_kernels::{AttentionMask, AttentionParams, Backend, RopeParams};

use crate::error::Result;
use crate::flow::head::{linear, FlowHead, Widths};
use crate::idefics3::Linear;
use crate::llama::{Block, LlamaConfig, Loader};

pub(super) struct Expert<B: Backend> {
    cfg: LlamaConfig,
    blocks: Vec<Block<B>>,
    norm: B::Tensor,
    state_proj: Linear<B>,
    head: FlowHead<B>,
}

impl<B: Backend> Expert<B> {
    /// The expert named as `l` names it (`…gemma_expert.model.`), of shape `cfg`, with the
    /// policy's projections (`model.state_proj`, the flow head).
    pub fn load(
        l: &Loader<B>,
        cfg: &LlamaConfig,
        max_state_dim: usize,
        chunk: usize,
        max_action_dim: usize,
        periods: (f64, f64),
    ) -> Result<Self> {
        let width = cfg.hidden_size;
        let widths = Widths { width, padded: width };
        Ok(Self {
            blocks: (0..cfg.num_layers)
                .map(|i| Block::load(l, i, cfg))
                .collect::<Result<_>>()?,
            norm: l.norm(&l.naming.global("model.norm.weight"), width, cfg.flavor)?,
            state_proj: linear(l, "model.state_proj", [width, max_state_dim], [width, max_state_dim])?,
            head: FlowHead::load(l, widths, chunk, max_action_dim, periods)?,
            cfg: cfg.clone(),
        })
    }

    /// Runs the normalized, padded state's row through every layer after the prefix's
    /// `prefix_len` rows, leaving its key and value in each layer's cache.
    pub fn add_state(&self, b: &B, state: &[f32], caches: &mut [B::KvCache], prefix_len: usize) -> Result<()> {
        let state = self.state_proj.forward(b, &b.upload(state, 1, state.len())?)?;
        self.layers(b, state, caches, prefix_len, None).map(|_| ())
    }

    /// The velocity `[chunk, max_action_dim]` at the noisy chunk `x_t` and time `time`; the
    /// caches hold the prefix and the state (`base_len` rows), and are cut back to them.
    pub fn velocity(
        &self,
        b: &B,
        x_t: &[f32],
        time: f32,
        caches: &mut [B::KvCache],
        base_len: usize,
    ) -> Result<Vec<f32>> {
        let rows = self.head.embed(b, x_t, time)?;
        let hidden = self.layers(b, rows, caches, base_len, Some(base_len))?;
        let hidden = b.rms_norm(&hidden, &self.norm, self.cfg.rms_norm_eps)?;
        self.head.velocity(b, &hidden)
    }

    /// `rows` at positions from `start` through every layer, each attending to its cache and
    /// the rows themselves; the caches are cut back to `keep` rows after, when given.
    fn layers(
        &self,
        b: &B,
        mut hidden: B::Tensor,
        caches: &mut [B::KvCache],
        start: usize,
        keep: Option<usize>,
    ) -> Result<B::Tensor> {
        let cfg = &self.cfg;
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            let [q, k, v] = block.project_qkv(b, &hidden, cfg.rms_norm_eps)?;
            let q = b.rope(&q, rope(cfg, cfg.num_heads, start))?;
            let k = b.rope(&k, rope(cfg, cfg.num_kv_heads, start))?;
            let attn = b.attention(&q, &k, &v, cache, full_attention(cfg));
            if let Some(keep) = keep {
                b.kv_truncate(cache, keep);
            }
            hidden = block.tail().forward(b, &hidden, &attn?, cfg.rms_norm_eps)?;
        }
        Ok(hidden)
    }
}

/// Gemma's rotary embedding of `heads` heads from position `start_pos`.
pub(super) fn rope(cfg: &LlamaConfig, heads: usize, start_pos: usize) -> RopeParams {
    RopeParams {
        heads,
        head_dim: cfg.head_dim,
        theta: cfg.rope_theta,
        style: cfg.rope_style,
        start_pos,
    }
}

/// Attention of new rows over every cached row and each other.
pub(super) fn full_attention(cfg: &LlamaConfig) -> AttentionParams {
    AttentionParams {
        heads: cfg.num_heads,
        kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        scale: 1.0 / (cfg.head_dim as f32).sqrt(),
        mask: AttentionMask::Full,
    }
}
