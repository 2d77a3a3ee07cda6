//! The runtime's configuration file (TOML, unknown keys refused, every error naming the key):
//! which robot, which checkpoints play which role, the policy's action scheme and chunk
//! shape, the brain's rate and skills, and the compute partitions with the stage placement.
//!
//! ```toml
//! cameras = 2                   # a view from each in every frame and prompt (default 1)
//!
//! [robot]
//! builtin = "humanoid"          # or: file = "my_robot.toml"
//!
//! [models]
//! vlm = "weights/smolvlm"       # VLM and VLT; its vision tower encodes every frame
//! vla = "weights/my-vla"        # optional, defaults to vlm; takes the same image embedding,
//!                               # or a lerobot SmolVLA folder (chunks of values)
//! vla_backbone = "weights/smolvlm2"  # optional: a SmolVLA's backbone, if not in the HF cache
//! quantize = "q8_0"             # optional: quantize float matrices while loading
//!
//! [policy]
//! joints = ["left_shoulder_pitch", "left_elbow"]
//! rate_hz = 50.0
//! chunk_steps = 10
//! actions = "bins"              # or "fast", with fast_tokenizer and end_token
//!
//! [brain]
//! rate_hz = 1.0
//! skills = ["pick", "place"]
//!
//! [compute]                     # optional: three partitions by default
//! ...
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::compute::partition::{available_cores, ComputeConfig};
use crate::error::{Result, RuntimeError};
use crate::kernels::Device;
use crate::robot::RobotDescription;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub robot: RobotSource,
    pub models: ModelsConfig,
    pub policy: PolicyConfig,
    #[serde(default)]
    pub brain: BrainConfig,
    /// Cameras on the robot (default 1): a frame has a view from each, in this order.
    #[serde(default = "one_camera")]
    pub cameras: usize,
    #[serde(default)]
    pub compute: Option<ComputeConfig>,
    /// One device for every partition, over what the compute table says (the command
    /// line's `--device`); never from TOML, where each partition names its own.
    #[serde(skip)]
    pub device: Option<Device>,
}

fn one_camera() -> usize {
    1
}

/// Where the robot description comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotSource {
    #[serde(default)]
    pub builtin: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A description made in code (an evaluation's robot from a dataset); never from TOML.
    #[serde(skip)]
    pub description: Option<RobotDescription>,
}

