//! The SigLIP vision tower of Idefics3/SmolVLM (Zhai et al. 2023; transformers'
//! `Idefics3VisionTransformer`): a patch embedding (a stride-`patch` convolution, computed here
//! as a matmul over unfolded patches), learned position embeddings, pre-norm encoder layers
//! (LayerNorm, bidirectional multi-head attention with biases, LayerNorm, GELU-tanh MLP), and a
//! final LayerNorm. Tiles are encoded one at a time, each a full `image_size` square, so the
//! position ids are simply 0..patches.

use brainstem_kernels::{Activation, AttentionMask, AttentionParams, Backend, BinaryOp, HostWeight, KvCacheSpec};

use super::config::VisionConfig;
use crate::error::{ModelError, Result};
use crate::llama::LoadOptions;
use crate::weights::WeightFile;

/// Loads the tower's tensors by name, checking each shape.
pub(super) struct TensorLoader<'a, B: Backend> {
    pub backend: &'a B,
    /// What the model's tensor names start with (`model.` in an Idefics3 checkpoint).
    pub prefix: &'a str,
    pub file: &'a WeightFile,
    pub options: LoadOptions,
}

impl<B: Backend> TensorLoader<'_, B> {
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<B::Weight> {
        self.upload_matrix(self.file.tensor_with_shape(name, &[rows, cols])?)
    }

    pub fn upload_matrix(&self, host: HostWeight) -> Result<B::Weight> {
        Ok(self.backend.upload_weight(&self.options.prepare(host)?)?)
    }

    pub fn host_vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        Ok(self.file.tensor_with_shape(name, &[len])?.to_f32()?)
    }

    pub fn vector(&self, name: &str, len: usize) -> Result<B::Tensor> {
        Ok(self.backend.upload(&self.host_vector(name, len)?, 1, len)?)
    }

    /// Linear layers of the same input, `(name, outputs)` each, stacked into one matrix and
    /// one bias so that a single matmul computes them all.
    fn stacked_linear(&self, parts: &[(String, usize)], inputs: usize) -> Result<Linear<B>> {
        let mut values = Vec::new();
        let mut bias = Vec::new();
        for (name, outputs) in parts {
            values.extend(
                self.file
                    .tensor_with_shape(&format!("{name}.weight"), &[*outputs, inputs])?
                    .to_f32()?,
            );
            bias.extend(self.host_vector(&format!("{name}.bias"), *outputs)?);
        }
        let rows = parts.iter().map(|(_, outputs)| outputs).sum();
        let host = HostWeight::from_f32(&values, vec![rows, inputs]);
        Ok(Linear {
            weight: self.upload_matrix(host)?,
            bias: self.backend.upload(&bias, 1, rows)?,
        })
    }
}

/// A linear layer with a bias (SmolVLA's projections are these too).
pub(crate) struct Linear<B: Backend> {
    pub weight: B::Weight,
    pub bias: B::Tensor,
}

impl<B: Backend> Linear<B> {
    fn load(l: &TensorLoader<B>, name: &str, outputs: usize, inputs: usize) -> Result<Self> {
        Ok(Self {
            weight: l.matrix(&format!("{name}.weight"), outputs, inputs)?,
            bias: l.vector(&format!("{name}.bias"), outputs)?,
        })
    }

    pub fn forward(&self, b: &B, xs: &B::Tensor) -> Result<B::Tensor> {
        Ok(b.binary(&b.matmul(xs, &self.weight)?, &self.bias, BinaryOp::Add)?)
    }
}

struct LayerNorm<B: Backend> {
    gamma: B::Tensor,
    beta: B::Tensor,
    eps: f32,
}

impl<B: Backend> LayerNorm<B> {
    fn load(l: &TensorLoader<B>, name: &str, len: usize, eps: f32) -> Result<Self> {
        Ok(Self {
            gamma: l.vector(&format!("{name}.weight"), len)?,
            beta: l.vector(&format!("{name}.bias"), len)?,
            eps,
        })
    }

    fn forward(&self, b: &B, xs: &B::Tensor) -> Result<B::Tensor> {
        Ok(b.layer_norm(xs, &self.gamma, &self.beta, self.eps)?)
    }
}

