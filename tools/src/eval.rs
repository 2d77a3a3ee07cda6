//! `brainstem eval`: recorded episodes of a LeRobotDataset (v3.0 or v2.1) replayed through
//! the runtime the robot uses, the motion decoder's commands compared with the recorded
//! actions. Prints a summary, writes report.json and a self-contained report.html under
//! `--out`; `--against` (or `--against-quantize`, `--against-placement`) evaluates a second
//! configuration on the same episodes and reports their parity; `--shard i/n` takes every n-th episode from the i-th, and `eval merge`
//! joins the shards' reports into one.

use brainstem_runtime::kernels::Device;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use brainstem_runtime::compute::partition::available_cores;
use brainstem_runtime::offline::dataset::Dataset;
use brainstem_runtime::offline::eval::report::{EvalReport, Parity, Shard, CHUNKS_COMPLETED};
use brainstem_runtime::offline::eval::setup::{select_episodes, stem, EvalSetup};
use brainstem_runtime::offline::eval::Evaluator;
use brainstem_runtime::simulate::sweep::Layout;
use brainstem_runtime::RuntimeConfig;
use indicatif::{ProgressBar, ProgressStyle};

use crate::eval_html;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    merge: Option<EvalCommand>,
    /// The dataset's root directory (the one holding meta/info.json).
    #[arg(long, required = true)]
    dataset: Option<PathBuf>,
    /// A runtime configuration (TOML) whose robot and cameras fit the dataset; without one,
    /// the built-in demo models drive a robot made from the dataset's actions.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With the built-in setup: this checkpoint as VLM and VLT (and VLA unless --vla)
    /// instead of the demo's.
    #[arg(long, conflicts_with = "config")]
    vlm: Option<PathBuf>,
    /// With the built-in setup: this checkpoint as the VLA.
    #[arg(long, conflicts_with = "config")]
    vla: Option<PathBuf>,
    /// With --vla: its language backbone folder (config and tokenizer), when its
    /// `vlm_model_name` is neither a local folder nor in the Hugging Face cache.
    #[arg(long, requires = "vla")]
    vla_backbone: Option<PathBuf>,
    /// Quantize the configuration's float matrices while loading (q8_0, q4_0, ...).
    #[arg(long)]
    quantize: Option<String>,
    /// Place the stages on the partitions this way (split, vla-with-brain, two-chips,
    /// one-chip) instead of the configuration's placement.
    #[arg(long)]
    placement: Option<String>,
    /// A second configuration to evaluate on the same episodes, for parity.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Parity against the same configuration quantized to this format.
    #[arg(long, conflicts_with = "against")]
    against_quantize: Option<String>,
    /// Parity against the same configuration with its stages placed this way.
    #[arg(long, conflicts_with_all = ["against", "against_quantize"])]
    against_placement: Option<String>,
    /// Run every partition on this device: cpu, wgpu (the best Vulkan, Metal or DX12
    /// adapter) or wgpu:ADAPTER (default: as the configuration says, else the CPU).
    #[arg(long)]
    device: Option<Device>,
    /// Parity against the same configuration on this device.
    #[arg(long, conflicts_with_all = ["against", "against_quantize", "against_placement"])]
    against_device: Option<Device>,
    /// Episode indices to evaluate (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    episodes: Vec<u64>,
    /// `i/n`: evaluate only episodes i, i+n, i+2n, ... of the selection.
    #[arg(long)]
    shard: Option<String>,
    /// Where the built-in models are written.
    #[arg(long, default_value = "weights")]
    cache: PathBuf,
    /// Where report.json and report.html go (and parity.json with --against).
    #[arg(long, default_value = "eval-out")]
    out: PathBuf,
}

