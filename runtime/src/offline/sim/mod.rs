//! Closed-loop evaluation in simulation: a simulator process ([`bridge`]) plays the robot,
//! and exactly the runtime the robot uses (the same models, quantization, partitions, chip
//! timing and motion decoder, on the virtual clock) drives it. Each control tick the
//! simulated joints' positions and velocities go onto the board as the measured state, the
//! runtime runs the tick, and the motion decoder's command becomes the simulated joints'
//! targets for one control period; each camera period the simulator renders the cameras'
//! views. An episode ends when the task's goal is within its success radius, or at its time
//! limit. Reports the success, the time to it, the interventions and the stages' latencies.

pub mod bridge;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use brainstem_models::image::RgbImage;
use serde::Serialize;

use crate::cerebellum::motion::NoHardware;
use crate::clock::Nanos;
use crate::compute::partition::available_cores;
use crate::config::{RobotSource, RuntimeConfig};
use crate::demo::demo_config;
use crate::error::{Result, RuntimeError};
use crate::kernels::Device;
use crate::offline::eval::metrics::Latencies;
use crate::offline::eval::{fit_policy_to, stage_latencies};
use crate::pipeline::stages::Pipeline;
use crate::robot::RobotDescription;
use crate::simulate::sweep::Layout;
use crate::simulate::{Camera, Simulation};

pub use bridge::{SimError, SimProcess, SimState, TaskDescription};

/// What a closed-loop evaluation runs: the built-in setup (the demo's brain) with this VLA,
/// quantized, placed and on the device asked for.
#[derive(Debug, Clone, Default)]
pub struct SimSetup {
    pub vla: PathBuf,
    /// The VLA's language backbone folder, when its `vlm_model_name` is neither a local
    /// folder nor in the Hugging Face cache.
    pub vla_backbone: Option<PathBuf>,
    pub quantize: Option<String>,
    pub placement: Option<String>,
    pub device: Option<Device>,
    /// How often a chunk starts, in milliseconds (default: every half chunk).
    pub chunk_period_ms: Option<f64>,
    /// Where the demo's brain is written.
    pub cache: PathBuf,
}

impl SimSetup {
    /// The configuration for `task`, and the name reports give it.
    pub fn configuration(&self, task: &TaskDescription) -> Result<(String, RuntimeConfig)> {
        std::fs::create_dir_all(&self.cache).map_err(|e| RuntimeError::ConfigFile {
            path: self.cache.clone(),
            reason: format!("creating the model cache: {e}"),
        })?;
        let mut config = demo_config(&self.cache)?;
        let robot = RobotDescription {
            name: task.task.clone(),
            control_rate_hz: task.control_rate_hz,
            joints: task.joints.clone(),
        };
        robot.validate()?;
        config.policy.joints = robot.joints.iter().map(|j| j.name.clone()).collect();
        config.policy.rate_hz = task.action_rate_hz;
        config.cameras = task.cameras.len();
        config.robot = RobotSource {
            builtin: None,
            file: None,
            description: Some(robot),
        };
        config.models.vla = Some(self.vla.clone());
        config.models.vla_backbone.clone_from(&self.vla_backbone);
        config.policy.chunk_period_ms = self.chunk_period_ms;
        let cameras = task.cameras.iter().map(|c| c.name.clone()).collect();
        let joints = task.joints.len();
        let origin = format!("the simulated task {}", task.task);
        fit_policy_to(&mut config, (joints, joints), cameras, ("the simulated task", &origin))?;
        let mut name = "f32".to_string();
        if let Some(format) = &self.quantize {
            config.models.quantize = Some(format.clone());
            name.clone_from(format);
        }
        if let Some(layout) = &self.placement {
            config.compute = Some(Layout::parse(layout)?.compute(available_cores()));
            name = format!("{name} {layout}");
        }
        if let Some(device) = &self.device {
            config.device = Some(device.clone());
            name = format!("{name} on {device}");
        }
        config.validate()?;
        Ok((name, config))
    }
}

/// One closed-loop episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimEpisode {
    pub seed: u64,
    pub success: bool,
    /// Simulated seconds until the goal was first within the success radius.
    pub seconds_to_success: Option<f64>,
    pub final_distance: f64,
    pub closest_distance: f64,
    /// The goal's distance at each control tick, for the report's plot.
    pub distances: Vec<f64>,
    pub interventions: BTreeMap<String, u64>,
    /// Per stage (`vla_chunk`, `vla_first_action`, ...): latency on the virtual clock.
    pub latency: BTreeMap<String, Latencies>,
    pub stage_failures: Vec<String>,
    /// Host seconds the episode took, simulator included.
    pub wall_seconds: f64,
    /// The cameras' first view, and the views when it ended; not in the JSON report.
    #[serde(skip)]
    pub frames: Vec<RgbImage>,
}

