//! The CPU backend's matmul op as a model's forward pass calls it (a new output tensor each
//! call, activations quantized on the fly), by shape: SmolVLA's expert at its padded width and
//! SigLIP's layers at 512 px, each with glibc returning freed memory to the kernel (its
//! default) and with `retain_freed_memory`. Each mode runs in a process of its own, since the
//! allocator setting is process-wide.
//!
//! cargo run --release -p brainstem-benches --bin backend_matmul

use std::borrow::Cow;
use std::process::Command;
use std::time::Instant;

use brainstem_benches::{machine_description, median};
use brainstem_runtime::kernels::cpu::retain_freed_memory;
use brainstem_runtime::kernels::quant::quantize::quantize;
use brainstem_runtime::kernels::{
    ActivationPrecision, AttentionMask, AttentionParams, Backend, CpuBackend, DType, HostWeight, KvCacheSpec,
};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Run only the cases whose name contains this.
    #[arg(long, default_value = "")]
    only: String,
    /// Run one allocator mode here ("default" or "retain") instead of both in children.
    #[arg(long, hide = true)]
    mode: Option<String>,
}

/// (name, activation rows, output rows, input columns)
const CASES: [(&str, usize, usize, usize); 5] = [
    ("smolvla expert gate/up 50x736->2048", 50, 2048, 736),
    ("smolvla expert down 50x2048->720", 50, 720, 2048),
    ("smolvla expert q 50x736->960", 50, 960, 736),
    ("siglip fc1 1024x768->3072", 1024, 3072, 768),
    ("siglip fc2 1024x3072->768", 1024, 768, 3072),
];

fn run(args: &Args, mode: &str) -> anyhow::Result<()> {
    if mode == "retain" {
        anyhow::ensure!(retain_freed_memory(), "the allocator is not glibc's");
    }
    for (dtype, precision) in [
        (DType::F32, ActivationPrecision::F32),
        (DType::Q8_0, ActivationPrecision::Int8),
    ] {
        let b = CpuBackend::new(args.threads)?.with_activation_precision(precision);
        for (name, n, m, k) in CASES.into_iter().filter(|c| c.0.contains(&args.only)) {
            let values: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
            let host = HostWeight {
                dtype,
                shape: vec![m, k],
                bytes: Cow::Owned(quantize(dtype, &values)?),
            };
            let w = b.upload_weight(&host)?;
            let x = b.upload(&(0..n * k).map(|i| (i % 17) as f32 / 17.0).collect::<Vec<_>>(), n, k)?;
            b.matmul(&x, &w)?;
            let s = median_call(args.reps, || {
                b.scope(|| b.matmul(&x, &w))?;
                Ok(())
            })?;
            let gflops = 2.0 * (n * m * k) as f64 / s / 1e9;
            println!("| {mode} | {dtype} | {name} | {:.2} ms | {gflops:.0} |", s * 1e3);
        }
    }
    match "siglip attention".contains(&args.only) {
        true => attention(args, mode),
        false => Ok(()),
    }
}

/// The median of `reps` timed calls, in seconds: this machine's neighbours slow single calls
/// by tens of percent, which a mean carries and a median mostly does not.
fn median_call(reps: usize, mut call: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        call()?;
        samples.push(start.elapsed());
    }
    Ok(median(&samples).as_secs_f64())
}

/// SigLIP's bidirectional attention over a 512 px tile: 1024 patches, 12 heads of 64.
fn attention(args: &Args, mode: &str) -> anyhow::Result<()> {
    let (rows, heads, head_dim) = (1024, 12, 64);
    let b = CpuBackend::new(args.threads)?;
    let width = heads * head_dim;
    let matrix = |seed: usize| {
        let data: Vec<f32> = (0..rows * width)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        b.upload(&data, rows, width)
    };
    let (q, k, v) = (matrix(1)?, matrix(2)?, matrix(3)?);
    let params = AttentionParams {
        heads,
        kv_heads: heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        mask: AttentionMask::Full,
    };
    let spec = KvCacheSpec {
        kv_heads: heads,
        head_dim,
        max_positions: rows,
    };
    let once = || -> anyhow::Result<()> {
        let mut cache = b.kv_cache(spec)?;
        b.attention(&q, &k, &v, &mut cache, params)?;
        Ok(())
    };
    once()?;
    let s = median_call(args.reps, || b.scope(once))?;
    let gflops = 4.0 * (heads * rows * rows * head_dim) as f64 / s / 1e9;
    let name = "siglip attention 1024 rows, 12 x 64";
    println!("| {mode} | f32 | {name} | {:.2} ms | {gflops:.0} |", s * 1e3);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(mode) = &args.mode {
        return run(&args, mode);
    }
    println!("machine: {}", machine_description()?);
    println!(
        "| allocator | weights | case | per call (median of {}) | GFLOP/s |",
        args.reps
    );
    println!("|---|---|---|---:|---:|");
    for mode in ["default", "retain"] {
        let output = Command::new(std::env::current_exe()?)
            .args([
                "--mode",
                mode,
                "--threads",
                &args.threads.to_string(),
                "--reps",
                &args.reps.to_string(),
                "--only",
                &args.only,
            ])
            .output()?;
        anyhow::ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}
