//! One chunk of a lerobot flow-matching VLA from the PNG file to the unnormalized actions, side
//! by side in one run: brainstem with f32 weights and with weights quantized at load (int8
//! activations), and lerobot 0.6.1's PyTorch `predict_action_chunk` (with its pre- and
//! post-processors) through the peer script of the policy's type. Each engine runs in its own
//! process, so each reports its own peak memory and its time from process start to the first
//! chunk; the same frame, state, task and threads. The policies, seeded random weights in the
//! published shapes:
//!
//! - SmolVLA (SmolVLM2-500M's shape with 16 VLM layers and the action expert, chunk 50, 10
//!   denoising steps, one 512 x 512 camera), `benches/peers/smolvla_lerobot.py`:
//!   python3.12 benches/peers/smolvla_lerobot.py make weights/smolvla-500m-shaped
//!   cargo run --release -p brainstem-benches --bin smolvla_chunk -- --python python3.12
//! - pi0 (PaliGemma 3B and the 300M expert, chunk 50, 10 steps, one 640 x 480 camera),
//!   `benches/peers/pi0_lerobot.py`:
//!   python3.12 benches/peers/pi0_lerobot.py make weights/pi0-shaped
//!   cargo run --release -p brainstem-benches --bin smolvla_chunk -- --policy weights/pi0-shaped
//! - pi0-FAST (PaliGemma 3B with its 257k-token head, one 640 x 480 camera, 32 tokens sampled
//!   a chunk: a random model never ends early), `benches/peers/pi0fast_lerobot.py`; the table
//!   then gives the prefix with the first token, the later tokens and their rate:
//!   python3.12 benches/peers/pi0fast_lerobot.py make weights/pi0fast-shaped
//!   cargo run --release -p brainstem-benches --bin smolvla_chunk -- --policy weights/pi0fast-shaped

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use brainstem_benches::{machine_description, median};
use brainstem_runtime::kernels::{ActivationPrecision, CpuBackend, DType};
use brainstem_runtime::models::flow::{policy_type, FlowVla};
use brainstem_runtime::models::image::planar::PlanarImage;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::models::pi0fast::{Pi0Fast, SampleOptions, TokenizerFolders, PI0_FAST_TYPE};
use brainstem_runtime::models::smolvla::{HubCache, Noise, Observation};
use brainstem_runtime::models::LoadOptions;
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "weights/smolvla-500m-shaped")]
    policy: PathBuf,
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python 3.12 with lerobot 0.6.1; "none" skips lerobot.
    #[arg(long, default_value = "python3.12")]
    python: String,
    /// brainstem weight formats to run, of f32, q8_0, q4_0 and q4_k.
    #[arg(long, value_delimiter = ',', default_value = "f32,q8_0,q4_0")]
    formats: Vec<String>,
    /// Run one brainstem format in this process and print its JSON (what the side-by-side run
    /// starts once per format).
    #[arg(long, hide = true)]
    engine: Option<String>,
}

const STATE: [f32; 6] = [0.3, -0.7, 1.1, 0.05, 0.4, -1.5];
const TASK: &str = "pick up the cube";

/// One engine's figures, as both sides print them.
#[derive(Serialize, Deserialize)]
struct EngineResult {
    engine: String,
    median_s: f64,
    vision_s: f64,
    prefix_s: f64,
    /// The denoising steps, or (pi0-FAST) every token after the first.
    denoise_s: f64,
    first_chunk_unix_s: f64,
    peak_rss_mb: f64,
    /// Passes through the backbone after the vision tower: pi0-FAST samples one token a pass.
    #[serde(default)]
    forward_calls: Option<usize>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn format_options(format: &str) -> anyhow::Result<(Option<DType>, ActivationPrecision)> {
    Ok(match format {
        "f32" => (None, ActivationPrecision::F32),
        "q8_0" => (Some(DType::Q8_0), ActivationPrecision::Int8),
        "q4_0" => (Some(DType::Q4_0), ActivationPrecision::Int8),
        "q4_k" => (Some(DType::Q4K), ActivationPrecision::Int8),
        other => anyhow::bail!("unknown format {other:?}: f32, q8_0, q4_0 or q4_k"),
    })
}

/// Peak resident memory of this process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn run_engine(args: &Args, format: &str) -> anyhow::Result<EngineResult> {
    let (quantize, precision) = format_options(format)?;
    let backend = Arc::new(CpuBackend::new(args.threads)?.with_activation_precision(precision));
    let options = LoadOptions {
        quantize,
        ..LoadOptions::default()
    };
    let hub = HubCache::at_home(&args.policy.join("hf-home"));
    let chunk: ChunkFn = match policy_type(&args.policy).as_deref() {
        Some(PI0_FAST_TYPE) => {
            let policy = Pi0Fast::load(backend, &args.policy, TokenizerFolders::default(), &hub, options)?;
            Box::new(move |observation| {
                let (_, trace) = policy.predict(observation, SampleOptions::default())?;
                let t = trace.timings;
                Ok((t.vision, t.prefix, t.decode, Some(trace.generated.len())))
            })
        }
        _ => {
            let policy = FlowVla::load(backend, &args.policy, None, &hub, options)?;
            Box::new(move |observation| {
                let (_, trace) = policy.predict_guided(observation, &Noise::Seed(0), None)?;
                let t = trace.timings;
                Ok((t.vision, t.prefix, t.denoise, None))
            })
        }
    };
    let mut totals = Vec::new();
    let mut stages = Vec::new();
    let mut first_chunk = None;
    for _ in 0..args.reps {
        let start = Instant::now();
        let frame = PlanarImage::from_rgb(&RgbImage::open(&args.policy.join("frame.png"))?);
        let observation = Observation {
            images: [("top".to_string(), frame)].into(),
            state: STATE.to_vec(),
            task: TASK.into(),
        };
        stages.push(chunk(&observation)?);
        totals.push(start.elapsed());
        first_chunk.get_or_insert_with(unix_now);
    }
    let middle = median(&totals);
    let at = totals.iter().position(|t| *t == middle).unwrap_or(0);
    let weights = quantize.map_or("f32".to_string(), |d| format!("{d:?}, int8 activations"));
    let (vision, prefix, rest, calls) = stages[at];
    Ok(EngineResult {
        engine: format!("brainstem, {weights}"),
        median_s: middle.as_secs_f64(),
        vision_s: vision.as_secs_f64(),
        prefix_s: prefix.as_secs_f64(),
        denoise_s: rest.as_secs_f64(),
        first_chunk_unix_s: first_chunk.unwrap_or(0.0),
        peak_rss_mb: peak_rss_mb(),
        forward_calls: calls,
    })
}

