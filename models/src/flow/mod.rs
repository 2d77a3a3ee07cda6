//! What lerobot's flow-matching VLAs (SmolVLA, pi0) share, whatever their backbone: the
//! observation they take, the chunk they give, a chunk's trace for parity checks and timing,
//! where the noise comes from, the state's normalization and padding, the task's tokens, the
//! chunk's unnormalization, the flow-matching head around the action expert (`head.rs`), and
//! [`FlowVla`], any of them chosen by its config's type ([`policy`]).

pub(crate) mod head;
pub mod policy;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};

pub use head::time_embedding;
pub use policy::{is_flow_policy, is_lerobot_policy, policy_type, FlowVla, PolicySpec};

use crate::error::{ModelError, Result};
use crate::host_work;
use crate::image::planar::PlanarImage;
use crate::kernels::{Ledger, OpKind};
use crate::smolvla::processor::Processors;
use crate::tokenizer::Tokenizer;

/// One observation, in the robot's units.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Frames by camera name (the policy's image feature without `observation.images.`),
    /// values in [0, 1]. A camera the policy takes may be missing (lerobot then fills up to
    /// `empty_cameras` of them); one it does not take is an error.
    pub images: BTreeMap<String, PlanarImage>,
    pub state: Vec<f32>,
    pub task: String,
}

/// A chunk of actions, `steps` rows of `dims` values, in the robot's units.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionChunk {
    pub steps: usize,
    pub dims: usize,
    pub values: Vec<f32>,
}

impl ActionChunk {
    pub fn row(&self, step: usize) -> &[f32] {
        &self.values[step * self.dims..(step + 1) * self.dims]
    }
}

/// The intermediate values of one chunk, for parity checks and diagnostics: each denoising
/// step's time, input sample and velocity (`[chunk, max_action_dim]`, normalized), the final
/// sample before unnormalization, and where the time went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChunkTrace {
    pub times: Vec<f32>,
    pub samples: Vec<Vec<f32>>,
    pub velocities: Vec<Vec<f32>>,
    pub normalized: Vec<f32>,
    pub token_ids: Vec<u32>,
    pub prefix_len: usize,
    pub timings: ChunkTimings,
}

/// Wall time of a chunk's stages.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChunkTimings {
    /// Resizing and encoding the cameras (vision tower and connector or projector).
    pub vision: Duration,
    /// The prefix's rows through the backbone's layers.
    pub prefix: Duration,
    /// Every denoising step (with what is computed once per chunk for them: cross-attention
    /// keys and values, pi0's state row).
    pub denoise: Duration,
}

/// Where a chunk's noise comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Noise {
    /// Given values, `[chunk, max_action_dim]`.
    Values(Vec<f32>),
    /// Standard normal values from a seeded generator.
    Seed(u64),
}

/// The noise a chunk of `chunk` steps of `max_action_dim` values starts from: the given
/// values, checked, or a seeded standard normal draw.
pub fn noise_values(noise: &Noise, chunk: usize, max_action_dim: usize) -> Result<Vec<f32>> {
    let len = chunk * max_action_dim;
    match noise {
        Noise::Values(values) if values.len() == len && values.iter().all(|v| v.is_finite()) => Ok(values.clone()),
        Noise::Values(values) => Err(ModelError::Observation(format!(
            "noise must be {len} finite values ([{chunk}, {max_action_dim}]), found {} values{}",
            values.len(),
            if values.iter().any(|v| !v.is_finite()) {
                " with a NaN or infinity"
            } else {
                ""
            }
        ))),
        Noise::Seed(seed) => Ok(gaussian(*seed, len)),
    }
}

/// The state `raw` (`state_dim` finite values) normalized as the preprocessor does and
/// zero-padded to `max_state_dim`.
pub fn prepare_state(raw: &[f32], state_dim: usize, max_state_dim: usize, processors: &Processors) -> Result<Vec<f32>> {
    if raw.len() != state_dim {
        return Err(ModelError::Observation(format!(
            "observation.state has {} values, the policy takes {state_dim}",
            raw.len()
        )));
    }
    if let Some(i) = raw.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::Observation(format!(
            "observation.state[{i}] is {}: a state must be finite",
            raw[i]
        )));
    }
    let mut state = raw.to_vec();
    processors.state.normalize(&mut state);
    state.resize(max_state_dim, 0.0);
    Ok(state)
}

/// The task's token ids as the preprocessor makes them: with its trailing newline when the
/// pipeline adds one, the tokenizer's special tokens, truncated to its maximum length.
pub fn task_tokens(task: &str, tokenizer: &Tokenizer, processors: &Processors, ledger: &Ledger) -> Result<Vec<u32>> {
    let text = match processors.newline_task && !task.ends_with('\n') {
        true => format!("{task}\n"),
        false => task.to_string(),
    };
    let mut ids = tokenizer.encode_with_special_tokens(&text)?;
    host_work::tokenized(ledger, &text, ids.len());
    if processors.tokenizer.truncation {
        ids.truncate(processors.tokenizer.max_length);
    }
    Ok(ids)
}

/// The observation's frames of the cameras the policy takes (`known`, in its order), each
/// checked whole; an unknown camera, or no frame at all, is refused by name.
pub fn present_frames<'a>(obs: &'a Observation, known: &[&str]) -> Result<Vec<&'a PlanarImage>> {
    if let Some(unknown) = obs.images.keys().find(|name| !known.contains(&name.as_str())) {
        return Err(ModelError::Observation(format!(
            "the policy has no camera {unknown:?}; it takes {}",
            known.join(", ")
        )));
    }
    if let Some((name, frame)) = obs.images.iter().find(|(_, frame)| !frame.is_whole()) {
        return Err(ModelError::Observation(format!(
            "camera {name:?}'s frame is {}x{} but holds {} values, not 3 x {} x {}",
            frame.width,
            frame.height,
            frame.data.len(),
            frame.height,
            frame.width
        )));
    }
    let present: Vec<&PlanarImage> = known.iter().filter_map(|name| obs.images.get(*name)).collect();
    if present.is_empty() {
        return Err(ModelError::Observation(format!(
            "no camera frame: the policy takes {}, and at least one is needed",
            known.join(", ")
        )));
    }
    Ok(present)
}

/// The normalized chunk (`[chunk, max_action_dim]`) cut to the action's `dims` and
/// unnormalized as the postprocessor does.
pub fn unnormalize_chunk(
    normalized: &[f32],
    max_action_dim: usize,
    dims: usize,
    processors: &Processors,
    ledger: &Ledger,
) -> ActionChunk {
    ledger.record(OpKind::ActionDecode, host_work::elementwise(normalized.len(), 3));
    let mut values = Vec::with_capacity(normalized.len() / max_action_dim.max(1) * dims);
    for row in normalized.chunks_exact(max_action_dim) {
        let mut action = row[..dims].to_vec();
        processors.action.unnormalize(&mut action);
        values.extend(action);
    }
    ActionChunk {
        steps: values.len() / dims.max(1),
        dims,
        values,
    }
}

/// `len` standard normal values from a seeded generator (Box-Muller).
pub fn gaussian(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        out.push((radius * angle.cos()) as f32);
        out.push((radius * angle.sin()) as f32);
    }
    out.truncate(len);
    out
}
