//! lerobot's processor files beside a policy (`policy_preprocessor.json`,
//! `policy_postprocessor.json`, and the normalizer statistics each names in a `.safetensors`
//! file): the state's normalization on the way in, the actions' unnormalization on the way
//! out, and the tokenizer settings, each checked against the policy's config. The arithmetic
//! is lerobot's `NormalizerProcessorStep`, in f32 as PyTorch does it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::config::{NormalizationMode, ProcessorExpectations, ACTION_KEY, STATE_KEY};
use crate::action::Normalization;
use crate::error::{ModelError, Result};
use crate::weights::{read_file, WeightFile};

/// One feature's statistics and how they apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalizer {
    mode: NormalizationMode,
    /// The offset and the scale: `normalized = (x - low) / denom` (for MEAN_STD the scale
    /// going in is `std + eps`, coming out `std`, as lerobot does it).
    offset: Vec<f32>,
    scale_in: Vec<f32>,
    scale_out: Vec<f32>,
}

impl Normalizer {
    /// No normalization: values pass through.
    pub fn identity() -> Self {
        Self {
            mode: NormalizationMode::Identity,
            offset: Vec::new(),
            scale_in: Vec::new(),
            scale_out: Vec::new(),
        }
    }

    pub fn mode(&self) -> NormalizationMode {
        self.mode
    }

    /// Raw values to the policy's normalized space.
    pub fn normalize(&self, values: &mut [f32]) {
        match self.mode {
            NormalizationMode::Identity => {}
            NormalizationMode::MeanStd => {
                for ((v, &mean), &denom) in values.iter_mut().zip(&self.offset).zip(&self.scale_in) {
                    *v = (*v - mean) / denom;
                }
            }
            _ => {
                for ((v, &low), &denom) in values.iter_mut().zip(&self.offset).zip(&self.scale_in) {
                    *v = 2.0 * (*v - low) / denom - 1.0;
                }
            }
        }
    }

    /// Each of the first `dims` dimensions' map back to raw units, as a motion decoder that
    /// unnormalizes value by value applies it.
    pub fn unnormalization(&self, dims: usize) -> Vec<Normalization> {
        (0..dims)
            .map(|d| match (self.mode, self.offset.get(d), self.scale_out.get(d)) {
                (NormalizationMode::Identity, _, _) | (_, None, _) | (_, _, None) => Normalization::Identity,
                (NormalizationMode::MeanStd, Some(&mean), Some(&std)) => Normalization::MeanStd {
                    mean: f64::from(mean),
                    std: f64::from(std),
                },
                (_, Some(&low), Some(&width)) => Normalization::Bounds {
                    low: f64::from(low),
                    high: f64::from(low) + f64::from(width),
                },
            })
            .collect()
    }

    /// The policy's normalized values back to raw units.
    pub fn unnormalize(&self, values: &mut [f32]) {
        match self.mode {
            NormalizationMode::Identity => {}
            NormalizationMode::MeanStd => {
                for ((v, &mean), &std) in values.iter_mut().zip(&self.offset).zip(&self.scale_out) {
                    *v = *v * std + mean;
                }
            }
            NormalizationMode::MinMax => {
                for ((v, &low), &denom) in values.iter_mut().zip(&self.offset).zip(&self.scale_out) {
                    *v = (*v + 1.0) / 2.0 * denom + low;
                }
            }
            _ => {
                for ((v, &low), &denom) in values.iter_mut().zip(&self.offset).zip(&self.scale_out) {
                    *v = (*v + 1.0) * denom / 2.0 + low;
                }
            }
        }
    }

