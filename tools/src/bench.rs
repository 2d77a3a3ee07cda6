//! `brainstem bench`: latency and power per TOPS budget. Simulation mode (the default) runs
//! the pipeline on the virtual clock for every point of a sweep (TOPS budgets x placements x
//! quantizations x chunk lengths), each chip a member of one family scaled to its share of
//! the budget, and writes a table, JSON, CSV and an SVG plot. `--measure` runs the workload
//! on this machine's real partitions on the wall clock, then simulates it with each
//! partition's measured `host` profile, and prints prediction beside measurement.

use brainstem_runtime::kernels::Device;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use brainstem_runtime::cerebellum::motion::NoHardware;
use brainstem_runtime::clock::Nanos;
use brainstem_runtime::compute::chip::ChipProfile;
use brainstem_runtime::compute::host::host_profile;
use brainstem_runtime::compute::partition::{available_cores, Partition};
use brainstem_runtime::config::MotionSettings;
use brainstem_runtime::demo::{bench_config, SyntheticCamera, DEMO_INSTRUCTION};
use brainstem_runtime::pipeline::stages::Pipeline;
use brainstem_runtime::simulate::sweep::{simulate_point, Layout, SweepPoint};
use brainstem_runtime::simulate::{Camera, Simulation};
use brainstem_runtime::telemetry::TelemetryReport;
use brainstem_runtime::{Runtime, RuntimeConfig, RuntimeOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::bench_report::{print_fidelity, print_points, render_html, write_csv, write_svg};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Runtime configurations (TOML), one --config each, to sweep as models; without one,
    /// the demo's brain with a seeded SmolVLA-sized VLA (written once under --cache, 1.1 GB).
    /// --measure takes the first.
    #[arg(long)]
    config: Vec<PathBuf>,
    /// Where the default's generated checkpoints are kept.
    #[arg(long, default_value = "weights")]
    cache: PathBuf,
    /// The chip family: a built-in name (turing-like, orin-like, thor-like) or a TOML file
    /// holding one chip profile.
    #[arg(long, default_value = "turing-like")]
    chip: String,
    /// The robot's total int8 TOPS budgets to sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "250,500,750,1000,1500,2250")]
    tops: Vec<f64>,
    /// Placements to sweep: split, vla-with-brain, two-chips, one-chip.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "split,vla-with-brain,two-chips,one-chip"
    )]
    placements: Vec<String>,
    /// Quantizations to sweep (q8_0, q4_0, ...), or none for the configuration's.
    #[arg(long, value_delimiter = ',')]
    quantize: Vec<String>,
    /// Camera counts to sweep (each frame has a view per camera, and every prompt shows
    /// them all), or none for the configuration's.
    #[arg(long, value_delimiter = ',')]
    cameras: Vec<usize>,
    /// Chunk lengths (policy steps) to sweep, or none for the configuration's (a
    /// flow-matching policy's chunk is its checkpoint's).
    #[arg(long, value_delimiter = ',')]
    chunk_steps: Vec<usize>,
    /// Denoising steps per chunk to sweep for a flow-matching policy, or none for the
    /// configuration's (else the checkpoint's).
    #[arg(long, value_delimiter = ',')]
    denoising_steps: Vec<usize>,
    /// Simulated seconds per point.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    #[arg(long, default_value_t = 5.0)]
    camera_hz: f64,
    #[arg(long, default_value = DEMO_INSTRUCTION)]
    instruction: String,
    /// Where bench.json, bench.csv and bench.svg go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Instead of sweeping: run this many seconds on this machine's real partitions (wall
    /// clock; the configuration's placement, or the one --placements names), then simulate
    /// the same with their measured host profiles, and compare.
    #[arg(long)]
    measure: Option<f64>,
    /// With --measure: ask the VLM this question every --ask-every seconds, so that answers
    /// are measured too.
    #[arg(long, default_value = "What is on the table?")]
    question: String,
    /// Seconds between questions with --measure (0: none).
    #[arg(long, default_value_t = 5.0)]
    ask_every: f64,
    /// Run every partition on this device: cpu, wgpu (the best Vulkan, Metal or DX12
    /// adapter) or wgpu:ADAPTER (default: as the configuration says, else the CPU).
    #[arg(long)]
    device: Option<Device>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let models = models(&args)?;
    match args.measure {
        Some(seconds) => {
            let mut config = models[0].1.clone();
            if let [placement] = args.placements.as_slice() {
                config.compute = Some(Layout::parse(placement)?.compute(available_cores()));
            }
            measure(&args, &config, seconds)
        }
        None => sweep(&args, &models),
    }
}

