//! Quantized matvec and matmul, brainstem against candle's `QMatMul` on the same weights, in
//! one run, with this machine's roofline measured alongside: GB/s of weights, GFLOP/s, and
//! their fractions of the measured read bandwidth, FMA peak and int8 (`vpdpbusd`) peak.
//!
//! cargo run --release -p brainstem-benches --bin qmatmul

use std::time::{Duration, Instant};

use brainstem_benches::roofline::{self, Roofline};
use brainstem_benches::{machine_description, median};
use brainstem_runtime::kernels::cpu::WarmPool;
use brainstem_runtime::kernels::{ActivationPrecision, DType, HostWeight, QMatrix};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed repetitions per case (the median is reported).
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// Only formats whose name contains this (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K).
    #[arg(long)]
    only: Option<String>,
}

const FORMATS: [(DType, GgmlDType); 5] = [
    (DType::Q4_0, GgmlDType::Q4_0),
    (DType::Q4_1, GgmlDType::Q4_1),
    (DType::Q8_0, GgmlDType::Q8_0),
    (DType::Q4K, GgmlDType::Q4K),
    (DType::Q6K, GgmlDType::Q6K),
];

/// (name, output rows, input columns, activation rows)
const CASES: [(&str, usize, usize, usize); 9] = [
    ("16384x4096 matvec (DRAM)", 16384, 4096, 1),
    ("4096x4096 matvec", 4096, 4096, 1),
    ("smollm2 q/o 576x576", 576, 576, 1),
    ("smollm2 gate/up 1536x576", 1536, 576, 1),
    ("smollm2 down 576x1536", 576, 1536, 1),
    ("smollm2 output 49152x576", 49152, 576, 1),
    ("4096x4096 matmul n=64", 4096, 4096, 64),
    ("4096x4096 matmul n=128", 4096, 4096, 128),
    ("smollm2 gate 1536x576 n=128", 1536, 576, 128),
];

/// One sample: the mean of `calls` calls after an untimed one, so that a sample measures a
/// warmed-up engine in the middle of a burst, as a model's forward pass runs its matmuls.
fn sample(calls: usize, f: &mut impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed() / calls as u32
}

/// Medians of `reps` samples of each engine, taken alternately so that both see the same
/// moments of this shared machine. Ours runs as `CpuBackend::scope` runs a forward pass: on
/// a pool's worker with the other workers kept awake, as candle's own pool keeps its
/// workers spinning between calls.
fn time_interleaved(
    reps: usize,
    pool: &WarmPool,
    mut ours: impl FnMut() + Send,
    mut candle: impl FnMut(),
) -> (Duration, Duration) {
    let calls =
        |once: Duration| (SAMPLE_LENGTH.as_secs_f64() / once.as_secs_f64().max(1e-9)).clamp(1.0, 1000.0) as usize;
    let ours_calls = calls(pool.install_warm(|| sample(1, &mut ours)));
    let candle_calls = calls(sample(1, &mut candle));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        cool_down();
        a.push(pool.install_warm(|| sample(ours_calls, &mut ours)));
        cool_down();
        b.push(sample(candle_calls, &mut candle));
    }
    (median(&a), median(&b))
}

/// Busy-waits longer than candle's workers spin after a call (about a millisecond), so that
/// neither engine's idle threads take a core from the other's sample. It spins rather than
/// sleeps: on these VMs a vCPU left idle for milliseconds comes back slowly.
fn cool_down() {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3) {
        std::hint::spin_loop();
    }
}

/// About how long one sample runs.
const SAMPLE_LENGTH: Duration = Duration::from_millis(20);

struct Case {
    rows: usize,
    cols: usize,
    n: usize,
    ours: QMatrix,
    candle: QMatMul,
    xs: Vec<f32>,
}

