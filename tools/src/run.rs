//! `brainstem run`: the whole pipeline (camera, vision encoder, brain, cerebellum, motion
//! decoder) on a configuration, or with no arguments on the built-in demo. Prints plans and
//! answers as they come, a line of live rates and latencies every second, and a summary at
//! the end; `--json` writes the final telemetry. `--simulate` runs on the virtual clock,
//! each model call taking the time its partition's chip profile gives it.
//!
//! No hardware is driven. When the configuration's motion decoder follows a measured robot
//! (`[motion] state = "measured"`), `run` plays that robot: it reports the positions it was
//! last commanded as its measured state, captured now, every few milliseconds. Camera frames
//! are stamped with their capture time, `--camera-latency-ms` before they are pushed.

use brainstem_runtime::kernels::{Backend, Device};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink, LoopOptions, MotionMode};
use brainstem_runtime::config::StateSource;
use brainstem_runtime::demo::{demo_config, StillCamera, SyntheticCamera, DEMO_INSTRUCTION};
use brainstem_runtime::models::flow::{is_lerobot_policy, PolicySpec};
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::pipeline::stages::Pipeline;
use brainstem_runtime::simulate::{Camera, Simulation};
use brainstem_runtime::telemetry::TelemetryReport;
use brainstem_runtime::{Runtime, RuntimeConfig, RuntimeEvent, RuntimeOptions};

#[derive(clap::Args)]
pub struct RunArgs {
    /// A runtime configuration (TOML); without one, the built-in demo runs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the demo's generated checkpoint is kept.
    #[arg(long, default_value = "weights")]
    cache: PathBuf,
    /// The VLA: a lerobot SmolVLA, pi0 or pi0.5 folder (its chunks stream to the motion
    /// decoder as values), a lerobot pi0-FAST folder (its FAST tokens stream as they are
    /// sampled), or an Idefics3 checkpoint emitting action tokens; over what the configuration
    /// says. On the demo, a lerobot policy drives the first of the demo arm's joints, one per
    /// action dimension.
    #[arg(long)]
    vla: Option<PathBuf>,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value = DEMO_INSTRUCTION)]
    instruction: String,
    /// A question for the VLM about the first frame.
    #[arg(long, default_value = "What is on the table?")]
    ask: String,
    /// A still PNG or JPEG as every camera's view (default: the synthetic cameras).
    #[arg(long)]
    image: Option<PathBuf>,
    #[arg(long, default_value_t = 10.0)]
    camera_hz: f64,
    /// How long before it is pushed each frame was captured (the camera's own delay); a
    /// measured robot is held while its frames are older than `max_frame_age_ms`.
    #[arg(long, default_value_t = 0.0)]
    camera_latency_ms: f64,
    /// Run on the virtual clock, timing each model call by its partition's chip profile.
    #[arg(long)]
    simulate: bool,
    /// Pin the motion loop to this core.
    #[arg(long)]
    motion_core: Option<usize>,
    /// Run the motion loop at SCHED_FIFO with this priority.
    #[arg(long)]
    fifo: Option<i32>,
    /// Lock the process's memory (mlockall) so the motion loop never waits on a page fault.
    #[arg(long)]
    lock_memory: bool,
    /// Write the final telemetry here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run every partition on this device: cpu, wgpu (the best Vulkan, Metal or DX12
    /// adapter) or wgpu:ADAPTER (default: as the configuration says, else the CPU).
    #[arg(long)]
    device: Option<Device>,
}

/// Passes the motion mode and tick count to the printing thread, lock-free.
/// The simulated robot: it is where it was last commanded.
#[derive(Clone)]
struct StatusSink {
    mode: Arc<AtomicU8>,
    ticks: Arc<AtomicU64>,
    positions: Arc<Vec<AtomicU64>>,
}

impl JointSink for StatusSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        self.mode.store(command.mode.code(), Ordering::Relaxed);
        self.ticks.store(command.tick + 1, Ordering::Relaxed);
        for (slot, position) in self.positions.iter().zip(command.positions) {
            slot.store(position.to_bits(), Ordering::Relaxed);
        }
    }
}

impl StatusSink {
    /// A robot resting at `home`, not yet commanded (the decoder waits for its first state).
    fn new(home: &[f64]) -> Self {
        Self {
            mode: Arc::new(AtomicU8::new(MotionMode::Waiting.code())),
            ticks: Arc::default(),
            positions: Arc::new(home.iter().map(|p| AtomicU64::new(p.to_bits())).collect()),
        }
    }

