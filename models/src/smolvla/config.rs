//! A lerobot SmolVLA `config.json` (`"type": "smolvla"`, as `policy.save_pretrained` writes
//! it): the policy's features in their saved order, the chunk and denoising settings, the
//! backbone's name and the expert's shape. Settings brainstem does not implement are refused
//! by name rather than ignored.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::weights::read_text;

/// An image the policy takes: its feature name and the `[channels, height, width]` it was
/// trained with (informative: any size is resized with padding).
#[derive(Clone, Debug, PartialEq)]
pub struct CameraFeature {
    /// The feature's full name, `observation.images.<camera>`.
    pub key: String,
    pub shape: Vec<usize>,
}

impl CameraFeature {
    /// The camera's name: the feature without `observation.images.`.
    pub fn camera(&self) -> &str {
        self.key.strip_prefix(IMAGE_PREFIX).unwrap_or(&self.key)
    }
}

/// Where image features' names start.
pub const IMAGE_PREFIX: &str = "observation.images.";
/// The state feature's name.
pub const STATE_KEY: &str = "observation.state";
/// The action feature's name.
pub const ACTION_KEY: &str = "action";

/// How the expert's layers that do not self-attend see the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMode {
    /// Every expert layer attends over the prefix's keys and values and its own.
    SelfAttention,
    /// Layers that do not self-attend project the prefix's keys and values with their own
    /// `k_proj` and `v_proj` and attend over those alone.
    CrossAttention,
}

/// How a lerobot processor scales one kind of feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NormalizationMode {
    Identity,
    MeanStd,
    MinMax,
    Quantiles,
    Quantile10,
}

/// lerobot's real-time chunking settings (`rtc_config`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RtcConfig {
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default = "default_execution_horizon")]
    pub execution_horizon: usize,
    #[serde(default = "default_max_guidance_weight")]
    pub max_guidance_weight: f32,
    #[serde(default = "default_schedule")]
    pub prefix_attention_schedule: String,
}

fn enabled() -> bool {
    true
}
fn default_execution_horizon() -> usize {
    10
}
fn default_max_guidance_weight() -> f32 {
    10.0
}
fn default_schedule() -> String {
    "LINEAR".into()
}

#[derive(Clone, Debug, PartialEq)]
pub struct SmolVlaConfig {
    /// Image features in the order the policy takes them.
    pub cameras: Vec<CameraFeature>,
    pub state_dim: usize,
    pub action_dim: usize,
    pub chunk_size: usize,
    pub n_action_steps: usize,
    pub max_state_dim: usize,
    pub max_action_dim: usize,
    /// `resize_imgs_with_padding`: (width, height).
    pub resize_with_padding: Option<(usize, usize)>,
    pub empty_cameras: usize,
    pub tokenizer_max_length: usize,
    pub num_steps: usize,
    pub vlm_model_name: String,
    pub add_image_special_tokens: bool,
    pub attention_mode: AttentionMode,
    /// `num_expert_layers`; 0 or less gives the expert one layer per VLM layer.
    pub num_expert_layers: i64,
    /// `num_vlm_layers`; 0 or less keeps every text layer of the backbone.
    pub num_vlm_layers: i64,
    pub self_attn_every_n_layers: i64,
    pub expert_width_multiplier: f64,
    pub min_period: f64,
    pub max_period: f64,
    pub state_normalization: NormalizationMode,
    pub action_normalization: NormalizationMode,
    pub rtc: Option<RtcConfig>,
}

#[derive(Deserialize)]
struct Feature {
    #[serde(rename = "type")]
    kind: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Raw {
    input_features: serde_json::Map<String, Value>,
    output_features: serde_json::Map<String, Value>,
    chunk_size: usize,
    n_action_steps: usize,
    #[serde(default = "default_n_obs_steps")]
    n_obs_steps: usize,
    max_state_dim: usize,
    max_action_dim: usize,
    resize_imgs_with_padding: Option<(usize, usize)>,
    #[serde(default)]
    empty_cameras: usize,
    #[serde(default)]
    adapt_to_pi_aloha: bool,
    #[serde(default)]
    use_delta_joint_actions_aloha: bool,
    tokenizer_max_length: usize,
    num_steps: usize,
    #[serde(default = "yes")]
    use_cache: bool,
    vlm_model_name: String,
    #[serde(default)]
    add_image_special_tokens: bool,
    attention_mode: String,
    num_expert_layers: i64,
    num_vlm_layers: i64,
    self_attn_every_n_layers: i64,
    expert_width_multiplier: f64,
    min_period: f64,
    max_period: f64,
    normalization_mapping: std::collections::BTreeMap<String, NormalizationMode>,
    rtc_config: Option<RtcConfig>,
}

fn default_n_obs_steps() -> usize {
    1
}
fn yes() -> bool {
    true
}

impl SmolVlaConfig {
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
        let (value, _) = typed_config(text, path, &["smolvla"], "a lerobot policy of type \"smolvla\"")?;
        let raw: Raw = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        let cfg = Self::from_raw(raw).map_err(err)?;
        cfg.validate().map_err(|m| ModelError::Config {
            path: path.to_path_buf(),
            message: m,
        })?;
        Ok(cfg)
    }