#[derive(clap::Subcommand)]
enum EvalCommand {
    /// Merge the report.json of several shards into one report.
    Merge {
        /// The shards' report.json files.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        #[arg(long, default_value = "eval-out")]
        out: PathBuf,
    },
    /// Closed loop in simulation: the runtime drives a simulated robot through the task.
    Sim(Box<crate::eval_sim::SimArgs>),
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match &args.merge {
        Some(EvalCommand::Merge { reports, out }) => return merge(reports, out),
        Some(EvalCommand::Sim(sim)) => return crate::eval_sim::run(sim),
        None => {}
    }
    let Some(root) = &args.dataset else {
        bail!("--dataset is required");
    };
    let dataset = Dataset::open(root)?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let positions = select_episodes(&dataset, &args.episodes, shard)?;
    println!(
        "{}: LeRobotDataset {}, {} episodes, {} fps, {} action entries, cameras {:?}; evaluating {}",
        root.display(),
        dataset.info.codebase_version,
        dataset.episodes.len(),
        dataset.info.fps,
        dataset.action_len(),
        dataset.cameras,
        positions.len()
    );
    let (name, config) = configuration(&args, &dataset)?;
    let report = evaluate(&name, &config, &dataset, &positions, shard)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let against = match (&args.against, &args.against_quantize, &args.against_placement) {
        (Some(path), ..) => Some((stem(path), RuntimeConfig::from_file(path)?)),
        (None, None, None) if args.against_device.is_some() => {
            let mut moved = config.clone();
            moved.device = args.against_device.clone();
            let device = args
                .against_device
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            Some((format!("{name} on {device}"), moved))
        }
        (None, Some(format), _) => {
            let mut quantized = config.clone();
            quantized.models.quantize = Some(format.clone());
            Some((format!("{name} {format}"), quantized))
        }
        (None, None, Some(layout)) => {
            let mut placed = config.clone();
            placed.compute = Some(Layout::parse(layout)?.compute(available_cores()));
            Some((format!("{name} {layout}"), placed))
        }
        (None, None, None) => None,
    };
    let parity = match against {
        Some((other, config)) => {
            let b = evaluate(&other, &config, &dataset, &positions, shard)?;
            let parity = Parity::of(&report, &b);
            write(
                &args.out.join(format!("report-{}.json", file_safe(&other))),
                &b.to_json(),
            )?;
            write(&args.out.join("parity.json"), &serde_json::to_string_pretty(&parity)?)?;
            Some(parity)
        }
        None => None,
    };
    finish(&report, parity.as_ref(), &args.out)
}

fn configuration(args: &EvalArgs, dataset: &Dataset) -> anyhow::Result<(String, RuntimeConfig)> {
    let setup = EvalSetup {
        config: args.config.clone(),
        vlm: args.vlm.clone(),
        vla: args.vla.clone(),
        vla_backbone: args.vla_backbone.clone(),
        quantize: args.quantize.clone(),
        placement: args.placement.clone(),
        device: args.device.clone(),
        cache: args.cache.clone(),
    };
    Ok(setup.configuration(dataset)?)
}

fn evaluate(
    name: &str,
    config: &RuntimeConfig,
    dataset: &Dataset,
    positions: &[usize],
    shard: Option<Shard>,
) -> anyhow::Result<EvalReport> {
    let mut evaluator = Evaluator::new(name, config, dataset)?;
    let bar = ProgressBar::new(positions.len() as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} episodes, {elapsed} ({eta} left) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(name.to_string());
    let report = evaluator.evaluate(dataset, positions, shard, |done| {
        bar.set_message(done.to_string());
        bar.inc(1);
    });
    bar.finish_and_clear();
    Ok(report)
}

