//! `brainstem act`: one chunk of actions from a lerobot SmolVLA, pi0, pi0.5 or pi0-FAST checkpoint
//! for one observation (camera frames, joint state, task), printed as one JSON object whose
//! `"actions"` is the chunk, steps by action dimensions, unnormalized as lerobot's
//! postprocessor returns it; for pi0-FAST, `"tokens"` holds the FAST tokens in sampling order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use brainstem_runtime::models::flow::{policy_type, FlowVla};
use brainstem_runtime::models::image::planar::PlanarImage;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::models::pi0fast::{Pi0Fast, SampleOptions, TokenizerFolders, PI0_FAST_TYPE};
use brainstem_runtime::models::smolvla::{HubCache, Noise, Observation};
use brainstem_runtime::models::{LoadOptions, WeightFile};
use serde_json::{json, Value};

use crate::generate::ComputeArgs;

#[derive(clap::Args)]
pub struct ActArgs {
    /// A lerobot SmolVLA, pi0, pi0.5 or pi0-FAST folder (config.json, model.safetensors, the
    /// processor files).
    #[arg(long)]
    policy: PathBuf,
    /// SmolVLA's backbone folder (config.json, tokenizer.json), or the pi0 family's tokenizer
    /// folder, when the name the policy gives is neither a local folder nor in the Hugging
    /// Face cache.
    #[arg(long)]
    vlm: Option<PathBuf>,
    /// pi0-FAST's FAST action tokenizer folder (processor_config.json, tokenizer.json), when
    /// the name the policy gives is neither a local folder nor in the Hugging Face cache.
    #[arg(long)]
    action_tokenizer: Option<PathBuf>,
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
    /// Seed of the chunk's starting noise (standard normal), or of pi0-FAST's sampling when its
    /// temperature is above 0.
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
    let options = LoadOptions {
        quantize: args.compute.quantize.map(Into::into),
        ..LoadOptions::default()
    };
    let observation = Observation {
        images: read_images(&args.images)?,
        state: args.state.0.clone(),
        task: args.task.clone(),
    };
    let report = match policy_type(&args.policy).as_deref() {
        Some(PI0_FAST_TYPE) => act_fast(&args, options, &observation, started)?,
        _ => act_flow(&args, options, &observation, started)?,
    };
    println!("{report}");
    Ok(())
}

fn loading_context(args: &ActArgs) -> String {
    format!(
        "loading the policy {} (tokenizer folders can be given with --vlm DIR and --action-tokenizer DIR)",
        args.policy.display()
    )
}

/// A flow-matching policy's chunk from the given noise or seed.
fn act_flow(
    args: &ActArgs,
    options: LoadOptions,
    observation: &Observation,
    started: Instant,
) -> anyhow::Result<Value> {
    let backend = args.compute.backend()?;
    let policy = FlowVla::load(
        backend,
        &args.policy,
        args.vlm.as_deref(),
        &HubCache::from_env(),
        options,
    )
    .with_context(|| loading_context(args))?;
    let loaded = started.elapsed();
    let spec = policy.spec();
    let noise = match &args.noise {
        Some(path) => Noise::Values(read_noise(path, spec.chunk_size, spec.max_action_dim)?),
        None => Noise::Seed(args.seed),
    };
    let chunk_started = Instant::now();
    let chunk = policy.predict(observation, &noise)?;
    let chunk_time = chunk_started.elapsed();
    let actions: Vec<&[f32]> = (0..chunk.steps).map(|s| chunk.row(s)).collect();
    Ok(json!({
        "actions": actions,
        "steps": chunk.steps,
        "action_dim": chunk.dims,
        "policy": args.policy.display().to_string(),
        "type": spec.kind,
        "device": args.compute.device.to_string(),
        "load_ms": loaded.as_secs_f64() * 1e3,
        "chunk_ms": chunk_time.as_secs_f64() * 1e3,
    }))
}

/// pi0-FAST's chunk, with its FAST tokens and its decoding rate.
fn act_fast(
    args: &ActArgs,
    options: LoadOptions,
    observation: &Observation,
    started: Instant,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.noise.is_none(),
        "pi0-FAST samples tokens and starts from no noise; --noise is for flow-matching policies"
    );
    let backend = args.compute.backend()?;
    let folders = TokenizerFolders {
        text: args.vlm.as_deref(),
        actions: args.action_tokenizer.as_deref(),
    };
    let policy = Pi0Fast::load(backend, &args.policy, folders, &HubCache::from_env(), options)
        .with_context(|| loading_context(args))?;
    let loaded = started.elapsed();
    let chunk_started = Instant::now();
    let sample = SampleOptions {
        seed: args.seed,
        keep_logits: 0,
    };
    let (chunk, trace) = policy.predict(observation, sample)?;
    let chunk_time = chunk_started.elapsed();
    let decode_s = trace.timings.decode.as_secs_f64();
    let later_tokens = trace.generated.len().saturating_sub(1);
    let actions: Vec<&[f32]> = (0..chunk.steps).map(|s| chunk.row(s)).collect();
    Ok(json!({
        "actions": actions,
        "tokens": trace.fast_tokens,
        "steps": chunk.steps,
        "action_dim": chunk.dims,
        "sampled": trace.generated.len(),
        "policy": args.policy.display().to_string(),
        "type": PI0_FAST_TYPE,
        "device": args.compute.device.to_string(),
        "load_ms": loaded.as_secs_f64() * 1e3,
        "chunk_ms": chunk_time.as_secs_f64() * 1e3,
        "first_token_ms": (trace.timings.vision + trace.timings.prefix).as_secs_f64() * 1e3,
        "tokens_per_s": if decode_s > 0.0 { later_tokens as f64 / decode_s } else { 0.0 },
    }))
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