impl Default for RobotSource {
    fn default() -> Self {
        Self {
            builtin: Some("humanoid".into()),
            file: None,
            description: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub vlm: PathBuf,
    #[serde(default)]
    pub vla: Option<PathBuf>,
    /// A lerobot VLA's backbone folder (its config.json and tokenizer), when the policy's
    /// `vlm_model_name` is neither a local folder nor in the Hugging Face cache.
    #[serde(default)]
    pub vla_backbone: Option<PathBuf>,
    /// A GGUF block format (`q8_0`, `q4_0`, ...) to quantize float matrices to while loading.
    #[serde(default)]
    pub quantize: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionScheme {
    /// OpenVLA: 256 bins on the last ids of the vocabulary.
    Bins,
    /// FAST tokens below the end of the vocabulary (pi0-FAST).
    Fast,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The joints the policy drives, one action dimension each; its state is theirs too.
    pub joints: Vec<String>,
    /// Action steps per second.
    pub rate_hz: f64,
    pub chunk_steps: usize,
    pub actions: ActionScheme,
    /// For FAST: the directory with the fitted tokenizer.json and processor_config.json.
    #[serde(default)]
    pub fast_tokenizer: Option<PathBuf>,
    /// For FAST: the language-model id that ends a chunk (pi0-FAST's `|`).
    #[serde(default)]
    pub end_token: Option<u32>,
    /// For a policy that names its cameras (a lerobot VLA's image features without
    /// `observation.images.`): the name of each of the robot's cameras, in camera order.
    /// Without it the robot's cameras take the policy's in order.
    #[serde(default)]
    pub cameras: Option<Vec<String>>,
    /// How often a new chunk starts, in milliseconds (default: every half chunk).
    #[serde(default)]
    pub chunk_period_ms: Option<f64>,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    #[serde(default)]
    pub seed: u64,
}

fn default_temperature() -> f32 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrainConfig {
    /// Replans (and answers) per second.
    #[serde(default = "default_brain_rate")]
    pub rate_hz: f64,
    /// The skills a plan may use.
    #[serde(default = "default_skills")]
    pub skills: Vec<String>,
    /// Token budget of a plan.
    #[serde(default = "default_plan_tokens")]
    pub plan_tokens: usize,
    /// Token budget of an answer.
    #[serde(default = "default_answer_tokens")]
    pub answer_tokens: usize,
}

fn default_brain_rate() -> f64 {
    1.0
}

fn default_skills() -> Vec<String> {
    ["reach", "grasp", "lift", "place", "release"]
        .map(String::from)
        .to_vec()
}

fn default_plan_tokens() -> usize {
    64
}

fn default_answer_tokens() -> usize {
    24
}

impl Default for BrainConfig {
    fn default() -> Self {
        Self {
            rate_hz: default_brain_rate(),
            skills: default_skills(),
            plan_tokens: default_plan_tokens(),
            answer_tokens: default_answer_tokens(),
        }
    }
}

impl RuntimeConfig {
    /// Reads a configuration file; relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut config = Self::from_toml(&text).map_err(|e| RuntimeError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| RuntimeError::toml(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.models.vlm);
        self.models.vla.as_mut().map(resolve);
        self.models.vla_backbone.as_mut().map(resolve);
        self.policy.fast_tokenizer.as_mut().map(resolve);
        self.robot.file.as_mut().map(resolve);
    }

    /// The compute configuration, or three partitions over this host's cores; every
    /// partition on [`RuntimeConfig::device`] when one is set.
    pub fn compute(&self) -> ComputeConfig {
        let compute = self
            .compute
            .clone()
            .unwrap_or_else(|| ComputeConfig::three_chips(available_cores()));
        match &self.device {
            Some(device) => compute.on_device(device),
            None => compute,
        }
    }

    pub fn robot(&self) -> Result<RobotDescription> {
        if let Some(robot) = &self.robot.description {
            robot.validate()?;
            return Ok(robot.clone());
        }
        match (&self.robot.builtin, &self.robot.file) {
            (Some(name), None) if name == "humanoid" => Ok(RobotDescription::humanoid()),
            (Some(name), None) => Err(RuntimeError::config(
                "robot.builtin",
                format!("the built-in robot is \"humanoid\", found {name:?}"),
            )),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::ConfigFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                RobotDescription::from_toml(&text)
            }
            _ => Err(RuntimeError::config("robot", "give exactly one of builtin and file")),
        }
    }

    /// The period between chunk starts.
    pub fn chunk_period_ns(&self) -> u64 {
        let ms = self
            .policy
            .chunk_period_ms
            .unwrap_or(500.0 * self.policy.chunk_steps as f64 / self.policy.rate_hz);
        (ms * 1e6).round() as u64
    }

    pub fn validate(&self) -> Result<()> {
        let policy = &self.policy;
        if policy.joints.is_empty() {
            return Err(RuntimeError::config("policy.joints", "the policy drives no joint"));
        }
        if !(policy.rate_hz.is_finite() && policy.rate_hz > 0.0) {
            return Err(RuntimeError::config(
                "policy.rate_hz",
                format!("must be positive, found {}", policy.rate_hz),
            ));
        }
        if policy.chunk_steps == 0 {
            return Err(RuntimeError::config("policy.chunk_steps", "must be at least 1"));
        }
        if let Some(ms) = policy.chunk_period_ms.filter(|ms| !(ms.is_finite() && *ms > 0.0)) {
            return Err(RuntimeError::config(
                "policy.chunk_period_ms",
                format!("must be positive, found {ms}"),
            ));
        }
        if !(policy.temperature.is_finite() && policy.temperature >= 0.0) {
            return Err(RuntimeError::config(
                "policy.temperature",
                format!("must be 0 (greedy) or positive, found {}", policy.temperature),
            ));
        }
        let fast_keys = (policy.fast_tokenizer.is_some(), policy.end_token.is_some());
        match (policy.actions, fast_keys) {
            (ActionScheme::Fast, (true, true)) | (ActionScheme::Bins, (false, false)) => {}
            (ActionScheme::Fast, _) => {
                return Err(RuntimeError::config(
                    "policy.actions",
                    "FAST needs fast_tokenizer and end_token",
                ))
            }
            (ActionScheme::Bins, _) => {
                return Err(RuntimeError::config(
                    "policy.fast_tokenizer",
                    "fast_tokenizer and end_token are for actions = \"fast\"",
                ))
            }
        }
        if !(1..=8).contains(&self.cameras) {
            return Err(RuntimeError::config(
                "cameras",
                format!("must be 1 to 8, found {}", self.cameras),
            ));
        }
        if !(self.brain.rate_hz.is_finite() && self.brain.rate_hz > 0.0) {
            return Err(RuntimeError::config(
                "brain.rate_hz",
                format!("must be positive, found {}", self.brain.rate_hz),
            ));
        }
        if let Some(compute) = &self.compute {
            compute.validate(available_cores())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
        [models]
        vlm = "smolvlm"
        quantize = "q8_0"

        [policy]
        joints = ["left_elbow", "left_wrist_pitch"]
        rate_hz = 50.0
        chunk_steps = 10
        actions = "bins"

        [brain]
        rate_hz = 2.0
    "#;

    #[test]
    fn defaults_fill_what_is_left_out() {
        let config = RuntimeConfig::from_toml(CONFIG).unwrap();
        assert_eq!(config.robot().unwrap().joints.len(), 82);
        assert_eq!(config.chunk_period_ns(), 100_000_000);
        assert_eq!(config.brain.skills.len(), 5);
        assert_eq!(config.compute().partitions.len(), 3);
    }

    #[test]
    fn the_example_configuration_parses() {
        let config = RuntimeConfig::from_toml(include_str!("../examples/smolvlm-256m.toml")).unwrap();
        assert_eq!(config.chunk_period_ns(), 1_000_000_000);
        let compute = config.compute.unwrap();
        assert_eq!(compute.placement.vla, "p2");
        assert_eq!(compute.partitions[2].chip_profile("p2").unwrap().int8_tops, 750.0);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (CONFIG.replace("rate_hz = 50.0", "rate_hz = -1.0"), "policy.rate_hz"),
            (CONFIG.replace("chunk_steps = 10", "chunk_step = 10"), "chunk_step"),
            (CONFIG.replace("\"bins\"", "\"fast\""), "policy.actions"),
            (CONFIG.replace("\"bins\"", "\"binz\""), "binz"),
            (CONFIG.replace("rate_hz = 2.0", "rate_hz = 0.0"), "brain.rate_hz"),
            (CONFIG.replace("[models]", "cameras = 0\n[models]"), "cameras"),
            (
                CONFIG.replace("[models]", "[robot]\nbuiltin = \"dog\"\n[models]"),
                "robot.builtin",
            ),
        ];
        for (text, key) in cases {
            let error = match RuntimeConfig::from_toml(&text) {
                Ok(config) => config.robot().unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(error.contains(key), "{key}: {error}");
        }
    }
}
