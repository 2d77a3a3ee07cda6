//! SmolVLA (Shukor et al. 2025, "SmolVLA: A vision-language-action model for affordable and
//! efficient robotics"; lerobot's `SmolVLAPolicy`), loaded from the folder lerobot's
//! `save_pretrained` writes and computed as lerobot 0.6.1 computes it: a SmolVLM2 prefix
//! (cameras, task, state) run once per chunk (`prefix.rs`), then an action expert that
//! integrates a velocity field from noise to a chunk of actions in `num_steps` Euler steps,
//! reusing the prefix's keys and values at every step (`expert.rs`). The chunk comes out in
//! the robot's units, unnormalized as lerobot's postprocessor returns it.
//!
//! Files: `config.json` ([`config`]), `model.safetensors` (memory-mapped, tensors by
//! lerobot's names; backbone layers past `num_vlm_layers` are not read), the processor files
//! ([`processor`]), and the backbone's `config.json` and `tokenizer.json`, found by
//! [`backbone`].

pub mod backbone;
pub mod config;
mod expert;
mod prefix;
pub mod processor;
pub mod rtc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brainstem_kernels::Backend;
use rand::{Rng, SeedableRng};

pub use backbone::HubCache;
pub use config::SmolVlaConfig;
pub use expert::{time_embedding, ExpertShape};

pub use processor::Processors;
pub use rtc::{ChunkPrefix, RealTimeChunking};

use crate::error::{ModelError, Result};
use crate::idefics3::{Idefics3Config, ImageEncoder};
use crate::image::planar::{resize_with_pad, PadPlacement, PlanarImage};
use crate::llama::{Llama, LoadOptions, Loader, Naming};
use crate::tokenizer::Tokenizer;
use crate::weights::{read_text, WeightFile};
use expert::Expert;
use prefix::{Backbone, PrefixCache, Segment};

/// Where the backbone's tensors sit in a SmolVLA checkpoint.
const VLM: &str = "model.vlm_with_expert.vlm.model.";
const TEXT: Naming = Naming::HuggingFace {
    prefix: "model.vlm_with_expert.vlm.model.text_model.",
};

/// One observation, in the robot's units.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Frames by camera name (the policy's image feature without `observation.images.`),
    /// values in [0, 1]. A camera the policy takes may be missing (lerobot then fills up to
    /// `empty_cameras` of them); one it does not take is an error.
    pub images: BTreeMap<String, PlanarImage>,
    pub state: Vec<f32>,
    pub task: String,
}

/// A chunk of actions, `steps` rows of `dims` values, in the robot's units.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionChunk {
    pub steps: usize,
    pub dims: usize,
    pub values: Vec<f32>,
}

impl ActionChunk {
    pub fn row(&self, step: usize) -> &[f32] {
        &self.values[step * self.dims..(step + 1) * self.dims]
    }
}

/// The intermediate values of one chunk, for parity checks and diagnostics: each denoising
/// step's time, input sample and velocity (`[chunk, max_action_dim]`, normalized), the final
/// sample before unnormalization, and where the time went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChunkTrace {
    pub times: Vec<f32>,
    pub samples: Vec<Vec<f32>>,
    pub velocities: Vec<Vec<f32>>,
    pub normalized: Vec<f32>,
    pub token_ids: Vec<u32>,
    pub prefix_len: usize,
    pub timings: ChunkTimings,
}

/// Wall time of a chunk's stages.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChunkTimings {
    /// Resizing and encoding the cameras (vision tower and connector).
    pub vision: Duration,
    /// The prefix's rows through the backbone's layers (with the task and state embedding).
    pub prefix: Duration,
    /// Every denoising step, with the cross-attention keys and values computed once.
    pub denoise: Duration,
}

/// Where a chunk's noise comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Noise {
    /// Given values, `[chunk, max_action_dim]`.
    Values(Vec<f32>),
    /// Standard normal values from a seeded generator.
    Seed(u64),
}

/// A loaded SmolVLA policy on backend `B`.
pub struct SmolVla<B: Backend> {
    backend: Arc<B>,
    cfg: SmolVlaConfig,
    processors: Processors,
    tokenizer: Tokenizer,
    backbone: Backbone<B>,
    expert: Expert<B>,
    /// `<fake_token_around_image>` and `<global-img>`, when image special tokens are on.
    image_tokens: Option<(u32, u32)>,
    image_side: (usize, usize),
    path: PathBuf,
}

