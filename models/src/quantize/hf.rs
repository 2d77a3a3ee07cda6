//! A Hugging Face Llama checkpoint as a llama GGUF source, as llama.cpp's
//! `convert_hf_to_gguf.py` writes it: `llama.*` metadata from `config.json`, llama.cpp's
//! tensor names, the Q and K rows permuted for interleaved rotary pairs, `lm_head` dropped
//! when it is tied to the embedding, and `tokenizer.ggml.*` from a `tokenizer.json` beside it.

use std::path::Path;

use super::{Source, TensorPlan};
use crate::error::{ModelError, Result};
use crate::llama::{gguf_tensor_name, LlamaConfig};
use crate::tokenizer::{gguf_vocab_from_json, GgufVocab};
use crate::weights::gguf::GgufValue;
use crate::weights::{read_file, WeightFile};

/// Tensors some checkpoints carry that a GGUF does not need (recomputed from the config).
const IGNORED_SUFFIXES: [&str; 1] = ["rotary_emb.inv_freq"];

pub(super) fn source(file: &WeightFile) -> Result<Source> {
    let config_path = file.path().with_file_name("config.json");
    let text = String::from_utf8(read_file(&config_path)?).map_err(|_| ModelError::Config {
        path: config_path.clone(),
        message: "not UTF-8".into(),
    })?;
    let cfg = LlamaConfig::from_hf_json(&text, &config_path)?;
    let mut metadata = config_metadata(&cfg, file.path());
    let mut notes = Vec::new();
    let tokenizer_path = file.path().with_file_name("tokenizer.json");
    if tokenizer_path.is_file() {
        match gguf_vocab_from_json(&tokenizer_path, cfg.vocab_size)? {
            GgufVocab::Metadata(vocab) => metadata.extend(vocab),
            GgufVocab::Unsupported(why) => notes.push(format!("tokenizer.json not converted: {why}")),
        }
    } else {
        notes.push("no tokenizer.json beside the checkpoint: no tokenizer metadata written".into());
    }
    Ok(Source {
        metadata,
        tensors: tensor_plans(file, &cfg)?,
        notes,
    })
}

/// The `general.*`, `llama.*` and special-token keys that `LlamaConfig::from_gguf` reads.
fn config_metadata(cfg: &LlamaConfig, weights: &Path) -> Vec<(String, GgufValue)> {
    let count = |v: usize| GgufValue::U32(v as u32);
    let mut keys = vec![
        ("general.architecture", GgufValue::String("llama".into())),
        ("llama.block_count", count(cfg.num_layers)),
        ("llama.context_length", count(cfg.max_positions)),
        ("llama.embedding_length", count(cfg.hidden_size)),
        ("llama.feed_forward_length", count(cfg.intermediate_size)),
        ("llama.attention.head_count", count(cfg.num_heads)),
        ("llama.attention.head_count_kv", count(cfg.num_kv_heads)),
        ("llama.rope.freq_base", GgufValue::F32(cfg.rope_theta)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(cfg.rms_norm_eps),
        ),
        ("llama.vocab_size", count(cfg.vocab_size)),
        ("llama.rope.dimension_count", count(cfg.head_dim)),
    ];
    if let Some(bos) = cfg.bos_token_id {
        keys.push(("tokenizer.ggml.bos_token_id", GgufValue::U32(bos)));
    }
    if let Some(&eos) = cfg.eos_token_ids.first() {
        keys.push(("tokenizer.ggml.eos_token_id", GgufValue::U32(eos)));
    }
    let name = weights.parent().and_then(Path::file_name).and_then(|n| n.to_str());
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        keys.push(("general.name", GgufValue::String(name.to_string())));
    }
    keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Every tensor of the checkpoint under its llama.cpp name.
fn tensor_plans(file: &WeightFile, cfg: &LlamaConfig) -> Result<Vec<TensorPlan>> {
    let mut plans = Vec::new();
    for entry in file.listing() {
        let name = entry.name;
        let tied_head = name == "lm_head.weight" && cfg.tie_word_embeddings;
        if tied_head || IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            continue;
        }
        let gguf = gguf_tensor_name(&name).ok_or_else(|| ModelError::Malformed {
            path: file.path().to_path_buf(),
            message: format!("tensor {name} is not a Llama tensor"),
        })?;
        let permute = if gguf.ends_with(".attn_q.weight") {
            Some((cfg.num_heads, cfg.head_dim))
        } else if gguf.ends_with(".attn_k.weight") {
            Some((cfg.num_kv_heads, cfg.head_dim))
        } else {
            None
        };
        plans.push(TensorPlan {
            name: gguf,
            source: name,
            permute,
        });
    }
    Ok(plans)
}

/// Reorders the rows of a Q or K projection `[heads * head_dim, cols]` for interleaved
/// rotary pairs, as llama.cpp's converter does: each head's rows, seen as
/// `(2, head_dim / 2)`, are transposed to `(head_dim / 2, 2)`, so that row `2i + t` of a
/// head comes from row `t * head_dim / 2 + i`. `head_dim` is even (checked by the config).
pub(super) fn permute_rows(values: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(values.len());
    for h in 0..heads {
        for i in 0..half {
            for t in 0..2 {
                let row = h * head_dim + t * half + i;
                out.extend_from_slice(&values[row * cols..(row + 1) * cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_interleaves_the_two_halves_of_each_head() {
        // 2 heads of head_dim 4, one column: rows are their own indices.
        let rows: Vec<f32> = (0..8).map(|r| r as f32).collect();
        assert_eq!(permute_rows(&rows, 2, 4, 1), vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        let wide: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(
            permute_rows(&wide, 1, 4, 4),
            [0., 1., 2., 3., 8., 9., 10., 11., 4., 5., 6., 7., 12., 13., 14., 15.]
        );
    }
}
