//! pi0.5's action expert (lerobot's `PiGemmaModel` with `use_adarms`): the Gemma expert whose
//! norms are conditioned on the time step. The time's sinusoidal embedding goes through
//! `time_mlp_in`, SiLU, `time_mlp_out`, SiLU; each norm's `dense` layer turns that condition
//! into a scale, a shift and a gate, so a norm gives `rms(x) * (1 + scale) + shift` and the
//! residual after it adds its branch times the gate. The suffix is the noisy chunk alone
//! (`action_in_proj`), whose rows attend to the prefix and each other.

use brainstem_kernels::{Activation, Backend, BinaryOp};

use super::expert::{full_attention, rope};
use crate::error::Result;
use crate::flow::head::linear;
use crate::flow::time_embedding;
use crate::idefics3::Linear;
use crate::llama::{LlamaConfig, Loader, Stacked};

/// An adaptive norm's modulation for one time step: `1 + scale` (the RMSNorm's gamma), the
/// shift and the gate, each `[1, width]`.
struct Modulation<B: Backend> {
    gamma: B::Tensor,
    shift: B::Tensor,
    gate: B::Tensor,
}

/// One expert layer with adaptive norms.
struct AdaLayer<B: Backend> {
    attn_norm: Linear<B>,
    /// q, k and v.
    qkv: Stacked<B>,
    o: B::Weight,
    mlp_norm: Linear<B>,
    /// gate and up.
    gate_up: Stacked<B>,
    down: B::Weight,
}

pub(super) struct AdaExpert<B: Backend> {
    cfg: LlamaConfig,
    layers: Vec<AdaLayer<B>>,
    norm: Linear<B>,
    action_in: Linear<B>,
    time_in: Linear<B>,
    time_out: Linear<B>,
    action_out: Linear<B>,
    chunk: usize,
    max_action_dim: usize,
    periods: (f64, f64),
}

impl<B: Backend> AdaExpert<B> {
    /// The expert named as `l` names it (`…gemma_expert.model.`), of shape `cfg`, with the
    /// policy's projections (`model.action_in_proj`, `time_mlp_in`, `time_mlp_out`,
    /// `action_out_proj`).
    pub fn load(
        l: &Loader<B>,
        cfg: &LlamaConfig,
        chunk: usize,
        max_action_dim: usize,
        periods: (f64, f64),
    ) -> Result<Self> {
        let (w, a) = (cfg.hidden_size, max_action_dim);
        let dense = |name: String| linear(l, &name, [3 * w, w], [3 * w, w]);
        let prefix = match l.naming {
            crate::llama::Naming::HuggingFace { prefix } => prefix,
            crate::llama::Naming::Gguf => "",
        };
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let name = |role: &str| format!("{prefix}layers.{i}.{role}");
                let qkv = [
                    (format!("{}.weight", name("self_attn.q_proj")), cfg.q_dim()),
                    (format!("{}.weight", name("self_attn.k_proj")), cfg.kv_dim()),
                    (format!("{}.weight", name("self_attn.v_proj")), cfg.kv_dim()),
                ];
                let gate_up = [
                    (format!("{}.weight", name("mlp.gate_proj")), cfg.intermediate_size),
                    (format!("{}.weight", name("mlp.up_proj")), cfg.intermediate_size),
                ];
                Ok(AdaLayer {
                    attn_norm: dense(name("input_layernorm.dense"))?,
                    qkv: l.stacked(&qkv, w)?,
                    o: l.matrix(&format!("{}.weight", name("self_attn.o_proj")), w, cfg.q_dim())?,
                    mlp_norm: dense(name("post_attention_layernorm.dense"))?,
                    gate_up: l.stacked(&gate_up, w)?,
                    down: l.matrix(&format!("{}.weight", name("mlp.down_proj")), w, cfg.intermediate_size)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            norm: dense(format!("{prefix}norm.dense"))?,
            action_in: linear(l, "model.action_in_proj", [w, a], [w, a])?,
            time_in: linear(l, "model.time_mlp_in", [w, w], [w, w])?,
            time_out: linear(l, "model.time_mlp_out", [w, w], [w, w])?,
            action_out: linear(l, "model.action_out_proj", [a, w], [a, w])?,
            cfg: cfg.clone(),
            chunk,
            max_action_dim,
            periods,
        })
    }

