//! Synthetic checkpoints: a model's every tensor filled from a seed, deterministically and
//! identically in Rust and in `tools/reference/vlm_reference.py` (splitmix64 of an FNV-1a hash
//! of the tensor name plus the element index). They let tests check a full-size architecture
//! against transformers without committing its weights, and give the runtime a default model
//! that needs no download.

use std::path::Path;

use serde_json::json;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{ModelError, Result};

pub fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The `index`-th value in [-1, 1) of the stream seeded by `seed`: splitmix64, top 24 bits.
pub fn uniform(seed: u64, index: u64) -> f64 {
    let mut z = seed.wrapping_add(index).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f64 / (1u64 << 23) as f64 - 1.0
}

/// A tensor's values: norm gains near 1, biases and everything else small and centred.
pub fn tensor_values(name: &str, count: usize) -> Vec<f32> {
    let seed = fnv1a64(name);
    let (base, spread) = if name.contains("norm") && name.ends_with("weight") {
        (1.0, 0.1)
    } else if name.ends_with("bias") {
        (0.0, 0.02)
    } else {
        (0.0, 0.05)
    };
    (0..count as u64)
        .map(|i| (base + spread * uniform(seed, i)) as f32)
        .collect()
}

/// The special tokens of an Idefics3 chat, after the 256 byte-level symbols.
pub const IDEFICS3_SPECIAL_TOKENS: [&str; 6] = [
    "<|im_start|>",
    "<|im_end|>",
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
];

/// A byte-level BPE with no merges (one token per byte) and Idefics3's special tokens, then
/// the `<row_r_col_c>` tile tokens, as `tokenizer.json` text.
pub fn byte_level_tokenizer_json() -> Result<String> {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort();
    let vocab: tokenizers::models::bpe::Vocab = alphabet
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u32))
        .collect();
    let failed = |e: tokenizers::Error| ModelError::Generation(format!("building the synthetic tokenizer: {e}"));
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .build()
        .map_err(failed)?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    tokenizer.with_pre_tokenizer(Some(byte_level));
    tokenizer.with_decoder(Some(byte_level));
    let tiles = (1..=6).flat_map(|r| (1..=6).map(move |c| format!("<row_{r}_col_{c}>")));
    let special: Vec<AddedToken> = IDEFICS3_SPECIAL_TOKENS
        .iter()
        .map(|t| t.to_string())
        .chain(tiles)
        .map(|t| AddedToken::from(t, true))
        .collect();
    tokenizer.add_special_tokens(special).map_err(failed)?;
    tokenizer.to_string(false).map_err(failed)
}

/// The shape of an Idefics3 checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3Shape {
    pub vision_hidden: usize,
    pub vision_intermediate: usize,
    pub vision_layers: usize,
    pub vision_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub scale_factor: usize,
    pub text_hidden: usize,
    pub text_intermediate: usize,
    pub text_layers: usize,
    pub text_heads: usize,
    pub text_kv_heads: usize,
    pub vocab_size: usize,
}

impl Idefics3Shape {
    /// SmolVLM-256M's published shape.
    pub fn smolvlm_256m() -> Self {
        Self {
            vision_hidden: 768,
            vision_intermediate: 3072,
            vision_layers: 12,
            vision_heads: 12,
            image_size: 512,
            patch_size: 16,
            scale_factor: 4,
            text_hidden: 576,
            text_intermediate: 1536,
            text_layers: 30,
            text_heads: 9,
            text_kv_heads: 3,
            vocab_size: 49_280,
        }
    }

    /// A SmolVLA-sized VLA backbone: SmolVLM2-500M's SigLIP tower at 512 px and its
    /// SmolLM2-360M text tower (960 wide, 15 heads over 5 key-value heads) cut to the 16
    /// layers SmolVLA keeps. SmolVLA's flow-matching action expert is not part of it: this
    /// VLA emits action tokens.
    pub fn smolvla() -> Self {
        Self {
            text_hidden: 960,
            text_intermediate: 2560,
            text_layers: 16,
            text_heads: 15,
            text_kv_heads: 5,
            ..Self::smolvlm_256m()
        }
    }

    /// A small model of the same structure for demos: 64-pixel tiles, two layers per tower.
    pub fn tiny() -> Self {
        Self {
            vision_hidden: 32,
            vision_intermediate: 64,
            vision_layers: 2,
            vision_heads: 2,
            image_size: 64,
            patch_size: 16,
            scale_factor: 2,
            text_hidden: 64,
            text_intermediate: 128,
            text_layers: 2,
            text_heads: 4,
            text_kv_heads: 2,
            vocab_size: 576,
        }
    }