/// Serves the newest views the simulator rendered.
struct SimCamera(Arc<Mutex<Vec<RgbImage>>>);

impl Camera for SimCamera {
    fn capture(&mut self, _time: Nanos) -> Vec<RgbImage> {
        self.0.lock().map(|views| views.clone()).unwrap_or_default()
    }
}

/// One configuration, loaded once, driving the simulator episode after episode.
pub struct SimEvaluator {
    pub name: String,
    pub task: TaskDescription,
    sim: Simulation,
    views: Arc<Mutex<Vec<RgbImage>>>,
}

impl SimEvaluator {
    /// Loads `config`'s models for `task` (the configuration from [`SimSetup::configuration`]).
    pub fn new(name: &str, config: &RuntimeConfig, task: TaskDescription) -> Result<Self> {
        let views = Arc::new(Mutex::new(Vec::new()));
        let camera = Box::new(SimCamera(views.clone()));
        let pipeline = Pipeline::load(config)?;
        let sim = Simulation::new(pipeline, Box::new(NoHardware), camera, task.action_rate_hz)?;
        Ok(Self {
            name: name.to_string(),
            task,
            sim,
            views,
        })
    }

    /// Runs episode `seed` on `process` for at most `seconds` of simulated time.
    pub fn episode(&mut self, process: &mut SimProcess, seed: u64, seconds: f64) -> Result<SimEpisode> {
        let started = Instant::now();
        let mut state = process.reset(seed)?;
        self.sim.restart_at(&state.joints)?;
        self.sim.board().set_instruction(&self.task.instruction)?;
        let control_ns = (1e9 / self.task.control_rate_hz).round() as Nanos;
        let camera_ns = (1e9 / self.task.action_rate_hz).round() as Nanos;
        let ticks = (seconds * self.task.control_rate_hz).ceil() as usize;
        let mut targets = vec![0.0; state.joints.len()];
        let mut distances = Vec::with_capacity(ticks + 1);
        distances.push(state.distance);
        let (mut next_frame, mut frames, mut success) = (0, Vec::new(), None);
        for tick in 0..ticks {
            let now = self.sim.now();
            if now >= next_frame {
                self.show(process.render(&self.task.cameras)?, &mut frames);
                next_frame += camera_ns;
            }
            self.sim
                .board()
                .push_state(now, &state.joints, Some(&state.velocities))?;
            self.sim.run_until(now + control_ns);
            for (joint, target) in targets.iter_mut().enumerate() {
                *target = self.sim.commanded(joint);
            }
            state = process.step(&targets, control_ns as f64 / 1e9)?;
            distances.push(state.distance);
            if state.distance <= self.task.success_radius {
                success = Some((tick + 1) as f64 / self.task.control_rate_hz);
                break;
            }
        }
        let last = self.views.lock().map(|v| v.clone()).unwrap_or_default();
        frames.extend(last);
        Ok(self.result(seed, success, distances, frames, started))
    }

    /// Puts `views` on the camera and keeps the episode's first.
    fn show(&self, views: Vec<RgbImage>, frames: &mut Vec<RgbImage>) {
        if frames.is_empty() {
            frames.extend(views.iter().cloned());
        }
        if let Ok(mut shown) = self.views.lock() {
            *shown = views;
        }
    }

    fn result(
        &mut self,
        seed: u64,
        success: Option<f64>,
        distances: Vec<f64>,
        frames: Vec<RgbImage>,
        started: Instant,
    ) -> SimEpisode {
        let stage_failures = self
            .sim
            .take_events()
            .into_iter()
            .filter_map(|event| match event {
                crate::RuntimeEvent::StageFailed { stage, message, .. } => Some(format!("{stage}: {message}")),
                _ => None,
            })
            .collect();
        SimEpisode {
            seed,
            success: success.is_some(),
            seconds_to_success: success,
            final_distance: distances.last().copied().unwrap_or(f64::NAN),
            closest_distance: distances.iter().copied().fold(f64::INFINITY, f64::min),
            distances,
            interventions: self
                .sim
                .interventions()
                .entries()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            latency: stage_latencies(&self.sim),
            stage_failures,
            wall_seconds: started.elapsed().as_secs_f64(),
            frames,
        }
    }
}
