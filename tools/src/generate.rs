//! `brainstem generate`: text generation with a Llama-family model, streaming tokens as
//! they are sampled and reporting prefill and decode speed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use brainstem_runtime::kernels::{ActivationPrecision, Backend, Device, DeviceBackend};
use brainstem_runtime::models::generate::{generate, GenerateOptions, GenerationStats};
use brainstem_runtime::models::sampling::SamplingParams;
use brainstem_runtime::models::{Llama, LoadOptions, Tokenizer, WeightFile};

use crate::quantize::Format;

/// Where `tools/fetch-smollm2.sh` puts the default model.
pub const DEFAULT_MODEL: &str = "weights/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A .gguf file, or a directory with config.json, model.safetensors and tokenizer.json
    /// (an Idefics3/SmolVLM checkpoint directory with `--image`).
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// A PNG or JPEG image to ask about (needs a vision-language checkpoint).
    #[arg(long)]
    image: Option<PathBuf>,
    #[arg(long, default_value = "What is the capital of France?")]
    prompt: String,
    /// System message for the chat template (default: the template's own).
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as it is, without the chat template.
    #[arg(long)]
    raw: bool,
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Widen quantized weights to f32 on load (slower; for comparing with a dequantizing
    /// reference).
    #[arg(long)]
    dequantize: bool,
    #[command(flatten)]
    compute: ComputeArgs,
}

/// Where and how a model runs: shared by the commands that run one.
#[derive(clap::Args)]
pub struct ComputeArgs {
    /// Quantize float weights to this block format while loading.
    #[arg(long, value_enum)]
    pub quantize: Option<Format>,
    /// How activations meet quantized weights: f32 (exact with the dequantized weights, as
    /// transformers computes) or int8 (NPU-style int8 dot products, as llama.cpp computes).
    #[arg(long, value_enum, default_value_t = Activations::F32)]
    pub activations: Activations,
    /// CPU worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where the model runs: cpu, wgpu (the best Vulkan, Metal or DX12 adapter) or
    /// wgpu:ADAPTER (an index or part of its name).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
}

impl ComputeArgs {
    /// The backend on this device with these threads and activation precision.
    pub fn backend(&self) -> anyhow::Result<Arc<DeviceBackend>> {
        let precision = match self.activations {
            Activations::F32 => ActivationPrecision::F32,
            Activations::Int8 => ActivationPrecision::Int8,
        };
        Ok(Arc::new(self.device.open(self.threads, precision)?))
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Activations {
    F32,
    Int8,
}

/// Prints generated text as tokens arrive: decodes everything so far and writes what is new
/// (a token can end in the middle of a multi-byte character).
pub struct TokenPrinter<'a> {
    tokenizer: &'a Tokenizer,
    tokens: Vec<u32>,
    printed: String,
}

impl<'a> TokenPrinter<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self {
            tokenizer,
            tokens: Vec::new(),
            printed: String::new(),
        }
    }

    pub fn push(&mut self, token: u32) {
        self.tokens.push(token);
        if let Ok(text) = self.tokenizer.decode(&self.tokens) {
            if let Some(fresh) = text.strip_prefix(self.printed.as_str()) {
                let mut stdout = std::io::stdout();
                let _ = write!(stdout, "{fresh}");
                let _ = stdout.flush();
            }
            self.printed = text;
        }
    }
}

/// Prefill and decode speed, on standard error.
pub fn report(backend: &impl Backend, stats: &GenerationStats) {
    eprintln!(
        "{}: prefill {} tokens in {:.1} ms ({:.1} tokens/s), decode {} tokens at {:.1} tokens/s",
        backend.name(),
        stats.prompt_tokens,
        stats.prefill.as_secs_f64() * 1e3,
        stats.prefill_tokens_per_s(),
        stats.generated_tokens,
        stats.decode_tokens_per_s()
    );
}

fn options(args: &GenerateArgs) -> GenerateOptions {
    GenerateOptions {
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_ids: Vec::new(),
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    if let Some(image) = &args.image {
        let (backend, vlm) = crate::vlm::load(&args.model, &args.compute)?;
        return crate::vlm::describe(&vlm, &backend, image, &args.prompt, options(&args));
    }
    let backend = args.compute.backend()?;
    let weights_path = if args.model.is_dir() {
        args.model.join("model.safetensors")
    } else {
        args.model.clone()
    };
    let file = WeightFile::open(&weights_path).with_context(|| {
        format!(
            "loading {} (fetch the default model with tools/fetch-smollm2.sh)",
            args.model.display()
        )
    })?;
    let model = Llama::from_file(
        backend.clone(),
        &file,
        LoadOptions {
            dequantize: args.dequantize,
            quantize: args.compute.quantize.map(Into::into),
        },
    )?;
    let tokenizer = Tokenizer::for_model(&args.model, Some(&file))?;
    drop(file);
    let text = if args.raw {
        args.prompt.clone()
    } else {
        tokenizer.chat_prompt(args.system.as_deref(), &args.prompt)
    };
    let prompt = tokenizer.encode(&text)?;
    let mut stop_ids = tokenizer.stop_ids();
    stop_ids.extend(&model.config().eos_token_ids);
    let opts = GenerateOptions {
        stop_ids,
        ..options(&args)
    };
    let mut printer = TokenPrinter::new(&tokenizer);
    let (_, stats) = generate(&model, &prompt, &opts, |token| printer.push(token))?;
    println!();
    report(backend.as_ref(), &stats);
    Ok(())
}