    fn from_stats(
        mode: NormalizationMode,
        stats: &Stats,
        key: &str,
        dim: usize,
        eps: f32,
    ) -> std::result::Result<Self, String> {
        let get = |stat: &str| -> std::result::Result<Vec<f32>, String> {
            let values = stats
                .get(&format!("{key}.{stat}"))
                .ok_or_else(|| format!("no {key}.{stat} statistics for {mode:?} normalization"))?;
            if values.len() != dim {
                return Err(format!(
                    "{key}.{stat} has {} values, the feature has {dim}",
                    values.len()
                ));
            }
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(format!("{key}.{stat} holds {bad}"));
            }
            Ok(values.clone())
        };
        let range = |low: &str, high: &str| -> std::result::Result<(Vec<f32>, Vec<f32>), String> {
            let (low, high) = (get(low)?, get(high)?);
            let denom: Vec<f32> = low
                .iter()
                .zip(&high)
                .map(|(l, h)| if h - l == 0.0 { eps } else { h - l })
                .collect();
            Ok((low, denom))
        };
        let (offset, scale_in, scale_out) = match mode {
            NormalizationMode::Identity => return Ok(Self::identity()),
            NormalizationMode::MeanStd => {
                let (mean, std) = (get("mean")?, get("std")?);
                let denom = std.iter().map(|s| s + eps).collect();
                (mean, denom, std)
            }
            NormalizationMode::MinMax => {
                let (low, denom) = range("min", "max")?;
                (low, denom.clone(), denom)
            }
            NormalizationMode::Quantiles => {
                let (low, denom) = range("q01", "q99")?;
                (low, denom.clone(), denom)
            }
            NormalizationMode::Quantile10 => {
                let (low, denom) = range("q10", "q90")?;
                (low, denom.clone(), denom)
            }
        };
        Ok(Self {
            mode,
            offset,
            scale_in,
            scale_out,
        })
    }
}

type Stats = BTreeMap<String, Vec<f32>>;

/// The tokenizer settings of the preprocessor. Its padding (side and length) does not change
/// the chunk: padded positions are masked out of attention and skipped by the position ids.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerSettings {
    pub max_length: usize,
    pub truncation: bool,
    /// The tokenizer the preprocessor loads (`tokenizer_name`), when it names one.
    pub name: Option<String>,
}

/// What the processor files say about one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Processors {
    pub state: Normalizer,
    pub action: Normalizer,
    pub tokenizer: TokenizerSettings,
    /// Observation keys the preprocessor renames (dataset name to policy name).
    pub rename_map: BTreeMap<String, String>,
    /// Whether the preprocessor appends a newline to the task (SmolVLA's and pi0's do).
    pub newline_task: bool,
}

#[derive(Deserialize)]
struct Pipeline {
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    registry_name: Option<String>,
    #[serde(default)]
    config: Value,
    state_file: Option<String>,
}

#[derive(Deserialize)]
struct NormalizerStep {
    #[serde(default = "default_eps")]
    eps: f32,
    #[serde(default)]
    features: BTreeMap<String, FeatureSpec>,
    #[serde(default)]
    norm_map: BTreeMap<String, NormalizationMode>,
}

#[derive(Deserialize)]
struct FeatureSpec {
    #[serde(rename = "type")]
    kind: String,
    shape: Vec<usize>,
}

fn default_eps() -> f32 {
    1e-8
}

impl Processors {
    /// Reads `policy_preprocessor.json` and `policy_postprocessor.json` from a policy folder.
    /// Each is checked against `cfg`, what the policy's config says; a step brainstem does not
    /// compute (relative actions) is refused when it is enabled.
    pub fn load(dir: &Path, cfg: &ProcessorExpectations) -> Result<Self> {
        let pre_path = dir.join("policy_preprocessor.json");
        let post_path = dir.join("policy_postprocessor.json");
        let pre = read_pipeline(&pre_path)?;
        let post = read_pipeline(&post_path)?;
        let err = |path: &Path, message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let (state, _) = normalizer(
            dir,
            &pre_path,
            &pre,
            "normalizer_processor",
            STATE_KEY,
            cfg.state_dim,
            cfg.state_normalization,
        )?;
        let (action, found) = normalizer(
            dir,
            &post_path,
            &post,
            "unnormalizer_processor",
            ACTION_KEY,
            cfg.action_dim,
            cfg.action_normalization,
        )?;
        if !found {
            return Err(err(
                &post_path,
                "no unnormalizer_processor step: the actions would stay normalized".into(),
            ));
        }
        let tokenizer = tokenizer_settings(&pre, cfg).map_err(|m| err(&pre_path, m))?;
        let rename_map = pre
            .steps
            .iter()
            .find(|s| s.registry_name.as_deref() == Some("rename_observations_processor"))
            .and_then(|s| s.config.get("rename_map").cloned())
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| err(&pre_path, format!("rename_map: {e}")))?
            .unwrap_or_default();
        let newline_task = pre.steps.iter().any(|s| {
            s.registry_name
                .as_deref()
                .is_some_and(|n| n.ends_with("_new_line_processor"))
        });
        for (path, pipeline) in [(&pre_path, &pre), (&post_path, &post)] {
            refuse_enabled(pipeline, &["relative_actions_processor", "absolute_actions_processor"])
                .map_err(|m| err(path, m))?;
        }
        Ok(Self {
            state,
            action,
            tokenizer,
            rename_map,
            newline_task,
        })
    }
}