    fn from_raw(raw: Raw) -> std::result::Result<Self, String> {
        refuse_unported(&raw)?;
        let features = PolicyFeatures::parse(
            &raw.input_features,
            &raw.output_features,
            raw.empty_cameras,
            &raw.normalization_mapping,
        )?;
        Ok(Self {
            cameras: features.cameras,
            state_dim: features.state_dim,
            action_dim: features.action_dim,
            chunk_size: raw.chunk_size,
            n_action_steps: raw.n_action_steps,
            max_state_dim: raw.max_state_dim,
            max_action_dim: raw.max_action_dim,
            resize_with_padding: raw.resize_imgs_with_padding,
            empty_cameras: raw.empty_cameras,
            tokenizer_max_length: raw.tokenizer_max_length,
            num_steps: raw.num_steps,
            vlm_model_name: raw.vlm_model_name,
            add_image_special_tokens: raw.add_image_special_tokens,
            attention_mode: if raw.attention_mode.contains("cross") {
                AttentionMode::CrossAttention
            } else {
                AttentionMode::SelfAttention
            },
            num_expert_layers: raw.num_expert_layers,
            num_vlm_layers: raw.num_vlm_layers,
            self_attn_every_n_layers: raw.self_attn_every_n_layers,
            expert_width_multiplier: raw.expert_width_multiplier,
            min_period: raw.min_period,
            max_period: raw.max_period,
            state_normalization: features.state_normalization,
            action_normalization: features.action_normalization,
            rtc: raw.rtc_config,
        })
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
        .check()?;
        if !(self.expert_width_multiplier > 0.0 && self.expert_width_multiplier <= 4.0) {
            return Err(format!(
                "expert_width_multiplier {} is outside (0, 4]",
                self.expert_width_multiplier
            ));
        }
        Ok(())
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

/// The settings every lerobot flow-matching config has, for the checks they share.
pub(crate) struct FlowSettings {
    pub cameras: usize,
    /// (state_dim, max_state_dim).
    pub state: (usize, usize),
    /// (action_dim, max_action_dim).
    pub action: (usize, usize),
    pub chunk_size: usize,
    pub n_action_steps: usize,
    pub num_steps: usize,
    /// (min_period, max_period) of the time embedding.
    pub periods: (f64, f64),
}

impl FlowSettings {
    /// A camera at least, state and action within their padded sizes, a chunk and steps, and
    /// the time embedding's periods in order.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.cameras == 0 {
            return Err("the policy takes no image feature".into());
        }
        for (what, (dim, max)) in [("state", self.state), ("action", self.action)] {
            if dim > max {
                return Err(format!("the {what} has {dim} values, more than max_{what}_dim {max}"));
            }
        }
        if self.chunk_size == 0 || self.num_steps == 0 {
            return Err(format!(
                "chunk_size {} and the denoising steps {} must both be positive",
                self.chunk_size, self.num_steps
            ));
        }
        if self.n_action_steps > self.chunk_size {
            return Err(format!(
                "n_action_steps {} is more than chunk_size {}",
                self.n_action_steps, self.chunk_size
            ));
        }
        let (min_period, max_period) = self.periods;
        if !(min_period > 0.0 && max_period > min_period) {
            return Err(format!(
                "the time embedding needs 0 < min_period < max_period, found {min_period} and {max_period}"
            ));
        }
        Ok(())
    }
}

/// What a policy's config says its processor files hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessorExpectations {
    pub state_dim: usize,
    pub action_dim: usize,
    pub state_normalization: NormalizationMode,
    pub action_normalization: NormalizationMode,
    pub tokenizer_max_length: usize,
}

