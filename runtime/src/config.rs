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
//!                               # or a lerobot SmolVLA, pi0 or pi0.5 folder (chunks of
//!                               # values), or a pi0-FAST folder (FAST tokens, streamed)
//! vla_backbone = "weights/smolvlm2"  # optional: SmolVLA's backbone or pi0's tokenizer folder,
//!                               # if not in the HF cache
//! vla_action_tokenizer = "weights/fast"  # optional: pi0-FAST's action tokenizer folder,
//!                               # if not in the HF cache
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
//! [motion]                      # optional
//! state = "measured"            # start from and track the robot's measured joint state
//!                               # (default), or "commanded": no robot, commands are the state
//! max_state_age_ms = 100        # a joint state this old holds the robot (watchdog)
//! max_frame_age_ms = 1000       # no chunk starts on an older frame; a camera this stale holds
//! tracking_timeout_ms = 100     # a joint past its max_tracking_error this long stops the robot
//! core = 0                      # pin the motion loop (the command line's --motion-core wins)
//! realtime_priority = 50        # SCHED_FIFO priority (the command line's --fifo wins)
//! lock_memory = true            # mlockall, so the loop never waits on a page fault
//!
//! [compute]                     # optional: three partitions by default
//! ...
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cerebellum::feedback::FeedbackLimits;
use crate::cerebellum::motion::LoopOptions;
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
    #[serde(default)]
    pub motion: MotionSettings,
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

/// How the motion decoder follows the robot, and its loop's real-time setup.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionSettings {
    #[serde(default)]
    pub state: StateSource,
    #[serde(default = "default_state_age")]
    pub max_state_age_ms: f64,
    #[serde(default = "default_frame_age")]
    pub max_frame_age_ms: f64,
    #[serde(default = "default_tracking_timeout")]
    pub tracking_timeout_ms: f64,
    #[serde(default)]
    pub core: Option<usize>,
    #[serde(default)]
    pub realtime_priority: Option<i32>,
    #[serde(default)]
    pub lock_memory: bool,
}

/// What the motion decoder takes as the robot's joint state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateSource {
    /// The state the robot reports: the decoder waits for it, starts and restarts from it,
    /// tracks it, and holds the robot when it or the camera goes stale.
    #[default]
    Measured,
    /// No robot reports: the commands are taken as the state (simulation, benchmarks).
    Commanded,
}

fn default_state_age() -> f64 {
    100.0
}

fn default_frame_age() -> f64 {
    1000.0
}

fn default_tracking_timeout() -> f64 {
    100.0
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            state: StateSource::default(),
            max_state_age_ms: default_state_age(),
            max_frame_age_ms: default_frame_age(),
            tracking_timeout_ms: default_tracking_timeout(),
            core: None,
            realtime_priority: None,
            lock_memory: false,
        }
    }
}

impl MotionSettings {
    /// No robot: the commands are the state, and no input is watched.
    pub fn commanded() -> Self {
        Self {
            state: StateSource::Commanded,
            ..Self::default()
        }
    }

    /// The ages and timeout the motion decoder and the policy keep to, when the decoder
    /// follows a measured robot.
    pub fn feedback_limits(&self) -> Option<FeedbackLimits> {
        let ns = |ms: f64| (ms * 1e6).round() as u64;
        (self.state == StateSource::Measured).then(|| FeedbackLimits {
            max_state_age_ns: ns(self.max_state_age_ms),
            max_frame_age_ns: Some(ns(self.max_frame_age_ms)),
            tracking_timeout_ns: ns(self.tracking_timeout_ms),
        })
    }

    /// The motion loop's core, priority and memory locking.
    pub fn loop_options(&self) -> LoopOptions {
        LoopOptions {
            core: self.core,
            realtime_priority: self.realtime_priority,
            lock_memory: self.lock_memory,
            ticks: None,
        }
    }

