//! pi0-FAST (Pertsch et al. 2025, "FAST: Efficient Action Tokenization for Vision-Language-Action
//! Models"; lerobot's `PI0FastPolicy`, ported from openpi), loaded from the folder lerobot's
//! `save_pretrained` writes and computed as lerobot 0.6.1 computes it: the PaliGemma prefix
//! (each camera through the SigLIP tower and projector, then the prompt `Task: ..., State:
//! <256 bins>;\n` and a beginning-of-sequence token) run bidirectionally once per chunk, then
//! autoregressive decoding over the whole vocabulary (greedy at temperature 0), each new token
//! attending to everything before it. The sampled tokens become FAST tokens ([`tokens`]) the
//! moment they are sampled, so a caller can stream them into the motion decoder; the chunk is
//! the relaxed FAST decoding of `n_action_steps` steps, unnormalized as lerobot's
//! postprocessor returns it.
//!
//! Files: `config.json` ([`config`]), `model.safetensors` (memory-mapped, tensors by lerobot's
//! names, shapes read from them), the processor files, the text tokenizer and the FAST action
//! tokenizer the config names (`google/paligemma-3b-pt-224`, `lerobot/fast-action-tokenizer`),
//! each found like SmolVLA's backbone (an explicit folder, the name as a folder, the Hugging
//! Face cache).

pub mod config;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brainstem_kernels::Backend;

pub use config::{Pi0FastConfig, PI0_FAST_TYPE};
pub use tokens::{ActionTokens, ACTION_PREFIX};

use crate::action::FastTokenizer;
use crate::error::{ModelError, Result};
use crate::flow::{prepare_state, task_tokens, unnormalize_chunk, ActionChunk, Observation};
use crate::llama::{LoadOptions, Logits};
use crate::pi0::paligemma::{Head, PaliGemma};
use crate::pi0::PaliGemmaShape;
use crate::sampling::{Sampler, SamplingParams};
use crate::smolvla::backbone::{resolve, resolve_holding, HubCache};
use crate::smolvla::Processors;
use crate::tokenizer::Tokenizer;
use crate::vla::state_prompt;
use crate::weights::WeightFile;

/// The beginning-of-sequence token of PaliGemma's tokenizer.
const BOS: &str = "<bos>";

/// How one chunk is sampled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleOptions {
    /// Seeds the draw when the config's temperature is above 0.
    pub seed: u64,
    /// How many of the first steps' logits the trace keeps.
    pub keep_logits: usize,
}

/// What one chunk took and gave besides its actions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FastTrace {
    /// The prompt's token ids, the appended beginning token last.
    pub prompt_ids: Vec<u32>,
    /// Rows of the prefix: image rows, then the prompt's.
    pub prefix_len: usize,
    /// The text ids sampled, in order (the last is `|` when the chunk ended there).
    pub generated: Vec<u32>,
    /// The FAST tokens they became, in order.
    pub fast_tokens: Vec<u32>,
    /// The chunk before unnormalization, `[n_action_steps, action_dim]`.
    pub normalized: Vec<f32>,
    /// The logits of the first [`SampleOptions::keep_logits`] steps.
    pub logits: Vec<Vec<f32>>,
    pub timings: FastTimings,
}

/// Wall time of a chunk's stages.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FastTimings {
    /// Resizing and encoding the cameras.
    pub vision: Duration,
    /// The prefix through the backbone, and the first token's logits.
    pub prefix: Duration,
    /// Every later token.
    pub decode: Duration,
}

/// A loaded pi0-FAST policy on backend `B`.
pub struct Pi0Fast<B: Backend> {
    backend: Arc<B>,
    cfg: Pi0FastConfig,
    shape: PaliGemmaShape,
    processors: Processors,
    tokenizer: Tokenizer,
    actions: Arc<FastTokenizer>,
    action_tokens: ActionTokens,
    paligemma: PaliGemma<B>,
    path: PathBuf,
}

/// Where the two tokenizers come from when not from the names the config gives.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenizerFolders<'a> {
    pub text: Option<&'a Path>,
    pub actions: Option<&'a Path>,
}

impl<B: Backend> Pi0Fast<B> {
    /// Loads a policy folder, its tokenizers from `folders` or as [`resolve`] finds the names
    /// its config gives in `cache`.
    pub fn load(
        backend: Arc<B>,
        dir: &Path,
        folders: TokenizerFolders,
        cache: &HubCache,
        options: LoadOptions,
    ) -> Result<Self> {
        let _span = tracing::info_span!("pi0fast_load", dir = %dir.display()).entered();
        let cfg = Pi0FastConfig::load(dir)?;
        let processors = Processors::load(dir, &cfg.processor_expectations())?;
        let text_name = processors.tokenizer.name.as_deref().unwrap_or(&cfg.text_tokenizer_name);
        let text_dir = resolve(text_name, folders.text, cache)?;
        let tokenizer = Tokenizer::from_json_file(&text_dir.join("tokenizer.json"))?;
        let actions_dir = resolve_holding(
            &cfg.action_tokenizer_name,
            "processor_config.json",
            folders.actions,
            cache,
        )?;
        let actions = FastTokenizer::from_dir(&actions_dir, Some((cfg.n_action_steps, cfg.action_dim)))
            .map_err(|e| ModelError::Generation(format!("{}: {e}", actions_dir.display())))?;
        let action_tokens = ActionTokens::new(
            &tokenizer,
            BOS,
            actions.vocab_size(),
            cfg.fast_skip_tokens,
            cfg.validate_action_token_prefix,
        )?;
        let weights_path = dir.join("model.safetensors");
        let file = WeightFile::open(&weights_path)?;
        let shape = PaliGemmaShape::of(&file, &weights_path)?;
        check_shape(&cfg, &shape, &tokenizer, &weights_path)?;
        Ok(Self {
            paligemma: PaliGemma::load(&backend, &file, &shape, options, Head::Load)?,
            backend,
            cfg,
            shape,
            processors,
            tokenizer,
            actions: Arc::new(actions),
            action_tokens,
            path: dir.to_path_buf(),
        })
    }

