//! Offline evaluation on recorded episodes: each episode of a LeRobotDataset replayed
//! through exactly the runtime the robot uses (the same models, quantization, partitions,
//! chip timing and motion decoder, on the virtual clock), its frames and joint states pushed
//! at their recorded timestamps, and the motion decoder's commands compared with the
//! recorded actions ([`metrics`], [`report`]).
//!
//! Frame `i`'s views and state are on the board from its timestamp until the next frame's;
//! the prediction for frame `i` is the command in force at the end of that period, which is
//! what a position-controlled robot's recorded action (the target it was sent for the step)
//! is compared against. An episode that cannot be read is listed with its error, and the
//! evaluation goes on with the others.

pub mod metrics;
pub mod report;
pub mod setup;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use brainstem_models::flow::{is_lerobot_policy, PolicySpec};
use brainstem_models::image::RgbImage;
use brainstem_models::smolvla::config::IMAGE_PREFIX;

use crate::cerebellum::motion::NoHardware;
use crate::clock::Nanos;
use crate::config::{RobotSource, RuntimeConfig, VlaTask};
use crate::demo::demo_config;
use crate::error::{Result, RuntimeError};
use crate::offline::dataset::{Dataset, Episode, STATE};
use crate::pipeline::loops::{CHUNK, FIRST_ACTION, PLAN, VISION};
use crate::pipeline::observe::RuntimeEvent;
use crate::pipeline::stages::Pipeline;
use crate::robot::{JointSpec, RobotDescription};
use crate::simulate::{Camera, Simulation};

use metrics::Latencies;
use report::{EpisodeFailure, EpisodeResult, EvalReport, Shard};

/// The control rate of the robot made from a dataset when no robot is given.
const DATASET_ROBOT_HZ: f64 = 200.0;

/// The built-in evaluation setup for `dataset`: the demo's models (made from a fixed seed,
/// no download) driving a robot whose joints are the dataset's action entries, with ranges
/// from its statistics widened by a tenth, at the dataset's frame rate, one camera per camera
/// feature.
pub fn dataset_config(dataset: &Dataset, cache: &Path) -> Result<RuntimeConfig> {
    let mut config = demo_config(cache)?;
    let robot = dataset_robot(dataset)?;
    config.policy.joints = robot.joints.iter().map(|j| j.name.clone()).collect();
    config.policy.rate_hz = dataset.info.fps;
    config.cameras = dataset.cameras.len();
    config.robot = RobotSource {
        builtin: None,
        file: None,
        description: Some(robot),
    };
    config.validate()?;
    Ok(config)
}

/// Fits `config` to the lerobot policy (flow-matching or pi0-FAST) it names as its VLA, for `dataset`: the
/// dataset's state and action must be the policy's (by size, and by name where both name their
/// entries), each of its cameras one the policy takes; the chunk is the policy's. Every
/// difference is named in one error.
pub fn fit_lerobot_policy(config: &mut RuntimeConfig, dataset: &Dataset) -> Result<()> {
    let cameras: Vec<String> = dataset
        .cameras
        .iter()
        .map(|key| key.strip_prefix(IMAGE_PREFIX).unwrap_or(key).to_string())
        .collect();
    let state_len = dataset.info.vector_len(STATE).unwrap_or(0);
    let origin = dataset.root.display().to_string();
    fit_policy_to(
        config,
        (state_len, dataset.action_len()),
        cameras,
        ("the dataset", &origin),
    )
}

