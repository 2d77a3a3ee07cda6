//! `brainstem eval sim`: closed-loop evaluation in simulation. The reaching task
//! (tools/sim/server.py, MuJoCo under the project's Python) plays the robot; each
//! configuration asked for (`--quantize f32,q8_0,q4_k` times `--placement split,one-chip`, on
//! `--device`) drives it through the whole runtime on the virtual clock, episode after episode
//! on the same seeds; `--lerobot` adds the same policy run by lerobot's PyTorch in the same
//! simulation (tools/sim/lerobot_rollout.py). Prints a row per run, writes report.json and a
//! self-contained report.html under `--out`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use brainstem_runtime::kernels::Device;
use brainstem_runtime::offline::eval::metrics::Latencies;
use brainstem_runtime::offline::sim::report::{SimReport, SimRun};
use brainstem_runtime::offline::sim::{SimEpisode, SimEvaluator, SimProcess, SimSetup, TaskDescription};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::eval_sim_html;

/// The trained policy the repository keeps, and the folder of its backbone.
pub const TRAINED_POLICY: &str = "tools/sim/policy";
pub const TRAINED_BACKBONE: &str = "tools/sim/policy-backbone";

#[derive(clap::Args)]
pub struct SimArgs {
    /// The VLA: a lerobot SmolVLA folder trained on the task (default: the repository's).
    #[arg(long, default_value = TRAINED_POLICY)]
    vla: PathBuf,
    /// The VLA's backbone folder (config and tokenizer), when its `vlm_model_name` is neither
    /// a local folder nor in the Hugging Face cache (default: the repository policy's).
    #[arg(long)]
    vla_backbone: Option<PathBuf>,
    /// Episodes, on seeds from --first-seed on (the training set uses seeds from 0).
    #[arg(long, default_value_t = 20)]
    episodes: u64,
    #[arg(long, default_value_t = 1000)]
    first_seed: u64,
    /// Simulated seconds an episode may take before it counts as failed.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Weight formats to run, one run each (f32: as stored).
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    quantize: Vec<String>,
    /// Placements to run, one run each with every format (split, vla-with-brain, two-chips,
    /// one-chip); the built-in placement when none is given.
    #[arg(long, value_delimiter = ',')]
    placement: Vec<String>,
    #[arg(long)]
    device: Option<Device>,
    /// How often a chunk starts, in milliseconds (default: every half chunk).
    #[arg(long)]
    chunk_period_ms: Option<f64>,
    /// Also run the policy with lerobot's PyTorch in the same simulation, same seeds.
    #[arg(long)]
    lerobot: bool,
    /// The Python that runs the simulator (needs mujoco; --lerobot needs lerobot 0.6.1):
    /// default $BRAINSTEM_PYTHON, else tools/python-env.sh's environment where it exists,
    /// else python3.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The simulator's script.
    #[arg(long, default_value = "tools/sim/server.py")]
    server: PathBuf,
    /// The longest the simulator may take to answer one request.
    #[arg(long, default_value_t = 60.0)]
    timeout_s: f64,
    /// Where the demo's brain is written.
    #[arg(long, default_value = "weights")]
    cache: PathBuf,
    #[arg(long, default_value = "eval-sim")]
    out: PathBuf,
}

/// The longest episode and reply wait accepted: an hour, far past any reaching task.
const MAX_SECONDS: f64 = 3600.0;

pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    for (option, value) in [("--seconds", args.seconds), ("--timeout-s", args.timeout_s)] {
        if !(value > 0.0 && value <= MAX_SECONDS) {
            bail!("{option} must be positive and at most {MAX_SECONDS} s, found {value}");
        }
    }
    let python = python(args.python.as_deref());
    let backbone = args
        .vla_backbone
        .clone()
        .or_else(|| (args.vla == Path::new(TRAINED_POLICY)).then(|| PathBuf::from(TRAINED_BACKBONE)));
    let mut process = start_server(&python, args)?;
    let task = process.describe().with_context(|| {
        format!(
            "{} {} did not describe its task (it needs Python 3.12 with mujoco, and lerobot for --lerobot: \
             tools/python-env.sh makes and prints such an environment; pass it with --python)",
            python.display(),
            args.server.display()
        )
    })?;
    println!(
        "{}: \"{}\", {} joints at {} Hz, {} camera(s), actions at {} Hz; {} episodes from seed {}, {} s each",
        task.task,
        task.instruction,
        task.joints.len(),
        task.control_rate_hz,
        task.cameras.len(),
        task.action_rate_hz,
        args.episodes,
        args.first_seed,
        args.seconds
    );
    let mut runs = Vec::new();
    let placements: Vec<Option<String>> = match args.placement.as_slice() {
        [] => vec![None],
        named => named.iter().cloned().map(Some).collect(),
    };
    let variants = placements
        .iter()
        .flat_map(|p| args.quantize.iter().map(move |f| (f, p)));
    for (format, placement) in variants {
        let setup = SimSetup {
            vla: args.vla.clone(),
            vla_backbone: backbone.clone(),
            quantize: (format != "f32").then(|| format.clone()),
            placement: placement.clone(),
            device: args.device.clone(),
            chunk_period_ms: args.chunk_period_ms,
            cache: args.cache.clone(),
        };
        let run = brainstem_run(&setup, &task, &mut process, args)?;
        print_run(&run);
        runs.push(run);
    }
    if args.lerobot {
        let run = lerobot_run(&python, args, backbone.as_deref())?;
        print_run(&run);
        runs.push(run);
    }
    let report = SimReport {
        task: task.task.clone(),
        instruction: task.instruction.clone(),
        policy: args.vla.display().to_string(),
        first_seed: args.first_seed,
        seconds_limit: args.seconds,
        control_rate_hz: task.control_rate_hz,
        success_radius: task.success_radius,
        runs,
    };
    write_report(&args.out, &report)
}

