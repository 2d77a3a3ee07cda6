//! Llama-family configuration: the Hugging Face `config.json` as the checkpoint writes it
//! (both the `rope_theta` of transformers 4 and the `rope_parameters` of transformers 5),
//! GGUF `llama.*` metadata, and the typed, validated config the model runs on.

use std::path::Path;

use brainstem_kernels::{Activation, RopeStyle};
use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::weights::gguf::Metadata;

/// The largest dimension accepted from a config, far above any real model; it keeps every
/// product of dimensions inside `usize`.
const MAX_DIM: usize = 1 << 24;

/// The config a Llama runs on, checked for consistency.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    pub max_positions: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The family's per-layer arithmetic (norm scale, MLP activation).
    pub flavor: Flavor,
}

/// How a decoder family computes the parts a Llama layer has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavor {
    /// Llama: each RMSNorm scaled by its weight, a SiLU-gated MLP.
    #[default]
    Llama,
    /// Gemma: each RMSNorm scaled by one plus its weight, a GELU-tanh-gated MLP.
    Gemma,
}

impl Flavor {
    /// The gated MLP's activation.
    pub fn activation(self) -> Activation {
        match self {
            Flavor::Llama => Activation::Silu,
            Flavor::Gemma => Activation::GeluTanh,
        }
    }

    /// What is added to an RMSNorm's stored weight to give its scale.
    pub fn norm_offset(self) -> f32 {
        match self {
            Flavor::Llama => 0.0,
            Flavor::Gemma => 1.0,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

#[derive(Deserialize)]
struct RopeParameters {
    rope_theta: f32,
    #[serde(default)]
    rope_type: Option<String>,
}

/// `config.json` of a Hugging Face Llama checkpoint; keys brainstem does not use are ignored.
#[derive(Deserialize)]
struct HfLlamaConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f32,
    rope_theta: Option<f32>,
    rope_parameters: Option<RopeParameters>,
    rope_scaling: Option<serde_json::Value>,
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    hidden_act: Option<String>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
}

fn config_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl LlamaConfig {
    /// Parses and validates a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<LlamaConfig> {
        let hf: HfLlamaConfig = serde_json::from_str(text).map_err(|e| config_err(path, e.to_string()))?;
        if let Some(t) = hf.model_type.as_deref().filter(|t| *t != "llama") {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.into(),
                expected: "llama",
                found: t.into(),
            });
        }
        if let Some(act) = hf.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(config_err(path, format!("hidden_act must be \"silu\", found {act:?}")));
        }
        if hf.attention_bias || hf.mlp_bias {
            return Err(config_err(path, "attention_bias and mlp_bias are not supported"));
        }
        if hf.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(config_err(path, "rope_scaling is not supported"));
        }
        let rope_theta = match (&hf.rope_parameters, hf.rope_theta) {
            (Some(p), _) if p.rope_type.as_deref().is_some_and(|t| t != "default") => {
                return Err(config_err(
                    path,
                    format!("rope_type {:?} is not supported", p.rope_type),
                ))
            }
            (Some(p), _) => p.rope_theta,
            (None, Some(theta)) => theta,
            (None, None) => 10_000.0,
        };
        let eos_token_ids = match hf.eos_token_id {
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
            None => Vec::new(),
        };
        let cfg = LlamaConfig {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim: hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta,
            rope_style: RopeStyle::HalfSplit,
            max_positions: hf.max_position_embeddings,
            tie_word_embeddings: hf.tie_word_embeddings,
            bos_token_id: hf.bos_token_id,
            eos_token_ids,
            flavor: Flavor::Llama,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads `llama.*` metadata of a GGUF file. `vocab_rows` is the row count of
    /// `token_embd.weight`, used when the metadata has no vocabulary size.
    pub fn from_gguf(meta: &Metadata, vocab_rows: usize, tied: bool) -> Result<LlamaConfig> {
        let path = meta.path.as_path();
        let arch = meta.str_opt("general.architecture")?.unwrap_or("");
        if arch != "llama" {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.into(),
                expected: "llama",
                found: arch.into(),
            });
        }
        let hidden_size = meta.usize("llama.embedding_length")?;
        let num_heads = meta.usize("llama.attention.head_count")?;
        let head_dim = match meta.u64_opt("llama.rope.dimension_count")? {
            Some(d) => d as usize,
            None => hidden_size / num_heads.max(1),
        };
        let eos = meta.u64_opt("tokenizer.ggml.eos_token_id")?;
        let cfg = LlamaConfig {
            vocab_size: meta.u64_opt("llama.vocab_size")?.map_or(vocab_rows, |v| v as usize),
            hidden_size,
            intermediate_size: meta.usize("llama.feed_forward_length")?,
            num_layers: meta.usize("llama.block_count")?,
            num_heads,
            num_kv_heads: meta
                .u64_opt("llama.attention.head_count_kv")?
                .map_or(num_heads, |v| v as usize),
            head_dim,
            rms_norm_eps: meta.f32_opt("llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
            rope_theta: meta.f32_opt("llama.rope.freq_base")?.unwrap_or(10_000.0),
            rope_style: RopeStyle::Interleaved,
            max_positions: meta.usize("llama.context_length")?,
            tie_word_embeddings: tied,
            bos_token_id: meta.u64_opt("tokenizer.ggml.bos_token_id")?.map(|v| v as u32),
            eos_token_ids: eos.map(|v| vec![v as u32]).unwrap_or_default(),
            flavor: Flavor::Llama,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_positions),
        ];
        for (name, value) in dims {
            if value == 0 || value > MAX_DIM {
                return Err(config_err(
                    path,
                    format!("{name} must be in 1..={MAX_DIM}, found {value}"),
                ));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(config_err(
                path,
                format!(
                    "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                    self.num_heads, self.num_kv_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(config_err(
                path,
                format!("head_dim must be even for rotary embedding, found {}", self.head_dim),
            ));
        }
        if !(self.rms_norm_eps.is_finite()
            && self.rms_norm_eps > 0.0
            && self.rope_theta.is_finite()
            && self.rope_theta > 1.0)
        {
            return Err(config_err(
                path,
                format!(
                    "rms_norm_eps {} and rope_theta {} must be positive",
                    self.rms_norm_eps, self.rope_theta
                ),
            ));
        }
        Ok(())
    }

    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}