    /// The mode, numbered as [`MotionMode::code`] numbers it.
    fn mode(&self) -> &'static str {
        ["idle", "following", "stopping", "holding", "waiting"][self.mode.load(Ordering::Relaxed).min(4) as usize]
    }

    fn positions(&self) -> Vec<f64> {
        self.positions
            .iter()
            .map(|p| f64::from_bits(p.load(Ordering::Relaxed)))
            .collect()
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => RuntimeConfig::from_file(path)?,
        None => {
            std::fs::create_dir_all(&args.cache).with_context(|| format!("creating {}", args.cache.display()))?;
            demo_config(&args.cache)?
        }
    };
    if args.device.is_some() {
        config.device = args.device.clone();
    }
    if let Some(dir) = &args.vla {
        use_vla(&mut config, dir, args.config.is_none())?;
    }
    let mut camera: Box<dyn Camera> = match &args.image {
        Some(path) => Box::new(StillCamera {
            image: RgbImage::open(path)?,
            views: config.cameras,
        }),
        None => Box::new(SyntheticCamera::with_views(config.cameras)),
    };
    let loading = Instant::now();
    let pipeline = Pipeline::load(&config)?;
    let vla = config
        .models
        .vla
        .as_ref()
        .map_or(String::new(), |d| format!(" and {}", d.display()));
    println!(
        "loaded {}{vla} ({} joints at {} Hz, {} driven) on {} partitions in {:.1} s",
        config.models.vlm.display(),
        pipeline.motion.robot.joints.len(),
        pipeline.motion.robot.control_rate_hz,
        config.policy.joints.len(),
        pipeline.partitions.all().len(),
        loading.elapsed().as_secs_f64()
    );
    for partition in pipeline.partitions.all() {
        let executor = match partition.backend.as_wgpu() {
            Some(gpu) => gpu.name(),
            None => format!("cores {:?}", partition.pinning),
        };
        println!("  {}: {} on {executor}", partition.name, partition.chip.name);
    }
    let home: Vec<f64> = pipeline.motion.robot.joints.iter().map(|j| j.home()).collect();
    let sink = StatusSink::new(&home);
    if config.motion.state == StateSource::Measured && !args.simulate {
        println!("  the simulated robot reports its last command as its measured state");
    }
    let report = if args.simulate {
        simulate(&args, pipeline, camera, sink)?
    } else {
        run_wall_clock(&args, pipeline, camera.as_mut(), sink)?
    };
    print_summary(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()).with_context(|| format!("writing {}", path.display()))?;
        println!("telemetry written to {}", path.display());
    }
    if args.config.is_none() && args.vla.is_none() {
        println!(
            "\nThe demo's models have random weights. To watch a trained policy do a task: brainstem eval sim \
             (a SmolVLA trained with lerobot reaching for a dot in MuJoCo; eval-sim/report.html)"
        );
    }
    Ok(())
}

/// Makes `dir` the configuration's VLA; a lerobot policy sets the chunk length (pi0-FAST: the
/// steps it decodes), and on the demo the driven joints.
fn use_vla(config: &mut RuntimeConfig, dir: &Path, demo: bool) -> anyhow::Result<()> {
    config.models.vla = Some(dir.to_path_buf());
    if !is_lerobot_policy(dir) {
        return Ok(());
    }
    let policy = PolicySpec::load(dir)?;
    let (chunk_steps, action_dim) = (policy.chunk_steps, policy.action_dim);
    config.policy.chunk_steps = chunk_steps;
    let joints = &mut config.policy.joints;
    if demo && joints.len() != action_dim {
        anyhow::ensure!(
            joints.len() >= action_dim,
            "{} acts on {action_dim} joints, the demo arm has {}",
            dir.display(),
            joints.len()
        );
        joints.truncate(action_dim);
    }
    Ok(())
}

fn run_wall_clock(
    args: &RunArgs,
    pipeline: Pipeline,
    camera: &mut dyn Camera,
    sink: StatusSink,
) -> anyhow::Result<TelemetryReport> {
    let options = RuntimeOptions {
        motion: LoopOptions {
            core: args.motion_core,
            realtime_priority: args.fifo,
            lock_memory: args.lock_memory,
            ticks: None,
        },
        ..RuntimeOptions::default()
    };
    let measured = pipeline.motion.feedback.is_some();
    let runtime = Runtime::start(pipeline, Box::new(sink.clone()), options)?;
    let latency_ns = (args.camera_latency_ms.max(0.0) * 1e6) as u64;
    let push_frame = |camera: &mut dyn Camera| {
        let captured = runtime.now().saturating_sub(latency_ns);
        runtime.push_views_at(captured, camera.capture(captured))
    };
    let report_state = || match measured {
        true => runtime.push_state_at(runtime.now(), &sink.positions(), None),
        false => Ok(()),
    };
    report_state()?;
    runtime.set_instruction(&args.instruction)?;
    push_frame(camera)?;
    runtime.ask(&args.ask)?;
    let started = Instant::now();
    let frame_period = Duration::from_secs_f64(1.0 / args.camera_hz.max(0.1));
    let (mut next_frame, mut next_status) = (started + frame_period, started + Duration::from_secs(1));
    while started.elapsed().as_secs_f64() < args.seconds {
        if let Some(event) = runtime.wait_event(Duration::from_millis(5)) {
            print_event(&event);
        }
        report_state()?;
        if Instant::now() >= next_frame {
            push_frame(camera)?;
            next_frame += frame_period;
        }
        if Instant::now() >= next_status {
            print_status(&runtime.telemetry(), &sink);
            next_status += Duration::from_secs(1);
        }
    }
    Ok(runtime.stop()?)
}

