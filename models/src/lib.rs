//! brainstem-models: model architectures written once against the backend interface of
//! `brainstem-kernels`, the weight files they load (GGUF, safetensors + config.json), the
//! tokenizers, sampling and generation, and quantization of a model into a llama GGUF.

pub mod action;
pub mod error;
pub mod flow;
pub mod generate;
pub mod host_work;
pub mod idefics3;
pub mod image;
pub mod llama;
pub mod pi0;
pub mod pi0fast;
pub mod plan;
pub mod quantize;
pub mod sampling;
pub mod smolvla;
pub mod synthetic;
pub mod tokenizer;
pub mod vla;
pub mod vlm;
pub mod weights;

pub use brainstem_kernels as kernels;
pub use error::{ModelError, Result};
pub use llama::{Llama, LlamaCache, LlamaConfig, LoadOptions, Logits};
pub use tokenizer::Tokenizer;
pub use weights::WeightFile;