    fn validate(&self) -> Result<()> {
        for (key, ms) in [
            ("motion.max_state_age_ms", self.max_state_age_ms),
            ("motion.max_frame_age_ms", self.max_frame_age_ms),
            ("motion.tracking_timeout_ms", self.tracking_timeout_ms),
        ] {
            if !(ms.is_finite() && ms > 0.0 && ms <= 3.6e6) {
                return Err(RuntimeError::config(
                    key,
                    format!("must be positive and at most an hour, found {ms}"),
                ));
            }
        }
        if let Some(priority) = self.realtime_priority.filter(|p| !(1..=99).contains(p)) {
            return Err(RuntimeError::config(
                "motion.realtime_priority",
                format!("SCHED_FIFO priorities are 1 to 99, found {priority}"),
            ));
        }
        Ok(())
    }
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
    /// A lerobot VLA's language folder: SmolVLA's backbone (its config.json and tokenizer), or
    /// pi0's tokenizer, when the name the policy gives is neither a local folder nor in the
    /// Hugging Face cache.
    #[serde(default)]
    pub vla_backbone: Option<PathBuf>,
    /// pi0-FAST's FAST action tokenizer folder (`processor_config.json`, `tokenizer.json`),
    /// when the name the policy gives is neither a local folder nor in the Hugging Face cache.
    #[serde(default)]
    pub vla_action_tokenizer: Option<PathBuf>,
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
    /// For a flow-matching VLA: integration steps per chunk, in place of the checkpoint's
    /// own (fewer steps trade accuracy for latency; `brainstem bench` sweeps them).
    #[serde(default)]
    pub denoising_steps: Option<usize>,
    /// What the VLA is told to do: the brain's current subtask (the default), or the
    /// instruction itself, as a policy trained on a dataset's task strings expects.
    #[serde(default)]
    pub task: VlaTask,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    #[serde(default)]
    pub seed: u64,
}

/// The text a VLA chunk is conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VlaTask {
    /// The brain's current subtask (the instruction until the first plan).
    #[default]
    Subtask,
    /// The instruction, whatever the brain plans.
    Instruction,
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

/// The most a configuration or robot file may hold: far more than any real one, and little
/// enough that naming a device file or a huge file cannot exhaust memory.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// A configuration or robot file's text, refused when it is larger than [`MAX_CONFIG_BYTES`].
pub(crate) fn read_config_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let failed = |reason: String| RuntimeError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| failed(e.to_string()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(failed(format!(
            "larger than the {MAX_CONFIG_BYTES} bytes a configuration may hold"
        )));
    }
    Ok(text)
}

impl RuntimeConfig {
    /// Reads a configuration file; relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_config_file(path)?;
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
        self.models.vla_action_tokenizer.as_mut().map(resolve);
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
            (None, Some(path)) => RobotDescription::from_file(path),
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
        self.motion.validate()?;
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
        if policy.denoising_steps == Some(0) {
            return Err(RuntimeError::config("policy.denoising_steps", "must be at least 1"));
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
    fn the_motion_settings_follow_the_measured_robot_unless_told_otherwise() {
        let config = RuntimeConfig::from_toml(CONFIG).unwrap();
        let limits = config.motion.feedback_limits().unwrap();
        assert_eq!(limits.max_state_age_ns, 100_000_000);
        let text = format!(
            "{CONFIG}\n[motion]\nstate = \"commanded\"\ncore = 1\nrealtime_priority = 40\nlock_memory = true\n"
        );
        let config = RuntimeConfig::from_toml(&text).unwrap();
        assert_eq!(config.motion.feedback_limits(), None);
        let options = config.motion.loop_options();
        assert_eq!(
            (options.core, options.realtime_priority, options.lock_memory),
            (Some(1), Some(40), true)
        );
        let command_line = LoopOptions {
            core: Some(0),
            ..LoopOptions::default()
        };
        let merged = command_line.or(&options);
        assert_eq!(
            (merged.core, merged.realtime_priority),
            (Some(0), Some(40)),
            "the command line wins"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (CONFIG.replace("rate_hz = 50.0", "rate_hz = -1.0"), "policy.rate_hz"),
            (CONFIG.replace("chunk_steps = 10", "chunk_step = 10"), "chunk_step"),
            (
                CONFIG.replace("chunk_steps = 10", "chunk_steps = 10\ndenoising_steps = 0"),
                "policy.denoising_steps",
            ),
            (CONFIG.replace("\"bins\"", "\"fast\""), "policy.actions"),
            (CONFIG.replace("\"bins\"", "\"binz\""), "binz"),
            (CONFIG.replace("rate_hz = 2.0", "rate_hz = 0.0"), "brain.rate_hz"),
            (CONFIG.replace("[models]", "cameras = 0\n[models]"), "cameras"),
            (
                CONFIG.replace("[models]", "[robot]\nbuiltin = \"dog\"\n[models]"),
                "robot.builtin",
            ),
            (
                format!("{CONFIG}\n[motion]\nrealtime_priority = 120\n"),
                "motion.realtime_priority",
            ),
            (
                format!("{CONFIG}\n[motion]\nmax_state_age_ms = -5\n"),
                "motion.max_state_age_ms",
            ),
            (format!("{CONFIG}\n[motion]\nstate = \"guessed\"\n"), "guessed"),
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