fn simulate(
    args: &RunArgs,
    pipeline: Pipeline,
    camera: Box<dyn Camera>,
    sink: StatusSink,
) -> anyhow::Result<TelemetryReport> {
    let mut sim = Simulation::new(pipeline, Box::new(sink.clone()), camera, args.camera_hz)?;
    sim.board().set_instruction(&args.instruction)?;
    sim.board().ask(&args.ask)?;
    let end = (args.seconds * 1e9) as u64;
    while sim.now() < end {
        sim.run_until((sim.now() + 1_000_000_000).min(end));
        for event in sim.take_events() {
            print_event(&event);
        }
        print_status(&sim.telemetry(), &sink);
    }
    Ok(sim.telemetry())
}

fn print_event(event: &RuntimeEvent) {
    let seconds = |t: u64| t as f64 * 1e-9;
    match event {
        RuntimeEvent::Plan { time, subtasks, .. } => {
            println!("[{:7.3} s] plan: {}", seconds(*time), subtasks.join(" -> "))
        }
        RuntimeEvent::Answer { time, text, .. } => println!("[{:7.3} s] answer: {text:?}", seconds(*time)),
        RuntimeEvent::StageFailed { time, stage, message } => {
            println!("[{:7.3} s] {stage} failed: {message}", seconds(*time))
        }
        RuntimeEvent::InputStale { time, input, age_ms } => match age_ms {
            Some(ms) => println!("[{:7.3} s] {input} is stale: {ms:.0} ms old", seconds(*time)),
            None => println!("[{:7.3} s] {input} was never measured", seconds(*time)),
        },
        RuntimeEvent::InputFresh { time } => println!("[{:7.3} s] inputs fresh again", seconds(*time)),
        RuntimeEvent::Chunk { .. } => {}
    }
}

fn print_status(report: &TelemetryReport, sink: &StatusSink) {
    let stage = |name: &str| report.stages.iter().find(|s| s.name == name);
    let rate = |name: &str| stage(name).map_or(0.0, |s| s.count as f64 / report.wall_s.max(1e-9));
    let latency =
        |name: &str| stage(name).map_or("-".into(), |s| format!("p50 {:.1} p99 {:.1} ms", s.p50_ms, s.p99_ms));
    println!(
        "[{:7.3} s] {} ticks, {}; chunks {:.1}/s ({}); plans {:.2}/s ({}); stops {}",
        report.wall_s,
        sink.ticks.load(Ordering::Relaxed),
        sink.mode(),
        rate("vla_chunk"),
        latency("vla_chunk"),
        rate("vlt_plan"),
        latency("vlt_plan"),
        report.interventions.stops()
    );
}

fn print_summary(report: &TelemetryReport) {
    println!("\nstage              count    rate/s   p50 ms   p99 ms   max ms  misses");
    for s in &report.stages {
        println!(
            "{:<18} {:>5} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
            s.name,
            s.count,
            s.count as f64 / report.wall_s.max(1e-9),
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.deadline_misses
        );
    }
    println!("\npartition  chip              busy   TOPS used   energy J");
    for p in &report.partitions {
        println!(
            "{:<10} {:<16} {:>5.1}% {:>11.4} {:>10.3}",
            p.name,
            p.chip,
            100.0 * p.chip_utilisation,
            p.tops_used,
            p.energy_joules
        );
    }
    if let Some(m) = &report.motion {
        println!(
            "\nmotion loop: {} ticks, {} overruns; tick work p50 {:.1} p99 {:.1} max {:.1} us; jitter p99 {:.1} max {:.1} us",
            m.ticks, m.overruns, m.work_p50_us, m.work_p99_us, m.work_max_us, m.jitter_p99_us, m.jitter_max_us
        );
    }
    let interventions: Vec<String> = report
        .interventions
        .entries()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("interventions: {}", interventions.join(", "));
}