fn build(dtype: DType, ggml: GgmlDType, rows: usize, cols: usize, n: usize) -> anyhow::Result<Case> {
    let weights = Tensor::randn(0f32, 0.05, (rows, cols), &Device::Cpu)?;
    let q = QTensor::quantize(&weights, ggml)?;
    let host = HostWeight {
        dtype,
        shape: vec![rows, cols],
        bytes: q.data()?.into_owned().into(),
    };
    let ours = QMatrix::from_host(&host)?;
    let xs = Tensor::randn(0f32, 1.0, (n, cols), &Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(Case {
        rows,
        cols,
        n,
        ours,
        candle: QMatMul::from_qtensor(q)?,
        xs,
    })
}

fn row(name: &str, dtype: DType, case: &Case, ours: Duration, candle: Duration, roof: &Roofline) {
    let bytes = case.ours.byte_len() as f64;
    let flops = 2.0 * (case.n * case.rows * case.cols) as f64;
    let gbs = |t: Duration| bytes / t.as_secs_f64() / 1e9;
    let gflops = |t: Duration| flops / t.as_secs_f64() / 1e9;
    let (frac_bw, frac_fma) = (
        gbs(ours) * 1e9 / roof.read_bytes_per_s,
        gflops(ours) * 1e9 / roof.f32_flops,
    );
    let frac_int8 = roof.int8_ops.map_or("n/a".to_string(), |peak| {
        format!("{:.1}%", 100.0 * gflops(ours) * 1e9 / peak)
    });
    println!(
        "| {dtype:<5} | {name:<28} | {:>8.1} | {:>7.1} | {:>7.1} | {:>5.0}% | {:>6.1} | {:>5.1}% | {frac_int8:>6} | {:>8.1} | {:>5.2}x |",
        ours.as_secs_f64() * 1e6,
        gbs(ours),
        gbs(candle),
        100.0 * frac_bw,
        gflops(ours),
        100.0 * frac_fma,
        candle.as_secs_f64() * 1e6,
        candle.as_secs_f64() / ours.as_secs_f64(),
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // candle's quantized matmul runs on its own spinning pool, sized from this variable.
    std::env::set_var("CANDLE_NUM_THREADS", args.threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let pool = WarmPool::new(rayon::ThreadPoolBuilder::new().num_threads(args.threads).build()?);
    println!("machine: {}", machine_description()?);
    let roof = roofline::measure();
    let int8 = roof.int8_ops.map_or("not probed (no VNNI)".to_string(), |ops| {
        format!("{:.2} TOPS", ops / 1e12)
    });
    println!(
        "roofline ({} threads): read {:.1} GB/s, triad {:.1} GB/s, f32 FMA peak {:.1} GFLOP/s, int8 peak {int8}\n",
        args.threads,
        roof.read_bytes_per_s / 1e9,
        roof.triad_bytes_per_s / 1e9,
        roof.f32_flops / 1e9
    );
    println!(
        "brainstem: int8 activations; candle: QMatMul on the same blocks. Median of {} samples \
         of each, taken alternately; a sample is the mean of a burst of calls.\n",
        args.reps
    );
    println!("| fmt   | case                         | ours us  | ours GB/s | candle GB/s | of read BW | ours GFLOP/s | of FMA peak | of int8 peak | candle us | speedup |");
    println!("|-------|------------------------------|---------:|--------:|--------:|------:|-------:|------:|------:|---------:|-------:|");
    for (dtype, ggml) in FORMATS {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !dtype.to_string().contains(o.as_str()))
        {
            continue;
        }
        for (name, rows, cols, n) in CASES {
            if cols % dtype.block_elems() != 0 {
                println!("| {dtype:<5} | {name:<28} | rows of {cols} are not whole {dtype} blocks | | | | | | | | |");
                continue;
            }
            let case = build(dtype, ggml, rows, cols, n)?;
            let mut out = vec![0f32; n * rows];
            let x = Tensor::from_slice(&case.xs, (n, cols), &Device::Cpu)?;
            let (ours, candle) = time_interleaved(
                args.reps,
                &pool,
                || {
                    case.ours
                        .matmul(&case.xs, n, &mut out, ActivationPrecision::Int8)
                        .expect("matmul")
                },
                || {
                    std::hint::black_box(case.candle.forward(&x).expect("candle matmul"));
                },
            );
            row(name, dtype, &case, ours, candle, &roof);
        }
    }
    println!("\nmachine after the run: {}", machine_description()?);
    Ok(())
}
