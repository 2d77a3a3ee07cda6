//! Writes a seeded synthetic Idefics3 checkpoint (config, processor config, byte-level
//! tokenizer, f32 safetensors; see `models::synthetic`) for the benchmarks: no download.
//!
//! cargo run --release -p brainstem-benches --bin synthetic_checkpoint -- --shape smolvla weights/smolvla-random

use std::path::PathBuf;

use brainstem_runtime::models::synthetic::Idefics3Shape;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// smolvlm-256m, smolvla or tiny.
    #[arg(long)]
    shape: String,
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shape = match args.shape.as_str() {
        "smolvlm-256m" => Idefics3Shape::smolvlm_256m(),
        "smolvla" => Idefics3Shape::smolvla(),
        "tiny" => Idefics3Shape::tiny(),
        other => anyhow::bail!("expected smolvlm-256m, smolvla or tiny, found {other:?}"),
    };
    std::fs::create_dir_all(&args.out)?;
    shape.write_checkpoint(&args.out)?;
    let params: usize = shape
        .tensors()
        .iter()
        .map(|(_, dims)| dims.iter().product::<usize>())
        .sum();
    println!("wrote {} ({:.0} M parameters)", args.out.display(), params as f64 / 1e6);
    Ok(())
}