/// The features every lerobot policy config declares: its cameras in order (with
/// `empty_cameras` placeholders), the state and action sizes, and how each is normalized.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyFeatures {
    pub cameras: Vec<CameraFeature>,
    pub state_dim: usize,
    pub action_dim: usize,
    pub state_normalization: NormalizationMode,
    pub action_normalization: NormalizationMode,
}

impl PolicyFeatures {
    /// Reads `input_features`, `output_features`, `empty_cameras` and `normalization_mapping`.
    pub fn parse(
        inputs: &serde_json::Map<String, Value>,
        outputs: &serde_json::Map<String, Value>,
        empty_cameras: usize,
        normalization: &std::collections::BTreeMap<String, NormalizationMode>,
    ) -> std::result::Result<Self, String> {
        let mut cameras = Vec::new();
        let mut state_dim = None;
        for (key, value) in inputs {
            let feature: Feature =
                serde_json::from_value(value.clone()).map_err(|e| format!("input feature {key}: {e}"))?;
            match feature.kind.as_str() {
                "VISUAL" => cameras.push(CameraFeature {
                    key: key.clone(),
                    shape: feature.shape,
                }),
                "STATE" if key == STATE_KEY => state_dim = Some(single_dim(key, &feature.shape)?),
                kind => {
                    return Err(format!(
                        "input feature {key} of type {kind} is not one this policy takes"
                    ))
                }
            }
        }
        for i in 0..empty_cameras {
            let key = format!("{IMAGE_PREFIX}empty_camera_{i}");
            if !cameras.iter().any(|c| c.key == key) {
                cameras.push(CameraFeature {
                    key,
                    shape: vec![3, 480, 640],
                });
            }
        }
        let action = outputs
            .get(ACTION_KEY)
            .ok_or_else(|| format!("output_features has no {ACTION_KEY:?}"))?;
        let action: Feature =
            serde_json::from_value(action.clone()).map_err(|e| format!("output feature action: {e}"))?;
        let mode = |kind: &str| normalization.get(kind).copied().unwrap_or(NormalizationMode::Identity);
        Ok(Self {
            cameras,
            state_dim: state_dim.ok_or_else(|| format!("input_features has no {STATE_KEY:?} of type STATE"))?,
            action_dim: single_dim(ACTION_KEY, &action.shape)?,
            state_normalization: mode("STATE"),
            action_normalization: mode("ACTION"),
        })
    }
}

fn single_dim(key: &str, shape: &[usize]) -> std::result::Result<usize, String> {
    match shape {
        [dim] if *dim > 0 => Ok(*dim),
        _ => Err(format!(
            "feature {key} has shape {shape:?}, expected one positive dimension"
        )),
    }
}

/// Settings of lerobot's SmolVLA that this port does not compute, refused by name.
fn refuse_unported(raw: &Raw) -> std::result::Result<(), String> {
    if raw.adapt_to_pi_aloha || raw.use_delta_joint_actions_aloha {
        return Err(
            "adapt_to_pi_aloha and use_delta_joint_actions_aloha (the Aloha joint-space conversions) are not supported"
                .into(),
        );
    }
    if raw.n_obs_steps != 1 {
        return Err(format!(
            "n_obs_steps is {}; SmolVLA takes one observation",
            raw.n_obs_steps
        ));
    }
    if !raw.use_cache {
        return Err(
            "use_cache false is not supported: brainstem computes the prefix's keys and values once per chunk".into(),
        );
    }
    if !["cross_attn", "self_attn"].contains(&raw.attention_mode.as_str()) {
        return Err(format!(
            "attention_mode {:?} is not one of \"cross_attn\" and \"self_attn\"",
            raw.attention_mode
        ));
    }
    Ok(())
}

/// A lerobot policy's `config.json` parsed, with its `"type"`, which must be one of `types`
/// (`expected` says which in the error); `path` names the file in errors.
pub(crate) fn typed_config<'a>(
    text: &str,
    path: &Path,
    types: &[&'a str],
    expected: &'static str,
) -> Result<(Value, &'a str)> {
    let value: Value = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let found = value.get("type").and_then(Value::as_str);
    match types.iter().find(|t| Some(**t) == found) {
        Some(kind) => Ok((value, kind)),
        None => Err(ModelError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            expected,
            found: found.unwrap_or("no \"type\"").to_string(),
        }),
    }
}
