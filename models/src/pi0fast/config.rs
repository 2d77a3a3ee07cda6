//! A lerobot pi0-FAST `config.json` (`"type": "pi0_fast"`, as `policy.save_pretrained` writes
//! it): the policy's features in their saved order, the chunk, the image size, the two
//! tokenizers it names and how it decodes. Settings brainstem does not compute are refused by
//! name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::pi0::config::paligemma_settings;
use crate::smolvla::config::{typed_config, CameraFeature, NormalizationMode, PolicyFeatures, ProcessorExpectations};
use crate::weights::read_text;

/// lerobot's name for the policy type, the config's `"type"`.
pub const PI0_FAST_TYPE: &str = "pi0_fast";

#[derive(Clone, Debug, PartialEq)]
pub struct Pi0FastConfig {
    /// Image features in the order the policy takes them.
    pub cameras: Vec<CameraFeature>,
    pub state_dim: usize,
    pub action_dim: usize,
    pub state_normalization: NormalizationMode,
    pub action_normalization: NormalizationMode,
    pub chunk_size: usize,
    /// The steps a chunk decodes to (lerobot decodes `n_action_steps`, not `chunk_size`).
    pub n_action_steps: usize,
    /// The side every frame is resized (with padding) to: `image_resolution`, square.
    pub image_side: usize,
    pub tokenizer_max_length: usize,
    /// The text tokenizer (PaliGemma's) and the FAST action tokenizer, by hub name.
    pub text_tokenizer_name: String,
    pub action_tokenizer_name: String,
    /// 0 decodes greedily; above, tokens are drawn from the softmax at this temperature.
    pub temperature: f32,
    /// The most tokens one chunk samples.
    pub max_decoding_steps: usize,
    /// The ids between the end of the vocabulary and the FAST ids.
    pub fast_skip_tokens: u32,
    /// Whether the sampled tokens must begin with `Action:`.
    pub validate_action_token_prefix: bool,
}

#[derive(Deserialize)]
struct Raw {
    input_features: serde_json::Map<String, Value>,
    output_features: serde_json::Map<String, Value>,
    #[serde(default = "crate::pi0::config::one")]
    n_obs_steps: usize,
    chunk_size: usize,
    n_action_steps: usize,
    max_state_dim: usize,
    max_action_dim: usize,
    image_resolution: (usize, usize),
    #[serde(default)]
    empty_cameras: usize,
    tokenizer_max_length: usize,
    text_tokenizer_name: String,
    action_tokenizer_name: String,
    temperature: f32,
    max_decoding_steps: usize,
    fast_skip_tokens: u32,
    validate_action_token_prefix: bool,
    #[serde(default)]
    use_relative_actions: bool,
    normalization_mapping: BTreeMap<String, NormalizationMode>,
}

impl Pi0FastConfig {
    /// Reads the `config.json` of a policy folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        Self::from_json(&read_text(&path)?, &path)
    }

    /// Parses a policy's `config.json`; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let (value, _) = typed_config(text, path, &[PI0_FAST_TYPE], "a lerobot policy of type \"pi0_fast\"")?;
        let raw: Raw = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        Self::from_raw(raw).map_err(err)
    }

    fn from_raw(raw: Raw) -> std::result::Result<Self, String> {
        let width = paligemma_settings(raw.n_obs_steps, raw.use_relative_actions, raw.image_resolution)?;
        let features = PolicyFeatures::parse(
            &raw.input_features,
            &raw.output_features,
            raw.empty_cameras,
            &raw.normalization_mapping,
        )?;
        check_sizes(&features, &raw)?;
        Ok(Self {
            cameras: features.cameras,
            state_dim: features.state_dim,
            action_dim: features.action_dim,
            state_normalization: features.state_normalization,
            action_normalization: features.action_normalization,
            chunk_size: raw.chunk_size,
            n_action_steps: raw.n_action_steps,
            image_side: width,
            tokenizer_max_length: raw.tokenizer_max_length,
            text_tokenizer_name: raw.text_tokenizer_name,
            action_tokenizer_name: raw.action_tokenizer_name,
            temperature: raw.temperature,
            max_decoding_steps: raw.max_decoding_steps,
            fast_skip_tokens: raw.fast_skip_tokens,
            validate_action_token_prefix: raw.validate_action_token_prefix,
        })
    }

    /// The camera names the policy takes, in order.
    pub fn camera_names(&self) -> Vec<&str> {
        self.cameras.iter().map(CameraFeature::camera).collect()
    }

    /// What the processor files must agree with.
    pub fn processor_expectations(&self) -> ProcessorExpectations {
        ProcessorExpectations {
            state_dim: self.state_dim,
            action_dim: self.action_dim,
            state_normalization: self.state_normalization,
            action_normalization: self.action_normalization,
            tokenizer_max_length: self.tokenizer_max_length,
        }
    }
}

/// A camera at least; the state and action within their padded sizes; a chunk, its executed
/// steps within it; a decoding budget; a temperature that is a temperature.
fn check_sizes(features: &PolicyFeatures, raw: &Raw) -> std::result::Result<(), String> {
    if features.cameras.is_empty() {
        return Err("the policy takes no image feature".into());
    }
    for (what, dim, max) in [
        ("state", features.state_dim, raw.max_state_dim),
        ("action", features.action_dim, raw.max_action_dim),
    ] {
        if dim > max {
            return Err(format!("the {what} has {dim} values, more than max_{what}_dim {max}"));
        }
    }
    if raw.n_action_steps == 0 || raw.n_action_steps > raw.chunk_size {
        return Err(format!(
            "n_action_steps {} must be between 1 and chunk_size {}",
            raw.n_action_steps, raw.chunk_size
        ));
    }
    if raw.max_decoding_steps == 0 {
        return Err("max_decoding_steps is 0: a chunk would sample no token".into());
    }
    if !(raw.temperature.is_finite() && raw.temperature >= 0.0) {
        return Err(format!("temperature {} is not a finite value >= 0", raw.temperature));
    }
    Ok(())
}