impl<B: Backend> SmolVla<B> {
    /// Loads a policy folder; the backbone comes from `vlm` when given, else from the
    /// policy's `vlm_model_name` as [`backbone::resolve`] finds it in `cache`.
    pub fn load(
        backend: Arc<B>,
        dir: &Path,
        vlm: Option<&Path>,
        cache: &HubCache,
        options: LoadOptions,
    ) -> Result<Self> {
        let _span = tracing::info_span!("smolvla_load", dir = %dir.display()).entered();
        let config_path = dir.join("config.json");
        let cfg = SmolVlaConfig::load(dir)?;
        let processors = Processors::load(dir, &cfg)?;
        let backbone_dir = backbone::resolve(&cfg.vlm_model_name, vlm, cache)?;
        let vlm_config_path = backbone_dir.join("config.json");
        let mut vlm_cfg = Idefics3Config::from_json(&read_text(&vlm_config_path)?, &vlm_config_path)?;
        let tokenizer = Tokenizer::from_json_file(&backbone_dir.join("tokenizer.json"))?;
        let file = WeightFile::open(&dir.join("model.safetensors"))?;
        let vlm_layers = match cfg.num_vlm_layers {
            n if n > 0 => (n as usize).min(vlm_cfg.text.num_layers),
            _ => vlm_cfg.text.num_layers,
        };
        vlm_cfg.text.num_layers = vlm_layers;
        vlm_cfg.text.tie_word_embeddings = true;
        let shape = ExpertShape::new(&cfg, &vlm_cfg.text, vlm_layers).map_err(|message| ModelError::Config {
            path: config_path.clone(),
            message,
        })?;
        let image_side = check_image_size(&cfg, &vlm_cfg, &config_path)?;
        let image_tokens = image_special_tokens(&cfg, &tokenizer)?;
        let hidden = vlm_cfg.text.hidden_size;
        let loader = Loader {
            backend: backend.as_ref(),
            file: &file,
            naming: TEXT,
            options,
        };
        let backbone = Backbone {
            images: ImageEncoder::load(backend.as_ref(), &file, &vlm_cfg, VLM, options)?,
            state_proj: expert::linear(
                &loader,
                "model.state_proj",
                [hidden, cfg.max_state_dim],
                [hidden, cfg.max_state_dim],
            )?,
            text: Llama::build(backend.clone(), &file, vlm_cfg.text.clone(), TEXT, options)?,
        };
        let expert = Expert::load(&loader, &cfg, shape, vlm_cfg.text.kv_dim())?;
        Ok(Self {
            backend,
            cfg,
            processors,
            tokenizer,
            backbone,
            expert,
            image_tokens,
            image_side,
            path: dir.to_path_buf(),
        })
    }

    pub fn config(&self) -> &SmolVlaConfig {
        &self.cfg
    }

    pub fn processors(&self) -> &Processors {
        &self.processors
    }

