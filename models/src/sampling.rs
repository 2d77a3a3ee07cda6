//! Choosing the next token from logits: greedy, or temperature with nucleus (top-p)
//! sampling from a seeded generator, so a run can be repeated exactly.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::{ModelError, Result};
use crate::kernels::Cost;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 keeps all).
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: SmallRng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        let ok =
            params.temperature.is_finite() && params.temperature >= 0.0 && params.top_p > 0.0 && params.top_p <= 1.0;
        if !ok {
            return Err(ModelError::Generation(format!(
                "temperature must be >= 0 and top_p in (0, 1], found {} and {}",
                params.temperature, params.top_p
            )));
        }
        Ok(Sampler {
            params,
            rng: SmallRng::seed_from_u64(params.seed),
        })
    }

    /// The next token; an error if no logit is finite.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        Ok(self.sample_counted(logits)?.0)
    }

    /// The next token and the host work choosing it took: a pass over the logits for the
    /// largest, and at a temperature the exponential of each finite logit (about 16
    /// operations), their sort (about 4 per comparison) and two passes for the nucleus.
    pub fn sample_counted(&mut self, logits: &[f32]) -> Result<(u32, Cost)> {
        let scan = Cost::host(3 * logits.len() as u64, 4 * logits.len() as u64, 0);
        let token = self.choose(logits)?;
        if self.params.temperature == 0.0 {
            return Ok((token, scan));
        }
        let finite = logits.iter().filter(|l| l.is_finite()).count() as u64;
        let comparisons = finite * (64 - finite.leading_zeros() as u64);
        let mut work = scan;
        work += Cost::host(
            2 * logits.len() as u64 + 20 * finite + 4 * comparisons,
            8 * finite,
            8 * finite,
        );
        Ok((token, work))
    }

    fn choose(&mut self, logits: &[f32]) -> Result<u32> {
        let best = argmax(logits).ok_or_else(|| ModelError::Generation("no finite logit to sample from".into()))?;
        if self.params.temperature == 0.0 {
            return Ok(best);
        }
        let max = logits[best as usize];
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, ((l - max) / self.params.temperature).exp()))
            .collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f32 = probs.iter().map(|p| p.1).sum();
        let mut kept = 0;
        let mut mass = 0f32;
        for p in &probs {
            kept += 1;
            mass += p.1 / total;
            if mass >= self.params.top_p {
                break;
            }
        }
        let kept = &probs[..kept];
        let kept_total: f32 = kept.iter().map(|p| p.1).sum();
        let mut target = self.rng.random::<f32>() * kept_total;
        for &(id, p) in kept {
            if target < p {
                return Ok(id);
            }
            target -= p;
        }
        Ok(kept.last().map_or(best, |p| p.0))
    }
}

/// Index of the largest finite value.
pub fn argmax(xs: &[f32]) -> Option<u32> {
    xs.iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_finite_logit() {
        let mut s = Sampler::new(SamplingParams::default()).unwrap();
        assert_eq!(s.sample(&[0.1, f32::NAN, 3.0, 2.0]).unwrap(), 2);
        assert!(s.sample(&[f32::NAN, f32::INFINITY]).is_err());
    }

    #[test]
    fn tiny_top_p_is_greedy_and_seeds_repeat() {
        let logits = [1.0, 2.0, 0.5, 1.9];
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 1e-6,
            seed: 3,
        })
        .unwrap();
        assert_eq!(s.sample(&logits).unwrap(), 1);
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                seed,
            })
            .unwrap();
            (0..20).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(
            draw(7).iter().any(|&t| t != 1),
            "sampling at temperature 1 never left the argmax"
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Sampler::new(SamplingParams {
            temperature: -1.0,
            ..Default::default()
        })
        .is_err());
        assert!(Sampler::new(SamplingParams {
            top_p: 0.0,
            ..Default::default()
        })
        .is_err());
    }
}
