//! One 512x512 camera frame plus a 32-token question to the first answer token, on a
//! SmolVLM-256M-shaped Idefics3 with random weights, side by side in one run: brainstem with
//! f32 weights and with weights quantized at load (Q8_0, Q4_0; int8 activations), and
//! PyTorch + transformers f32 through `benches/peers/vlm_torch.py`. Every engine starts from
//! the PNG file. Also reports the vision tower's GFLOP/s against the machine's measured FMA peak.
//!
//! python3 benches/peers/vlm_torch.py make weights/smolvlm-256m-random
//! cargo run --release -p brainstem-benches --bin vlm_first_token -- --model weights/smolvlm-256m-random

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use brainstem_benches::{machine_description, median, roofline};
use brainstem_runtime::kernels::{ActivationPrecision, Backend, CpuBackend, DType};
use brainstem_runtime::models::idefics3::VisionConfig;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::models::sampling::argmax;
use brainstem_runtime::models::vlm::Vlm;
use brainstem_runtime::models::{LoadOptions, Logits};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "weights/smolvlm-256m-random")]
    model: PathBuf,
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python interpreter with torch and transformers; "none" skips PyTorch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Which brainstem weight formats to run, of f32, q8_0 and q4_0.
    #[arg(long, value_delimiter = ',', default_value = "f32,q8_0,q4_0")]
    formats: Vec<String>,
}

const QUESTION: &str = "Which object is left of the cup?";

struct Timing {
    first_token: Duration,
    vision: Duration,
    prompt_tokens: usize,
}

fn brainstem_reps(args: &Args, quantize: Option<DType>, precision: ActivationPrecision) -> anyhow::Result<Vec<Timing>> {
    let backend = Arc::new(CpuBackend::new(args.threads)?.with_activation_precision(precision));
    let options = LoadOptions {
        quantize,
        ..LoadOptions::default()
    };
    let vlm = Vlm::load(backend.clone(), &args.model, options)?;
    let frame_path = args.model.join("frame.png");
    (0..args.reps)
        .map(|_| {
            let start = Instant::now();
            let frame = vlm.encode_frame(&RgbImage::open(&frame_path)?)?;
            let vision = start.elapsed();
            let ids = vlm.prompt_ids(QUESTION, &frame)?;
            let mut cache = vlm.model().text().new_cache(ids.len() + 1)?;
            let logits = vlm
                .model()
                .prefill(&ids, Some(&frame.embedding), &mut cache, Logits::Last)?;
            argmax(&backend.read(&logits)?).context("no finite logit")?;
            Ok(Timing {
                first_token: start.elapsed(),
                vision,
                prompt_tokens: ids.len(),
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct PeerResult {
    engine: String,
    median_s: f64,
    prompt_tokens: usize,
}

fn pytorch(args: &Args) -> anyhow::Result<PeerResult> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/vlm_torch.py");
    let output = Command::new(&args.python)
        .arg(script)
        .args(["time", &args.model.display().to_string(), &args.reps.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
    );
    let text = String::from_utf8(output.stdout)?;
    Ok(serde_json::from_str(text.lines().last().unwrap_or(""))?)
}

/// Multiply-adds of the vision tower on one tile: patch embedding, per layer the four
/// projections, the MLP, and attention's two products.
fn vision_macs(cfg: &VisionConfig) -> f64 {
    let (n, h, i) = (
        cfg.num_patches() as f64,
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
    );
    let per_layer = n * (4.0 * h * h + 2.0 * h * i) + 2.0 * n * n * h;
    n * cfg.patch_inputs() as f64 * h + cfg.num_layers as f64 * per_layer
}

fn vision_config(dir: &Path) -> anyhow::Result<VisionConfig> {
    let text = std::fs::read_to_string(dir.join("config.json"))?;
    let cfg = brainstem_runtime::models::idefics3::Idefics3Config::from_json(&text, &dir.join("config.json"))?;
    Ok(cfg.vision)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.model.join("model.safetensors").is_file(),
        "make the model first: python3 benches/peers/vlm_torch.py make {}",
        args.model.display()
    );
    println!("machine: {}", machine_description()?);
    let peak = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()?
        .install(roofline::fma_peak);
    let vision_flop = 2.0 * vision_macs(&vision_config(&args.model)?);
    let torch = match args.python.as_str() {
        "none" => None,
        _ => Some(pytorch(&args)?),
    };
    println!(
        "FMA peak {:.0} GFLOP/s; vision tower {:.1} GFLOP per tile",
        peak / 1e9,
        vision_flop / 1e9
    );
    println!("| engine | weights | first token (median) | vision | vision GFLOP/s | of FMA peak | vs PyTorch |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let variants = [
        ("brainstem", "f32", None, ActivationPrecision::F32),
        (
            "brainstem",
            "Q8_0, int8 activations",
            Some(DType::Q8_0),
            ActivationPrecision::Int8,
        ),
        (
            "brainstem",
            "Q4_0, int8 activations",
            Some(DType::Q4_0),
            ActivationPrecision::Int8,
        ),
    ];
    for (engine, weights, quantize, precision) in variants {
        let reps = brainstem_reps(&args, quantize, precision)?;
        let first = median(&reps.iter().map(|r| r.first_token).collect::<Vec<_>>());
        let vision = median(&reps.iter().map(|r| r.vision).collect::<Vec<_>>());
        let gflops = vision_flop / vision.as_secs_f64() / 1e9;
        let ratio = torch
            .as_ref()
            .map_or("-".into(), |t| format!("{:.2}x", t.median_s / first.as_secs_f64()));
        println!(
            "| {engine} | {weights} | {:.0} ms | {:.0} ms | {gflops:.0} | {:.0}% | {ratio} |",
            first.as_secs_f64() * 1e3,
            vision.as_secs_f64() * 1e3,
            100.0 * gflops * 1e9 / peak
        );
        if quantize.is_none() {
            eprintln!("prompt: {} tokens", reps[0].prompt_tokens);
        }
    }
    if let Some(torch) = torch {
        println!(
            "| {} | f32 | {:.0} ms | - | - | - | 1.00x |",
            torch.engine,
            torch.median_s * 1e3
        );
        eprintln!("PyTorch prompt: {} tokens", torch.prompt_tokens);
    }
    Ok(())
}