fn merge(paths: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let reports = paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(EvalReport::from_json(&text, &path.display().to_string())?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = EvalReport::merge(reports)?;
    let shards = &merged.shards;
    if let Some(count) = shards.first().map(|s| s.count) {
        let missing: Vec<usize> = (0..count).filter(|i| !shards.iter().any(|s| s.index == *i)).collect();
        if !missing.is_empty() {
            eprintln!("warning: shards {missing:?} of {count} are not among the reports");
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    finish(&merged, None, out)
}

fn finish(report: &EvalReport, parity: Option<&Parity>, out: &Path) -> anyhow::Result<()> {
    print_summary(report, parity);
    write(&out.join("report.json"), &report.to_json())?;
    write(&out.join("report.html"), &eval_html::render(report, parity))?;
    println!("wrote {0}/report.json and {0}/report.html", out.display());
    Ok(())
}

fn print_summary(report: &EvalReport, parity: Option<&Parity>) {
    let summary = report.summary();
    println!(
        "\n{}: {} episodes evaluated, {} failed, {} frames; {:.2} episodes/s (frames read and decoded in {:.2} s of {:.2} s)",
        report.config,
        summary.episodes,
        summary.failed,
        summary.frames,
        summary.episodes_per_second,
        summary.read_seconds,
        summary.wall_seconds
    );
    print_episodes(report);
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "joint", "MAE", "RMSE", "max", "MAE/std", "RMSE/std"
    );
    let optional = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for joint in &summary.joints {
        println!(
            "{:<24} {:>10.4} {:>10.4} {:>10.4} {:>10} {:>10}",
            joint.joint,
            joint.mae,
            joint.rmse,
            joint.max_abs,
            optional(joint.mae_normalized),
            optional(joint.rmse_normalized)
        );
    }
    println!(
        "all joints: MAE {:.4}, RMSE {:.4}, MAE/std {}; RMS jerk {:.1} commanded vs {:.1} recorded",
        summary.mae,
        summary.rmse,
        optional(summary.mae_normalized),
        summary.jerk_rms_predicted,
        summary.jerk_rms_recorded
    );
    for stage in &summary.stages {
        println!(
            "{:<18} {:>6} calls  p50 {:>9} ms  p99 {:>9} ms  max {:>9} ms  deadline misses {}",
            stage.stage,
            stage.count,
            optional(stage.p50_ms),
            optional(stage.p99_ms),
            optional(stage.max_ms),
            stage.deadline_misses
        );
    }
    let interventions: Vec<String> = summary
        .interventions
        .iter()
        .filter(|(name, count)| **count > 0 && *name != CHUNKS_COMPLETED)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    println!(
        "safety interventions: {}; chunks completed: {}; model stage failures: {}",
        if interventions.is_empty() {
            "none".into()
        } else {
            interventions.join(", ")
        },
        summary.interventions.get(CHUNKS_COMPLETED).copied().unwrap_or(0),
        summary.stage_failures
    );
    for failure in &report.failures {
        println!("episode {} FAILED: {}", failure.episode, failure.error);
    }
    if let Some(parity) = parity {
        println!(
            "parity {} vs {} over {} episodes: MAE {:.5}, max {:.5}",
            parity.b, parity.a, parity.episodes, parity.mae, parity.max_abs
        );
    }
}

/// Episodes printed one line each; the rest are in report.json and report.html.
const PRINTED_EPISODES: usize = 20;

fn print_episodes(report: &EvalReport) {
    for e in report.episodes.iter().take(PRINTED_EPISODES) {
        let chunk_p99 = e.latency.get("vla_chunk").and_then(|l| l.quantile(0.99));
        println!(
            "episode {:>5}: {:>5} frames  MAE {:.4}  RMS jerk {:.1}  chunk p99 {} ms  interventions {}  stage failures {}  {:.2} s",
            e.episode,
            e.timestamps.len(),
            e.mae(),
            e.jerk_predicted.rms(),
            chunk_p99.map_or("-".into(), |v| format!("{v:.1}")),
            e.interventions_total(),
            e.stage_failures.len(),
            e.wall_seconds
        );
    }
    if report.episodes.len() > PRINTED_EPISODES {
        println!(
            "... and {} more episodes in report.json",
            report.episodes.len() - PRINTED_EPISODES
        );
    }
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
