//! `brainstem inspect`: what a model file holds (architecture, metadata, tensors with their
//! formats and shapes), without loading the model.

use std::path::PathBuf;

use brainstem_runtime::models::weights::{Container, WeightFile};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// A .gguf or .safetensors file, or a checkpoint directory.
    path: PathBuf,
    /// Print every tensor (default: the first 40).
    #[arg(long)]
    all: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let path = if args.path.is_dir() {
        args.path.join("model.safetensors")
    } else {
        args.path.clone()
    };
    let file = WeightFile::open(&path)?;
    match file.container() {
        Container::Gguf(header) => {
            let arch = header
                .metadata
                .get("general.architecture")
                .map(|v| v.summary())
                .unwrap_or_default();
            println!("{}: GGUF v{}, architecture {arch}", path.display(), header.version);
            println!("metadata ({} keys):", header.metadata.len());
            for (key, value) in &header.metadata {
                println!("  {key} = {}", value.summary());
            }
        }
        Container::SafeTensors(_) => {
            let config = path.with_file_name("config.json");
            println!("{}: safetensors", path.display());
            if let Ok(text) = std::fs::read_to_string(&config) {
                println!("config.json:\n{text}");
            }
        }
    }
    let listing = file.listing();
    let total: usize = listing.iter().map(|t| t.bytes).sum();
    println!("tensors ({}, {:.1} MB):", listing.len(), total as f64 / 1e6);
    let shown = if args.all { listing.len() } else { listing.len().min(40) };
    for t in &listing[..shown] {
        println!("  {:<40} {:<6} {:?}", t.name, t.dtype, t.shape);
    }
    if shown < listing.len() {
        println!("  ... {} more (--all lists them)", listing.len() - shown);
    }
    Ok(())
}
