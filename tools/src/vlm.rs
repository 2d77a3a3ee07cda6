//! The vision-language commands: `brainstem generate --image` (the VLM role) and
//! `brainstem plan` (the VLT role), on an Idefics3/SmolVLM checkpoint directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use brainstem_runtime::kernels::DeviceBackend;
use brainstem_runtime::models::generate::GenerateOptions;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::models::plan::PlanSchema;
use brainstem_runtime::models::sampling::SamplingParams;
use brainstem_runtime::models::vlm::{EncodedFrame, Vlm};
use brainstem_runtime::models::LoadOptions;

use crate::generate::{report, ComputeArgs, TokenPrinter};

/// The robot skills a plan may use unless `--skills` says otherwise.
const DEFAULT_SKILLS: &str = "navigate,look_at,pick,place,push,open_gripper,close_gripper,hand_over,wait";

#[derive(clap::Args)]
pub struct PlanArgs {
    /// A checkpoint directory with config.json, model.safetensors, tokenizer.json and
    /// processor_config.json (or preprocessor_config.json).
    #[arg(long)]
    model: PathBuf,
    /// A PNG or JPEG camera frame.
    #[arg(long)]
    image: PathBuf,
    #[arg(long)]
    instruction: String,
    /// Comma-separated skill names the plan may use.
    #[arg(long, default_value = DEFAULT_SKILLS)]
    skills: String,
    #[arg(long, default_value_t = 160)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    compute: ComputeArgs,
}

/// Loads a checkpoint for the vision-language roles.
pub fn load(dir: &Path, compute: &ComputeArgs) -> anyhow::Result<(Arc<DeviceBackend>, Vlm<DeviceBackend>)> {
    let backend = compute.backend()?;
    let options = LoadOptions {
        quantize: compute.quantize.map(Into::into),
        ..LoadOptions::default()
    };
    let vlm = Vlm::load(backend.clone(), dir, options)
        .with_context(|| format!("loading the vision-language model in {}", dir.display()))?;
    Ok((backend, vlm))
}

/// Reads and encodes a frame, reporting the time it took.
pub fn encode(vlm: &Vlm<DeviceBackend>, image: &Path) -> anyhow::Result<EncodedFrame> {
    let frame = RgbImage::open(image)?;
    let started = Instant::now();
    let encoded = vlm.encode_frame(&frame)?;
    eprintln!(
        "image {}x{} -> {} tiles, {} features in {:.1} ms",
        frame.width(),
        frame.height(),
        encoded.tiles(),
        encoded.embedding.rows,
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(encoded)
}

/// Answers `prompt` about `image`, printing tokens as they come.
pub fn describe(
    vlm: &Vlm<DeviceBackend>,
    backend: &DeviceBackend,
    image: &Path,
    prompt: &str,
    opts: GenerateOptions,
) -> anyhow::Result<()> {
    let frame = encode(vlm, image)?;
    let opts = GenerateOptions {
        stop_ids: vlm.stop_ids(),
        ..opts
    };
    let mut printer = TokenPrinter::new(vlm.tokenizer());
    let (_, stats) = vlm.generate(prompt, &frame, &opts, None, |token| printer.push(token))?;
    println!();
    report(backend, &stats);
    Ok(())
}

pub fn run_plan(args: PlanArgs) -> anyhow::Result<()> {
    let (backend, vlm) = load(&args.model, &args.compute)?;
    let skills = args.skills.split(',').map(|s| s.trim().to_string()).collect();
    let schema = PlanSchema::new(skills)?;
    let frame = encode(&vlm, &args.image)?;
    let opts = GenerateOptions {
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_p: 1.0,
            seed: args.seed,
        },
        stop_ids: Vec::new(),
    };
    let (plan, stats) = vlm.plan(&args.instruction, &frame, &schema, &opts)?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    report(backend.as_ref(), &stats);
    Ok(())
}
