//! Bad input to the vision-language path is a typed error that says what was expected and
//! what was found: unreadable or oversized images, zero-sized frames, and checkpoints whose
//! config disagrees with their weights, tokenizer or processor.

use crate::common;

use std::path::Path;

use brainstem_models::image::{ImageError, RgbImage};
use brainstem_models::vlm::Vlm;
use brainstem_models::{LoadOptions, ModelError};

fn tiny() -> std::path::PathBuf {
    common::reference_dir().join("tiny-idefics3")
}

/// A copy of the tiny checkpoint with `file` edited by `edit`.
fn edited(file: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let target = dir.path().join(file);
    let text = std::fs::read_to_string(&target).unwrap();
    std::fs::write(&target, edit(&text)).unwrap();
    dir
}

fn load_error(dir: &Path) -> ModelError {
    match Vlm::load(common::backend(), dir, LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn unreadable_images_are_refused() {
    assert!(matches!(
        RgbImage::decode(b"definitely not a picture"),
        Err(ImageError::Unreadable { .. })
    ));
    let png = std::fs::read(tiny().join("image.png")).unwrap();
    assert!(matches!(
        RgbImage::decode(&png[..png.len() / 2]),
        Err(ImageError::Unreadable { .. })
    ));
    let missing = RgbImage::open(Path::new("/nonexistent/frame.png")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/frame.png"), "{missing}");
}

#[test]
fn zero_sized_and_oversized_images_are_refused() {
    assert!(matches!(RgbImage::new(0, 4, vec![]), Err(ImageError::BadSize { .. })));
    assert!(matches!(
        RgbImage::new(2, 2, vec![0; 5]),
        Err(ImageError::BadBuffer { .. })
    ));
    // A PNG whose header claims 100000 x 100000 pixels is refused before decoding.
    let mut png = std::fs::read(tiny().join("image.png")).unwrap();
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        RgbImage::decode(&png),
        Err(ImageError::BadSize { width: 100_000, .. })
    ));
}

#[test]
fn a_config_whose_image_token_disagrees_with_the_tokenizer_is_refused() {
    let dir = edited("config.json", |text| {
        text.replace("\"image_token_id\": 259", "\"image_token_id\": 17")
    });
    let error = load_error(dir.path()).to_string();
    assert!(error.contains("image_token_id is 17"), "{error}");
}

#[test]
fn a_config_whose_patch_size_disagrees_with_the_weights_is_refused() {
    let dir = edited("config.json", |text| {
        text.replace("\"patch_size\": 16", "\"patch_size\": 8")
    });
    assert!(matches!(load_error(dir.path()), ModelError::TensorShape { .. }));
}

#[test]
fn a_processor_that_disagrees_with_the_model_is_refused() {
    let dir = edited("processor_config.json", |text| {
        text.replace("\"image_seq_len\": 4", "\"image_seq_len\": 9")
    });
    let error = load_error(dir.path()).to_string();
    assert!(error.contains("processor expects 9"), "{error}");
    let dir = edited("processor_config.json", |text| {
        text.replace("\"resample\": 1", "\"resample\": 3")
    });
    assert!(load_error(dir.path()).to_string().contains("not Lanczos"));
}

/// The CRC-32 PNG chunks carry (polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Corrupted PNG bytes decode or fail with a typed error; they never panic.
    #[test]
    fn corrupted_pngs_never_panic(flips in proptest::collection::vec((0usize..6481, proptest::prelude::any::<u8>()), 1..16)) {
        let mut png = std::fs::read(tiny().join("image.png")).unwrap();
        for (at, byte) in flips {
            let at = at % png.len();
            png[at] = byte;
        }
        let _ = RgbImage::decode(&png);
    }
}
