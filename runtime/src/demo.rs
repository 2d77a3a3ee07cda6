//! The built-in default that `brainstem run` runs with no arguments: the 82-joint humanoid,
//! a small SmolVLM-structured model made from a fixed seed (no download) playing VLM, VLT and
//! VLA, its left arm driven by binned action tokens, and a synthetic camera watching a ball
//! roll across a table.

use std::path::{Path, PathBuf};

use brainstem_models::image::RgbImage;
use brainstem_models::synthetic::Idefics3Shape;

use crate::clock::Nanos;
use crate::config::{
    ActionScheme, BrainConfig, ModelsConfig, MotionSettings, PolicyConfig, RobotSource, RuntimeConfig,
};
use crate::error::{Result, RuntimeError};
use crate::simulate::Camera;

/// The joints the demo policy drives.
pub const DEMO_ARM: [&str; 7] = [
    "left_shoulder_pitch",
    "left_shoulder_roll",
    "left_shoulder_yaw",
    "left_elbow",
    "left_wrist_yaw",
    "left_wrist_pitch",
    "left_wrist_roll",
];

pub const DEMO_INSTRUCTION: &str = "pick up the red ball and put it in the bin";

/// Writes the demo checkpoint under `cache` (once; later calls reuse it) and returns its
/// directory.
pub fn demo_checkpoint(cache: &Path) -> Result<PathBuf> {
    // v2: a vocabulary of 576, so that the action bins fit above the tokenizer's added tokens.
    synthetic_checkpoint(cache, "brainstem-demo-tiny-idefics3-v2", &Idefics3Shape::tiny())
}

/// Writes a seeded checkpoint of `shape` as `cache/name` (once; later calls reuse it) and
/// returns its directory.
fn synthetic_checkpoint(cache: &Path, name: &str, shape: &Idefics3Shape) -> Result<PathBuf> {
    let dir = cache.join(name);
    if dir.join("model.safetensors").is_file() {
        return Ok(dir);
    }
    let io = |e: std::io::Error| RuntimeError::ConfigFile {
        path: dir.clone(),
        reason: e.to_string(),
    };
    // Written beside, then renamed, so a run killed halfway leaves no partial checkpoint.
    let partial = cache.join(format!("{name}-partial-{}", std::process::id()));
    std::fs::create_dir_all(&partial).map_err(io)?;
    shape.write_checkpoint(&partial)?;
    match std::fs::rename(&partial, &dir) {
        Ok(()) => Ok(dir),
        // Another process got there first; its checkpoint is the same.
        Err(_) if dir.join("model.safetensors").is_file() => {
            let _ = std::fs::remove_dir_all(&partial);
            Ok(dir)
        }
        Err(e) => Err(io(e)),
    }
}

/// What `brainstem bench` sweeps by default: the demo's brain, and as its VLA a seeded
/// model of SmolVLA's size (SmolVLM2-500M's SigLIP tower and a 16-layer, 960-wide text
/// tower, 350 M parameters, written once under `cache`: 1.1 GB) quantized to Q8_0 while
/// loading, emitting 20 binned steps of the arm's 7 joints as often as every 200 ms. Large
/// enough that the TOPS budget shows in its latency, as the demo's tiny model is not.
pub fn bench_config(cache: &Path) -> Result<RuntimeConfig> {
    let mut config = demo_config(cache)?;
    let vla = synthetic_checkpoint(cache, "brainstem-bench-smolvla-sized-v1", &Idefics3Shape::smolvla())?;
    config.models.vla = Some(vla);
    config.models.quantize = Some("q8_0".into());
    config.policy.rate_hz = 10.0;
    config.policy.chunk_steps = 20;
    config.policy.chunk_period_ms = Some(200.0);
    config.brain.rate_hz = 1.0;
    config.validate()?;
    Ok(config)
}

/// The demo configuration, with its checkpoint under `cache`.
pub fn demo_config(cache: &Path) -> Result<RuntimeConfig> {
    let config = RuntimeConfig {
        robot: RobotSource::default(),
        models: ModelsConfig {
            vlm: demo_checkpoint(cache)?,
            vla: None,
            vla_backbone: None,
            vla_action_tokenizer: None,
            quantize: None,
        },
        policy: PolicyConfig {
            joints: DEMO_ARM.map(String::from).to_vec(),
            rate_hz: 50.0,
            chunk_steps: 10,
            actions: ActionScheme::Bins,
            fast_tokenizer: None,
            end_token: None,
            cameras: None,
            chunk_period_ms: None,
            denoising_steps: None,
            task: Default::default(),
            temperature: 1.0,
            seed: 7,
        },
        brain: BrainConfig {
            rate_hz: 2.0,
            ..BrainConfig::default()
        },
        motion: MotionSettings::commanded(),
        cameras: 1,
        compute: None,
        device: None,
    };
    config.validate()?;
    Ok(config)
}

/// Cameras watching a table: a red ball rolls left and right in front of a blue bin. The
/// first view is the robot's head camera; further views (a wrist camera, ...) see the same
/// scene closer, each a little further to the side.
pub struct SyntheticCamera {
    pub width: u32,
    pub height: u32,
    pub views: usize,
}

impl Default for SyntheticCamera {
    fn default() -> Self {
        Self::with_views(1)
    }
}

impl SyntheticCamera {
    pub fn with_views(views: usize) -> Self {
        Self {
            width: 128,
            height: 96,
            views,
        }
    }

    /// The head camera's view at `time`.
    pub fn frame(&self, time: Nanos) -> RgbImage {
        self.view(time, 0)
    }

    /// View `index` at `time`: the scene zoomed in `1 + index / 2` times, shifted right.
    pub fn view(&self, time: Nanos, index: usize) -> RgbImage {
        let (w, h) = (self.width as f64, self.height as f64);
        let zoom = 1.0 + index as f64 / 2.0;
        let shift = 0.15 * index as f64;
        let t = time as f64 * 1e-9;
        let ball: (f64, f64, f64) = (0.5 + 0.35 * (0.8 * t).sin(), 0.62, 0.09);
        let mut pixels = Vec::with_capacity((self.width * self.height * 3) as usize);
        for y in 0..self.height {
            for x in 0..self.width {
                // Scene coordinates, 0 to 1 across the head camera's view.
                let sx = (x as f64 / w - 0.5) / zoom + 0.5 + shift;
                let sy = (y as f64 / h - 0.5) / zoom + 0.5;
                let in_ball = ((sx - ball.0) * w / h).powi(2) + (sy - ball.1).powi(2) < ball.2.powi(2);
                let in_bin = sx > 0.72 && sx < 0.92 && sy > 0.45 && sy < 0.75;
                let rgb = if in_ball {
                    [210, 30, 30]
                } else if in_bin {
                    [40, 60, 190]
                } else if sy > 0.5 {
                    [150, 110, 70]
                } else {
                    [200, 200, 195]
                };
                pixels.extend_from_slice(&rgb);
            }
        }
        RgbImage::new(self.width, self.height, pixels).expect("the buffer has width x height pixels")
    }
}

impl Camera for SyntheticCamera {
    fn capture(&mut self, time: Nanos) -> Vec<RgbImage> {
        (0..self.views).map(|index| self.view(time, index)).collect()
    }
}

/// A fixed image as every camera's view, for running real models on a picture from the
/// command line.
pub struct StillCamera {
    pub image: RgbImage,
    pub views: usize,
}

impl Camera for StillCamera {
    fn capture(&mut self, _time: Nanos) -> Vec<RgbImage> {
        vec![self.image.clone(); self.views]
    }
}
