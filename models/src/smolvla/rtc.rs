//! Real-time chunking (Black et al. 2025, "Real-Time Execution of Action Chunking Flow
//! Policies"), as lerobot 0.6's `RTCProcessor` computes it: while a chunk is being computed the
//! robot keeps executing the previous one, so each denoising step pulls the new chunk's
//! predicted actions (`x_t - t v_t`) toward what is left of the previous chunk, fully over the
//! steps executed during inference, fading to nothing at the execution horizon. lerobot takes
//! the correction as the weighted error itself (its velocity is computed before the sample
//! needs a gradient), scaled by a guidance weight that grows as the time step nears 0 and is
//! capped by `max_guidance_weight`; so does this.

use super::config::RtcConfig;

/// How the guidance weight falls across the previous chunk's remaining steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixSchedule {
    /// 1 over the steps executed during inference, 0 after.
    Zeros,
    /// 1 up to the execution horizon, 0 after.
    Ones,
    /// 1 over the steps executed during inference, then falling linearly to 0 at the horizon.
    Linear,
    /// As `Linear`, the fall shaped by `w (e^w - 1) / (e - 1)`.
    Exp,
}

/// Real-time chunking's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RealTimeChunking {
    pub execution_horizon: usize,
    pub max_guidance_weight: f32,
    pub schedule: PrefixSchedule,
}

/// What is left of the previous chunk, in the policy's normalized action space: `steps`
/// rows of `dims` values (up to `max_action_dim`), and how many of them the robot executes
/// while the new chunk is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkPrefix<'a> {
    pub left_over: &'a [f32],
    pub dims: usize,
    pub inference_delay: usize,
}

impl RealTimeChunking {
    /// The settings of a policy's `rtc_config`, `None` when it is off.
    pub fn from_config(config: &RtcConfig) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let schedule = match config.prefix_attention_schedule.to_ascii_uppercase().as_str() {
            "ZEROS" => PrefixSchedule::Zeros,
            "ONES" => PrefixSchedule::Ones,
            "LINEAR" => PrefixSchedule::Linear,
            "EXP" => PrefixSchedule::Exp,
            other => {
                return Err(format!(
                    "rtc_config.prefix_attention_schedule {other:?} is not ZEROS, ONES, LINEAR or EXP"
                ))
            }
        };
        Ok(Some(Self {
            execution_horizon: config.execution_horizon,
            max_guidance_weight: config.max_guidance_weight,
            schedule,
        }))
    }

    /// lerobot's `get_prefix_weights(start, end, total)`.
    pub fn prefix_weights(&self, start: usize, end: usize, total: usize) -> Vec<f32> {
        let start = start.min(end);
        let mut weights = vec![0f32; total];
        match self.schedule {
            PrefixSchedule::Zeros => weights[..start.min(total)].fill(1.0),
            PrefixSchedule::Ones => weights[..end.min(total)].fill(1.0),
            PrefixSchedule::Linear | PrefixSchedule::Exp => {
                let ramp = end.min(total).saturating_sub(start);
                for i in 0..ramp {
                    let w = 1.0 - (i + 1) as f32 / (ramp + 1) as f32;
                    weights[start + i] = match self.schedule {
                        PrefixSchedule::Exp => w * w.exp_m1() / (std::f32::consts::E - 1.0),
                        _ => w,
                    };
                }
                weights[..start.min(total)].fill(1.0);
            }
        }
        weights
    }

    /// lerobot's guidance weight at flow time `time` (1 is noise, 0 the chunk).
    pub fn guidance_weight(&self, time: f32) -> f32 {
        let tau = 1.0 - time;
        let squared = (1.0 - tau) * (1.0 - tau);
        let inv_r2 = (squared + tau * tau) / squared;
        let c = (1.0 - tau) / tau;
        let weight = c * inv_r2;
        let cap = self.max_guidance_weight;
        if weight.is_finite() {
            weight.min(cap)
        } else {
            cap
        }
    }

    /// Guides velocity `v` (`[chunk, width]`, at sample `x` and flow time `time`) toward the
    /// previous chunk's remainder.
    pub fn guide(&self, v: &mut [f32], x: &[f32], time: f32, prefix: &ChunkPrefix, width: usize) {
        let chunk = v.len() / width;
        let prev_steps = prefix.left_over.len().checked_div(prefix.dims).unwrap_or(0);
        let horizon = self.execution_horizon.min(prev_steps);
        let weights = self.prefix_weights(prefix.inference_delay, horizon, chunk);
        let guidance = self.guidance_weight(time);
        for (step, weight) in weights.iter().enumerate() {
            for d in 0..width {
                let i = step * width + d;
                let target = match (step < prev_steps, d < prefix.dims) {
                    (true, true) => prefix.left_over[step * prefix.dims + d],
                    _ => 0.0,
                };
                let predicted = x[i] - time * v[i];
                v[i] -= guidance * ((target - predicted) * weight);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtc(schedule: PrefixSchedule) -> RealTimeChunking {
        RealTimeChunking {
            execution_horizon: 6,
            max_guidance_weight: 10.0,
            schedule,
        }
    }

    #[test]
    fn prefix_weights_are_lerobots() {
        let linear = rtc(PrefixSchedule::Linear).prefix_weights(2, 6, 8);
        let expected = [1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0];
        assert!(
            linear.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{linear:?}"
        );
        assert_eq!(rtc(PrefixSchedule::Zeros).prefix_weights(2, 6, 8)[..3], [1.0, 1.0, 0.0]);
        assert_eq!(rtc(PrefixSchedule::Ones).prefix_weights(2, 6, 8)[5..], [1.0, 0.0, 0.0]);
    }

    /// `(t^2 + (1 - t)^2) / (t (1 - t))`: 2 half way, large toward either end, capped.
    #[test]
    fn the_guidance_weight_is_capped_at_the_ends_and_two_half_way() {
        let r = rtc(PrefixSchedule::Linear);
        assert_eq!(r.guidance_weight(1.0), 10.0);
        assert!((r.guidance_weight(0.5) - 2.0).abs() < 1e-6);
        assert!((r.guidance_weight(0.1) - 0.82 / 0.09).abs() < 1e-4);
        assert_eq!(r.guidance_weight(0.01), 10.0);
    }
}