    /// The velocity `[chunk, max_action_dim]` at the noisy chunk `x_t` and time `time`; the
    /// caches hold the prefix (`prefix_len` rows) and are cut back to it.
    pub fn velocity(
        &self,
        b: &B,
        x_t: &[f32],
        time: f32,
        caches: &mut [B::KvCache],
        prefix_len: usize,
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let condition = self.condition(b, time)?;
        let mut xs = self
            .action_in
            .forward(b, &b.upload(x_t, self.chunk, self.max_action_dim)?)?;
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            let attn_mod = modulation(b, &layer.attn_norm, &condition, cfg.hidden_size)?;
            let normed = adaptive_norm(b, &xs, &attn_mod, cfg.rms_norm_eps)?;
            let [q, k, v]: [B::Tensor; 3] = layer.qkv.forward(b, &normed)?.try_into().map_err(|_| parts_err())?;
            let q = b.rope(&q, rope(cfg, cfg.num_heads, prefix_len))?;
            let k = b.rope(&k, rope(cfg, cfg.num_kv_heads, prefix_len))?;
            let attn = b.attention(&q, &k, &v, cache, full_attention(cfg));
            b.kv_truncate(cache, prefix_len);
            let branch = b.matmul(&attn?, &layer.o)?;
            xs = gated_residual(b, &xs, &branch, &attn_mod.gate)?;
            let mlp_mod = modulation(b, &layer.mlp_norm, &condition, cfg.hidden_size)?;
            let normed = adaptive_norm(b, &xs, &mlp_mod, cfg.rms_norm_eps)?;
            let [gate, up]: [B::Tensor; 2] = layer.gate_up.forward(b, &normed)?.try_into().map_err(|_| parts_err())?;
            let hidden = b.gated(&gate, &up, Activation::GeluTanh)?;
            let branch = b.matmul(&hidden, &layer.down)?;
            xs = gated_residual(b, &xs, &branch, &mlp_mod.gate)?;
        }
        let final_mod = modulation(b, &self.norm, &condition, cfg.hidden_size)?;
        let xs = adaptive_norm(b, &xs, &final_mod, cfg.rms_norm_eps)?;
        Ok(b.read(&self.action_out.forward(b, &xs)?)?)
    }

    /// The norms' condition at `time`: its sinusoidal embedding through the time MLP.
    fn condition(&self, b: &B, time: f32) -> Result<B::Tensor> {
        let (min_period, max_period) = self.periods;
        let embedding = time_embedding(time, self.cfg.hidden_size, min_period, max_period);
        let x = self.time_in.forward(b, &b.upload(&embedding, 1, embedding.len())?)?;
        let x = b.activation(&x, Activation::Silu)?;
        let x = self.time_out.forward(b, &x)?;
        Ok(b.activation(&x, Activation::Silu)?)
    }
}

/// A norm's scale, shift and gate from the condition, through its `dense` layer.
fn modulation<B: Backend>(b: &B, dense: &Linear<B>, condition: &B::Tensor, width: usize) -> Result<Modulation<B>> {
    let values = b.read(&dense.forward(b, condition)?)?;
    let gamma: Vec<f32> = values[..width].iter().map(|scale| 1.0 + scale).collect();
    Ok(Modulation {
        gamma: b.upload(&gamma, 1, width)?,
        shift: b.upload(&values[width..2 * width], 1, width)?,
        gate: b.upload(&values[2 * width..3 * width], 1, width)?,
    })
}

/// `rms(x) * (1 + scale) + shift`.
fn adaptive_norm<B: Backend>(b: &B, xs: &B::Tensor, m: &Modulation<B>, eps: f32) -> Result<B::Tensor> {
    let normed = b.rms_norm(xs, &m.gamma, eps)?;
    Ok(b.binary(&normed, &m.shift, BinaryOp::Add)?)
}

/// `x + branch * gate`.
fn gated_residual<B: Backend>(b: &B, xs: &B::Tensor, branch: &B::Tensor, gate: &B::Tensor) -> Result<B::Tensor> {
    let gated = b.binary(branch, gate, BinaryOp::Mul)?;
    Ok(b.binary(xs, &gated, BinaryOp::Add)?)
}

fn parts_err() -> crate::error::ModelError {
    crate::error::ModelError::Generation("a stacked projection returned the wrong number of parts".into())
}
