//! Parity of the Llama decoder with Hugging Face transformers on tiny models initialised
//! from real configs (tools/reference/llama_reference.py): the whole prompt at once, and a
//! prefill followed by token-by-token decoding through the KV cache, from the safetensors
//! checkpoint and from the same weights as a llama GGUF (permuted Q/K, interleaved rope); on
//! the CPU backend and, for the same checks, on the wgpu backend.

use std::sync::Arc;

use crate::common::*;
use brainstem_models::kernels::{Backend, OpKind, WgpuBackend};
use brainstem_models::{Llama, Logits};

const TOLERANCE: f32 = 1e-4;

fn check_full_sequence<B: Backend>(backend: Arc<B>, model_name: &str, file: &str) {
    let g = golden(model_name);
    let model = Llama::load(backend.clone(), &reference_dir().join(model_name).join(file)).expect("load");
    let mut cache = model.new_cache(64).unwrap();
    let logits = backend
        .read(&model.forward(&g.ids, &mut cache, Logits::All).unwrap())
        .unwrap();
    let err = max_relative_error(&logits, &g.logits);
    assert!(err < TOLERANCE, "{model_name}/{file}: relative error {err}");
}

fn check_incremental<B: Backend>(backend: Arc<B>, model_name: &str, file: &str) {
    let g = golden(model_name);
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
    check_full_sequence(backend(), "tiny-smollm2", "model.safetensors");
    check_incremental(backend(), "tiny-smollm2", "model.safetensors");
}

#[test]
fn tinyllama_shaped_untied_matches_transformers() {
    check_full_sequence(backend(), "tiny-tinyllama", "model.safetensors");
    check_incremental(backend(), "tiny-tinyllama", "model.safetensors");
}

#[test]
fn the_same_checks_pass_on_wgpu() {
    let wgpu = || Arc::new(WgpuBackend::new(None).unwrap_or_else(|e| panic!("the wgpu tests need an adapter: {e}")));
    for (model, file) in [
        ("tiny-smollm2", "model.safetensors"),
        ("tiny-tinyllama", "model.safetensors"),
        ("tiny-smollm2", "model.gguf"),
        ("tiny-tinyllama", "model.gguf"),
    ] {
        check_full_sequence(wgpu(), model, file);
        check_incremental(wgpu(), model, file);
    }
}

#[test]
fn gguf_copy_with_permuted_qk_matches_transformers() {
    check_full_sequence(backend(), "tiny-smollm2", "model.gguf");
    check_incremental(backend(), "tiny-tinyllama", "model.gguf");
}

/// A GGUF whose attention projections mix formats (q in Q8_0, k and v in F32), as llama.cpp's
/// mixed quantizations do: the loader keeps them as separate matmuls instead of stacking.
#[test]
fn mixed_format_projections_load_unstacked_and_match() {
    use brainstem_models::kernels::quant::quantize::quantize;
    use brainstem_models::kernels::{DType, HostWeight};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.gguf");
    fn q_to_q8<'a>(name: &str, weight: HostWeight<'a>) -> HostWeight<'a> {
        if !name.ends_with("attn_q.weight") {
            return weight;
        }
        let bytes = quantize(DType::Q8_0, &weight.to_f32().unwrap()).unwrap();
        HostWeight {
            dtype: DType::Q8_0,
            shape: weight.shape.clone(),
            bytes: bytes.into(),
        }
    }
    rewrite_gguf(
        &reference_dir().join("tiny-smollm2/model.gguf"),
        &path,
        q_to_q8,
        Vec::new(),
    );

    let g = golden("tiny-smollm2");
    let backend = backend();
    let model = Llama::load(backend.clone(), &path).unwrap();
    let mut cache = model.new_cache(64).unwrap();
    let logits = backend
        .read(&model.forward(&g.ids, &mut cache, Logits::All).unwrap())
        .unwrap();
    // Q8_0 weights with int8 activations in one projection: well inside 2% of the logits.
    let err = max_relative_error(&logits, &g.logits);
    assert!(err < 2e-2, "mixed-format model: relative error {err}");
    // One quantized matmul per layer (q alone); k, v, o, gate+up and down stay dense.
    let ledger = backend.ledger().snapshot();
    let calls = |kind| {
        ledger
            .by_kind
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map_or(0, |(_, calls, _)| *calls)
    };
    assert_eq!(calls(OpKind::QuantMatmul), 2);
    assert_eq!(calls(OpKind::DenseMatmul), 2 * 5 + 1);
}
