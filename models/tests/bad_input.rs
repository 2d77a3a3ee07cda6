//! Bad model files and configs give typed errors that name the file and the problem: a
//! truncated file, a wrong magic, a tensor whose shape disagrees with the config, a missing
//! tensor, an unsupported dtype, a missing tokenizer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::{backend, reference_dir, rewrite_gguf, unchanged};
use brainstem_models::kernels::CpuBackend;
use brainstem_models::{Llama, ModelError, Tokenizer, WeightFile};
use safetensors::{Dtype, SafeTensors};

fn tiny(file: &str) -> PathBuf {
    reference_dir().join("tiny-smollm2").join(file)
}

/// A copy of the tiny SmolLM2 checkpoint in a temporary directory.
fn checkpoint_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn load_err(path: &Path) -> ModelError {
    match Llama::<CpuBackend>::load(backend(), path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

fn assert_names(err: &ModelError, path: &Path, words: &[&str]) {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} does not name {}",
        path.display()
    );
    for word in words {
        assert!(message.contains(word), "{message:?} does not say {word:?}");
    }
}

/// Rewrites the checkpoint's safetensors with `edit` applied to the name -> (dtype, shape, bytes) map.
fn rewrite_safetensors(dir: &Path, edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: HashMap<_, _> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec())))
        .collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, (d, s, b))| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn truncated_gguf_and_safetensors_say_where_the_file_ends() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.gguf", "model.safetensors"] {
        let bytes = std::fs::read(tiny(name)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let err = load_err(&path);
        assert!(
            matches!(err, ModelError::Truncated { .. } | ModelError::Malformed { .. }),
            "{name}: {err:?}"
        );
        assert_names(&err, &path, &[]);
    }
}

#[test]
fn wrong_magic_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(tiny("model.gguf")).unwrap();
    bytes[..4].copy_from_slice(b"GGML");
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(&path);
    assert!(matches!(err, ModelError::BadMagic { .. }), "{err:?}");
    assert_names(&err, &path, &["GGUF", "GGML"]);
}

#[test]
fn tensor_shape_that_disagrees_with_the_config_is_named() {
    let dir = checkpoint_copy();
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let config = config.replace("\"intermediate_size\": 256", "\"intermediate_size\": 128");
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::TensorShape { .. }), "{err:?}");
    assert_names(
        &err,
        &dir.path().join("model.safetensors"),
        &["mlp.gate_proj", "[128, 96]", "[256, 96]"],
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = checkpoint_copy();
    rewrite_safetensors(dir.path(), |t| {
        t.remove("model.layers.1.self_attn.v_proj.weight");
    });
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{err:?}");
    assert_names(
        &err,
        &dir.path().join("model.safetensors"),
        &["model.layers.1.self_attn.v_proj.weight", "missing"],
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let dir = checkpoint_copy();
    rewrite_safetensors(dir.path(), |t| {
        let (dtype, shape, bytes) = t.get_mut("model.norm.weight").unwrap();
        let widened: Vec<u8> = bytes
            .chunks_exact(4)
            .flat_map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes())
            .collect();
        *dtype = Dtype::F64;
        *bytes = widened;
        assert_eq!(shape.len(), 1);
    });
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::UnsupportedDType { .. }), "{err:?}");
    assert_names(
        &err,
        &dir.path().join("model.safetensors"),
        &["model.norm.weight", "F64"],
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = checkpoint_copy();
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4"),
    )
    .unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::Config { .. }), "{err:?}");
    assert_names(&err, &dir.path().join("config.json"), &["num_key_value_heads"]);
}

#[test]
fn missing_tokenizer_says_where_it_looked() {
    let dir = checkpoint_copy();
    let err = Tokenizer::for_model(dir.path(), None)
        .err()
        .expect("no tokenizer expected");
    assert!(matches!(err, ModelError::MissingTokenizer { .. }), "{err:?}");
    assert_names(&err, dir.path(), &["tokenizer.json"]);
    // A GGUF without tokenizer.ggml.* metadata.
    let gguf = WeightFile::open(&tiny("model.gguf")).unwrap();
    let err = Tokenizer::for_model(&tiny("model.gguf"), Some(&gguf))
        .err()
        .expect("no tokenizer expected");
    assert!(matches!(err, ModelError::MissingTokenizer { .. }), "{err:?}");
    assert_names(&err, &tiny("model.gguf"), &["tokenizer.ggml"]);
}

/// A llama GGUF with a feature the decoder does not implement (Llama 3.1's rope frequency
/// scaling tensor) is refused with the tensor's name, not run with wrong positions.
#[test]
fn unsupported_rope_scaling_in_gguf_is_named() {
    use brainstem_models::kernels::{DType, HostWeight};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scaled.gguf");
    let freqs: Vec<u8> = [1.0f32; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let rope_freqs = HostWeight {
        dtype: DType::F32,
        shape: vec![8],
        bytes: freqs.into(),
    };
    rewrite_gguf(
        &tiny("model.gguf"),
        &path,
        unchanged,
        vec![("rope_freqs.weight", rope_freqs)],
    );
    let err = load_err(&path);
    assert!(matches!(err, ModelError::Config { .. }), "{err:?}");
    assert_names(&err, &path, &["rope_freqs.weight", "not supported"]);
}
