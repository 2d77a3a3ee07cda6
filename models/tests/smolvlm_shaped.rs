//! SmolVLM-256M's full shape against transformers: weights come from a counter-based
//! generator that tools/reference/vlm_reference.py used too (splitmix64 of an FNV-1a hash
//! of the tensor name plus the element index), so the 1 GB checkpoint is rebuilt here instead
//! of committed; the reference's prompt ids and a sample of the last position's logits are.

mod common;

use std::collections::HashMap;

use brainstem_models::image::RgbImage;
use brainstem_models::kernels::Backend;
use brainstem_models::vlm::Vlm;
use brainstem_models::{LoadOptions, Logits};
use safetensors::tensor::{Dtype, TensorView};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    input_ids: Vec<u32>,
    indices: Vec<usize>,
    logits: Vec<f32>,
    argmax: usize,
    tensors: Vec<(String, Vec<usize>)>,
}

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn splitmix_uniform(seed: u64, index: u64) -> f64 {
    let mut z = seed.wrapping_add(index).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f64 / (1u64 << 23) as f64 - 1.0
}

/// The reference script's `generated_value`, as little-endian f32 bytes.
fn generated(name: &str, count: usize) -> Vec<u8> {
    let seed = fnv1a64(name);
    let (base, spread) = if name.contains("norm") && name.ends_with("weight") {
        (1.0, 0.1)
    } else if name.ends_with("bias") {
        (0.0, 0.02)
    } else {
        (0.0, 0.05)
    };
    (0..count as u64)
        .flat_map(|i| ((base + spread * splitmix_uniform(seed, i)) as f32).to_le_bytes())
        .collect()
}

#[test]
fn smolvlm_256m_shaped_logits_match_transformers() {
    let reference = common::reference_dir().join("smolvlm-256m-shaped");
    let golden: Golden =
        serde_json::from_str(&std::fs::read_to_string(reference.join("golden.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "config.json",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(reference.join(file), dir.path().join(file)).unwrap();
    }
    let data: HashMap<&str, Vec<u8>> = golden
        .tensors
        .iter()
        .map(|(name, shape)| (name.as_str(), generated(name, shape.iter().product())))
        .collect();
    let views = golden.tensors.iter().map(|(name, shape)| {
        (
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), &data[name.as_str()]).unwrap(),
        )
    });
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    drop(data);

    let backend = common::backend();
    let vlm = Vlm::load(backend.clone(), dir.path(), LoadOptions::default()).unwrap();
    let image = RgbImage::open(&common::reference_dir().join("tiny-idefics3/image.png")).unwrap();
    let frame = vlm.encode_frame(&image).unwrap();
    let ids = vlm.prompt_ids("What is in the picture?", &frame).unwrap();
    assert_eq!(ids, golden.input_ids);
    let mut cache = vlm.model().text().new_cache(ids.len()).unwrap();
    let logits = backend
        .read(
            &vlm.model()
                .prefill(&ids, Some(&frame.embedding), &mut cache, Logits::Last)
                .unwrap(),
        )
        .unwrap();
    let ours: Vec<f32> = golden.indices.iter().map(|&i| logits[i]).collect();
    let error = common::max_relative_error(&ours, &golden.logits);
    assert!(error < 1e-4, "max relative error {error}");
    let argmax = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    assert_eq!(argmax, golden.argmax);
}
