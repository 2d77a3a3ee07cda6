//! Autoregressive generation with a Llama: one prefill of the prompt, then one token per
//! forward pass, each token handed to a callback as soon as it is sampled; prefill and
//! decode are timed apart.

use std::time::{Duration, Instant};

use brainstem_kernels::{Backend, Cost, OpKind};

use crate::error::{ModelError, Result};
use crate::llama::{Llama, LlamaCache, Logits};
use crate::sampling::{Sampler, SamplingParams};

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation ends after any of these ids (which is kept in the output).
    pub stop_ids: Vec<u32>,
}

/// Token counts and times of one generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// The prompt's forward pass, through the first sampled token.
    pub prefill: Duration,
    /// Every later forward pass and sample.
    pub decode: Duration,
}

impl GenerationStats {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Tokens per second after the first (which prefill produced).
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// Restricts which tokens may come next: constrained decoding.
pub trait TokenConstraint {
    /// Sets the logits of tokens that may not come next to -inf. `remaining` is how many
    /// tokens generation may still emit, this one included. Returns the host work it did,
    /// which generation records in the backend's ledger.
    fn restrict(&mut self, logits: &mut [f32], remaining: usize) -> Cost;
    /// Takes the token that was sampled.
    fn advance(&mut self, token: u32) -> Result<()>;
    /// True when the output is complete and generation should stop.
    fn is_complete(&self) -> bool;
}

/// Generates up to `opts.max_tokens` tokens after `prompt`.
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_token: impl FnMut(u32),
) -> Result<(Vec<u32>, GenerationStats)> {
    let prefill = |cache: &mut LlamaCache<B>| model.forward(prompt, cache, Logits::Last);
    generate_after(model, prompt.len(), prefill, opts, None, on_token)
}

/// Generates with `model` after a prompt of `prompt_len` positions that `prefill` runs into
/// the cache (returning the last position's logits), for prompts that are more than token ids
/// (image features spliced in); `constraint`, when given, decides which tokens may follow.
pub fn generate_after<B: Backend>(
    model: &Llama<B>,
    prompt_len: usize,
    prefill: impl FnOnce(&mut LlamaCache<B>) -> Result<B::Tensor>,
    opts: &GenerateOptions,
    mut constraint: Option<&mut dyn TokenConstraint>,
    mut on_token: impl FnMut(u32),
) -> Result<(Vec<u32>, GenerationStats)> {
    let capacity = prompt_len + opts.max_tokens;
    if prompt_len == 0 || capacity > model.config().max_positions {
        return Err(ModelError::Generation(format!(
            "prompt of {} tokens plus {} new must be 1..={} positions",
            prompt_len,
            opts.max_tokens,
            model.config().max_positions
        )));
    }
    let mut sampler = Sampler::new(opts.sampling)?;
    let mut cache = model.new_cache(capacity)?;
    let mut stats = GenerationStats {
        prompt_tokens: prompt_len,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(opts.max_tokens);
    let started = Instant::now();
    let mut logits = prefill(&mut cache)?;
    let mut step_started = started;
    while out.len() < opts.max_tokens {
        let mut values = model.backend().read(&logits)?;
        let ledger = model.backend().ledger();
        if let Some(constraint) = constraint.as_deref_mut() {
            ledger.record(
                OpKind::Constrain,
                constraint.restrict(&mut values, opts.max_tokens - out.len()),
            );
        }
        let (token, work) = sampler.sample_counted(&values)?;
        ledger.record(OpKind::Sample, work);
        if out.is_empty() {
            stats.prefill += step_started.elapsed();
        } else {
            stats.decode += step_started.elapsed();
        }
        out.push(token);
        on_token(token);
        let complete = match constraint.as_deref_mut() {
            Some(constraint) => {
                constraint.advance(token)?;
                constraint.is_complete()
            }
            None => false,
        };
        if complete || opts.stop_ids.contains(&token) || out.len() == opts.max_tokens {
            break;
        }
        step_started = Instant::now();
        logits = model.forward(&[token], &mut cache, Logits::Last)?;
    }
    stats.generated_tokens = out.len();
    Ok((out, stats))
}
