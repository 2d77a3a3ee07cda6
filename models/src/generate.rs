//! Autoregressive generation with a Llama: one prefill of the prompt, then one token per
//! forward pass, each token handed to a callback as soon as it is sampled; prefill and
//! decode are timed apart.

use std::time::{Duration, Instant};

use brainstem_kernels::Backend;

use crate::error::{ModelError, Result};
use crate::llama::{Llama, Logits};
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

/// Generates up to `opts.max_tokens` tokens after `prompt`.
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32),
) -> Result<(Vec<u32>, GenerationStats)> {
    let capacity = prompt.len() + opts.max_tokens;
    if prompt.is_empty() || capacity > model.config().max_positions {
        return Err(ModelError::Generation(format!(
            "prompt of {} tokens plus {} new must be 1..={} positions",
            prompt.len(),
            opts.max_tokens,
            model.config().max_positions
        )));
    }
    let mut sampler = Sampler::new(opts.sampling)?;
    let mut cache = model.new_cache(capacity)?;
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(opts.max_tokens);
    let mut input = prompt.to_vec();
    while out.len() < opts.max_tokens {
        let started = Instant::now();
        let logits = model.forward(&input, &mut cache, Logits::Last)?;
        let token = sampler.sample(&model.backend().read(&logits)?)?;
        if out.is_empty() {
            stats.prefill += started.elapsed();
        } else {
            stats.decode += started.elapsed();
        }
        out.push(token);
        on_token(token);
        if opts.stop_ids.contains(&token) {
            break;
        }
        input = vec![token];
    }
    stats.generated_tokens = out.len();
    Ok((out, stats))
}
