//! pi0 (Black et al. 2024, "π0: A Vision-Language-Action Flow Model for General Robot
//! Control"; lerobot's `PI0Policy`, ported from openpi) and pi0.5 (Physical Intelligence 2025,
//! "π0.5: a Vision-Language-Action Model with Open-World Generalization"; lerobot's
//! `PI05Policy`: the state as bins in the prompt, the expert's norms conditioned on the time
//! step, `adarms.rs`), loaded from the folder lerobot's
//! `save_pretrained` writes and computed as lerobot 0.6.1 computes it: a PaliGemma prefix
//! (each camera through the SigLIP tower and the linear projector, then the task's tokens),
//! bidirectional, run once per chunk through the Gemma backbone; then the Gemma action expert
//! (`expert.rs`), whose layers attend to the backbone's keys and values at every layer, turns
//! noise into a chunk of actions in `num_inference_steps` Euler steps of the flow head shared
//! with SmolVLA ([`crate::flow`]). The chunk comes out in the robot's units, unnormalized as
//! lerobot's postprocessor returns it.
//!
//! An empty camera (one the policy takes and the observation lacks) and the tokenizer's
//! padding are masked out in lerobot: invisible to every row and skipped by the position ids.
//! They are left out here, which gives the same keys and values.
//!
//! Files: `config.json` ([`config`]), `model.safetensors` (memory-mapped, tensors by lerobot's
//! names, shapes read from them: [`shape`]), the processor files, and the tokenizer the
//! preprocessor names (`google/paligemma-3b-pt-224`), found like SmolVLA's backbone.

mod adarms;
pub mod config;
mod expert;
pub(crate) mod paligemma;
pub mod shape;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use brainstem_kernels::Backend;

pub use config::{Pi0Config, Pi0Kind};
pub use shape::{PaliGemmaShape, Pi0Shape};

use crate::error::{ModelError, Result};
use crate::flow::{
    noise_values, prepare_state, task_tokens, unnormalize_chunk, ActionChunk, ChunkTimings, ChunkTrace, Noise,
    Observation,
};
use crate::host_work;
use crate::kernels::OpKind;
use crate::llama::{LoadOptions, Loader, Naming};
use crate::smolvla::backbone::{resolve, HubCache};
use crate::smolvla::{ChunkPrefix, Processors, RealTimeChunking};
use crate::tokenizer::Tokenizer;
use crate::weights::WeightFile;
use adarms::AdaExpert;
use expert::Expert;
use paligemma::{Head, PaliGemma, Prefix};
use shape::EXPERT;

/// The tokenizer lerobot's pi0 preprocessor loads when its file names none.
pub const TOKENIZER: &str = "google/paligemma-3b-pt-224";

/// The action expert: pi0's (a state row, the time joined with the actions) or pi0.5's
/// (adaptive norms conditioned on the time).
enum ActionExpert<B: Backend> {
    Pi0(Expert<B>),
    Pi05(AdaExpert<B>),
}

/// A loaded pi0 or pi0.5 policy on backend `B`.
pub struct Pi0<B: Backend> {
    backend: Arc<B>,
    cfg: Pi0Config,
    shape: Pi0Shape,
    processors: Processors,
    tokenizer: Tokenizer,
    paligemma: PaliGemma<B>,
    expert: ActionExpert<B>,
    path: PathBuf,
}

impl<B: Backend> Pi0<B> {
    /// Loads a policy folder; the tokenizer comes from `tokenizer` when given, else from the
    /// name the preprocessor gives as [`resolve`] finds it in `cache`.
    pub fn load(
        backend: Arc<B>,
        dir: &Path,
        tokenizer: Option<&Path>,
        cache: &HubCache,
        options: LoadOptions,
    ) -> Result<Self> {
        let _span = tracing::info_span!("pi0_load", dir = %dir.display()).entered();
        let cfg = Pi0Config::load(dir)?;
        let processors = Processors::load(dir, &cfg.processor_expectations())?;
        let name = processors
            .tokenizer
            .name
            .clone()
            .unwrap_or_else(|| TOKENIZER.to_string());
        let tokenizer_dir = resolve(&name, tokenizer, cache)?;
        let tokenizer = Tokenizer::from_json_file(&tokenizer_dir.join("tokenizer.json"))?;
        let weights_path = dir.join("model.safetensors");
        let file = WeightFile::open(&weights_path)?;
        let shape = Pi0Shape::of(&file, &weights_path)?;
        if shape.paligemma.vision.image_size != cfg.image_side {
            return Err(ModelError::Config {
                path: dir.join("config.json"),
                message: format!(
                    "image_resolution is {0}x{0}, the checkpoint's vision tower takes {1}x{1}",
                    cfg.image_side, shape.paligemma.vision.image_size
                ),
            });
        }
        if shape.expert_adaptive != (cfg.kind == Pi0Kind::Pi05) {
            return Err(ModelError::Config {
                path: weights_path,
                message: format!(
                    "a {} policy, but the expert's norms are {}",
                    cfg.kind.name(),
                    if shape.expert_adaptive {
                        "adaptive (pi0.5's)"
                    } else {
                        "plain (pi0's)"
                    }
                ),
            });
        }
        let periods = (cfg.min_period, cfg.max_period);
        let expert_loader = Loader {
            backend: backend.as_ref(),
            file: &file,
            naming: Naming::HuggingFace { prefix: EXPERT },
            options,
        };
        let expert = match cfg.kind {
            Pi0Kind::Pi0 => ActionExpert::Pi0(Expert::load(
                &expert_loader,
                &shape.expert,
                cfg.max_state_dim,
                cfg.chunk_size,
                cfg.max_action_dim,
                periods,
            )?),
            Pi0Kind::Pi05 => ActionExpert::Pi05(AdaExpert::load(
                &expert_loader,
                &shape.expert,
                cfg.chunk_size,
                cfg.max_action_dim,
                periods,
            )?),
        };
        Ok(Self {
            paligemma: PaliGemma::load(&backend, &file, &shape.paligemma, options, Head::Skip)?,
            expert,
            backend: backend.clone(),
            cfg,
            shape,
            processors,
            tokenizer,
            path: dir.to_path_buf(),
        })
    }

