//! Any lerobot flow-matching VLA brainstem runs, chosen by the `"type"` its `config.json`
//! gives (`smolvla`, `pi0`, `pi05`), behind one interface: what the runtime, the command line and
//! offline evaluation need to load it, check it against a robot and ask it for chunks.

use std::path::Path;
use std::sync::Arc;

use brainstem_kernels::Backend;
use serde_json::Value;

use super::{ActionChunk, ChunkTrace, Noise, Observation};
use crate::error::{ModelError, Result};
use crate::llama::LoadOptions;
use crate::pi0::{Pi0, Pi0Config};
use crate::pi0fast::{Pi0FastConfig, PI0_FAST_TYPE};
use crate::smolvla::config::RtcConfig;
use crate::smolvla::{ChunkPrefix, HubCache, RealTimeChunking, SmolVla, SmolVlaConfig};
use crate::weights::read_text;

/// The lerobot policy types this module loads.
pub const FLOW_POLICY_TYPES: [&str; 3] = ["smolvla", "pi0", "pi05"];

/// Every lerobot policy type brainstem runs: the flow-matching ones and pi0-FAST.
pub const LEROBOT_POLICY_TYPES: [&str; 4] = ["smolvla", "pi0", "pi05", PI0_FAST_TYPE];

/// The `"type"` of the lerobot policy in `dir`, if its `config.json` reads and names one.
pub fn policy_type(dir: &Path) -> Option<String> {
    let text = read_text(&dir.join("config.json")).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    config.get("type").and_then(Value::as_str).map(str::to_string)
}

/// Whether `dir` holds a lerobot flow-matching policy brainstem runs.
pub fn is_flow_policy(dir: &Path) -> bool {
    policy_type(dir).is_some_and(|t| FLOW_POLICY_TYPES.contains(&t.as_str()))
}

/// Whether `dir` holds any lerobot policy brainstem runs (flow-matching or pi0-FAST).
pub fn is_lerobot_policy(dir: &Path) -> bool {
    policy_type(dir).is_some_and(|t| LEROBOT_POLICY_TYPES.contains(&t.as_str()))
}

/// What a lerobot policy's config says about its inputs and outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySpec {
    /// The policy's type (`smolvla`, `pi0`, `pi05`, `pi0_fast`).
    pub kind: String,
    /// Camera names (image features without `observation.images.`), in the policy's order.
    pub cameras: Vec<String>,
    pub state_dim: usize,
    pub action_dim: usize,
    pub chunk_size: usize,
    pub n_action_steps: usize,
    /// Steps of each chunk the policy gives: a flow-matching policy's whole chunk, the
    /// `n_action_steps` pi0-FAST decodes its tokens to.
    pub chunk_steps: usize,
    pub max_action_dim: usize,
    pub rtc: Option<RtcConfig>,
}

impl PolicySpec {
    /// Reads the spec from the `config.json` in `dir` without loading the weights.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = read_text(&path)?;
        match policy_type(dir).as_deref() {
            Some("pi0" | "pi05") => Ok(Self::of_pi0(&Pi0Config::from_json(&text, &path)?)),
            Some("smolvla") => Ok(Self::of_smolvla(&SmolVlaConfig::from_json(&text, &path)?)),
            Some(PI0_FAST_TYPE) => Ok(Self::of_pi0_fast(&Pi0FastConfig::from_json(&text, &path)?)),
            found => Err(unsupported(
                &path,
                found,
                "a lerobot policy of type \"smolvla\", \"pi0\", \"pi05\" or \"pi0_fast\"",
            )),
        }
    }

    fn of_smolvla(cfg: &SmolVlaConfig) -> Self {
        Self {
            kind: "smolvla".into(),
            cameras: cfg.camera_names().iter().map(|c| c.to_string()).collect(),
            state_dim: cfg.state_dim,
            action_dim: cfg.action_dim,
            chunk_size: cfg.chunk_size,
            n_action_steps: cfg.n_action_steps,
            chunk_steps: cfg.chunk_size,
            max_action_dim: cfg.max_action_dim,
            rtc: cfg.rtc.clone(),
        }
    }

    fn of_pi0(cfg: &Pi0Config) -> Self {
        Self {
            kind: cfg.kind.name().into(),
            cameras: cfg.camera_names().iter().map(|c| c.to_string()).collect(),
            state_dim: cfg.state_dim,
            action_dim: cfg.action_dim,
            chunk_size: cfg.chunk_size,
            n_action_steps: cfg.n_action_steps,
            chunk_steps: cfg.chunk_size,
            max_action_dim: cfg.max_action_dim,
            rtc: cfg.rtc.clone(),
        }
    }
}