struct EncoderLayer<B: Backend> {
    norm1: LayerNorm<B>,
    /// q, k and v stacked.
    qkv: Linear<B>,
    out: Linear<B>,
    norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> EncoderLayer<B> {
    fn load(l: &TensorLoader<B>, i: usize, cfg: &VisionConfig) -> Result<Self> {
        let name = |part: &str| format!("{}vision_model.encoder.layers.{i}.{part}", l.prefix);
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        Ok(Self {
            norm1: LayerNorm::load(l, &name("layer_norm1"), h, eps)?,
            qkv: l.stacked_linear(
                &["q_proj", "k_proj", "v_proj"].map(|p| (name(&format!("self_attn.{p}")), h)),
                h,
            )?,
            out: Linear::load(l, &name("self_attn.out_proj"), h, h)?,
            norm2: LayerNorm::load(l, &name("layer_norm2"), h, eps)?,
            fc1: Linear::load(l, &name("mlp.fc1"), cfg.intermediate_size, h)?,
            fc2: Linear::load(l, &name("mlp.fc2"), h, cfg.intermediate_size)?,
        })
    }

    fn forward(&self, b: &B, xs: &B::Tensor, cfg: &VisionConfig) -> Result<B::Tensor> {
        let _span = tracing::trace_span!("siglip_layer").entered();
        let normed = self.norm1.forward(b, xs)?;
        let qkv = self.qkv.forward(b, &normed)?;
        let h = cfg.hidden_size;
        let (q, k, v) = (
            b.columns(&qkv, 0, h)?,
            b.columns(&qkv, h, h)?,
            b.columns(&qkv, 2 * h, h)?,
        );
        let mut cache = b.kv_cache(KvCacheSpec {
            kv_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            max_positions: cfg.num_patches(),
        })?;
        let params = AttentionParams {
            heads: cfg.num_heads,
            kv_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            scale: 1.0 / (cfg.head_dim() as f32).sqrt(),
            mask: AttentionMask::Full,
        };
        let attn = b.attention(&q, &k, &v, &mut cache, params)?;
        let xs = b.binary(xs, &self.out.forward(b, &attn)?, BinaryOp::Add)?;
        let normed = self.norm2.forward(b, &xs)?;
        let hidden = b.activation(&self.fc1.forward(b, &normed)?, Activation::GeluTanh)?;
        Ok(b.binary(&xs, &self.fc2.forward(b, &hidden)?, BinaryOp::Add)?)
    }
}

pub struct VisionTower<B: Backend> {
    cfg: VisionConfig,
    patch_embedding: Linear<B>,
    positions: B::Tensor,
    layers: Vec<EncoderLayer<B>>,
    post_norm: LayerNorm<B>,
}

impl<B: Backend> VisionTower<B> {
    pub(super) fn load(l: &TensorLoader<B>, cfg: &VisionConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let patch_name = format!("{}vision_model.embeddings.patch_embedding.weight", l.prefix);
        let conv = l
            .file
            .tensor_with_shape(&patch_name, &[h, 3, cfg.patch_size, cfg.patch_size])?;
        // The convolution kernel [out, 3, p, p] is the matrix [out, 3 p p] of an unfolded patch.
        let unfolded = HostWeight {
            dtype: conv.dtype,
            shape: vec![h, cfg.patch_inputs()],
            bytes: conv.bytes,
        };
        let patch_embedding = Linear {
            weight: l.upload_matrix(unfolded)?,
            bias: l.vector(&format!("{}vision_model.embeddings.patch_embedding.bias", l.prefix), h)?,
        };
        let positions_name = format!("{}vision_model.embeddings.position_embedding.weight", l.prefix);
        let positions = l
            .file
            .tensor_with_shape(&positions_name, &[cfg.num_patches(), h])?
            .to_f32()?;
        Ok(Self {
            patch_embedding,
            positions: l.backend.upload(&positions, cfg.num_patches(), h)?,
            layers: (0..cfg.num_layers)
                .map(|i| EncoderLayer::load(l, i, cfg))
                .collect::<Result<_>>()?,
            post_norm: LayerNorm::load(
                l,
                &format!("{}vision_model.post_layernorm", l.prefix),
                h,
                cfg.layer_norm_eps,
            )?,
            cfg: cfg.clone(),
        })
    }

    /// One tile, `[3, image_size, image_size]` channel-major, to `[patches, hidden]`.
    pub fn forward(&self, b: &B, tile: &[f32]) -> Result<B::Tensor> {
        let _span = tracing::debug_span!("siglip_tile").entered();
        let side = self.cfg.image_size;
        if tile.len() != 3 * side * side {
            return Err(ModelError::Generation(format!(
                "a tile has {} values, the vision tower takes 3 x {side} x {side}",
                tile.len()
            )));
        }
        let patches = unfold_patches(tile, side, self.cfg.patch_size);
        let patches = b.upload(&patches, self.cfg.num_patches(), self.cfg.patch_inputs())?;
        let mut xs = self.patch_embedding.forward(b, &patches)?;
        xs = b.binary(&xs, &self.positions, BinaryOp::Add)?;
        for layer in &self.layers {
            xs = layer.forward(b, &xs, &self.cfg)?;
        }
        self.post_norm.forward(b, &xs)
    }
}

/// The patches of a channel-major square image, row-major over the patch grid, each
/// flattened as (channel, row, column) like the convolution kernel.
fn unfold_patches(tile: &[f32], side: usize, patch: usize) -> Vec<f32> {
    let per_side = side / patch;
    let mut out = Vec::with_capacity(tile.len());
    for py in 0..per_side {
        for px in 0..per_side {
            for channel in 0..3 {
                for ky in 0..patch {
                    let start = channel * side * side + (py * patch + ky) * side + px * patch;
                    out.extend_from_slice(&tile[start..start + patch]);
                }
            }
        }
    }
    out
}