    /// Integrates each chunk in `steps` Euler steps (at least one; the caller checks).
    pub fn set_num_steps(&mut self, steps: usize) {
        self.cfg.num_steps = steps.max(1);
    }

    pub fn config(&self) -> &Pi0Config {
        &self.cfg
    }

    pub fn shape(&self) -> &Pi0Shape {
        &self.shape
    }

    pub fn processors(&self) -> &Processors {
        &self.processors
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// The policy folder this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
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
        let _span = tracing::debug_span!("pi0_chunk").entered();
        let cfg = &self.cfg;
        let x_t = noise_values(noise, cfg.chunk_size, cfg.max_action_dim)?;
        let state = prepare_state(&obs.state, cfg.state_dim, cfg.max_state_dim, &self.processors)?;
        let prompt = match cfg.kind {
            Pi0Kind::Pi0 => obs.task.clone(),
            Pi0Kind::Pi05 => pi05_prompt(&obs.task, &state[..cfg.state_dim]),
        };
        let token_ids = task_tokens(&prompt, &self.tokenizer, &self.processors, self.backend.ledger())?;
        let b = self.backend.as_ref();
        let mut timings = ChunkTimings::default();
        let vision_started = Instant::now();
        let cameras = self.cfg.camera_names();
        let images = self
            .backend
            .scope(|| self.paligemma.images(b, obs, &cameras, self.cfg.image_side))?;
        timings.vision = vision_started.elapsed();
        let prefix_started = Instant::now();
        let mut prefix = self.backend.scope(|| {
            let mut rows = images;
            rows.extend(self.paligemma.token_rows(b, &token_ids)?);
            self.paligemma.prefix(b, &rows, 1 + cfg.chunk_size)
        })?;
        timings.prefix = prefix_started.elapsed();
        let mut trace = ChunkTrace {
            token_ids,
            prefix_len: prefix.len,
            ..ChunkTrace::default()
        };
        let denoise_started = Instant::now();
        let normalized = self
            .backend
            .scope(|| self.integrate(b, &state, &mut prefix, x_t, guidance, &mut trace))?;
        timings.denoise = denoise_started.elapsed();
        trace.timings = timings;
        trace.normalized = normalized.clone();
        let chunk = unnormalize_chunk(
            &normalized,
            cfg.max_action_dim,
            cfg.action_dim,
            &self.processors,
            self.backend.ledger(),
        );
        Ok((chunk, trace))
    }

    /// Euler integration from the noise (time 1) to the chunk (time 0), pi0's state row added
    /// to the caches once first; each velocity guided by real-time chunking when `guidance` is
    /// given.
    fn integrate(
        &self,
        b: &B,
        state: &[f32],
        prefix: &mut Prefix<B>,
        mut x_t: Vec<f32>,
        guidance: Option<(&RealTimeChunking, &ChunkPrefix)>,
        trace: &mut ChunkTrace,
    ) -> Result<Vec<f32>> {
        let caches = prefix.cache.layers_mut();
        let base_len = match &self.expert {
            ActionExpert::Pi0(expert) => {
                expert.add_state(b, state, caches, prefix.len)?;
                prefix.len + 1
            }
            ActionExpert::Pi05(_) => prefix.len,
        };
        let dt = -1.0 / self.cfg.num_steps as f64;
        for step in 0..self.cfg.num_steps {
            let time = (1.0 + step as f64 * dt) as f32;
            let mut velocity = match &self.expert {
                ActionExpert::Pi0(expert) => expert.velocity(b, &x_t, time, caches, base_len)?,
                ActionExpert::Pi05(expert) => expert.velocity(b, &x_t, time, caches, base_len)?,
            };
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
}

/// pi0.5's prompt (lerobot's `Pi05PrepareStateTokenizerProcessorStep`): the task and the
/// normalized state in 256 bins ([`crate::vla::state_prompt`]), then `Action: `.
pub fn pi05_prompt(task: &str, normalized_state: &[f32]) -> String {
    let state: Vec<f64> = normalized_state.iter().map(|&v| f64::from(v)).collect();
    format!("{}Action: ", crate::vla::state_prompt(task, &state))
}
