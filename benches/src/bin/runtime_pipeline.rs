//! The brain-cerebellum runtime end to end on SmolVLM-256M-shaped models (seeded random
//! weights, quantized while loading) as VLM, VLT and VLA, on the wall clock: the humanoid's
//! left arm (7 joints) driven by binned action tokens, a synthetic camera, the brain
//! replanning. For each placement, in one run: VLA chunk latency and first-action latency
//! (p50, p99), chunks per second reached, plan and vision latency, deadline misses, safety
//! stops and the motion loop's jitter.
//!
//! python3 benches/peers/vlm_torch.py make weights/smolvlm-256m-random
//! cargo run --release -p brainstem-benches --bin runtime_pipeline -- --seconds 60 --motion-core 1 --fifo 50

use std::path::PathBuf;
use std::time::{Duration, Instant};

use brainstem_benches::machine_description;
use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink, LoopOptions};
use brainstem_runtime::compute::partition::{available_cores, ComputeConfig};
use brainstem_runtime::config::{ActionScheme, BrainConfig, ModelsConfig, MotionSettings, PolicyConfig, RobotSource};
use brainstem_runtime::demo::{SyntheticCamera, DEMO_ARM, DEMO_INSTRUCTION};
use brainstem_runtime::simulate::sweep::Layout;
use brainstem_runtime::telemetry::{StageReport, TelemetryReport};
use brainstem_runtime::{Runtime, RuntimeConfig, RuntimeEvent, RuntimeOptions};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "weights/smolvlm-256m-random")]
    model: PathBuf,
    #[arg(long, default_value = "q8_0")]
    quantize: String,
    /// Seconds per placement.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Action steps per second.
    #[arg(long, default_value_t = 10.0)]
    policy_hz: f64,
    #[arg(long, default_value_t = 20)]
    chunk_steps: usize,
    /// Milliseconds between chunk starts.
    #[arg(long, default_value_t = 1000.0)]
    chunk_period_ms: f64,
    #[arg(long, default_value_t = 0.5)]
    brain_hz: f64,
    #[arg(long, default_value_t = 2.0)]
    camera_hz: f64,
    /// Pin the motion loop to this core.
    #[arg(long)]
    motion_core: Option<usize>,
    /// Run the motion loop at SCHED_FIFO with this priority.
    #[arg(long)]
    fifo: Option<i32>,
    /// Write every placement's telemetry here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The robot's bus: the command is copied out, as a driver would.
struct BusSink(Vec<f64>);

impl JointSink for BusSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        self.0.copy_from_slice(command.positions);
    }
}

/// The placements compared: each a name, the compute configuration and the brain's rate.
fn placements(brain_hz: f64, cores: usize) -> Vec<(&'static str, ComputeConfig, f64)> {
    vec![
        ("split, brain quiet", Layout::Split.compute(cores), 0.05),
        ("split (default)", Layout::Split.compute(cores), brain_hz),
        ("one 2-core pool", Layout::OneChip.compute(cores), brain_hz),
        ("VLA on the brain's core", Layout::VlaWithBrain.compute(cores), brain_hz),
    ]
}

fn config(args: &Args, compute: ComputeConfig, brain_hz: f64) -> RuntimeConfig {
    RuntimeConfig {
        robot: RobotSource::default(),
        models: ModelsConfig {
            vlm: args.model.clone(),
            vla: None,
            vla_backbone: None,
            vla_action_tokenizer: None,
            quantize: Some(args.quantize.clone()),
        },
        policy: PolicyConfig {
            joints: DEMO_ARM.map(String::from).to_vec(),
            rate_hz: args.policy_hz,
            chunk_steps: args.chunk_steps,
            actions: ActionScheme::Bins,
            fast_tokenizer: None,
            end_token: None,
            cameras: None,
            chunk_period_ms: Some(args.chunk_period_ms),
            denoising_steps: None,
            task: Default::default(),
            temperature: 1.0,
            seed: 1,
        },
        brain: BrainConfig {
            rate_hz: brain_hz,
            ..BrainConfig::default()
        },
        motion: MotionSettings::commanded(),
        cameras: 1,
        compute: Some(compute),
        device: None,
    }
}

/// The telemetry of one run, and the model stages' failures it reported.
fn run(args: &Args, config: &RuntimeConfig) -> anyhow::Result<(TelemetryReport, usize)> {
    let options = RuntimeOptions {
        motion: LoopOptions {
            core: args.motion_core,
            realtime_priority: args.fifo,
            lock_memory: false,
            ticks: None,
        },
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::from_config(config, Box::new(BusSink(vec![0.0; 82])), options)?;
    let camera = SyntheticCamera::default();
    runtime.set_instruction(DEMO_INSTRUCTION)?;
    let started = Instant::now();
    let frame_period = Duration::from_secs_f64(1.0 / args.camera_hz);
    let mut failures = 0;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        runtime.push_frame(camera.frame(runtime.now()))?;
        std::thread::sleep(frame_period);
        while let Some(event) = runtime.try_event() {
            if let RuntimeEvent::StageFailed { stage, message, .. } = event {
                eprintln!("{stage} failed: {message}");
                failures += 1;
            }
        }
    }
    Ok((runtime.stop()?, failures))
}

fn stage<'a>(report: &'a TelemetryReport, name: &str) -> Option<&'a StageReport> {
    report.stages.iter().find(|s| s.name == name)
}

fn latency(report: &TelemetryReport, name: &str) -> String {
    stage(report, name).map_or("-".into(), |s| format!("{:.0} / {:.0}", s.p50_ms, s.p99_ms))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("# {}", machine_description()?);
    println!(
        "# {} ({}), 7 joints, {} steps at {} Hz every {} ms, brain {} Hz, camera {} Hz, {} s each",
        args.model.display(),
        args.quantize,
        args.chunk_steps,
        args.policy_hz,
        args.chunk_period_ms,
        args.brain_hz,
        args.camera_hz,
        args.seconds
    );
    println!(
        "| placement | VLA chunk p50 / p99 ms | first action p50 / p99 ms | chunks/s | chunk misses | plan p50 / p99 ms | plans/s | vision p50 / p99 ms | stops | failures | motion jitter p99 / max us |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut reports = Vec::new();
    for (name, compute, brain_hz) in placements(args.brain_hz, available_cores()) {
        let (report, failures) = run(&args, &config(&args, compute, brain_hz))?;
        let rate = |s: &str| stage(&report, s).map_or(0.0, |s| s.count as f64 / report.wall_s);
        println!(
            "| {name} | {} | {} | {:.2} | {} | {} | {:.2} | {} | {} | {failures} | {} |",
            latency(&report, "vla_chunk"),
            latency(&report, "vla_first_action"),
            rate("vla_chunk"),
            stage(&report, "vla_chunk").map_or(0, |s| s.deadline_misses),
            latency(&report, "vlt_plan"),
            rate("vlt_plan"),
            latency(&report, "vision_encode"),
            report.interventions.stops(),
            report.motion.as_ref().map_or("-".into(), |m| format!(
                "{:.0} / {:.0}",
                m.jitter_p99_us, m.jitter_max_us
            )),
        );
        reports.push(serde_json::json!({ "placement": name, "telemetry": report }));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(())
}
