//! The wgpu backend against the CPU backend in one run: per-kernel weight GB/s and GFLOP/s
//! (quantized matvec and matmul in every format, RMSNorm, decode attention) and SmolLM2-135M
//! Q4_1 prefill and decode tokens/s. On a machine without a GPU the adapter is Mesa's
//! software lavapipe, which runs the shaders on the same two cores; on a real GPU, give its
//! memory bandwidth with --peak-gbps to see the fraction reached.
//!
//! cargo run --release -p brainstem-benches --bin wgpu_backend

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use brainstem_benches::{machine_description, median};
use brainstem_runtime::kernels::quant::quantize::quantize;
use brainstem_runtime::kernels::*;
use brainstem_runtime::models::{Llama, LoadOptions, Logits, WeightFile};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "weights/SmolLM2-135M-Instruct.Q4_1.gguf")]
    model: PathBuf,
    /// Timed repetitions per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The wgpu adapter (an index or part of its name); the best one by default.
    #[arg(long)]
    adapter: Option<String>,
    /// The adapter's memory bandwidth in GB/s, for the fraction reached.
    #[arg(long)]
    peak_gbps: Option<f64>,
    /// Prompt tokens and decoded tokens of the model run; 0 skips the model.
    #[arg(long, default_value_t = 64)]
    prefill: usize,
    #[arg(long, default_value_t = 32)]
    decode: usize,
}

/// (name, output rows, input columns, activation rows)
const CASES: [(&str, usize, usize, usize); 5] = [
    ("4096x4096 matvec", 4096, 4096, 1),
    ("smollm2 gate/up 1536x576", 1536, 576, 1),
    ("smollm2 down 576x1536", 576, 1536, 1),
    ("smollm2 output 49152x576", 49152, 576, 1),
    ("4096x4096 matmul n=64", 4096, 4096, 64),
];

const FORMATS: [DType; 6] = [
    DType::F32,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q8_0,
    DType::Q4K,
    DType::Q6K,
];

/// Ops recorded per timed sample before one read-back, so that the submission and the read
/// are amortized as in a forward pass.
const OPS_PER_SAMPLE: usize = 8;

/// Median seconds per op of `op` (recorded `OPS_PER_SAMPLE` times, then one read) and the
/// ledger cost of one op.
fn time_op<B: Backend>(b: &B, reps: usize, op: impl Fn() -> B::Tensor) -> anyhow::Result<(f64, Cost)> {
    b.read(&op())?;
    let mut samples = Vec::new();
    let mut cost = Cost::default();
    for _ in 0..reps {
        let before = b.ledger().snapshot();
        let start = Instant::now();
        let mut last = op();
        for _ in 1..OPS_PER_SAMPLE {
            last = op();
        }
        b.read(&last)?;
        samples.push(start.elapsed());
        cost = b.ledger().snapshot().since(&before).total();
    }
    let per_op = median(&samples).as_secs_f64() / OPS_PER_SAMPLE as f64;
    let ops = OPS_PER_SAMPLE as u64;
    let one = Cost {
        int8_macs: cost.int8_macs / ops,
        f32_macs: cost.f32_macs / ops,
        float_ops: cost.float_ops / ops,
        bytes_read: cost.bytes_read / ops,
        bytes_written: cost.bytes_written / ops,
        ..Cost::default()
    };
    Ok((per_op, one))
}

fn weight(dtype: DType, rows: usize, cols: usize) -> anyhow::Result<HostWeight<'static>> {
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 255) as f32 / 127.0 - 1.0)
        .collect();
    let bytes = match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => quantize(dtype, &values)?,
    };
    Ok(HostWeight {
        dtype,
        shape: vec![rows, cols],
        bytes: bytes.into(),
    })
}

/// (microseconds, weight GB/s, GFLOP/s) of one matmul case on one backend.
fn matmul_case<B: Backend>(b: &B, reps: usize, w: &HostWeight, n: usize) -> anyhow::Result<(f64, f64, f64)> {
    let (_, cols) = w.matrix_dims();
    let weight = b.upload_weight(w)?;
    let x = b.upload(&vec![0.25; n * cols], n, cols)?;
    let (secs, cost) = time_op(b, reps, || b.matmul(&x, &weight).expect("matmul"))?;
    let flops = 2.0 * (cost.int8_macs + cost.f32_macs) as f64;
    Ok((secs * 1e6, w.bytes.len() as f64 / secs / 1e9, flops / secs / 1e9))
}

