//! `brainstem quantize IN OUT --format F`: a llama GGUF or a Hugging Face Llama checkpoint
//! written as a llama GGUF in a block format, with a report of the tensors per format, the
//! matrices that fell back to another format, and the sizes before and after.

use std::path::PathBuf;

use anyhow::Context;
use brainstem_runtime::kernels::DType;
use brainstem_runtime::models::quantize::{quantize_model, QuantizeReport};

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// A .gguf file, or a Hugging Face checkpoint (a directory with config.json and
    /// model.safetensors, or the model.safetensors file).
    input: PathBuf,
    /// The GGUF file to write.
    output: PathBuf,
    /// The block format of the matrices.
    #[arg(long, value_enum)]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_1")]
    Q4_1,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_k")]
    Q4K,
    #[value(name = "q6_k")]
    Q6K,
}

impl From<Format> for DType {
    fn from(format: Format) -> DType {
        match format {
            Format::Q4_0 => DType::Q4_0,
            Format::Q4_1 => DType::Q4_1,
            Format::Q8_0 => DType::Q8_0,
            Format::Q4K => DType::Q4K,
            Format::Q6K => DType::Q6K,
        }
    }
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let format = DType::from(args.format);
    let report = quantize_model(&args.input, &args.output, format)
        .with_context(|| format!("quantizing {} to {format}", args.input.display()))?;
    print_report(&args, &report);
    Ok(())
}

fn print_report(args: &QuantizeArgs, report: &QuantizeReport) {
    println!(
        "{} -> {} ({})",
        args.input.display(),
        args.output.display(),
        report.format
    );
    let counts: Vec<String> = report.tensors.iter().map(|(d, n)| format!("{n} {d}")).collect();
    println!("tensors: {}", counts.join(", "));
    if !report.fallbacks.is_empty() {
        println!("fallbacks ({}):", report.fallbacks.len());
        for f in &report.fallbacks {
            println!("  {:<32} {:<5} {}", f.tensor, f.dtype, f.reason);
        }
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    let (mb_in, mb_out) = (report.input_bytes as f64 / 1e6, report.output_bytes as f64 / 1e6);
    let percent = 100.0 * mb_out / mb_in.max(1e-9);
    println!("{mb_in:.1} MB -> {mb_out:.1} MB ({percent:.0}% of the input)");
}
