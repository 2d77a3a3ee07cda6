//! Parity of the Llama decoder with Hugging Face transformers on tiny models initialised
//! from real configs (tools/reference/llama_reference.py): the whole prompt at once, and a
//! prefill followed by token-by-token decoding through the KV cache, from the safetensors
//! checkpoint and from the same weights as a llama GGUF (permuted Q/K, interleaved rope).

mod common;

use brainstem_models::kernels::Backend;
use brainstem_models::{Llama, Logits};
use common::*;

const TOLERANCE: f32 = 1e-4;

fn check_full_sequence(model_name: &str, file: &str) {
    let g = golden(model_name);
    let backend = backend();
    let model = Llama::load(backend.clone(), &reference_dir().join(model_name).join(file)).expect("load");
    let mut cache = model.new_cache(64).unwrap();
    let logits = backend
        .read(&model.forward(&g.ids, &mut cache, Logits::All).unwrap())
        .unwrap();
    let err = max_relative_error(&logits, &g.logits);
    assert!(err < TOLERANCE, "{model_name}/{file}: relative error {err}");
}

fn check_incremental(model_name: &str, file: &str) {
    let g = golden(model_name);
    let backend = backend();
    let model = Llama::load(backend.clone(), &reference_dir().join(model_name).join(file)).expect("load");
    let mut cache = model.new_cache(64).unwrap();
    let split = 7;
    let prefill = backend
        .read(&model.forward(&g.ids[..split], &mut cache, Logits::Last).unwrap())
        .unwrap();
    let expected = &g.logits[(split - 1) * g.vocab..split * g.vocab];
    assert!(
        max_relative_error(&prefill, expected) < TOLERANCE,
        "{model_name}: prefill logits"
    );
    for pos in split..g.ids.len() {
        let step = backend
            .read(&model.forward(&g.ids[pos..pos + 1], &mut cache, Logits::Last).unwrap())
            .unwrap();
        let err = max_relative_error(&step, &g.logits[pos * g.vocab..(pos + 1) * g.vocab]);
        assert!(
            err < TOLERANCE,
            "{model_name}/{file}: position {pos} relative error {err}"
        );
    }
    assert_eq!(model.cache_len(&cache), g.ids.len());
}

#[test]
fn smollm2_shaped_gqa_tied_matches_transformers() {
    check_full_sequence("tiny-smollm2", "model.safetensors");
    check_incremental("tiny-smollm2", "model.safetensors");
}

#[test]
fn tinyllama_shaped_untied_matches_transformers() {
    check_full_sequence("tiny-tinyllama", "model.safetensors");
    check_incremental("tiny-tinyllama", "model.safetensors");
}

#[test]
fn gguf_copy_with_permuted_qk_matches_transformers() {
    check_full_sequence("tiny-smollm2", "model.gguf");
    check_incremental("tiny-tinyllama", "model.gguf");
}