fn kernels(args: &Args, gpu: &WgpuBackend, cpu: &CpuBackend) -> anyhow::Result<()> {
    println!("| fmt | case | wgpu us | wgpu GB/s | wgpu GFLOP/s | cpu us | cpu GB/s | wgpu/cpu |");
    println!("|-----|------|--------:|----------:|-------------:|-------:|---------:|---------:|");
    let mut best_gbps = 0f64;
    for dtype in FORMATS {
        for (name, rows, cols, n) in CASES {
            if !cols.is_multiple_of(dtype.block_elems()) {
                continue;
            }
            let w = weight(dtype, rows, cols)?;
            let (g_us, g_gbps, g_flops) = matmul_case(gpu, args.reps, &w, n)?;
            let (c_us, c_gbps, _) = matmul_case(cpu, args.reps, &w, n)?;
            best_gbps = best_gbps.max(g_gbps);
            println!(
                "| {dtype} | {name} | {g_us:.1} | {g_gbps:.2} | {g_flops:.1} | {c_us:.1} | {c_gbps:.2} | {:.2}x |",
                c_us / g_us
            );
        }
    }
    if let Some(peak) = args.peak_gbps {
        println!(
            "best wgpu weight read: {best_gbps:.1} GB/s, {:.1}% of {peak} GB/s",
            100.0 * best_gbps / peak
        );
    }
    let (rows, cols) = (64, 4096);
    let x = vec![0.5f32; rows * cols];
    let g = vec![1.0f32; cols];
    let gx = (gpu.upload(&x, rows, cols)?, gpu.upload(&g, 1, cols)?);
    let cx = (cpu.upload(&x, rows, cols)?, cpu.upload(&g, 1, cols)?);
    let (g_s, cost) = time_op(gpu, args.reps, || gpu.rms_norm(&gx.0, &gx.1, 1e-5).expect("norm"))?;
    let (c_s, _) = time_op(cpu, args.reps, || cpu.rms_norm(&cx.0, &cx.1, 1e-5).expect("norm"))?;
    let gbps = |s: f64| (cost.bytes_read + cost.bytes_written) as f64 / s / 1e9;
    println!(
        "rms_norm 64x4096: wgpu {:.1} us ({:.2} GB/s), cpu {:.1} us ({:.2} GB/s)",
        g_s * 1e6,
        gbps(g_s),
        c_s * 1e6,
        gbps(c_s)
    );
    attention(args, gpu, cpu)
}

/// One decode step's attention over 1024 cached positions, SmolLM2's heads.
fn attention(args: &Args, gpu: &WgpuBackend, cpu: &CpuBackend) -> anyhow::Result<()> {
    let p = AttentionParams {
        heads: 9,
        kv_heads: 3,
        head_dim: 64,
        scale: 0.125,
        mask: AttentionMask::Causal,
    };
    let spec = KvCacheSpec {
        kv_heads: 3,
        head_dim: 64,
        max_positions: 1024 + 64,
    };
    fn run<B: Backend>(b: &B, p: AttentionParams, spec: KvCacheSpec, reps: usize) -> anyhow::Result<f64> {
        let mut cache = b.kv_cache(spec)?;
        let prompt = b.upload(&vec![0.1; 1024 * 192], 1024, 192)?;
        b.read(&b.attention(
            &b.upload(&vec![0.1; 1024 * 576], 1024, 576)?,
            &prompt,
            &prompt,
            &mut cache,
            p,
        )?)?;
        let (q, kv) = (b.upload(&[0.1; 576], 1, 576)?, b.upload(&[0.1; 192], 1, 192)?);
        let mut samples = Vec::new();
        for _ in 0..reps.min(64) {
            let start = Instant::now();
            b.read(&b.attention(&q, &kv, &kv, &mut cache, p)?)?;
            samples.push(start.elapsed());
        }
        Ok(median(&samples).as_secs_f64())
    }
    let g = run(gpu, p, spec, args.reps)?;
    let c = run(cpu, p, spec, args.reps)?;
    println!(
        "decode attention over 1024 positions (9 heads, 3 kv heads, 64 wide): wgpu {:.1} us, cpu {:.1} us",
        g * 1e6,
        c * 1e6
    );
    Ok(())
}

/// Median prefill and decode tokens/s of SmolLM2 greedy on one backend.
fn model_rate<B: Backend>(args: &Args, file: &WeightFile, backend: Arc<B>) -> anyhow::Result<(f64, f64)> {
    let model = Llama::from_file(backend.clone(), file, LoadOptions::default())?;
    let ids: Vec<u32> = (0..args.prefill as u32).map(|i| 1 + (i * 37) % 4000).collect();
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..args.reps.min(3) {
        let mut cache = model.new_cache(ids.len() + args.decode)?;
        let start = Instant::now();
        let logits = backend.read(&model.forward(&ids, &mut cache, Logits::Last)?)?;
        prefill.push(start.elapsed());
        let mut token = argmax(&logits).context("no finite logit")?;
        let start = Instant::now();
        for _ in 0..args.decode {
            let logits = backend.read(&model.forward(&[token], &mut cache, Logits::Last)?)?;
            token = argmax(&logits).context("no finite logit")?;
        }
        decode.push(start.elapsed());
    }
    let rate = |d: Duration, n: usize| n as f64 / d.as_secs_f64();
    Ok((rate(median(&prefill), ids.len()), rate(median(&decode), args.decode)))
}

fn argmax(xs: &[f32]) -> Option<u32> {
    xs.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("machine: {}", machine_description()?);
    let gpu = WgpuBackend::new(args.adapter.as_deref())?;
    let cpu = CpuBackend::new(args.threads)?;
    println!("wgpu: {}\ncpu: {}", gpu.name(), cpu.name());
    kernels(&args, &gpu, &cpu)?;
    if args.prefill == 0 {
        return Ok(());
    }
    let file =
        WeightFile::open(&args.model).with_context(|| format!("{} (tools/fetch-smollm2.sh)", args.model.display()))?;
    println!("| backend | activations | prefill tok/s | decode tok/s |");
    println!("|---------|-------------|--------------:|-------------:|");
    for precision in [ActivationPrecision::Int8, ActivationPrecision::F32] {
        let gpu = Arc::new(WgpuBackend::new(args.adapter.as_deref())?.with_activation_precision(precision));
        let cpu = Arc::new(CpuBackend::new(args.threads)?.with_activation_precision(precision));
        for (name, (p, d)) in [
            ("wgpu", model_rate(&args, &file, gpu)?),
            ("cpu", model_rate(&args, &file, cpu)?),
        ] {
            println!("| {name} | {precision:?} | {p:.1} | {d:.1} |");
        }
    }
    Ok(())
}