    pub fn expert_shape(&self) -> &ExpertShape {
        self.expert.shape()
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// The chunk for one observation.
    pub fn predict(&self, obs: &Observation, noise: &Noise) -> Result<ActionChunk> {
        self.predict_traced(obs, noise).map(|(chunk, _)| chunk)
    }

    /// The chunk for one observation, with its intermediate values.
    pub fn predict_traced(&self, obs: &Observation, noise: &Noise) -> Result<(ActionChunk, ChunkTrace)> {
        self.predict_guided(obs, noise, None)
    }

    /// The chunk for one observation, guided by real-time chunking toward what is left of the
    /// previous chunk when `guidance` is given (lerobot's `predict_action_chunk` with
    /// `prev_chunk_left_over` and `inference_delay`).
    pub fn predict_guided(
        &self,
        obs: &Observation,
        noise: &Noise,
        guidance: Option<(&RealTimeChunking, &ChunkPrefix)>,
    ) -> Result<(ActionChunk, ChunkTrace)> {
        let _span = tracing::debug_span!("smolvla_chunk").entered();
        let noise = self.noise(noise)?;
        let state = self.state(&obs.state)?;
        let token_ids = self.task_tokens(&obs.task)?;
        let b = self.backend.as_ref();
        let mut timings = ChunkTimings::default();
        let prefix = self
            .backend
            .scope(|| self.prefix(b, obs, &token_ids, &state, &mut timings))?;
        let mut trace = ChunkTrace {
            token_ids,
            prefix_len: prefix.len,
            ..ChunkTrace::default()
        };
        let denoise_started = Instant::now();
        let normalized = self
            .backend
            .scope(|| self.integrate(b, prefix, noise, guidance, &mut trace))?;
        timings.denoise = denoise_started.elapsed();
        trace.timings = timings;
        trace.normalized = normalized.clone();
        Ok((self.unnormalize(&normalized), trace))
    }

    fn noise(&self, noise: &Noise) -> Result<Vec<f32>> {
        let len = self.cfg.chunk_size * self.cfg.max_action_dim;
        match noise {
            Noise::Values(values) if values.len() == len && values.iter().all(|v| v.is_finite()) => Ok(values.clone()),
            Noise::Values(values) => Err(ModelError::Observation(format!(
                "noise must be {} finite values ([{}, {}]), found {} values{}",
                len,
                self.cfg.chunk_size,
                self.cfg.max_action_dim,
                values.len(),
                if values.iter().any(|v| !v.is_finite()) {
                    " with a NaN or infinity"
                } else {
                    ""
                }
            ))),
            Noise::Seed(seed) => Ok(gaussian(*seed, len)),
        }
    }

    /// The state normalized and zero-padded to `max_state_dim`.
    fn state(&self, raw: &[f32]) -> Result<Vec<f32>> {
        if raw.len() != self.cfg.state_dim {
            return Err(ModelError::Observation(format!(
                "observation.state has {} values, the policy takes {}",
                raw.len(),
                self.cfg.state_dim
            )));
        }
        if let Some(i) = raw.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Observation(format!(
                "observation.state[{i}] is {}: a state must be finite",
                raw[i]
            )));
        }
        let mut state = raw.to_vec();
        self.processors.state.normalize(&mut state);
        state.resize(self.cfg.max_state_dim, 0.0);
        Ok(state)
    }

    /// The task's token ids, with lerobot's trailing newline, truncated to the tokenizer's
    /// maximum length.
    fn task_tokens(&self, task: &str) -> Result<Vec<u32>> {
        let text = match self.processors.newline_task && !task.ends_with('\n') {
            true => format!("{task}\n"),
            false => task.to_string(),
        };
        let mut ids = self.tokenizer.encode_with_special_tokens(&text)?;
        if self.processors.tokenizer.truncation {
            ids.truncate(self.processors.tokenizer.max_length);
        }
        Ok(ids)
    }

    fn prefix(
        &self,
        b: &B,
        obs: &Observation,
        token_ids: &[u32],
        state: &[f32],
        timings: &mut ChunkTimings,
    ) -> Result<PrefixCache<B>> {
        let vision_started = Instant::now();
        let known = self.cfg.camera_names();
        if let Some(unknown) = obs.images.keys().find(|name| !known.contains(&name.as_str())) {
            return Err(ModelError::Observation(format!(
                "the policy has no camera {unknown:?}; it takes {}",
                known.join(", ")
            )));
        }
        if let Some((name, frame)) = obs.images.iter().find(|(_, frame)| !frame.is_whole()) {
            return Err(ModelError::Observation(format!(
                "camera {name:?}'s frame is {}x{} but holds {} values, not 3 x {} x {}",
                frame.width,
                frame.height,
                frame.data.len(),
                frame.height,
                frame.width
            )));
        }
        let present: Vec<&PlanarImage> = known.iter().filter_map(|name| obs.images.get(*name)).collect();
        if present.is_empty() {
            return Err(ModelError::Observation(format!(
                "no camera frame: the policy takes {}, and at least one is needed",
                known.join(", ")
            )));
        }
        let empty = (known.len() - present.len()).min(self.cfg.empty_cameras);
        let mut segments = Vec::new();
        let special = self.image_tokens.map(|(fake, global)| ([fake, global], [fake]));
        for slot in 0..present.len() + empty {
            if let Some((start, _)) = &special {
                segments.push(Segment::Tokens(start));
            }
            if let Some(frame) = present.get(slot) {
                let (width, height) = self.image_side;
                let pixels = resize_with_pad(frame, width, height, PadPlacement::BottomRight, 0.0);
                let pixels: Vec<f32> = pixels.data.iter().map(|v| v * 2.0 - 1.0).collect();
                segments.push(Segment::Image(self.backbone.encode_camera(b, &pixels)?));
            }
            if let Some((_, end)) = &special {
                segments.push(Segment::Tokens(end));
            }
        }
        segments.push(Segment::ScaledTokens(token_ids));
        timings.vision = vision_started.elapsed();
        let prefix_started = Instant::now();
        let rows = self.backbone.rows(b, &segments, state)?;
        let len = rows.values.len() / self.backbone.text.config().hidden_size;
        let caches = self.backbone.caches(b, len + self.cfg.chunk_size)?;
        let prefix = self.backbone.run(b, &rows, caches)?;
        timings.prefix = prefix_started.elapsed();
        Ok(prefix)
    }

    /// Euler integration from the noise (time 1) to the chunk (time 0).
    fn integrate(
        &self,
        b: &B,
        mut prefix: PrefixCache<B>,
        mut x_t: Vec<f32>,
        guidance: Option<(&RealTimeChunking, &ChunkPrefix)>,
        trace: &mut ChunkTrace,
    ) -> Result<Vec<f32>> {
        let cross = self.expert.cross_keys(b, &prefix)?;
        let mut cross_cache = self.expert.cross_cache(b, prefix.len)?;
        let dt = -1.0 / self.cfg.num_steps as f64;
        for step in 0..self.cfg.num_steps {
            let time = (1.0 + step as f64 * dt) as f32;
            let mut velocity = self
                .expert
                .velocity(b, &x_t, time, &mut prefix, &cross, &mut cross_cache)?;
            if let Some((rtc, left_over)) = guidance {
                rtc.guide(&mut velocity, &x_t, time, left_over, self.cfg.max_action_dim);
            }
            trace.times.push(time);
            trace.samples.push(x_t.clone());
            let dt = dt as f32;
            x_t.iter_mut().zip(&velocity).for_each(|(x, v)| *x += dt * v);
            trace.velocities.push(velocity);
        }
        Ok(x_t)
    }

    /// The chunk cut to the action's dimensions and unnormalized.
    fn unnormalize(&self, normalized: &[f32]) -> ActionChunk {
        let dims = self.cfg.action_dim;
        let mut values = Vec::with_capacity(self.cfg.chunk_size * dims);
        for row in normalized.chunks_exact(self.cfg.max_action_dim) {
            let mut action = row[..dims].to_vec();
            self.processors.action.unnormalize(&mut action);
            values.extend(action);
        }
        ActionChunk {
            steps: self.cfg.chunk_size,
            dims,
            values,
        }
    }

    /// The policy folder this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The (width, height) images are resized to: `resize_imgs_with_padding`, which must be the
