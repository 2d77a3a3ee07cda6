//! SmolLM2-135M (or any llama GGUF) prefill and decode speed, side by side in one run:
//! brainstem with int8 and with f32 activations, candle-transformers' quantized llama on
//! the same file, and llama.cpp through `benches/peers/llama_cpp_decode.py` when its Python
//! binding is installed. Every engine gets the same prompt ids, the same thread count, a
//! greedy decode of the same length, and reports the median over repetitions.
//!
//! cargo run --release -p brainstem-benches --bin llm_decode -- --model weights/SmolLM2-135M-Instruct.Q4_1.gguf

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use brainstem_benches::{machine_description, median};
use brainstem_runtime::kernels::{ActivationPrecision, Backend, CpuBackend};
use brainstem_runtime::models::sampling::argmax;
use brainstem_runtime::models::{Llama, LoadOptions, Logits, Tokenizer, WeightFile};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "weights/SmolLM2-135M-Instruct.Q4_1.gguf")]
    model: PathBuf,
    #[arg(long, default_value_t = 128)]
    prefill: usize,
    #[arg(long, default_value_t = 64)]
    decode: usize,
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python interpreter with llama-cpp-python; "none" skips llama.cpp.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// One repetition: time to the first token after the prompt, and the time of the
/// remaining `decode - 1` tokens.
struct Rep {
    prefill: Duration,
    decode: Duration,
    decoded: usize,
}

fn brainstem_reps(
    args: &Args,
    file: &WeightFile,
    ids: &[u32],
    precision: ActivationPrecision,
) -> anyhow::Result<Vec<Rep>> {
    let backend = Arc::new(CpuBackend::new(args.threads)?.with_activation_precision(precision));
    let model = Llama::from_file(backend.clone(), file, LoadOptions::default())?;
    let mut reps = Vec::new();
    for _ in 0..args.reps {
        let mut cache = model.new_cache(ids.len() + args.decode)?;
        let start = Instant::now();
        let logits = backend.read(&model.forward(ids, &mut cache, Logits::Last)?)?;
        let mut token = argmax(&logits).context("no finite logit")?;
        let prefill = start.elapsed();
        let start = Instant::now();
        for _ in 1..args.decode {
            let logits = backend.read(&model.forward(&[token], &mut cache, Logits::Last)?)?;
            token = argmax(&logits).context("no finite logit")?;
        }
        reps.push(Rep {
            prefill,
            decode: start.elapsed(),
            decoded: args.decode - 1,
        });
    }
    Ok(reps)
}

fn candle_reps(args: &Args, ids: &[u32]) -> anyhow::Result<Vec<Rep>> {
    let mut reader = std::fs::File::open(&args.model)?;
    let content = gguf_file::Content::read(&mut reader)?;
    let mut model = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)?;
    let last_token = |logits: Tensor| -> anyhow::Result<u32> {
        argmax(&logits.squeeze(0)?.to_vec1::<f32>()?).context("no finite logit")
    };
    let mut reps = Vec::new();
    for _ in 0..args.reps {
        let start = Instant::now();
        let mut token = last_token(model.forward(&Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?, 0)?)?;
        let prefill = start.elapsed();
        let start = Instant::now();
        for i in 1..args.decode {
            let input = Tensor::new(&[token], &Device::Cpu)?.unsqueeze(0)?;
            token = last_token(model.forward(&input, ids.len() + i - 1)?)?;
        }
        reps.push(Rep {
            prefill,
            decode: start.elapsed(),
            decoded: args.decode - 1,
        });
    }
    Ok(reps)
}

#[derive(serde::Deserialize)]
struct PeerRep {
    prefill_s: f64,
    decode_s: f64,
    decoded: usize,
}

fn llama_cpp_reps(args: &Args, ids: &[u32]) -> anyhow::Result<Vec<Rep>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/llama_cpp_decode.py");
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    let output = Command::new(&args.python)
        .arg(script)
        .args(["--model", &args.model.display().to_string(), "--ids", &ids.join(",")])
        .args([
            "--decode",
            &args.decode.to_string(),
            "--reps",
            &args.reps.to_string(),
            "--threads",
            &args.threads.to_string(),
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
    );
    let text = String::from_utf8(output.stdout)?;
    text.lines()
        .map(|l| {
            let r: PeerRep = serde_json::from_str(l)?;
            Ok(Rep {
                prefill: Duration::from_secs_f64(r.prefill_s),
                decode: Duration::from_secs_f64(r.decode_s),
                decoded: r.decoded,
            })
        })
        .collect()
}

/// Prompt ids: a fixed English text, repeated and cut to `len` tokens.
fn prompt_ids(file: &WeightFile, len: usize) -> anyhow::Result<Vec<u32>> {
    let tokenizer = Tokenizer::for_model(file.path(), Some(file))?;
    let text = "The robot picks up the red cup from the table, turns to the left, and places it gently \
                on the shelf next to the blue bowl while keeping its arm inside the safety envelope. ";
    let ids: Vec<u32> = tokenizer
        .encode(&text.repeat(len / 16 + 1))?
        .into_iter()
        .take(len)
        .collect();
    anyhow::ensure!(ids.len() == len, "prompt too short");
    Ok(ids)
}

fn report(name: &str, reps: &[Rep], prompt: usize, baseline: Option<f64>) -> f64 {
    let prefill = median(&reps.iter().map(|r| r.prefill).collect::<Vec<_>>());
    let per_token: Vec<Duration> = reps.iter().map(|r| r.decode / r.decoded.max(1) as u32).collect();
    let tps = 1.0 / median(&per_token).as_secs_f64();
    let slowest = per_token.iter().max().map_or(0.0, |t| 1.0 / t.as_secs_f64());
    let fastest = per_token.iter().min().map_or(0.0, |t| 1.0 / t.as_secs_f64());
    let ratio = baseline.map_or(String::new(), |b| format!("{:.2}x", tps / b));
    println!(
        "| {name:<35} | {:>10.1} | {:>13.0} | {:>12.1} | {:>5.0} to {:<5.0} | {ratio:>9} |",
        prefill.as_secs_f64() * 1e3,
        prompt as f64 / prefill.as_secs_f64(),
        tps,
        slowest,
        fastest
    );
    tps
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let file = WeightFile::open(&args.model)?;
    let ids = prompt_ids(&file, args.prefill)?;
    println!("machine: {}", machine_description()?);
    println!(
        "model: {}, prompt {} tokens, decode {} tokens, {} threads, median of {} runs\n",
        args.model.display(),
        args.prefill,
        args.decode,
        args.threads,
        args.reps
    );
    println!("| engine                              | prefill ms | prefill tok/s | decode tok/s | decode range  | vs candle |");
    println!("|-------------------------------------|-----------:|--------------:|-------------:|---------------|----------:|");
    let candle = candle_reps(&args, &ids)?;
    let base = report("candle-transformers quantized_llama", &candle, ids.len(), None);
    let int8 = brainstem_reps(&args, &file, &ids, ActivationPrecision::Int8)?;
    report("brainstem, int8 activations", &int8, ids.len(), Some(base));
    let f32s = brainstem_reps(&args, &file, &ids, ActivationPrecision::F32)?;
    report("brainstem, f32 activations", &f32s, ids.len(), Some(base));
    if args.python != "none" {
        match llama_cpp_reps(&args, &ids) {
            Ok(reps) => {
                report("llama.cpp (llama-cpp-python)", &reps, ids.len(), Some(base));
            }
            Err(e) => println!("| llama.cpp: not measured ({e}) |"),
        }
    }
    println!("\nmachine after the run: {}", machine_description()?);
    Ok(())
}