impl PolicySpec {
    fn of_pi0_fast(cfg: &Pi0FastConfig) -> Self {
        Self {
            kind: PI0_FAST_TYPE.into(),
            cameras: cfg.camera_names().iter().map(|c| c.to_string()).collect(),
            state_dim: cfg.state_dim,
            action_dim: cfg.action_dim,
            chunk_size: cfg.chunk_size,
            n_action_steps: cfg.n_action_steps,
            chunk_steps: cfg.n_action_steps,
            max_action_dim: cfg.action_dim,
            rtc: None,
        }
    }
}

fn unsupported(path: &Path, found: Option<&str>, expected: &'static str) -> ModelError {
    ModelError::UnsupportedArchitecture {
        path: path.to_path_buf(),
        expected,
        found: found.unwrap_or("no \"type\"").to_string(),
    }
}

/// A loaded flow-matching VLA.
pub enum FlowVla<B: Backend> {
    SmolVla(SmolVla<B>),
    Pi0(Pi0<B>),
}

impl<B: Backend> FlowVla<B> {
    /// Loads the policy in `dir` by its type. `language` is SmolVLA's backbone folder or pi0's
    /// tokenizer folder, when neither is where the policy's name finds it in `cache`.
    pub fn load(
        backend: Arc<B>,
        dir: &Path,
        language: Option<&Path>,
        cache: &HubCache,
        options: LoadOptions,
    ) -> Result<Self> {
        match policy_type(dir).as_deref() {
            Some("pi0" | "pi05") => Ok(Self::Pi0(Pi0::load(backend, dir, language, cache, options)?)),
            Some("smolvla") => Ok(Self::SmolVla(SmolVla::load(backend, dir, language, cache, options)?)),
            found => Err(unsupported(
                &dir.join("config.json"),
                found,
                "a lerobot flow-matching policy of type \"smolvla\", \"pi0\" or \"pi05\"",
            )),
        }
    }

    /// Integrates each chunk in `steps` Euler steps instead of the checkpoint's own number.
    pub fn set_denoising_steps(&mut self, steps: usize) -> Result<()> {
        if steps == 0 {
            return Err(ModelError::Generation(
                "a chunk needs at least one denoising step".into(),
            ));
        }
        match self {
            Self::SmolVla(p) => p.set_num_steps(steps),
            Self::Pi0(p) => p.set_num_steps(steps),
        }
        Ok(())
    }

    pub fn spec(&self) -> PolicySpec {
        match self {
            Self::SmolVla(p) => PolicySpec::of_smolvla(p.config()),
            Self::Pi0(p) => PolicySpec::of_pi0(p.config()),
        }
    }

    /// The chunk for one observation.
    pub fn predict(&self, obs: &Observation, noise: &Noise) -> Result<ActionChunk> {
        self.predict_guided(obs, noise, None).map(|(chunk, _)| chunk)
    }

    /// The chunk for one observation with its trace, guided by real-time chunking when
    /// `guidance` is given.
    pub fn predict_guided(
        &self,
        obs: &Observation,
        noise: &Noise,
        guidance: Option<(&RealTimeChunking, &ChunkPrefix)>,
    ) -> Result<(ActionChunk, ChunkTrace)> {
        match self {
            Self::SmolVla(p) => p.predict_guided(obs, noise, guidance),
            Self::Pi0(p) => p.predict_guided(obs, noise, guidance),
        }
    }
}
