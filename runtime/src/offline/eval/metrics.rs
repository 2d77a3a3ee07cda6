//! The numbers an evaluation reports, kept as sums so that episodes, shards and whole fleets
//! add up exactly: per-joint absolute and squared errors, squared jerk, and latency
//! histograms as (value, count) pairs.

use serde::{Deserialize, Serialize};

use crate::offline::dataset::VectorStats;

/// One joint's error sums over some frames.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSums {
    pub frames: u64,
    pub abs: f64,
    pub squared: f64,
    pub max_abs: f64,
}

impl ErrorSums {
    pub fn add(&mut self, error: f64) {
        self.frames += 1;
        self.abs += error.abs();
        self.squared += error * error;
        self.max_abs = self.max_abs.max(error.abs());
    }

    pub fn merge(&mut self, other: &Self) {
        self.frames += other.frames;
        self.abs += other.abs;
        self.squared += other.squared;
        self.max_abs = self.max_abs.max(other.max_abs);
    }

    pub fn mae(&self) -> f64 {
        self.abs / self.frames.max(1) as f64
    }

    pub fn rmse(&self) -> f64 {
        (self.squared / self.frames.max(1) as f64).sqrt()
    }
}

/// Per joint, the error sums of `predicted` against `recorded` (rows of joints).
pub fn joint_errors(predicted: &[Vec<f64>], recorded: &[Vec<f64>]) -> Vec<ErrorSums> {
    let joints = recorded.first().map_or(0, Vec::len);
    let mut sums = vec![ErrorSums::default(); joints];
    for (p, r) in predicted.iter().zip(recorded) {
        for (j, sum) in sums.iter_mut().enumerate() {
            sum.add(p[j] - r[j]);
        }
    }
    sums
}

/// Sums of squared jerk (the third derivative of position, by finite differences at the
/// frame rate) over every joint and every frame that has three before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JerkSums {
    pub samples: u64,
    pub squared: f64,
}

impl JerkSums {
    pub fn of(trajectory: &[Vec<f64>], fps: f64) -> Self {
        let mut sums = Self::default();
        for window in trajectory.windows(4) {
            let [a, b, c, d] = [&window[0], &window[1], &window[2], &window[3]];
            for j in 0..a.len() {
                let third = d[j] - 3.0 * c[j] + 3.0 * b[j] - a[j];
                let jerk = third * fps.powi(3);
                sums.samples += 1;
                sums.squared += jerk * jerk;
            }
        }
        sums
    }

    pub fn merge(&mut self, other: &Self) {
        self.samples += other.samples;
        self.squared += other.squared;
    }

    /// Root-mean-square jerk, units per second cubed.
    pub fn rms(&self) -> f64 {
        (self.squared / self.samples.max(1) as f64).sqrt()
    }
}

/// A latency histogram as (milliseconds, count) pairs, in increasing order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    pub buckets: Vec<(f64, u64)>,
    pub deadline_misses: u64,
}

impl Latencies {
    pub fn merge(&mut self, other: &Self) {
        self.buckets.extend_from_slice(&other.buckets);
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.buckets.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 += later.1;
            }
            same
        });
        self.deadline_misses += other.deadline_misses;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// The smallest recorded value with at least `q` of the samples at or below it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        self.buckets.iter().find_map(|&(value, count)| {
            seen += count;
            (seen >= rank).then_some(value)
        })
    }
}

/// What an error means against the data's own spread: divided by the joint's standard
/// deviation (or its range where the deviation is zero).
pub fn normalizer(stats: Option<&VectorStats>, joint: usize) -> Option<f64> {
    let stats = stats?;
    let std = *stats.std.get(joint)?;
    let range = stats.max.get(joint)? - stats.min.get(joint)?;
    [std, range].into_iter().find(|s| s.is_finite() && *s > 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_add_up_across_parts_exactly_as_over_the_whole() {
        let predicted: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64, 0.5 * i as f64]).collect();
        let recorded: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64 + 1.0, -(i as f64)]).collect();
        let whole = joint_errors(&predicted, &recorded);
        assert_eq!(whole[0].mae(), 1.0);
        assert_eq!(whole[0].rmse(), 1.0);
        // Joint 1's error is 1.5 i: mean 1.5 * 4.5, RMS 1.5 * sqrt(28.5).
        assert!((whole[1].mae() - 6.75).abs() < 1e-12);
        assert!((whole[1].rmse() - 1.5 * 28.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(whole[1].max_abs, 13.5);
        let mut parts = joint_errors(&predicted[..4], &recorded[..4]);
        for (sum, part) in parts.iter_mut().zip(joint_errors(&predicted[4..], &recorded[4..])) {
            sum.merge(&part);
        }
        assert_eq!(parts, whole);
    }

    #[test]
    fn jerk_is_the_third_derivative() {
        // x = t^3 has jerk 6 everywhere; at 10 frames per second the finite difference is exact.
        let fps = 10.0;
        let cubic: Vec<Vec<f64>> = (0..20).map(|i| vec![(i as f64 / fps).powi(3)]).collect();
        let jerk = JerkSums::of(&cubic, fps);
        assert_eq!(jerk.samples, 17);
        assert!((jerk.rms() - 6.0).abs() < 1e-6, "{}", jerk.rms());
        let line: Vec<Vec<f64>> = (0..20).map(|i| vec![2.0 * i as f64]).collect();
        assert!(JerkSums::of(&line, fps).rms() < 1e-9);
    }

    #[test]
    fn merged_latency_quantiles_are_those_of_all_samples() {
        let mut a = Latencies {
            buckets: vec![(1.0, 50), (3.0, 40)],
            deadline_misses: 1,
        };
        let b = Latencies {
            buckets: vec![(2.0, 5), (3.0, 4), (10.0, 1)],
            deadline_misses: 2,
        };
        a.merge(&b);
        assert_eq!(a.buckets, vec![(1.0, 50), (2.0, 5), (3.0, 44), (10.0, 1)]);
        assert_eq!((a.count(), a.deadline_misses), (100, 3));
        assert_eq!(a.quantile(0.5), Some(1.0));
        assert_eq!(a.quantile(0.51), Some(2.0));
        assert_eq!(a.quantile(0.99), Some(3.0));
        assert_eq!(a.quantile(1.0), Some(10.0));
        assert_eq!(Latencies::default().quantile(0.5), None);
    }
}
