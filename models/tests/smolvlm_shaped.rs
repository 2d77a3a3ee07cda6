//! SmolVLM-256M's full shape against transformers: weights come from the counter-based
//! generator in `models::synthetic` that tools/reference/vlm_reference.py implements too, so
//! the 1 GB checkpoint is rebuilt here instead of committed; the reference's prompt ids, its
//! tensor names and shapes, and a sample of the last position's logits are.

use crate::common;

use std::collections::{BTreeSet, HashMap};

use brainstem_models::image::RgbImage;
use brainstem_models::kernels::Backend;
use brainstem_models::synthetic::{tensor_values, Idefics3Shape};
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
    let ours: BTreeSet<(String, Vec<usize>)> = Idefics3Shape::smolvlm_256m().tensors().into_iter().collect();
    let theirs: BTreeSet<(String, Vec<usize>)> = golden.tensors.iter().cloned().collect();
    assert_eq!(
        ours, theirs,
        "synthetic tensor names and shapes differ from transformers'"
    );
    let data: HashMap<&str, Vec<u8>> = golden
        .tensors
        .iter()
        .map(|(name, shape)| {
            let values = tensor_values(name, shape.iter().product());
            (name.as_str(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
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