    /// Every tensor's name and shape, as transformers names them.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (vh, vi, p) = (self.vision_hidden, self.vision_intermediate, self.patch_size);
        let (th, ti) = (self.text_hidden, self.text_intermediate);
        let kv = th / self.text_heads * self.text_kv_heads;
        let patches = (self.image_size / p) * (self.image_size / p);
        let mut out: Vec<(String, Vec<usize>)> = vec![
            (
                "model.vision_model.embeddings.patch_embedding.weight".into(),
                vec![vh, 3, p, p],
            ),
            ("model.vision_model.embeddings.patch_embedding.bias".into(), vec![vh]),
            (
                "model.vision_model.embeddings.position_embedding.weight".into(),
                vec![patches, vh],
            ),
            ("model.vision_model.post_layernorm.weight".into(), vec![vh]),
            ("model.vision_model.post_layernorm.bias".into(), vec![vh]),
            (
                "model.connector.modality_projection.proj.weight".into(),
                vec![th, vh * self.scale_factor * self.scale_factor],
            ),
            ("model.text_model.embed_tokens.weight".into(), vec![self.vocab_size, th]),
            ("model.text_model.norm.weight".into(), vec![th]),
            ("lm_head.weight".into(), vec![self.vocab_size, th]),
        ];
        for i in 0..self.vision_layers {
            let layer = format!("model.vision_model.encoder.layers.{i}");
            for (part, shape) in [
                ("layer_norm1", vec![vh]),
                ("layer_norm2", vec![vh]),
                ("self_attn.q_proj", vec![vh, vh]),
                ("self_attn.k_proj", vec![vh, vh]),
                ("self_attn.v_proj", vec![vh, vh]),
                ("self_attn.out_proj", vec![vh, vh]),
                ("mlp.fc1", vec![vi, vh]),
                ("mlp.fc2", vec![vh, vi]),
            ] {
                out.push((format!("{layer}.{part}.bias"), vec![shape[0]]));
                out.push((format!("{layer}.{part}.weight"), shape));
            }
        }
        for i in 0..self.text_layers {
            let layer = format!("model.text_model.layers.{i}");
            for (part, shape) in [
                ("input_layernorm", vec![th]),
                ("post_attention_layernorm", vec![th]),
                ("self_attn.q_proj", vec![th, th]),
                ("self_attn.k_proj", vec![kv, th]),
                ("self_attn.v_proj", vec![kv, th]),
                ("self_attn.o_proj", vec![th, th]),
                ("mlp.gate_proj", vec![ti, th]),
                ("mlp.up_proj", vec![ti, th]),
                ("mlp.down_proj", vec![th, ti]),
            ] {
                out.push((format!("{layer}.{part}.weight"), shape));
            }
        }
        out
    }

    fn config_json(&self, image_token_id: u32) -> serde_json::Value {
        json!({
            "model_type": "idefics3",
            "image_token_id": image_token_id,
            "scale_factor": self.scale_factor,
            "tie_word_embeddings": false,
            "vision_config": {
                "hidden_size": self.vision_hidden,
                "intermediate_size": self.vision_intermediate,
                "num_hidden_layers": self.vision_layers,
                "num_attention_heads": self.vision_heads,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "hidden_act": "gelu_pytorch_tanh",
                "layer_norm_eps": 1e-6,
            },
            "text_config": {
                "model_type": "llama",
                "hidden_size": self.text_hidden,
                "intermediate_size": self.text_intermediate,
                "num_hidden_layers": self.text_layers,
                "num_attention_heads": self.text_heads,
                "num_key_value_heads": self.text_kv_heads,
                "rope_theta": 100000.0,
                "rms_norm_eps": 1e-5,
                "hidden_act": "silu",
                "max_position_embeddings": 4096,
                "vocab_size": self.vocab_size,
                "tie_word_embeddings": false,
            },
        })
    }

    fn processor_json(&self) -> serde_json::Value {
        let seq = (self.image_size / self.patch_size).pow(2) / self.scale_factor.pow(2);
        json!({
            "image_seq_len": seq,
            "image_processor": {
                "do_image_splitting": true,
                "size": {"longest_edge": self.image_size},
                "max_image_size": {"longest_edge": self.image_size},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "resample": 1,
            },
        })
    }

    /// Writes `config.json`, `processor_config.json`, `tokenizer.json` and a
    /// `model.safetensors` of generated weights into `dir`.
    pub fn write_checkpoint(&self, dir: &Path) -> Result<()> {
        let tokenizer_json = byte_level_tokenizer_json()?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(tokenizer_json.as_bytes())
            .map_err(|e| ModelError::Generation(e.to_string()))?;
        let image_token_id = tokenizer
            .token_to_id("<image>")
            .ok_or_else(|| ModelError::Generation("the synthetic tokenizer has no <image>".into()))?;
        if tokenizer.get_vocab_size(true) > self.vocab_size {
            return Err(ModelError::Generation(format!(
                "a vocabulary of {} is smaller than the tokenizer's {}",
                self.vocab_size,
                tokenizer.get_vocab_size(true)
            )));
        }
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.join(name), bytes).map_err(|source| ModelError::Io {
                path: dir.join(name),
                source,
            })
        };
        write("tokenizer.json", tokenizer_json.as_bytes())?;
        write("config.json", self.config_json(image_token_id).to_string().as_bytes())?;
        write("processor_config.json", self.processor_json().to_string().as_bytes())?;
        let tensors = self.tensors();
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(name, shape)| bytemuck::cast_slice(&tensor_values(name, shape.iter().product())).to_vec())
            .collect();
        let views = tensors
            .iter()
            .zip(&data)
            .map(|((name, shape), bytes)| {
                let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map_err(|e| ModelError::Generation(e.to_string()))?;
                Ok((name.clone(), view))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).map_err(|e| ModelError::Malformed {
            path: dir.join("model.safetensors"),
            message: e.to_string(),
        })
    }
}
