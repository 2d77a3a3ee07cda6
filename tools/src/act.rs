//! `brainstem act`: one chunk of actions from a lerobot SmolVLA or pi0 checkpoint for one observation
//! (camera frames, joint state, task), printed as one JSON object whose `"actions"` is the
//! chunk, steps by action dimensions, unnormalized as lerobot's postprocessor returns it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use brainstem_runtime::models::flow::FlowVla;
use brainstem_runtime::models::image::planar::PlanarImage;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::models::smolvla::{HubCache, Noise, Observation};
use brainstem_runtime::models::{LoadOptions, WeightFile};
use serde_json::json;

use crate::generate::ComputeArgs;

#[derive(clap::Args)]
pub struct ActArgs {
    /// A lerobot SmolVLA or pi0 folder (config.json, model.safetensors, the processor files).
    #[arg(long)]
    policy: PathBuf,
    /// SmolVLA's backbone folder (config.json, tokenizer.json), or pi0's tokenizer folder, when
    /// the name the policy gives is neither a local folder nor in the Hugging Face cache.
    #[arg(long)]
    vlm: Option<PathBuf>,
    /// A camera frame, CAMERA=FILE (PNG or JPEG); CAMERA is the policy's image feature
    /// without `observation.images.`. Repeat for each camera.
    #[arg(long = "image", value_parser = parse_image, required = true)]
    images: Vec<(String, PathBuf)>,
    /// The joint state, comma-separated, in the robot's units.
    #[arg(long, value_parser = parse_state, allow_hyphen_values = true)]
    state: State,
    #[arg(long)]
    task: String,
    /// A safetensors file whose tensor `noise` is [steps, max_action_dim] or
    /// [1, steps, max_action_dim]: the chunk's starting noise.
    #[arg(long, conflicts_with = "seed")]
    noise: Option<PathBuf>,
    /// Seed of the chunk's starting noise (standard normal).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    compute: ComputeArgs,
}

fn parse_image(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((camera, file)) if !camera.is_empty() && !file.is_empty() => Ok((camera.to_string(), file.into())),
        _ => Err(format!("expected CAMERA=FILE, found {text:?}")),
    }
}

/// Joint values given as one comma-separated argument.
#[derive(Clone, Debug)]
struct State(Vec<f32>);

fn parse_state(text: &str) -> Result<State, String> {
    text.split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|e| format!("{v:?} in the state: {e}")))
        .collect::<Result<_, _>>()
        .map(State)
}

pub fn run(args: ActArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let backend = args.compute.backend()?;
    let options = LoadOptions {
        quantize: args.compute.quantize.map(Into::into),
        ..LoadOptions::default()
    };
    let policy = FlowVla::load(
        backend,
        &args.policy,
        args.vlm.as_deref(),
        &HubCache::from_env(),
        options,
    )
    .with_context(|| {
        format!(
            "loading the policy {} (a backbone or tokenizer folder can be given with --vlm DIR)",
            args.policy.display()
        )
    })?;
    let loaded = started.elapsed();
    let spec = policy.spec();
    let noise = match &args.noise {
        Some(path) => Noise::Values(read_noise(path, spec.chunk_size, spec.max_action_dim)?),
        None => Noise::Seed(args.seed),
    };
    let observation = Observation {
        images: read_images(&args.images)?,
        state: args.state.0.clone(),
        task: args.task.clone(),
    };
    let chunk_started = Instant::now();
    let chunk = policy.predict(&observation, &noise)?;
    let chunk_time = chunk_started.elapsed();
    let actions: Vec<&[f32]> = (0..chunk.steps).map(|s| chunk.row(s)).collect();
    let report = json!({
        "actions": actions,
        "steps": chunk.steps,
        "action_dim": chunk.dims,
        "policy": args.policy.display().to_string(),
        "type": spec.kind,
        "device": args.compute.device.to_string(),
        "load_ms": loaded.as_secs_f64() * 1e3,
        "chunk_ms": chunk_time.as_secs_f64() * 1e3,
    });
    println!("{report}");
    Ok(())
}

fn read_images(images: &[(String, PathBuf)]) -> anyhow::Result<BTreeMap<String, PlanarImage>> {
    let mut out = BTreeMap::new();
    for (camera, path) in images {
        let rgb = RgbImage::open(path).with_context(|| format!("camera {camera}"))?;
        if out.insert(camera.clone(), PlanarImage::from_rgb(&rgb)).is_some() {
            bail!("camera {camera} is given twice");
        }
    }
    Ok(out)
}

/// The `noise` tensor of a safetensors file, `[steps, dims]` or `[1, steps, dims]`.
fn read_noise(path: &Path, steps: usize, dims: usize) -> anyhow::Result<Vec<f32>> {
    let file = WeightFile::open(path)?;
    let noise = file.tensor("noise")?;
    if noise.shape != [steps, dims] && noise.shape != [1, steps, dims] {
        bail!(
            "{}: noise has shape {:?}, the policy needs [{steps}, {dims}] or [1, {steps}, {dims}]",
            path.display(),
            noise.shape
        );
    }
    Ok(noise.to_f32()?)
}