/// A chunk's vision, prefix and later time, and (pi0-FAST) the tokens it sampled.
type Stages = (Duration, Duration, Duration, Option<usize>);

/// One chunk of the loaded policy for an observation.
type ChunkFn = Box<dyn Fn(&Observation) -> anyhow::Result<Stages>>;

/// Runs `command`, returning its result and the time it was started.
fn spawn(mut command: Command) -> anyhow::Result<(EngineResult, f64)> {
    let started = unix_now();
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
    );
    let text = String::from_utf8(output.stdout)?;
    let line = text.lines().last().unwrap_or("");
    Ok((
        serde_json::from_str(line).with_context(|| format!("not a result: {line}"))?,
        started,
    ))
}

fn main() -> anyhow::Result<()> {
    brainstem_runtime::kernels::cpu::retain_freed_memory();
    let args = Args::parse();
    anyhow::ensure!(
        args.policy.join("model.safetensors").is_file(),
        "make the policy first: python3.12 benches/peers/smolvla_lerobot.py make {} (or pi0_lerobot.py, pi0fast_lerobot.py)",
        args.policy.display()
    );
    let peer = match policy_type(&args.policy).as_deref() {
        Some("pi0") => "peers/pi0_lerobot.py",
        Some(PI0_FAST_TYPE) => "peers/pi0fast_lerobot.py",
        _ => "peers/smolvla_lerobot.py",
    };
    if let Some(format) = &args.engine {
        println!("{}", serde_json::to_string(&run_engine(&args, format)?)?);
        return Ok(());
    }
    println!("machine: {}", machine_description()?);
    let mut results = Vec::new();
    for format in &args.formats {
        let mut command = Command::new(std::env::current_exe()?);
        command.args([
            "--engine",
            format,
            "--reps",
            &args.reps.to_string(),
            "--threads",
            &args.threads.to_string(),
        ]);
        command.arg("--policy").arg(&args.policy);
        results.push(spawn(command)?);
    }
    if args.python != "none" {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(peer);
        let mut command = Command::new(&args.python);
        command.arg(script).arg("time").arg(&args.policy);
        command.args([args.reps.to_string(), args.threads.to_string()]);
        results.push(spawn(command)?);
    }
    print_table(&results, args.python != "none");
    Ok(())
}

fn print_table(results: &[(EngineResult, f64)], with_peer: bool) {
    let reference = with_peer.then(|| results.last().map(|(r, _)| r.median_s)).flatten();
    let tokens = results.iter().find_map(|(r, _)| r.forward_calls).is_some();
    match tokens {
        true => println!("| engine | chunk (median) | vision | prefix + first token | later tokens | tokens/s | start to first chunk | peak memory | vs lerobot |"),
        false => println!("| engine | chunk (median) | vision | prefix | 10 denoising steps | start to first chunk | peak memory | vs lerobot |"),
    }
    println!(
        "|---|---:|---:|---:|---:|{}---:|---:|---:|",
        if tokens { "---:|" } else { "" }
    );
    let ms = |s: f64| format!("{:.0} ms", s * 1e3);
    for (r, started) in results {
        let ratio = reference.map_or("-".to_string(), |t| format!("{:.2}x", t / r.median_s));
        let first = Duration::from_secs_f64((r.first_chunk_unix_s - started).max(0.0));
        let rate = match r.forward_calls {
            Some(calls) if tokens => format!(" {:.2} |", calls.saturating_sub(1) as f64 / r.denoise_s.max(1e-9)),
            _ if tokens => " - |".to_string(),
            _ => String::new(),
        };
        println!(
            "| {} | {} | {} | {} | {} |{rate} {:.1} s | {:.0} MB | {} |",
            r.engine,
            ms(r.median_s),
            ms(r.vision_s),
            ms(r.prefix_s),
            ms(r.denoise_s),
            first.as_secs_f64(),
            r.peak_rss_mb,
            ratio
        );
    }
}
