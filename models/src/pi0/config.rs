//! A lerobot pi0 or pi0.5 `config.json` (`"type": "pi0"` or `"pi05"`, as `policy.save_pretrained`
//! writes it; both have the same keys): the policy's features in their saved order, the chunk
//! and denoising settings, the image size and the Gemma variants it names. Settings brainstem
//! does not compute are refused by name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::smolvla::config::{
    typed_config, CameraFeature, FlowSettings, NormalizationMode, PolicyFeatures, ProcessorExpectations, RtcConfig,
};
use crate::weights::read_text;

/// Which of Physical Intelligence's flow-matching policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pi0Kind {
    /// pi0: the state as a row of the suffix, the time step joined with each action.
    Pi0,
    /// pi0.5: the state as bins in the prompt, the time step conditioning the expert's norms.
    Pi05,
}

impl Pi0Kind {
    /// lerobot's name for it, the config's `"type"`.
    pub fn name(self) -> &'static str {
        match self {
            Pi0Kind::Pi0 => "pi0",
            Pi0Kind::Pi05 => "pi05",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pi0Config {
    pub kind: Pi0Kind,
    /// Image features in the order the policy takes them.
    pub cameras: Vec<CameraFeature>,
    pub state_dim: usize,
    pub action_dim: usize,
    pub state_normalization: NormalizationMode,
    pub action_normalization: NormalizationMode,
    pub chunk_size: usize,
    pub n_action_steps: usize,
    pub max_state_dim: usize,
    pub max_action_dim: usize,
    /// `num_inference_steps`: Euler steps from noise to chunk.
    pub num_steps: usize,
    /// The side every frame is resized (with padding) to: `image_resolution`, square.
    pub image_side: usize,
    pub tokenizer_max_length: usize,
    pub min_period: f64,
    pub max_period: f64,
    /// The Gemma variants the config names (the shapes come from the checkpoint's tensors).
    pub paligemma_variant: String,
    pub action_expert_variant: String,
    pub rtc: Option<RtcConfig>,
}

#[derive(Deserialize)]
struct Raw {
    input_features: serde_json::Map<String, Value>,
    output_features: serde_json::Map<String, Value>,
    #[serde(default = "one")]
    n_obs_steps: usize,
    chunk_size: usize,
    n_action_steps: usize,
    max_state_dim: usize,
    max_action_dim: usize,
    num_inference_steps: usize,
    min_period: f64,
    max_period: f64,
    image_resolution: (usize, usize),
    #[serde(default)]
    empty_cameras: usize,
    tokenizer_max_length: usize,
    paligemma_variant: String,
    action_expert_variant: String,
    #[serde(default)]
    use_relative_actions: bool,
    normalization_mapping: BTreeMap<String, NormalizationMode>,
    rtc_config: Option<RtcConfig>,
}

pub(crate) fn one() -> usize {
    1
}

/// The settings every PaliGemma policy (pi0, pi0.5, pi0-FAST) refuses alike: more than one
/// observation, relative actions, a frame that is not square. Returns the frame's side.
pub(crate) fn paligemma_settings(
    n_obs_steps: usize,
    use_relative_actions: bool,
    (width, height): (usize, usize),
) -> std::result::Result<usize, String> {
    if n_obs_steps != 1 {
        return Err(format!(
            "n_obs_steps is {n_obs_steps}; the policy takes one observation"
        ));
    }
    if use_relative_actions {
        return Err("use_relative_actions (actions relative to the state) is not supported".into());
    }
    if width != height || width == 0 {
        return Err(format!(
            "image_resolution is {width}x{height}; PaliGemma takes a square image"
        ));
    }
    Ok(width)
}

impl Pi0Config {
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
        let (value, kind) = typed_config(
            text,
            path,
            &["pi0", "pi05"],
            "a lerobot policy of type \"pi0\" or \"pi05\"",
        )?;
        let kind = if kind == "pi0" { Pi0Kind::Pi0 } else { Pi0Kind::Pi05 };
        let raw: Raw = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        Self::from_raw(raw, kind).map_err(err)
    }

    fn from_raw(raw: Raw, kind: Pi0Kind) -> std::result::Result<Self, String> {
        let width = paligemma_settings(raw.n_obs_steps, raw.use_relative_actions, raw.image_resolution)?;
        let features = PolicyFeatures::parse(
            &raw.input_features,
            &raw.output_features,
            raw.empty_cameras,
            &raw.normalization_mapping,
        )?;
        let cfg = Self {
            kind,
            cameras: features.cameras,
            state_dim: features.state_dim,
            action_dim: features.action_dim,
            state_normalization: features.state_normalization,
            action_normalization: features.action_normalization,
            chunk_size: raw.chunk_size,
            n_action_steps: raw.n_action_steps,
            max_state_dim: raw.max_state_dim,
            max_action_dim: raw.max_action_dim,
            num_steps: raw.num_inference_steps,
            image_side: width,
            tokenizer_max_length: raw.tokenizer_max_length,
            min_period: raw.min_period,
            max_period: raw.max_period,
            paligemma_variant: raw.paligemma_variant,
            action_expert_variant: raw.action_expert_variant,
            rtc: raw.rtc_config,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        FlowSettings {
            cameras: self.cameras.len(),
            state: (self.state_dim, self.max_state_dim),
            action: (self.action_dim, self.max_action_dim),
            chunk_size: self.chunk_size,
            n_action_steps: self.n_action_steps,
            num_steps: self.num_steps,
            periods: (self.min_period, self.max_period),
        }
        .check()
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
