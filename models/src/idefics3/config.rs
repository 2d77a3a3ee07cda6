//! The Idefics3/SmolVLM configuration: `config.json` as transformers writes it (the vision
//! tower's SigLIP settings, the connector's pixel-shuffle factor, the `<image>` token and the
//! Llama text tower), parsed once into typed settings and checked against each other.

use std::path::Path;

use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::llama::LlamaConfig;

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    image_token_id: u32,
    #[serde(default = "default_scale_factor")]
    scale_factor: usize,
    vision_config: HfVisionConfig,
    text_config: serde_json::Value,
}

fn default_scale_factor() -> usize {
    2
}

#[derive(Deserialize)]
struct HfVisionConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    image_size: usize,
    patch_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default = "default_channels")]
    num_channels: usize,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_channels() -> usize {
    3
}

/// The SigLIP vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f32,
}

impl VisionConfig {
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn num_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Inputs of the patch embedding: 3 channels of a patch.
    pub fn patch_inputs(&self) -> usize {
        3 * self.patch_size * self.patch_size
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3Config {
    pub vision: VisionConfig,
    pub text: LlamaConfig,
    pub image_token_id: u32,
    pub scale_factor: usize,
}

impl Idefics3Config {
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let hf: HfConfig = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        if let Some(kind) = hf
            .model_type
            .as_deref()
            .filter(|t| !["idefics3", "smolvlm"].contains(t))
        {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.into(),
                expected: "idefics3",
                found: kind.into(),
            });
        }
        let v = &hf.vision_config;
        if let Some(act) = v.hidden_act.as_deref().filter(|a| *a != "gelu_pytorch_tanh") {
            return Err(err(format!(
                "vision hidden_act must be \"gelu_pytorch_tanh\", found {act:?}"
            )));
        }
        if v.num_channels != 3 {
            return Err(err(format!("vision num_channels must be 3, found {}", v.num_channels)));
        }
        let vision = VisionConfig {
            hidden_size: v.hidden_size,
            intermediate_size: v.intermediate_size,
            num_layers: v.num_hidden_layers,
            num_heads: v.num_attention_heads,
            image_size: v.image_size,
            patch_size: v.patch_size,
            layer_norm_eps: v.layer_norm_eps as f32,
        };
        let text = LlamaConfig::from_hf_json(&hf.text_config.to_string(), path)?;
        let config = Self {
            vision,
            text,
            image_token_id: hf.image_token_id,
            scale_factor: hf.scale_factor,
        };
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let v = &self.vision;
        if v.patch_size == 0 || v.image_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "vision image_size {} must be a positive multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if v.num_heads == 0 || !v.hidden_size.is_multiple_of(v.num_heads) {
            return Err(format!(
                "vision hidden_size {} must be a multiple of num_attention_heads {}",
                v.hidden_size, v.num_heads
            ));
        }
        if self.scale_factor == 0 || !v.patches_per_side().is_multiple_of(self.scale_factor) {
            return Err(format!(
                "scale_factor {} must divide the {} patches per side",
                self.scale_factor,
                v.patches_per_side()
            ));
        }
        if self.image_token_id as usize >= self.text.vocab_size {
            return Err(format!(
                "image_token_id {} is outside the text vocabulary of {}",
                self.image_token_id, self.text.vocab_size
            ));
        }
        Ok(())
    }

    /// Image features per tile after the pixel shuffle: the `<image>` tokens a tile takes.
    pub fn image_seq_len(&self) -> usize {
        self.vision.num_patches() / (self.scale_factor * self.scale_factor)
    }

    /// Inputs of the connector's projection.
    pub fn connector_inputs(&self) -> usize {
        self.vision.hidden_size * self.scale_factor * self.scale_factor
    }
}
