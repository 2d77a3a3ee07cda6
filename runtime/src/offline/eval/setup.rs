//! What an evaluation runs and on which episodes, worked out once for every front end (the
//! `brainstem eval` command, the Python package): the configuration from a file or the
//! built-in setup with the checkpoints, quantization, placement and device asked for, fitted
//! to a lerobot policy's dataset, and the episodes selected and sharded.

use std::path::{Path, PathBuf};

use brainstem_models::kernels::Device;

use super::report::Shard;
use super::{dataset_config, fit_lerobot_policy};
use crate::compute::partition::available_cores;
use crate::config::RuntimeConfig;
use crate::error::{Result, RuntimeError};
use crate::offline::dataset::Dataset;
use crate::simulate::sweep::Layout;

/// The configuration an evaluation runs.
#[derive(Debug, Clone, Default)]
pub struct EvalSetup {
    /// A runtime configuration file; without one, the built-in setup for the dataset.
    pub config: Option<PathBuf>,
    /// With the built-in setup: this checkpoint as VLM and VLT (and VLA unless `vla`).
    pub vlm: Option<PathBuf>,
    /// With the built-in setup: this checkpoint as the VLA.
    pub vla: Option<PathBuf>,
    /// A lerobot VLA's language backbone folder, when its `vlm_model_name` is neither a local
    /// folder nor in the Hugging Face cache.
    pub vla_backbone: Option<PathBuf>,
    /// Quantize the float matrices while loading (q8_0, q4_0, ...).
    pub quantize: Option<String>,
    /// Place the stages this way (split, vla-with-brain, two-chips, one-chip).
    pub placement: Option<String>,
    /// Run every partition on this device.
    pub device: Option<Device>,
    /// Where the built-in models are written.
    pub cache: PathBuf,
}

impl EvalSetup {
    /// The configuration for `dataset` and the name reports give it.
    pub fn configuration(&self, dataset: &Dataset) -> Result<(String, RuntimeConfig)> {
        let (mut name, mut config) = match &self.config {
            Some(path) => (stem(path), RuntimeConfig::from_file(path)?),
            None => self.built_in(dataset)?,
        };
        fit_lerobot_policy(&mut config, dataset)?;
        if let Some(device) = &self.device {
            config.device = Some(device.clone());
            name = format!("{name} on {device}");
        }
        if let Some(layout) = &self.placement {
            config.compute = Some(Layout::parse(layout)?.compute(available_cores()));
            name = format!("{name} {layout}");
        }
        if let Some(format) = &self.quantize {
            config.models.quantize = Some(format.clone());
            name = format!("{name} {format}");
        }
        Ok((name, config))
    }

    fn built_in(&self, dataset: &Dataset) -> Result<(String, RuntimeConfig)> {
        std::fs::create_dir_all(&self.cache).map_err(|e| RuntimeError::ConfigFile {
            path: self.cache.clone(),
            reason: format!("creating the model cache: {e}"),
        })?;
        let mut config = dataset_config(dataset, &self.cache)?;
        let mut name = "demo".to_string();
        if let Some(vlm) = &self.vlm {
            config.models.vlm = vlm.clone();
            name = stem(vlm);
        }
        if let Some(vla) = &self.vla {
            config.models.vla = Some(vla.clone());
            name = format!("{name}+{}", stem(vla));
        }
        if self.vla_backbone.is_some() {
            config.models.vla_backbone.clone_from(&self.vla_backbone);
        }
        Ok((name, config))
    }
}

/// A file's or folder's name without its extension, to name a configuration by.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or("config".into(), |s| s.to_string_lossy().into_owned())
}

impl Shard {
    /// `i/n`, with 0 <= i < n.
    pub fn parse(text: &str) -> Result<Shard> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Shard { index, count }),
            _ => Err(RuntimeError::config(
                "shard",
                format!("expected i/n with 0 <= i < n, found {text:?}"),
            )),
        }
    }
}

/// The positions (in the dataset's episode order) of the episodes asked for (all when
/// `episodes` is empty), then the shard's: every `count`-th from its `index`.
pub fn select_episodes(dataset: &Dataset, episodes: &[u64], shard: Option<Shard>) -> Result<Vec<usize>> {
    let mut positions: Vec<usize> = if episodes.is_empty() {
        (0..dataset.episodes.len()).collect()
    } else {
        episodes
            .iter()
            .map(|&index| {
                dataset
                    .episodes
                    .iter()
                    .position(|e| e.index == index)
                    .ok_or_else(|| RuntimeError::config("episodes", format!("the dataset has no episode {index}")))
            })
            .collect::<Result<_>>()?
    };
    if let Some(shard) = shard {
        positions = positions
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % shard.count == shard.index)
            .map(|(_, p)| p)
            .collect();
    }
    Ok(positions)
}