    pub fn config(&self) -> &Pi0FastConfig {
        &self.cfg
    }

    pub fn shape(&self) -> &PaliGemmaShape {
        &self.shape
    }

    pub fn processors(&self) -> &Processors {
        &self.processors
    }

    /// The FAST tokenizer, shaped to the chunks this policy decodes.
    pub fn action_tokenizer(&self) -> &Arc<FastTokenizer> {
        &self.actions
    }

    /// The policy folder this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chunk for one observation, with its trace.
    pub fn predict(&self, obs: &Observation, options: SampleOptions) -> Result<(ActionChunk, FastTrace)> {
        self.sample(obs, options, |_| ())
    }

    /// The chunk for one observation, each FAST token handed to `on_action` the moment it is
    /// sampled.
    pub fn sample(
        &self,
        obs: &Observation,
        options: SampleOptions,
        mut on_action: impl FnMut(u32),
    ) -> Result<(ActionChunk, FastTrace)> {
        let _span = tracing::debug_span!("pi0fast_chunk").entered();
        let cfg = &self.cfg;
        let state = prepare_state(&obs.state, cfg.state_dim, cfg.state_dim, &self.processors)?;
        let state: Vec<f64> = state.iter().map(|&v| f64::from(v)).collect();
        let mut prompt_ids = task_tokens(
            &state_prompt(&obs.task, &state),
            &self.tokenizer,
            &self.processors,
            self.backend.ledger(),
        )?;
        prompt_ids.push(self.action_tokens.bos);
        let b = self.backend.as_ref();
        let mut trace = FastTrace::default();
        let started = Instant::now();
        let cameras = cfg.camera_names();
        let images = self
            .backend
            .scope(|| self.paligemma.images(b, obs, &cameras, cfg.image_side))?;
        trace.timings.vision = started.elapsed();
        let mut fast_tokens = Vec::new();
        let mut emit = |token: u32| {
            fast_tokens.push(token);
            on_action(token);
        };
        self.decode(b, images, &prompt_ids, options, &mut trace, &mut emit)?;
        trace.prompt_ids = prompt_ids;
        trace.fast_tokens = fast_tokens;
        let normalized = self
            .actions
            .decode_relaxed(&trace.fast_tokens)
            .map_err(|e| ModelError::Generation(format!("FAST decoding of {:?}: {e}", trace.fast_tokens)))?;
        trace.normalized = normalized.iter().map(|&v| v as f32).collect();
        let chunk = unnormalize_chunk(
            &trace.normalized,
            cfg.action_dim,
            cfg.action_dim,
            &self.processors,
            self.backend.ledger(),
        );
        Ok((chunk, trace))
    }

    /// The prefix (the image rows, then the prompt's), then one token at a time until `|` or
    /// the budget, each turned into FAST tokens for `emit` as it comes.
    fn decode(
        &self,
        b: &B,
        images: Vec<f32>,
        prompt_ids: &[u32],
        options: SampleOptions,
        trace: &mut FastTrace,
        emit: &mut impl FnMut(u32),
    ) -> Result<()> {
        let budget = self.cfg.max_decoding_steps;
        let backbone = self.paligemma.backbone();
        let width = backbone.config().hidden_size;
        let started = Instant::now();
        let (mut cache, mut logits) = self.backend.scope(|| {
            let mut rows = images;
            rows.extend(self.paligemma.token_rows(b, prompt_ids)?);
            let prefix = self.paligemma.prefix(b, &rows, budget)?;
            let last = b.rows(&prefix.hidden, prefix.len - 1, 1)?;
            trace.prefix_len = prefix.len;
            Ok::<_, ModelError>((prefix.cache, b.read(&backbone.logits(&last)?)?))
        })?;
        trace.timings.prefix = started.elapsed();
        let started = Instant::now();
        let mut sampler = Sampler::new(SamplingParams {
            temperature: self.cfg.temperature,
            top_p: 1.0,
            seed: options.seed,
        })?;
        let mut stream = self.action_tokens.stream();
        for step in 0..budget {
            if step < options.keep_logits {
                trace.logits.push(logits.clone());
            }
            let id = sampler.sample(&logits)?;
            trace.generated.push(id);
            if stream.push(id, emit)? {
                break;
            }
            if step + 1 == budget {
                stream.finish(emit)?;
                break;
            }
            let row = b.upload(&self.paligemma.token_rows(b, &[id])?, 1, width)?;
            logits = b.read(&backbone.forward_embeddings(row, &mut cache, Logits::Last)?)?;
        }
        trace.timings.decode = started.elapsed();
        Ok(())
    }
}

/// The checkpoint agrees with the config (its tower's image size) and the tokenizer (the
/// embedding has a row for every token id).
fn check_shape(cfg: &Pi0FastConfig, shape: &PaliGemmaShape, tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    let err = |message: String| ModelError::Config {
        path: path.to_path_buf(),
        message,
    };
    if shape.vision.image_size != cfg.image_side {
        return Err(err(format!(
            "image_resolution is {0}x{0}, the checkpoint's vision tower takes {1}x{1}",
            cfg.image_side, shape.vision.image_size
        )));
    }
    if tokenizer.vocab_size() > shape.backbone.vocab_size {
        return Err(err(format!(
            "the tokenizer has {} tokens, the embedding {} rows",
            tokenizer.vocab_size(),
            shape.backbone.vocab_size
        )));
    }
    Ok(())
}
