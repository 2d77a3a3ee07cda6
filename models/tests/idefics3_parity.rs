//! Idefics3 / SmolVLM against transformers: the tiny model that
//! tools/reference/vlm_reference.py initialised from SmolVLM-256M's config, its processor's
//! tiles and expanded prompt for a committed image, and the logits of every prompt position,
//! on the CPU backend and on the wgpu backend.

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;

use brainstem_models::idefics3::{pixel_shuffle, Idefics3};
use brainstem_models::image::idefics3::Idefics3Processor;
use brainstem_models::image::RgbImage;
use brainstem_models::kernels::{Backend, WgpuBackend};
use brainstem_models::{LoadOptions, Logits, Tokenizer};
use safetensors::SafeTensors;
use serde::Deserialize;

fn dir() -> PathBuf {
    common::reference_dir().join("tiny-idefics3")
}

struct Golden {
    pixel_values: Vec<f32>,
    input_ids: Vec<u32>,
    logits: Vec<f32>,
}

#[derive(Deserialize)]
struct GoldenText {
    prompt: String,
    expanded: String,
    tiles: usize,
    tile_size: usize,
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn golden() -> (Golden, GoldenText) {
    let bytes = std::fs::read(dir().join("golden.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ids = st.tensor("input_ids").unwrap();
    let golden = Golden {
        pixel_values: f32s(st.tensor("pixel_values").unwrap().data()),
        input_ids: ids
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect(),
        logits: f32s(st.tensor("logits").unwrap().data()),
    };
    let text = serde_json::from_str(&std::fs::read_to_string(dir().join("golden.json")).unwrap()).unwrap();
    (golden, text)
}

#[test]
fn preprocessing_matches_the_transformers_processor() {
    let (golden, text) = golden();
    let processor = Idefics3Processor::from_dir(&dir()).unwrap();
    let frame = RgbImage::open(&dir().join("image.png")).unwrap();
    let tiles = processor.preprocess(&frame);
    assert_eq!((tiles.tiles, tiles.tile_size), (text.tiles, text.tile_size));
    assert_eq!((tiles.rows, tiles.cols), (2, 2));
    let worst = tiles
        .pixels
        .iter()
        .zip(&golden.pixel_values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(tiles.pixels.len(), golden.pixel_values.len());
    assert!(worst <= 1e-6, "pixel values differ by up to {worst}");

    let expanded = processor.expand_prompt(&text.prompt, &tiles);
    assert_eq!(expanded, text.expanded);
    let tokenizer = Tokenizer::from_json_file(&dir().join("tokenizer.json")).unwrap();
    assert_eq!(tokenizer.encode(&expanded).unwrap(), golden.input_ids);
}

fn check_logits<B: Backend>(backend: Arc<B>) {
    let (golden, _) = golden();
    let model = Idefics3::load(backend.clone(), &dir(), LoadOptions::default()).unwrap();
    let processor = Idefics3Processor::from_dir(&dir()).unwrap();
    let tiles = processor.preprocess(&RgbImage::open(&dir().join("image.png")).unwrap());
    assert_eq!(model.config().image_seq_len(), processor.image_seq_len);
    let image = model.encode_image(&tiles).unwrap();
    let mut cache = model.text().new_cache(golden.input_ids.len()).unwrap();
    let logits = backend
        .read(
            &model
                .prefill(&golden.input_ids, Some(&image), &mut cache, Logits::All)
                .unwrap(),
        )
        .unwrap();
    let error = common::max_relative_error(&logits, &golden.logits);
    assert!(error < 1e-4, "{}: max relative error {error}", backend.name());
}

#[test]
fn logits_match_transformers() {
    check_logits(common::backend());
}

#[test]
fn logits_on_wgpu_match_transformers() {
    let backend = WgpuBackend::new(None).unwrap_or_else(|e| panic!("the wgpu tests need an adapter: {e}"));
    check_logits(Arc::new(backend));
}

#[test]
fn a_prompt_whose_image_tokens_disagree_with_the_image_is_refused() {
    let (golden, _) = golden();
    let backend = common::backend();
    let model = Idefics3::load(backend, &dir(), LoadOptions::default()).unwrap();
    let processor = Idefics3Processor::from_dir(&dir()).unwrap();
    let tiles = processor.preprocess(&RgbImage::open(&dir().join("image.png")).unwrap());
    let image = model.encode_image(&tiles).unwrap();
    let mut cache = model.text().new_cache(128).unwrap();
    let short = &golden.input_ids[..golden.input_ids.len() / 2];
    assert!(model.prefill(short, Some(&image), &mut cache, Logits::Last).is_err());
}

#[test]
fn pixel_shuffle_moves_each_block_into_one_row() {
    // A 4x4 grid of 1-wide features holding their patch index, scale 2.
    let features: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let shuffled = pixel_shuffle(&features, 1, 2);
    assert_eq!(
        shuffled,
        [0., 1., 4., 5., 2., 3., 6., 7., 8., 9., 12., 13., 10., 11., 14., 15.]
    );
}
