//! `brainstem`: the command line of the brainstem runtime.

mod act;
mod bench;
mod bench_report;
mod eval;
mod eval_html;
mod eval_sim;
mod eval_sim_html;
mod generate;
mod inspect;
mod quantize;
mod run;
mod vlm;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "brainstem",
    version,
    about = "On-robot inference runtime for VLM, VLT and VLA models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline (camera, vision encoder, brain, cerebellum, motion decoder) on a
    /// configuration; with no arguments, on the built-in demo (no download).
    Run(run::RunArgs),
    /// One chunk of actions from a lerobot SmolVLA checkpoint for one observation, as JSON.
    Act(act::ActArgs),
    /// Latency, control rate, power and energy per action for each TOPS budget and
    /// placement, simulated on the virtual clock (or measured here with --measure).
    Bench(bench::BenchArgs),
    /// Replay recorded episodes (LeRobotDataset v3.0 or v2.1) through the runtime and
    /// compare its commands with the recorded actions; `eval merge` joins shards' reports.
    Eval(eval::EvalArgs),
    /// Generate text with a language model (GGUF file or Hugging Face checkpoint), or answer
    /// about an image with a vision-language model (`--image`).
    Generate(generate::GenerateArgs),
    /// Turn a camera frame and an instruction into a task plan that always parses.
    Plan(vlm::PlanArgs),
    /// Show a model file's architecture, metadata and tensors.
    Inspect(inspect::InspectArgs),
    /// Write a llama GGUF (from a GGUF or a Hugging Face checkpoint) in a block format.
    Quantize(quantize::QuantizeArgs),
}

fn main() -> anyhow::Result<()> {
    brainstem_runtime::kernels::cpu::retain_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("BRAINSTEM_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Act(args) => act::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Plan(args) => vlm::run_plan(args),
    }
}