/// Refuses any step of `names` whose config says it is enabled.
fn refuse_enabled(pipeline: &Pipeline, names: &[&str]) -> std::result::Result<(), String> {
    let enabled = pipeline.steps.iter().find(|s| {
        s.registry_name.as_deref().is_some_and(|n| names.contains(&n))
            && s.config.get("enabled").and_then(Value::as_bool) == Some(true)
    });
    match enabled.and_then(|s| s.registry_name.as_deref()) {
        Some(name) => Err(format!(
            "{name} is enabled: relative actions (absolute = relative + state) are not supported"
        )),
        None => Ok(()),
    }
}

fn read_pipeline(path: &Path) -> Result<Pipeline> {
    let text = read_file(path)?;
    serde_json::from_slice(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: format!("not a lerobot processor pipeline: {e}"),
    })
}

/// The normalizer step `name` of a pipeline applied to `key`; `false` when the pipeline has no
/// such step (then the feature passes through, as it would in lerobot).
fn normalizer(
    dir: &Path,
    pipeline_path: &Path,
    pipeline: &Pipeline,
    name: &str,
    key: &str,
    dim: usize,
    config_mode: NormalizationMode,
) -> Result<(Normalizer, bool)> {
    let err = |path: &Path, message: String| ModelError::Config {
        path: path.to_path_buf(),
        message,
    };
    let Some(step) = pipeline.steps.iter().find(|s| s.registry_name.as_deref() == Some(name)) else {
        return Ok((Normalizer::identity(), false));
    };
    let spec: NormalizerStep =
        serde_json::from_value(step.config.clone()).map_err(|e| err(pipeline_path, format!("{name}: {e}")))?;
    let Some(feature) = spec.features.get(key) else {
        return Ok((Normalizer::identity(), true));
    };
    if feature.shape != [dim] {
        return Err(err(
            pipeline_path,
            format!(
                "{name} has {key} of shape {:?}, the policy's config says [{dim}]",
                feature.shape
            ),
        ));
    }
    let mode = spec
        .norm_map
        .get(&feature.kind)
        .copied()
        .unwrap_or(NormalizationMode::Identity);
    if mode != config_mode {
        return Err(err(
            pipeline_path,
            format!("{name} normalizes {key} as {mode:?}, the policy's config says {config_mode:?}"),
        ));
    }
    let stats = match &step.state_file {
        Some(file) => read_stats(&dir.join(file))?,
        None => Stats::new(),
    };
    let state_path = step
        .state_file
        .as_ref()
        .map_or_else(|| pipeline_path.to_path_buf(), |f| dir.join(f));
    let normalizer = Normalizer::from_stats(mode, &stats, key, dim, spec.eps).map_err(|m| err(&state_path, m))?;
    Ok((normalizer, true))
}

fn read_stats(path: &Path) -> Result<Stats> {
    let file = WeightFile::open(path)?;
    file.listing()
        .into_iter()
        .map(|t| Ok((t.name.clone(), file.tensor(&t.name)?.to_f32()?)))
        .collect()
}

fn tokenizer_settings(pre: &Pipeline, cfg: &ProcessorExpectations) -> std::result::Result<TokenizerSettings, String> {
    let step = pre
        .steps
        .iter()
        .find(|s| s.registry_name.as_deref() == Some("tokenizer_processor"))
        .ok_or("no tokenizer_processor step: the task would not reach the policy")?;
    let c = &step.config;
    let max_length = c
        .get("max_length")
        .and_then(Value::as_u64)
        .unwrap_or(cfg.tokenizer_max_length as u64) as usize;
    if max_length != cfg.tokenizer_max_length {
        return Err(format!(
            "tokenizer_processor max_length is {max_length}, the policy's tokenizer_max_length is {}",
            cfg.tokenizer_max_length
        ));
    }
    Ok(TokenizerSettings {
        max_length,
        truncation: c.get("truncation").and_then(Value::as_bool).unwrap_or(true),
        name: c.get("tokenizer_name").and_then(Value::as_str).map(str::to_string),
    })
}