/// Each configuration named by its file's stem, or the demo's.
fn models(args: &BenchArgs) -> anyhow::Result<Vec<(String, RuntimeConfig)>> {
    let mut models = if args.config.is_empty() {
        std::fs::create_dir_all(&args.cache).with_context(|| format!("creating {}", args.cache.display()))?;
        vec![("default".into(), bench_config(&args.cache)?)]
    } else {
        args.config
            .iter()
            .map(|path| {
                let name = path
                    .file_stem()
                    .map_or("config".into(), |s| s.to_string_lossy().into_owned());
                Ok((name, RuntimeConfig::from_file(path)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    if args.device.is_some() {
        models
            .iter_mut()
            .for_each(|(_, config)| config.device = args.device.clone());
    }
    Ok(models)
}

fn chip_family(name: &str) -> anyhow::Result<ChipProfile> {
    if let Some(chip) = ChipProfile::builtin(name) {
        return Ok(chip);
    }
    let text = std::fs::read_to_string(name).with_context(|| {
        format!("{name:?} is neither a built-in chip (turing-like, orin-like, thor-like) nor a readable file")
    })?;
    let chip: ChipProfile = toml::from_str(&text).with_context(|| format!("{name}: not a chip profile"))?;
    chip.validate(name)?;
    Ok(chip)
}

/// The configurations to sweep: every model x quantization x camera count x chunk length
/// asked for, labelled (the model's name only when there are several).
fn variants(args: &BenchArgs, models: &[(String, RuntimeConfig)]) -> Vec<(String, RuntimeConfig)> {
    let mut out = Vec::new();
    for (name, base) in models {
        for (label, config) in settings(args, base) {
            let label = match models.len() {
                1 => label,
                _ => format!("{name}, {label}"),
            };
            out.push((label, config));
        }
    }
    out
}

/// One model's configurations: every quantization x camera count x chunk length x number of
/// denoising steps asked for.
fn settings(args: &BenchArgs, base: &RuntimeConfig) -> Vec<(String, RuntimeConfig)> {
    let or_base = |asked: &[usize], base: usize| match asked.is_empty() {
        true => vec![base],
        false => asked.to_vec(),
    };
    let quantize: Vec<Option<String>> = match args.quantize.is_empty() {
        true => vec![base.models.quantize.clone()],
        false => args.quantize.iter().cloned().map(Some).collect(),
    };
    let denoising: Vec<Option<usize>> = match args.denoising_steps.is_empty() {
        true => vec![base.policy.denoising_steps],
        false => args.denoising_steps.iter().copied().map(Some).collect(),
    };
    let mut out = Vec::new();
    for q in &quantize {
        for cameras in or_base(&args.cameras, base.cameras) {
            for steps in or_base(&args.chunk_steps, base.policy.chunk_steps) {
                for &denoise in &denoising {
                    let mut config = base.clone();
                    config.models.quantize = q.clone();
                    config.cameras = cameras;
                    config.policy.chunk_steps = steps;
                    config.policy.denoising_steps = denoise;
                    out.push((label(&config), config));
                }
            }
        }
    }
    out
}

/// A configuration's sweep settings in words.
fn label(config: &RuntimeConfig) -> String {
    let weights = config
        .models
        .quantize
        .as_deref()
        .map_or("weights as stored".into(), str::to_uppercase);
    let cameras = config.cameras;
    let plural = if cameras == 1 { "" } else { "s" };
    let (steps, joints) = (config.policy.chunk_steps, config.policy.joints.len());
    let mut label = format!("{weights}, {cameras} camera{plural}, chunks of {steps} steps x {joints} joints");
    if let Some(denoise) = config.policy.denoising_steps {
        label.push_str(&format!(", {denoise} denoising steps"));
    }
    label
}

fn sweep(args: &BenchArgs, models: &[(String, RuntimeConfig)]) -> anyhow::Result<()> {
    let family = chip_family(&args.chip)?;
    let layouts = args
        .placements
        .iter()
        .map(|p| Layout::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let variants = variants(args, models);
    let total = (variants.len() * layouts.len() * args.tops.len()) as u64;
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points, {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut points = Vec::new();
    for (label, variant) in &variants {
        for &layout in &layouts {
            let mut config = variant.clone();
            config.compute = Some(layout.compute(available_cores()));
            progress.set_message(format!("loading {label} {}", layout.name()));
            let pipeline = Pipeline::load(&config)?;
            let camera = Box::new(SyntheticCamera::with_views(config.cameras));
            let mut sim = Simulation::new(pipeline, Box::new(NoHardware), camera, args.camera_hz)?.replaying();
            for &tops in &args.tops {
                progress.set_message(format!("{label} {} {tops} TOPS", layout.name()));
                let chips = layout.chips_for(&family, tops);
                points.push(simulate_point(
                    &mut sim,
                    chips,
                    &args.instruction,
                    args.seconds,
                    label,
                    layout,
                    tops,
                )?);
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    print_points(&points, &family);
    write_outputs(&args.out, &points, &family)
}

fn write_outputs(out: &std::path::Path, points: &[SweepPoint], family: &ChipProfile) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(points)?)?;
    write_csv(&out.join("bench.csv"), points)?;
    write_svg(&out.join("bench.svg"), points)?;
    std::fs::write(out.join("bench.html"), render_html(points, family)?)?;
    println!(
        "wrote {}/bench.html, bench.json, bench.csv and bench.svg",
        out.display()
    );
    Ok(())
}

/// The same workload measured on the host's partitions and predicted with their host
/// profiles.
/// The machine is shared and its speed drifts, so each partition's profile is measured
/// just before the run and just after it, and the two averaged.
fn measure(args: &BenchArgs, config: &RuntimeConfig, seconds: f64) -> anyhow::Result<()> {
    let pipeline = Pipeline::load(config)?;
    let partitions = pipeline.partitions.all();
    let profiles = || -> anyhow::Result<Vec<ChipProfile>> {
        Ok(partitions
            .iter()
            .map(|p| host_profile(&p.backend))
            .collect::<Result<Vec<_>, _>>()?)
    };
    let before = profiles()?;
    let measured = run_wall_clock(args, config, seconds)?;
    let after = profiles()?;
    let mut chips = Vec::new();
    for ((before, after), share) in before.iter().zip(&after).zip(core_shares(partitions)) {
        let chip = before.mean(after).time_share(share);
        let host = chip.host_cpu.as_ref().map_or(0.0, |cpu| cpu.gops);
        println!(
            "host profile: {}: int8 {:.3} TOPS, f32 {:.3} TFLOP/s, {:.1} GB/s, {:.1} us per op, host code {:.2} Gops/s",
            chip.name, chip.int8_tops, chip.f32_tflops, chip.memory_gbps, chip.dispatch_us, host
        );
        chips.push(chip);
    }
    let camera = Box::new(SyntheticCamera::with_views(config.cameras));
    let mut sim = Simulation::new(pipeline, Box::new(NoHardware), camera, args.camera_hz)?.replaying();
    sim.restart(chips)?;
    sim.board().set_instruction(&args.instruction)?;
    let end = (seconds * 1e9) as u64;
    for asked in question_times(args, seconds) {
        sim.run_until(asked);
        sim.board().ask(&args.question)?;
    }
    sim.run_until(end);
    print_fidelity(&sim.telemetry(), &measured);
    Ok(())
}

/// The share of its pinned cores each partition gets while every partition on them is busy:
/// Linux's scheduler weighs a thread at nice n by 1024 / 1.25^n.
fn core_shares(partitions: &[Partition]) -> Vec<f64> {
    let cores = |p: &Partition| -> Vec<usize> { p.pinning.iter().filter_map(|c| c.as_ref().ok().copied()).collect() };
    let weight = |p: &Partition| {
        let nice = p.priority.iter().find_map(|n| n.as_ref().ok().copied()).unwrap_or(0);
        1024.0 / 1.25f64.powi(nice)
    };
    partitions
        .iter()
        .map(|p| {
            let mine = cores(p);
            let sharing: f64 = partitions
                .iter()
                .filter(|q| cores(q).iter().any(|c| mine.contains(c)))
                .map(weight)
                .sum();
            (weight(p) / sharing).min(1.0)
        })
        .collect()
}

/// When the measured run asks its questions, nanoseconds from the start.
fn question_times(args: &BenchArgs, seconds: f64) -> Vec<Nanos> {
    if args.ask_every <= 0.0 {
        return Vec::new();
    }
    let count = (seconds / args.ask_every).floor() as u64;
    (1..=count)
        .map(|k| (k as f64 * args.ask_every * 1e9) as Nanos)
        .filter(|&t| t < (seconds * 1e9) as Nanos)
        .collect()
}

fn run_wall_clock(args: &BenchArgs, config: &RuntimeConfig, seconds: f64) -> anyhow::Result<TelemetryReport> {
    // No hardware is driven: the commands are the robot's state, whatever the file says.
    let config = RuntimeConfig {
        motion: MotionSettings::commanded(),
        ..config.clone()
    };
    let runtime = Runtime::from_config(&config, Box::new(NoHardware), RuntimeOptions::default())?;
    runtime.set_instruction(&args.instruction)?;
    let mut camera = SyntheticCamera::with_views(config.cameras);
    let period = Duration::from_secs_f64(1.0 / args.camera_hz);
    let started = Instant::now();
    let mut questions = question_times(args, seconds).into_iter().peekable();
    while started.elapsed().as_secs_f64() < seconds {
        if questions
            .next_if(|&t| started.elapsed().as_nanos() as Nanos >= t)
            .is_some()
        {
            runtime.ask(&args.question)?;
        }
        runtime.push_views(camera.capture(runtime.now()))?;
        std::thread::sleep(period);
        while runtime.try_event().is_some() {}
    }
    Ok(runtime.stop()?)
}
