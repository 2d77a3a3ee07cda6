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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use brainstem_kernels::Backend;

pub use crate::flow::{gaussian, time_embedding, ActionChunk, ChunkTimings, ChunkTrace, Noise, Observation};
pub use backbone::HubCache;
pub use config::SmolVlaConfig;
pub use expert::ExpertShape;

pub use processor::Processors;
pub use rtc::{ChunkPrefix, RealTimeChunking};

use crate::error::{ModelError, Result};
use crate::flow::{noise_values, prepare_state, present_frames, task_tokens, unnormalize_chunk};
use crate::host_work;
use crate::idefics3::{Idefics3Config, ImageEncoder};
use crate::image::planar::{resize_with_pad, PadPlacement};
use crate::kernels::OpKind;
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
        let processors = Processors::load(dir, &cfg.processor_expectations())?;
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
            state_proj: crate::flow::head::linear(
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

    /// Integrates each chunk in `steps` Euler steps (at least one; the caller checks).
    pub fn set_num_steps(&mut self, steps: usize) {
        self.cfg.num_steps = steps.max(1);
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
        noise_values(noise, self.cfg.chunk_size, self.cfg.max_action_dim)
    }

    fn state(&self, raw: &[f32]) -> Result<Vec<f32>> {
        prepare_state(raw, self.cfg.state_dim, self.cfg.max_state_dim, &self.processors)
    }

    fn task_tokens(&self, task: &str) -> Result<Vec<u32>> {
        task_tokens(task, &self.tokenizer, &self.processors, self.backend.ledger())
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
        let present = present_frames(obs, &known)?;
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
                host_work::record(
                    b,
                    OpKind::ImagePrep,
                    host_work::resized(4 * frame.data.len(), pixels.len()),
                );
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
            host_work::record(b, OpKind::ActionDecode, host_work::elementwise(x_t.len(), 2));
            trace.velocities.push(velocity);
        }
        Ok(x_t)
    }

    /// The chunk cut to the action's dimensions and unnormalized.
    fn unnormalize(&self, normalized: &[f32]) -> ActionChunk {
        unnormalize_chunk(
            normalized,
            self.cfg.max_action_dim,
            self.cfg.action_dim,
            &self.processors,
            self.backend.ledger(),
        )
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
