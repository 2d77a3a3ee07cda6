//! A flow-matching VLA (lerobot's SmolVLA or pi0) as the cerebellum's policy: each chunk is computed
//! from the newest frame's views (the policy's own vision tower, on the VLA's partition), the
//! driven joints' state and the subtask, and streams to the motion decoder as values in the
//! robot's units, its first step at the time the frame was captured. The robot's cameras map
//! in order onto the policy's image features; joints map one to one onto its state and action
//! dimensions. When the policy's `rtc_config` turns real-time chunking on, each chunk is
//! guided toward what is left of the previous one.

use std::path::Path;

use brainstem_models::image::planar::PlanarImage;
use std::time::{Duration, Instant};

pub use brainstem_models::flow::is_flow_policy;
use brainstem_models::flow::{FlowVla, PolicySpec};
use brainstem_models::smolvla::{ChunkPrefix, HubCache, Noise, Observation, RealTimeChunking};
use brainstem_models::LoadOptions;

use crate::clock::Nanos;
use crate::config::RuntimeConfig;
use crate::error::{Result, RuntimeError};
use crate::kernels::DeviceBackend;
use crate::pipeline::stages::{ActRequest, ActionOutput, ActionPolicy};

/// A flow-matching VLA as the cerebellum's policy.
pub struct FlowPolicy {
    policy: FlowVla<DeviceBackend>,
    spec: PolicySpec,
    /// The policy's camera names, in the order the robot's cameras map onto them.
    cameras: Vec<String>,
    seed: u64,
    /// Real-time chunking, when the policy's `rtc_config` turns it on.
    rtc: Option<RealTimeChunking>,
    /// Action steps per second, to count the steps executed between two observations.
    rate_hz: f64,
    /// The previous chunk (normalized, `[chunk, max_action_dim]`), its observation's capture
    /// time, and how long computing it took.
    previous: Option<(Vec<f32>, Nanos, Duration)>,
}

impl FlowPolicy {
    /// Loads the policy in `dir` on `backend` and checks it against the configuration: the
    /// driven joints are its state and action dimensions, the chunk is its chunk, and the
    /// robot has no more cameras than it takes.
    pub fn load(
        config: &RuntimeConfig,
        dir: &Path,
        backend: std::sync::Arc<DeviceBackend>,
        options: LoadOptions,
    ) -> Result<Self> {
        let language = config.models.vla_backbone.as_deref();
        let mut policy = FlowVla::load(backend, dir, language, &HubCache::from_env(), options)?;
        if let Some(steps) = config.policy.denoising_steps {
            policy.set_denoising_steps(steps)?;
        }
        let cfg = policy.spec();
        check_fit(
            config,
            dir,
            (cfg.state_dim, cfg.action_dim),
            cfg.chunk_size,
            "makes chunks of",
        )?;
        let takes: Vec<&str> = cfg.cameras.iter().map(String::as_str).collect();
        let cameras = camera_names(config, &takes, dir)?;
        let rtc = match &cfg.rtc {
            Some(rtc) => RealTimeChunking::from_config(rtc).map_err(|m| RuntimeError::config("models.vla", m))?,
            None => None,
        };
        Ok(Self {
            policy,
            spec: cfg,
            cameras,
            seed: config.policy.seed,
            rtc,
            rate_hz: config.policy.rate_hz,
            previous: None,
        })
    }
}

impl FlowPolicy {
    /// What is left of the previous chunk at an observation captured at `captured` (the
    /// steps not yet due), and the steps the robot will execute while this chunk is computed
    /// (the previous chunk's computing time at the policy's rate); `None` when nothing is
    /// left.
    fn left_over(&self, captured: Nanos) -> Option<(Vec<f32>, usize)> {
        let (chunk, previous, took) = self.previous.as_ref()?;
        let width = self.spec.max_action_dim;
        let step_ns = 1e9 / self.rate_hz;
        let done = (captured.saturating_sub(*previous) as f64 / step_ns).floor() as usize;
        let rest = chunk.get(done * width..).filter(|rest| !rest.is_empty())?;
        let delay = (took.as_secs_f64() * self.rate_hz).ceil() as usize;
        Some((rest.to_vec(), delay))
    }
}

/// The driven joints are the policy's state and action dimensions (`dims`), and the chunk is
/// the `chunk_steps` it gives (`gives` says how, in the error).
pub(crate) fn check_fit(
    config: &RuntimeConfig,
    dir: &Path,
    (state_dim, action_dim): (usize, usize),
    chunk_steps: usize,
    gives: &str,
) -> Result<()> {
    let joints = config.policy.joints.len();
    if (state_dim, action_dim) != (joints, joints) {
        return Err(RuntimeError::config(
            "policy.joints",
            format!(
                "{} drives {joints} joints, but its state has {state_dim} values and its action {action_dim}",
                dir.display(),
            ),
        ));
    }
    if config.policy.chunk_steps != chunk_steps {
        return Err(RuntimeError::config(
            "policy.chunk_steps",
            format!(
                "is {}, but {} {gives} {chunk_steps}",
                config.policy.chunk_steps,
                dir.display(),
            ),
        ));
    }
    Ok(())
}

/// The policy's name for each of the robot's cameras: as `policy.cameras` names them, else the
/// policy's own in order.
pub(crate) fn camera_names(config: &RuntimeConfig, takes: &[&str], dir: &Path) -> Result<Vec<String>> {
    let names: Vec<String> = match &config.policy.cameras {
        Some(names) => names.clone(),
        None => takes.iter().take(config.cameras).map(|n| n.to_string()).collect(),
    };
    let unknown = names.iter().find(|n| !takes.contains(&n.as_str()));
    if names.len() != config.cameras || unknown.is_some() {
        return Err(RuntimeError::config(
            "policy.cameras",
            format!(
                "the robot's {} cameras are {names:?}, but {} takes {}",
                config.cameras,
                dir.display(),
                takes.join(", ")
            ),
        ));
    }
    Ok(names)
}

/// A lerobot policy's observation of a request: the views under the policy's camera names
/// (`cameras`, in the robot's camera order), the state and the subtask.
pub(crate) fn observation(cameras: &[String], request: &ActRequest<'_>) -> Observation {
    Observation {
        images: cameras
            .iter()
            .zip(request.views)
            .map(|(name, view)| (name.clone(), PlanarImage::from_rgb(view)))
            .collect(),
        state: request.state.iter().map(|&v| v as f32).collect(),
        task: request.subtask.to_string(),
    }
}

impl ActionPolicy for FlowPolicy {
    fn act(&mut self, request: &ActRequest<'_>, emit: &mut dyn FnMut(ActionOutput)) -> Result<()> {
        let observation = observation(&self.cameras, request);
        let noise = Noise::Seed(self.seed.wrapping_add(request.chunk_id));
        let started = Instant::now();
        let left_over = self.left_over(request.captured);
        let guidance = match (&self.rtc, &left_over) {
            (Some(rtc), Some((values, delay))) => Some((
                rtc,
                ChunkPrefix {
                    left_over: values,
                    dims: self.spec.max_action_dim,
                    inference_delay: *delay,
                },
            )),
            _ => None,
        };
        let guidance = guidance.as_ref().map(|(rtc, prefix)| (*rtc, prefix));
        let (chunk, trace) = self.policy.predict_guided(&observation, &noise, guidance)?;
        self.previous = Some((trace.normalized, request.captured, started.elapsed()));
        chunk.values.iter().for_each(|&v| emit(ActionOutput::Value(v)));
        Ok(())
    }

    fn starts_at_observation(&self) -> bool {
        true
    }
}
