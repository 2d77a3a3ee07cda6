//! The built-in default that `brainstem run` runs with no arguments: the 82-joint humanoid,
//! a small SmolVLM-structured model made from a fixed seed (no download) playing VLM, VLT and
//! VLA, its left arm driven by binned action tokens, and a synthetic camera watching a ball
//! roll across a table.

use std::path::{Path, PathBuf};

use brainstem_models::image::RgbImage;
use brainstem_models::synthetic::Idefics3Shape;

use crate::clock::Nanos;
use crate::config::{ActionScheme, BrainConfig, ModelsConfig, PolicyConfig, RobotSource, RuntimeConfig};
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
    let dir = cache.join("brainstem-demo-tiny-idefics3-v1");
    if dir.join("model.safetensors").is_file() {
        return Ok(dir);
    }
    let io = |e: std::io::Error| RuntimeError::ConfigFile {
        path: dir.clone(),
        reason: e.to_string(),
    };
    // Written beside, then renamed, so a run killed halfway leaves no partial checkpoint.
    let partial = cache.join(format!("brainstem-demo-partial-{}", std::process::id()));
    std::fs::create_dir_all(&partial).map_err(io)?;
    Idefics3Shape::tiny().write_checkpoint(&partial)?;
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

/// The demo configuration, with its checkpoint under `cache`.
pub fn demo_config(cache: &Path) -> Result<RuntimeConfig> {
    let config = RuntimeConfig {
        robot: RobotSource::default(),
        models: ModelsConfig {
            vlm: demo_checkpoint(cache)?,
            vla: None,
            quantize: None,
        },
        policy: PolicyConfig {
            joints: DEMO_ARM.map(String::from).to_vec(),
            rate_hz: 50.0,
            chunk_steps: 10,
            actions: ActionScheme::Bins,
            fast_tokenizer: None,
            end_token: None,
            chunk_period_ms: None,
            temperature: 1.0,
            seed: 7,
        },
        brain: BrainConfig {
            rate_hz: 2.0,
            ..BrainConfig::default()
        },
        compute: None,
    };
    config.validate()?;
    Ok(config)
}

/// A table seen from the robot's head: a red ball rolls left and right in front of a blue bin.
pub struct SyntheticCamera {
    pub width: u32,
    pub height: u32,
}

impl Default for SyntheticCamera {
    fn default() -> Self {
        Self { width: 128, height: 96 }
    }
}

impl SyntheticCamera {
    pub fn frame(&self, time: Nanos) -> RgbImage {
        let (w, h) = (self.width as f64, self.height as f64);
        let t = time as f64 * 1e-9;
        let ball = (w * (0.5 + 0.35 * (0.8 * t).sin()), h * 0.62, h * 0.09);
        let mut pixels = Vec::with_capacity((self.width * self.height * 3) as usize);
        for y in 0..self.height {
            for x in 0..self.width {
                let (fx, fy) = (x as f64, y as f64);
                let in_ball = (fx - ball.0).powi(2) + (fy - ball.1).powi(2) < ball.2.powi(2);
                let in_bin = fx > w * 0.72 && fx < w * 0.92 && fy > h * 0.45 && fy < h * 0.75;
                let rgb = if in_ball {
                    [210, 30, 30]
                } else if in_bin {
                    [40, 60, 190]
                } else if fy > h * 0.5 {
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
    fn capture(&mut self, time: Nanos) -> RgbImage {
        self.frame(time)
    }
}

/// A fixed image as the camera, for running real models on a picture from the command line.
pub struct StillCamera(pub RgbImage);

impl Camera for StillCamera {
    fn capture(&mut self, _time: Nanos) -> RgbImage {
        self.0.clone()
    }
}