/// The Python to run the simulator with.
fn python(asked: Option<&Path>) -> PathBuf {
    if let Some(path) = asked {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os("BRAINSTEM_PYTHON") {
        return path.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")));
    let env = std::env::var_os("BRAINSTEM_PYTHON_ENV")
        .map(PathBuf::from)
        .or_else(|| cache.map(|c| c.join("brainstem/python-env")));
    env.map(|dir| dir.join("bin/python"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "python3".into())
}

fn start_server(python: &Path, args: &SimArgs) -> anyhow::Result<SimProcess> {
    let script = args.server.display().to_string();
    SimProcess::start(
        &python.display().to_string(),
        &[script],
        Duration::from_secs_f64(args.timeout_s),
    )
    .with_context(|| format!("starting the simulator with {}", python.display()))
}

fn brainstem_run(
    setup: &SimSetup,
    task: &TaskDescription,
    process: &mut SimProcess,
    args: &SimArgs,
) -> anyhow::Result<SimRun> {
    let (name, config) = setup.configuration(task)?;
    let mut evaluator = SimEvaluator::new(&format!("brainstem {name}"), &config, task.clone())?;
    let bar = progress(args.episodes, &evaluator.name);
    let mut episodes = Vec::new();
    for seed in args.first_seed..args.first_seed + args.episodes {
        episodes.push(evaluator.episode(process, seed, args.seconds)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(SimRun::new(&evaluator.name, episodes))
}

/// An episode as tools/sim/lerobot_rollout.py reports it.
#[derive(Deserialize)]
struct LerobotEpisode {
    seed: u64,
    success: bool,
    seconds_to_success: Option<f64>,
    final_distance: f64,
    closest_distance: f64,
    distances: Vec<f64>,
    chunk_ms: Vec<f64>,
    wall_seconds: f64,
}

#[derive(Deserialize)]
struct LerobotRollout {
    episodes: Vec<LerobotEpisode>,
}

fn lerobot_run(python: &Path, args: &SimArgs, backbone: Option<&Path>) -> anyhow::Result<SimRun> {
    let script = args.server.with_file_name("lerobot_rollout.py");
    let mut command = Command::new(python);
    command.arg(&script).arg(&args.vla).args([
        "--episodes",
        &args.episodes.to_string(),
        "--first-seed",
        &args.first_seed.to_string(),
        "--seconds",
        &args.seconds.to_string(),
    ]);
    if let Some(backbone) = backbone {
        command.arg("--backbone").arg(backbone);
    }
    println!("lerobot: running {} ...", script.display());
    let output = command
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
        );
    }
    // lerobot may log to standard output too; the report is the last line.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let rollout: LerobotRollout =
        serde_json::from_str(last).with_context(|| format!("reading the report {} printed", script.display()))?;
    let episodes = rollout.episodes.into_iter().map(lerobot_episode).collect();
    Ok(SimRun::new("lerobot 0.6.1 PyTorch", episodes))
}

fn lerobot_episode(episode: LerobotEpisode) -> SimEpisode {
    let mut chunk = Latencies::default();
    for ms in episode.chunk_ms {
        chunk.merge(&Latencies {
            buckets: vec![(ms, 1)],
            deadline_misses: 0,
        });
    }
    SimEpisode {
        seed: episode.seed,
        success: episode.success,
        seconds_to_success: episode.seconds_to_success,
        final_distance: episode.final_distance,
        closest_distance: episode.closest_distance,
        distances: episode.distances,
        interventions: Default::default(),
        latency: [("vla_chunk".to_string(), chunk)].into(),
        stage_failures: Vec::new(),
        wall_seconds: episode.wall_seconds,
        frames: Vec::new(),
    }
}

fn progress(episodes: u64, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(episodes);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} episodes {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(name.to_string());
    bar
}

fn print_run(run: &SimRun) {
    let [success, median, interventions, p50, p99, host] = eval_sim_html::summary_cells(&run.summary);
    println!(
        "{}: {success} succeeded, median time to success {median}, interventions {interventions}, chunk p50 {p50} p99 {p99}, host {host}",
        run.name
    );
}

fn write_report(out: &Path, report: &SimReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json)?;
    std::fs::write(out.join("report.html"), eval_sim_html::render(report))?;
    println!("wrote {0}/report.json and {0}/report.html", out.display());
    Ok(())
}