/// Fits `config` to the lerobot policy it names as its VLA, for a robot whose state and
/// action have `lengths` values and whose cameras are `cameras` (the policy's names, in the
/// robot's order), from `source`: what it is (the dataset, the simulated task) and which. Every difference is named in
/// one error; the chunk becomes the policy's, and the policy is told the instruction.
pub(crate) fn fit_policy_to(
    config: &mut RuntimeConfig,
    (state_len, action_len): (usize, usize),
    cameras: Vec<String>,
    (what, origin): (&str, &str),
) -> Result<()> {
    let Some(dir) = config.models.vla.clone().filter(|d| is_lerobot_policy(d)) else {
        return Ok(());
    };
    let policy = PolicySpec::load(&dir)?;
    let mut differences = Vec::new();
    if state_len != policy.state_dim {
        differences.push(format!(
            "{STATE} has {state_len} values in {what}, {} in the policy",
            policy.state_dim
        ));
    }
    if action_len != policy.action_dim {
        differences.push(format!(
            "action has {action_len} values in {what}, {} in the policy",
            policy.action_dim
        ));
    }
    let takes: Vec<&str> = policy.cameras.iter().map(String::as_str).collect();
    for camera in cameras.iter().filter(|c| !takes.contains(&c.as_str())) {
        differences.push(format!(
            "camera {camera} is in {what}, not among the policy's ({})",
            takes.join(", ")
        ));
    }
    if !differences.is_empty() {
        return Err(RuntimeError::config(
            "models.vla",
            format!("{} does not fit {origin}: {}", dir.display(), differences.join("; ")),
        ));
    }
    config.policy.chunk_steps = policy.chunk_steps;
    config.policy.cameras = Some(cameras);
    // A lerobot policy learned the dataset's task strings, not the brain's subtasks.
    config.policy.task = VlaTask::Instruction;
    Ok(())
}

fn dataset_robot(dataset: &Dataset) -> Result<RobotDescription> {
    let stats = dataset.action_stats.as_ref().ok_or_else(|| {
        RuntimeError::config(
            "robot",
            format!(
                "{} has no action statistics to size the joints from; give a configuration with the robot",
                dataset.root.display()
            ),
        )
    })?;
    let joints = action_names(dataset)
        .into_iter()
        .enumerate()
        .map(|(j, name)| {
            let span = (stats.max[j] - stats.min[j]).max(1e-3);
            let (min, max) = (stats.min[j] - 0.1 * span, stats.max[j] + 0.1 * span);
            // Loose limits: the whole range in half a second, full speed in a tenth.
            let velocity = 2.0 * (max - min);
            JointSpec {
                name,
                min_position: min,
                max_position: max,
                max_velocity: velocity,
                max_acceleration: 10.0 * velocity,
                max_jerk: 100.0 * velocity,
                home: None,
                max_tracking_error: None,
            }
        })
        .collect();
    Ok(RobotDescription {
        name: dataset
            .info
            .robot_type
            .clone()
            .unwrap_or_else(|| "dataset robot".into()),
        control_rate_hz: DATASET_ROBOT_HZ,
        joints,
    })
}

/// The dataset's action entry names, or `action_0`, `action_1`, ... when it gives none.
fn action_names(dataset: &Dataset) -> Vec<String> {
    dataset
        .action_names()
        .filter(|names| names.len() == dataset.action_len())
        .unwrap_or_else(|| (0..dataset.action_len()).map(|j| format!("action_{j}")).collect())
}

/// Serves the views of the frame being replayed.
struct ReplayCamera(Arc<Mutex<Vec<RgbImage>>>);

impl Camera for ReplayCamera {
    fn capture(&mut self, _time: Nanos) -> Vec<RgbImage> {
        self.0.lock().map(|views| views.clone()).unwrap_or_default()
    }
}

/// One configuration, loaded once, replaying episode after episode.
pub struct Evaluator {
    pub name: String,
    sim: Simulation,
    views: Arc<Mutex<Vec<RgbImage>>>,
    /// Where each robot joint rests when an episode does not say.
    home: Vec<f64>,
    /// The robot joint of each entry of the recorded state, and of the recorded action.
    state_joints: Option<Vec<usize>>,
    action_joints: Vec<usize>,
    fps: f64,
}