/// vision tower's square input.
fn check_image_size(cfg: &SmolVlaConfig, vlm: &Idefics3Config, path: &Path) -> Result<(usize, usize)> {
    let side = vlm.vision.image_size;
    match cfg.resize_with_padding {
        Some((w, h)) if (w, h) == (side, side) => Ok((w, h)),
        Some((w, h)) => Err(ModelError::Config {
            path: path.to_path_buf(),
            message: format!("resize_imgs_with_padding is {w}x{h}, the backbone's vision tower takes {side}x{side}"),
        }),
        None => Err(ModelError::Config {
            path: path.to_path_buf(),
            message: format!("resize_imgs_with_padding is null: frames must reach the vision tower at {side}x{side}"),
        }),
    }
}

fn image_special_tokens(cfg: &SmolVlaConfig, tokenizer: &Tokenizer) -> Result<Option<(u32, u32)>> {
    if !cfg.add_image_special_tokens {
        return Ok(None);
    }
    let id = |token: &str| {
        tokenizer.token_id(token).ok_or_else(|| ModelError::Tokenizer {
            path: tokenizer.path().to_path_buf(),
            message: format!("add_image_special_tokens needs {token}, which the tokenizer lacks"),
        })
    };
    Ok(Some((id("<fake_token_around_image>")?, id("<global-img>")?)))
}

/// `len` standard normal values from a seeded generator (Box-Muller).
pub fn gaussian(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        out.push((radius * angle.cos()) as f32);
        out.push((radius * angle.sin()) as f32);
    }
    out.truncate(len);
    out
}
