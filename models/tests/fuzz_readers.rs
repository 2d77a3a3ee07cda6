//! Property-based fuzzing of the weight-file readers: arbitrary bytes, and valid files with
//! random truncation and byte corruption, must give `Ok` or a typed error, never a panic,
//! and every tensor a parsed file hands out must lie inside it and convert cleanly. A config
//! file is read up to a bound, so an endless one is an error.

use std::path::Path;

use crate::common::reference_dir;
use brainstem_models::WeightFile;
use proptest::prelude::*;

/// Opens `bytes` as `name` and touches every tensor the file claims to hold.
fn exercise(name: &str, bytes: Vec<u8>) {
    let Ok(file) = WeightFile::from_bytes(Path::new(name), bytes) else {
        return;
    };
    for entry in file.listing() {
        if let Ok(weight) = file.tensor(&entry.name) {
            let values = weight.to_f32().expect("a validated tensor converts");
            assert_eq!(values.len(), weight.elems());
        }
    }
}

fn valid(file: &str) -> Vec<u8> {
    std::fs::read(reference_dir().join("tiny-smollm2").join(file)).unwrap()
}

/// A valid file with its header region corrupted: `flips` (offset, xor) pairs land in the
/// first `window` bytes, then the file is cut to `keep` of its length.
fn corrupt(mut bytes: Vec<u8>, flips: &[(usize, u8)], keep: f64, window: usize) -> Vec<u8> {
    let window = window.min(bytes.len());
    for &(offset, xor) in flips {
        bytes[offset % window] ^= xor;
    }
    let len = (bytes.len() as f64 * keep) as usize;
    bytes.truncate(len);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), gguf in any::<bool>()) {
        if gguf && bytes.len() >= 8 {
            bytes[..4].copy_from_slice(b"GGUF");
            bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
        }
        exercise(if gguf { "fuzz.gguf" } else { "fuzz.safetensors" }, bytes);
    }

    #[test]
    fn corrupted_gguf_never_panics(flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..8), keep in 0.0f64..1.0) {
        exercise("corrupt.gguf", corrupt(valid("model.gguf"), &flips, keep, 4096));
    }

    #[test]
    fn corrupted_safetensors_never_panics(flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..8), keep in 0.0f64..1.0) {
        exercise("corrupt.safetensors", corrupt(valid("model.safetensors"), &flips, keep, 2048));
    }
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes()); // tensors
    bytes.extend(1u64.to_le_bytes()); // one metadata pair
    bytes.extend(u64::MAX.to_le_bytes()); // with a key of 2^64 - 1 bytes
    let err = WeightFile::from_bytes(Path::new("huge.gguf"), bytes)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("over the limit"), "{err}");

    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.extend(3u64.to_le_bytes());
    bytes.extend(b"key");
    bytes.extend(9u32.to_le_bytes()); // an array
    bytes.extend(4u32.to_le_bytes()); // of u32
    bytes.extend((1u64 << 40).to_le_bytes()); // claiming 2^40 items
    let err = WeightFile::from_bytes(Path::new("huge.gguf"), bytes)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("array length"), "{err}");
}

/// A GGUF holding one metadata array of `kind` whose length field says `count`, followed by
/// `tail` bytes.
fn gguf_with_array(kind: u32, count: u64, tail: usize) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes()); // tensors
    bytes.extend(1u64.to_le_bytes()); // one metadata pair
    bytes.extend(3u64.to_le_bytes());
    bytes.extend(b"key");
    bytes.extend(9u32.to_le_bytes()); // an array
    bytes.extend(kind.to_le_bytes());
    bytes.extend(count.to_le_bytes());
    bytes.resize(bytes.len() + tail, 0);
    bytes
}

#[test]
fn an_array_count_of_two_to_the_62_is_a_typed_error() {
    // u8, u64, string and nested-array elements: the count is checked against what the
    // bytes left can hold at each type's smallest encoding, before anything is reserved.
    for kind in [0u32, 10, 8, 9] {
        let err = WeightFile::from_bytes(Path::new("huge.gguf"), gguf_with_array(kind, 1 << 62, 64))
            .err()
            .expect("refused");
        match &err {
            brainstem_models::ModelError::LimitExceeded { found, limit, .. } => {
                assert_eq!(*found, 1u64 << 62, "{err}");
                assert!(*limit <= 64, "{err}");
            }
            other => panic!("kind {kind}: expected LimitExceeded, found {other}"),
        }
        assert!(err.to_string().contains("array length"), "{err}");
    }
}

#[test]
fn an_array_count_is_bounded_by_its_element_size() {
    // 64 bytes hold 8 u64 values: 8 parse, 9 are refused as over the limit, not read short.
    let file = WeightFile::from_bytes(Path::new("fits.gguf"), gguf_with_array(10, 8, 64)).unwrap();
    let metadata = file.gguf_metadata().unwrap();
    assert_eq!(metadata.map["key"].as_array().map(<[_]>::len), Some(8));
    let err = WeightFile::from_bytes(Path::new("over.gguf"), gguf_with_array(10, 9, 64))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("over the limit of 8"), "{err}");
}

#[test]
fn a_config_file_that_never_ends_is_refused() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("endless-policy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("config.json")).unwrap();
    let message = brainstem_models::smolvla::SmolVlaConfig::load(&dir)
        .unwrap_err()
        .to_string();
    assert!(message.contains("over the limit of 268435456"), "{message}");
    assert_eq!(brainstem_models::flow::policy_type(&dir), None);
}