impl Evaluator {
    /// Loads `config`'s models and checks that its robot and cameras fit `dataset`.
    pub fn new(name: &str, config: &RuntimeConfig, dataset: &Dataset) -> Result<Self> {
        if config.cameras != dataset.cameras.len() {
            return Err(RuntimeError::config(
                "cameras",
                format!(
                    "the configuration has {} cameras, the dataset {} ({:?})",
                    config.cameras,
                    dataset.cameras.len(),
                    dataset.cameras
                ),
            ));
        }
        let robot = config.robot()?;
        let action_joints = place_entries(
            &robot,
            &action_names(dataset),
            dataset.action_len(),
            &config.policy.joints,
            "action",
        )?;
        let state_joints = match dataset.info.vector_len(STATE) {
            Some(len) => {
                let names = dataset
                    .info
                    .features
                    .get(STATE)
                    .and_then(|f| f.entry_names())
                    .unwrap_or_default();
                Some(place_entries(&robot, &names, len, &config.policy.joints, STATE)?)
            }
            None => None,
        };
        let views = Arc::new(Mutex::new(Vec::new()));
        let camera = Box::new(ReplayCamera(views.clone()));
        let sim = Simulation::new(Pipeline::load(config)?, Box::new(NoHardware), camera, dataset.info.fps)?;
        Ok(Self {
            name: name.to_string(),
            home: robot.joints.iter().map(JointSpec::home).collect(),
            sim,
            views,
            state_joints,
            action_joints,
            fps: dataset.info.fps,
        })
    }

    /// Evaluates the episodes at `positions` (in the dataset's episode order); `progress` is
    /// told after each.
    pub fn evaluate(
        &mut self,
        dataset: &Dataset,
        positions: &[usize],
        shard: Option<Shard>,
        mut progress: impl FnMut(&str),
    ) -> EvalReport {
        let stats = dataset.action_stats.clone();
        let mut report = EvalReport {
            dataset: dataset.root.display().to_string(),
            codebase_version: dataset.info.codebase_version.clone(),
            fps: dataset.info.fps,
            config: self.name.clone(),
            joints: action_names(dataset),
            action_mean: stats.as_ref().map(|s| s.mean.clone()),
            action_std: stats.as_ref().map(|s| s.std.clone()),
            action_min: stats.as_ref().map(|s| s.min.clone()),
            action_max: stats.as_ref().map(|s| s.max.clone()),
            shards: shard.into_iter().collect(),
            episodes: Vec::new(),
            failures: Vec::new(),
        };
        for &position in positions {
            let episode = dataset.episodes.get(position).map_or(position as u64, |e| e.index);
            match self.episode(dataset, position) {
                Ok(result) => report.episodes.push(result),
                Err(error) => report.failures.push(EpisodeFailure {
                    episode,
                    error: error.to_string(),
                }),
            }
            progress(&format!("episode {episode}"));
        }
        report
    }

