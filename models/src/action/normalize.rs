//! Per-dimension action normalisation with dataset statistics, the way policies are trained:
//! OpenVLA maps the [q01, q99] quantile range onto [-1, 1] (and clips), lerobot also uses
//! mean and standard deviation. Tokenizers work on normalised actions; the motion decoder
//! needs joint units, so it calls `unnormalize` on every decoded value.

use serde::Deserialize;

use super::ActionError;

/// How one action dimension was normalised.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalization {
    /// Values are used as they are.
    Identity,
    /// `[low, high]` (OpenVLA: the 1st and 99th percentiles) maps onto `[-1, 1]`.
    Bounds { low: f64, high: f64 },
    /// `(x - mean) / std`.
    MeanStd { mean: f64, std: f64 },
}

/// OpenVLA's guard against a zero-width range.
const BOUNDS_EPSILON: f64 = 1e-8;

impl Normalization {
    pub fn validate(&self) -> Result<(), ActionError> {
        match *self {
            Normalization::Identity => Ok(()),
            Normalization::Bounds { low, high } if low.is_finite() && high.is_finite() && low <= high => Ok(()),
            Normalization::Bounds { low, high } => Err(ActionError::Config(format!(
                "bounds normalisation needs finite low <= high, found low {low} and high {high}"
            ))),
            Normalization::MeanStd { mean, std } if mean.is_finite() && std.is_finite() && std > 0.0 => Ok(()),
            Normalization::MeanStd { mean, std } => Err(ActionError::Config(format!(
                "mean/std normalisation needs a finite mean and a positive std, found mean {mean} and std {std}"
            ))),
        }
    }

    /// Joint units to the normalised space (bounds are clipped to [-1, 1], as OpenVLA does).
    pub fn normalize(&self, value: f64) -> f64 {
        match *self {
            Normalization::Identity => value,
            Normalization::Bounds { low, high } => {
                (2.0 * (value - low) / (high - low + BOUNDS_EPSILON) - 1.0).clamp(-1.0, 1.0)
            }
            Normalization::MeanStd { mean, std } => (value - mean) / std,
        }
    }

    /// The normalised space back to joint units.
    pub fn unnormalize(&self, value: f64) -> f64 {
        match *self {
            Normalization::Identity => value,
            Normalization::Bounds { low, high } => 0.5 * (value + 1.0) * (high - low) + low,
            Normalization::MeanStd { mean, std } => value * std + mean,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_trip_inside_the_range_and_clip_outside() {
        let norm = Normalization::Bounds { low: -2.0, high: 6.0 };
        for value in [-2.0, 0.0, 1.5, 6.0] {
            assert!((norm.unnormalize(norm.normalize(value)) - value).abs() < 1e-6);
        }
        assert_eq!(norm.normalize(100.0), 1.0);
        assert_eq!(norm.normalize(-100.0), -1.0);
    }

    #[test]
    fn invalid_statistics_are_refused() {
        assert!(Normalization::MeanStd { mean: 0.0, std: 0.0 }.validate().is_err());
        assert!(Normalization::Bounds {
            low: 1.0,
            high: f64::NAN
        }
        .validate()
        .is_err());
    }
}
