//! Helpers shared by the model tests: paths of the committed reference data, a reader for the
//! golden tensors that tools/reference/llama_reference.py wrote, and one for any f32
//! safetensors file.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use brainstem_models::kernels::CpuBackend;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/out")
}

pub fn backend() -> Arc<CpuBackend> {
    Arc::new(CpuBackend::new(2).expect("thread pool"))
}

/// Input ids and logits `[positions, vocab]` from a golden file.
pub struct Golden {
    pub ids: Vec<u32>,
    pub logits: Vec<f32>,
    pub vocab: usize,
}

pub fn golden(model: &str) -> Golden {
    let bytes = std::fs::read(reference_dir().join(model).join("golden.safetensors")).expect("golden file");
    let st = SafeTensors::deserialize(&bytes).expect("golden safetensors");
    let ids = st.tensor("input_ids").expect("input_ids");
    let ids = ids
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let logits = st.tensor("logits").expect("logits");
    let vocab = logits.shape()[1];
    let logits = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Golden { ids, logits, vocab }
}

/// Every tensor of an f32 safetensors file, by name, flattened.
pub fn f32_tensors(path: &std::path::Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

/// Largest absolute difference relative to the largest reference magnitude.
pub fn max_relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "lengths differ");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(reference).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF in ./weights, fetched by
/// tools/fetch-smollm2.sh when missing.
pub fn smollm2_gguf() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("weights/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        let status = std::process::Command::new("bash")
            .arg(root.join("tools/fetch-smollm2.sh"))
            .status()
            .expect("run fetch script");
        assert!(status.success(), "tools/fetch-smollm2.sh failed");
    }
    path
}

/// Writes `dest`: the GGUF at `source` with every tensor passed through `edit` (which may
/// replace it) and `extra` tensors appended.
pub fn rewrite_gguf(
    source: &std::path::Path,
    dest: &std::path::Path,
    edit: impl for<'a> Fn(&str, brainstem_models::kernels::HostWeight<'a>) -> brainstem_models::kernels::HostWeight<'a>,
    extra: Vec<(&str, brainstem_models::kernels::HostWeight<'static>)>,
) {
    use brainstem_models::weights::{gguf_writer::GgufWriter, Container, WeightFile};
    let file = WeightFile::open(source).expect("source GGUF");
    let Container::Gguf(header) = file.container() else {
        panic!("{} is not a GGUF", source.display())
    };
    let mut writer = GgufWriter::new();
    for (key, value) in &header.metadata {
        writer.set(key.clone(), value.clone());
    }
    for listing in file.listing() {
        let weight = edit(&listing.name, file.tensor(&listing.name).expect("tensor"));
        writer.add_tensor(listing.name, weight).expect("add tensor");
    }
    for (name, weight) in extra {
        writer.add_tensor(name, weight).expect("add tensor");
    }
    writer.write(dest).expect("write GGUF");
}

/// The `edit` of [`rewrite_gguf`] that keeps every tensor.
pub fn unchanged<'a>(
    _: &str,
    weight: brainstem_models::kernels::HostWeight<'a>,
) -> brainstem_models::kernels::HostWeight<'a> {
    weight
}

/// Rewrites `model.safetensors` with `edit` applied to its tensors (name, shape, bytes).
pub fn rewrite_weights(dir: &std::path::Path, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let view = TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

/// A fresh copy of the files of the policy folder `from` (not its subfolders), in the test
/// target's scratch folder under `name`, for a test to edit.
pub fn policy_copy(from: &std::path::Path, name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// The observation a golden folder records: each camera's `<camera>.png` (values in [0, 1]),
/// the state and the task.
pub fn golden_observation(
    dir: &std::path::Path,
    cameras: &[String],
    state: &[f32],
    task: &str,
) -> brainstem_models::smolvla::Observation {
    use brainstem_models::image::{planar::PlanarImage, RgbImage};
    let images = cameras
        .iter()
        .map(|camera| {
            let rgb = RgbImage::open(&dir.join(format!("{camera}.png"))).unwrap();
            (camera.clone(), PlanarImage::from_rgb(&rgb))
        })
        .collect();
    brainstem_models::smolvla::Observation {
        images,
        state: state.to_vec(),
        task: task.to_string(),
    }
}