    /// Replays one episode.
    pub fn episode(&mut self, dataset: &Dataset, position: usize) -> Result<EpisodeResult> {
        let started = Instant::now();
        let episode = dataset.read_episode(position)?;
        let mut read_seconds = started.elapsed().as_secs_f64();
        let mut frames = episode.frames()?;
        self.sim.restart_at(&self.start_positions(&episode))?;
        let task = match episode.task().trim() {
            "" => "do the task".to_string(),
            task => task.to_string(),
        };
        self.sim.board().set_instruction(&task)?;
        let t0 = episode.timestamps[0];
        let period = 1.0 / self.fps;
        let mut predicted = Vec::with_capacity(episode.len());
        for i in 0..episode.len() {
            let decoding = Instant::now();
            let views = frames.views(i)?;
            read_seconds += decoding.elapsed().as_secs_f64();
            *self.views.lock().unwrap_or_else(|e| e.into_inner()) = views;
            let now = seconds_to_ns(episode.timestamps[i] - t0);
            if let Some(state) = self.robot_state(&episode, i) {
                self.sim.board().push_state(now, &state, None)?;
            }
            let next = episode
                .timestamps
                .get(i + 1)
                .map_or(episode.timestamps[i] + period, |&t| t);
            self.sim.run_until(seconds_to_ns(next - t0));
            predicted.push(self.action_joints.iter().map(|&j| self.sim.commanded(j)).collect());
        }
        let recorded = episode
            .action
            .iter()
            .map(|row| row.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let timestamps = episode.timestamps.iter().map(|t| t - t0).collect();
        let mut result = EpisodeResult::new(
            episode.meta.index,
            task,
            timestamps,
            predicted,
            recorded,
            self.fps,
            stage_latencies(&self.sim),
            self.sim.interventions(),
        );
        result.stage_failures = self
            .sim
            .take_events()
            .into_iter()
            .filter_map(|event| match event {
                RuntimeEvent::StageFailed { stage, message, .. } => Some(format!("{stage}: {message}")),
                _ => None,
            })
            .collect();
        result.read_seconds = read_seconds;
        result.wall_seconds = started.elapsed().as_secs_f64();
        Ok(result)
    }

    /// Where the robot stands at the episode's start: its first recorded state where the
    /// dataset has one, else its first recorded action, else the robot's rest.
    fn start_positions(&self, episode: &Episode) -> Vec<f64> {
        let mut positions = self.home.clone();
        let (joints, first) = match (&self.state_joints, episode.state.as_ref().and_then(|s| s.first())) {
            (Some(joints), Some(state)) => (joints, state),
            _ => (&self.action_joints, &episode.action[0]),
        };
        for (&joint, &value) in joints.iter().zip(first) {
            positions[joint] = f64::from(value);
        }
        positions
    }

    /// Frame `i`'s measured positions for every robot joint (the recorded state where the
    /// dataset has one; the robot's rest for joints it does not record).
    fn robot_state(&self, episode: &Episode, i: usize) -> Option<Vec<f64>> {
        let joints = self.state_joints.as_ref()?;
        let state = episode.state.as_ref()?.get(i)?;
        let mut positions = self.home.clone();
        for (&joint, &value) in joints.iter().zip(state) {
            positions[joint] = f64::from(value);
        }
        Some(positions)
    }
}

/// The model stages' latencies on the virtual clock so far, by stage name.
pub(crate) fn stage_latencies(sim: &Simulation) -> std::collections::BTreeMap<String, Latencies> {
    [CHUNK, FIRST_ACTION, VISION, PLAN]
        .into_iter()
        .filter_map(|stage| {
            let (buckets, deadline_misses) = sim.stage_latencies().recorded_ms(stage)?;
            Some((
                stage.to_string(),
                Latencies {
                    buckets,
                    deadline_misses,
                },
            ))
        })
        .collect()
}

fn seconds_to_ns(seconds: f64) -> Nanos {
    (seconds.max(0.0) * 1e9).round() as Nanos
}

/// The robot joint each of a recorded vector's entries is: by name when every name is one
/// of the robot's joints, else entry by entry onto the policy's joints when the counts agree.
fn place_entries(
    robot: &RobotDescription,
    names: &[String],
    len: usize,
    policy: &[String],
    what: &str,
) -> Result<Vec<usize>> {
    let by_name: Option<Vec<usize>> = names.iter().map(|n| robot.joint_index(n)).collect();
    if let Some(joints) = by_name.filter(|j| j.len() == len) {
        return Ok(joints);
    }
    if len == policy.len() {
        return policy
            .iter()
            .map(|name| {
                robot
                    .joint_index(name)
                    .ok_or_else(|| RuntimeError::config("policy.joints", format!("the robot has no joint {name:?}")))
            })
            .collect();
    }
    Err(RuntimeError::config(
        "policy.joints",
        format!(
            "the dataset's {what} has {len} entries ({names:?}), which are neither joints of the robot by name nor one per policy joint ({})",
            policy.len()
        ),
    ))
}
