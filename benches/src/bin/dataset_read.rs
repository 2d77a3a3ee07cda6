//! How long reading recorded episodes takes: open a LeRobotDataset, read every episode's rows
//! and decode every frame of every camera to RGB, as `brainstem eval` does, against lerobot
//! reading the same dataset in the same run (benches/peers/lerobot_read.py, with `--python`).
//!
//! cargo run --release -p brainstem-benches --features video --bin dataset_read -- \
//!     --dataset DIR [--dataset DIR ...] --reps 3 --python /path/to/python3.12

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use brainstem_runtime::offline::dataset::Dataset;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, required = true)]
    dataset: Vec<PathBuf>,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// A Python with lerobot 0.6.1, to time lerobot on the same datasets.
    #[arg(long)]
    python: Option<PathBuf>,
}

/// Reads every row and frame once; returns the frame count (views of every camera).
fn read_all(root: &std::path::Path) -> anyhow::Result<usize> {
    let dataset = Dataset::open(root)?;
    let mut frames = 0;
    for position in 0..dataset.episodes.len() {
        let episode = dataset.read_episode(position)?;
        let mut reader = episode.frames()?;
        for frame in 0..episode.len() {
            frames += reader.views(frame)?.len();
        }
    }
    Ok(frames)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "{:<40} {:<16} {:>8} {:>10} {:>10} {:>9}",
        "dataset", "engine", "frames", "median s", "frames/s", "vs lerobot"
    );
    for root in &args.dataset {
        let mut times = Vec::new();
        let mut frames = 0;
        for _ in 0..args.reps.max(1) {
            let start = Instant::now();
            frames = read_all(root).with_context(|| format!("reading {}", root.display()))?;
            times.push(start.elapsed().as_secs_f64());
        }
        let ours = median(times);
        let peer = match &args.python {
            Some(python) => Some(lerobot(python, root, args.reps)?),
            None => None,
        };
        let name = root
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let ratio = peer.map_or("-".to_string(), |(s, _)| format!("{:.1}x", s / ours));
        println!(
            "{name:<40} {:<16} {frames:>8} {ours:>10.3} {:>10.0} {ratio:>9}",
            "brainstem",
            frames as f64 / ours
        );
        if let Some((seconds, peer_frames)) = peer {
            println!(
                "{name:<40} {:<16} {peer_frames:>8} {seconds:>10.3} {:>10.0} {:>9}",
                "lerobot 0.6.1",
                peer_frames as f64 / seconds,
                "1.0x"
            );
        }
    }
    Ok(())
}

fn lerobot(python: &PathBuf, root: &std::path::Path, reps: usize) -> anyhow::Result<(f64, u64)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/lerobot_read.py");
    let output = Command::new(python)
        .arg(script)
        .arg(root)
        .args(["--reps", &reps.to_string()])
        .output()
        .context("running the lerobot peer")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(line).with_context(|| {
        format!(
            "the lerobot peer printed {line:?}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((
        json["median_s"].as_f64().unwrap_or(f64::NAN),
        json["frames"].as_u64().unwrap_or(0),
    ))
}
