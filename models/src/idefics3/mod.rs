//! Idefics3 / SmolVLM (Laurençon et al. 2024; transformers' `Idefics3ForConditionalGeneration`):
//! a SigLIP vision tower (`vision.rs`), a connector that pixel-shuffles each tile's patch
//! features (`scale_factor`² neighbours become one wider feature) and projects them into the
//! text tower's width, and the Llama text tower, whose `<image>` token embeddings are
//! replaced by the image features in order. Loads `config.json` + `model.safetensors` by the
//! checkpoint's own tensor names (`model.vision_model.*`, `model.connector.*`,
//! `model.text_model.*`, `lm_head`).
//!
//! A frame's encoding ([`ImageEmbedding`]) is a plain host value: the runtime encodes a frame
//! once and hands it to every model that needs it.

mod config;
mod vision;

use std::path::Path;
use std::sync::Arc;

use brainstem_kernels::Backend;

pub use config::{Idefics3Config, VisionConfig};
use vision::TensorLoader;
pub(crate) use vision::{Linear, VisionTower};

use crate::error::{ModelError, Result};
use crate::image::idefics3::ImageTiles;
use crate::llama::{Llama, LlamaCache, LoadOptions, Logits, Naming};
use crate::weights::{read_text, WeightFile};

/// One frame encoded for the text tower: `rows` features of width `hidden`, in the order the
/// prompt's `<image>` tokens take them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEmbedding {
    pub rows: usize,
    pub hidden: usize,
    pub values: Vec<f32>,
}

pub struct Idefics3<B: Backend> {
    backend: Arc<B>,
    cfg: Idefics3Config,
    images: ImageEncoder<B>,
    text: Llama<B>,
}

/// A SigLIP tower alone, its tensors named `{prefix}vision_model.*` (PaliGemma's, which has a
/// linear projector rather than Idefics3's connector).
pub(crate) fn load_vision_tower<B: Backend>(
    backend: &B,
    file: &WeightFile,
    cfg: &VisionConfig,
    prefix: &str,
    options: LoadOptions,
) -> Result<VisionTower<B>> {
    let loader = TensorLoader {
        backend,
        prefix,
        file,
        options,
    };
    VisionTower::load(&loader, cfg)
}

/// The vision tower and the connector: one square tile in, the text tower's rows out.
pub(crate) struct ImageEncoder<B: Backend> {
    vision: VisionTower<B>,
    connector: B::Weight,
    cfg: Idefics3Config,
}

impl<B: Backend> ImageEncoder<B> {
    /// Loads the tower and connector whose tensors are named `{prefix}vision_model.*` and
    /// `{prefix}connector.*`.
    pub fn load(
        backend: &B,
        file: &WeightFile,
        cfg: &Idefics3Config,
        prefix: &str,
        options: LoadOptions,
    ) -> Result<Self> {
        let loader = TensorLoader {
            backend,
            prefix,
            file,
            options,
        };
        Ok(Self {
            vision: VisionTower::load(&loader, &cfg.vision)?,
            connector: loader.matrix(
                &format!("{prefix}connector.modality_projection.proj.weight"),
                cfg.text.hidden_size,
                cfg.connector_inputs(),
            )?,
            cfg: cfg.clone(),
        })
    }

    /// One tile, `[3, image_size, image_size]` channel-major, to `[image_seq_len, hidden]`
    /// rows on the host: vision tower, pixel shuffle, projection.
    pub fn encode(&self, b: &B, tile: &[f32]) -> Result<Vec<f32>> {
        let features = b.read(&b.scope(|| self.vision.forward(b, tile))?)?;
        let shuffled = pixel_shuffle(&features, self.cfg.vision.hidden_size, self.cfg.scale_factor);
        let rows = self.cfg.image_seq_len();
        let projected = b.matmul(
            &b.upload(&shuffled, rows, self.cfg.connector_inputs())?,
            &self.connector,
        )?;
        Ok(b.read(&projected)?)
    }
}

impl<B: Backend> Idefics3<B> {
    /// Loads a checkpoint directory holding `config.json` and `model.safetensors`.
    pub fn load(backend: Arc<B>, dir: &Path, options: LoadOptions) -> Result<Self> {
        let config_path = dir.join("config.json");
        let mut cfg = Idefics3Config::from_json(&read_text(&config_path)?, &config_path)?;
        let file = WeightFile::open(&dir.join("model.safetensors"))?;
        cfg.text.tie_word_embeddings = !file.contains("lm_head.weight");
        let _span = tracing::info_span!("idefics3_load").entered();
        let images = ImageEncoder::load(backend.as_ref(), &file, &cfg, "model.", options)?;
        let naming = Naming::HuggingFace {
            prefix: "model.text_model.",
        };
        let text = Llama::build(backend.clone(), &file, cfg.text.clone(), naming, options)?;
        Ok(Self {
            backend,
            cfg,
            images,
            text,
        })
    }

    pub fn config(&self) -> &Idefics3Config {
        &self.cfg
    }

    /// The text tower, for decoding after the prompt.
    pub fn text(&self) -> &Llama<B> {
        &self.text
    }

    /// Encodes every tile of a frame: vision tower, pixel shuffle, projection.
    pub fn encode_image(&self, tiles: &ImageTiles) -> Result<ImageEmbedding> {
        let _span = tracing::debug_span!("idefics3_encode_image", tiles = tiles.tiles).entered();
        if tiles.tile_size != self.cfg.vision.image_size {
            return Err(ModelError::Generation(format!(
                "tiles are {0}x{0} pixels, the vision tower takes {1}x{1}",
                tiles.tile_size, self.cfg.vision.image_size
            )));
        }
        let b = self.backend.as_ref();
        let per_tile = 3 * tiles.tile_size * tiles.tile_size;
        let mut values = Vec::with_capacity(tiles.tiles * self.cfg.image_seq_len() * self.cfg.text.hidden_size);
        for tile in tiles.pixels.chunks_exact(per_tile) {
            values.extend(self.images.encode(b, tile)?);
        }
        Ok(ImageEmbedding {
            rows: tiles.tiles * self.cfg.image_seq_len(),
            hidden: self.cfg.text.hidden_size,
            values,
        })
    }

    /// Runs the prompt `ids` after whatever the cache holds, its `<image>` tokens taking the
    /// rows of `image` in order; returns the logits.
    pub fn prefill(
        &self,
        ids: &[u32],
        image: Option<&ImageEmbedding>,
        cache: &mut LlamaCache<B>,
        logits: Logits,
    ) -> Result<B::Tensor> {
        let slots = ids.iter().filter(|&&id| id == self.cfg.image_token_id).count();
        let rows = image.map_or(0, |image| image.rows);
        if slots != rows {
            return Err(ModelError::Generation(format!(
                "the prompt has {slots} <image> tokens but the image gives {rows} features"
            )));
        }
        let Some(image) = image else {
            return self.text.forward(ids, cache, logits);
        };
        let b = self.backend.as_ref();
        let hidden = self.cfg.text.hidden_size;
        let mut embeddings = b.read(&self.text.embed(ids)?)?;
        let mut features = image.values.chunks_exact(hidden);
        for (row, _) in ids.iter().enumerate().filter(|(_, &id)| id == self.cfg.image_token_id) {
            if let Some(feature) = features.next() {
                embeddings[row * hidden..(row + 1) * hidden].copy_from_slice(feature);
            }
        }
        let xs = b.upload(&embeddings, ids.len(), hidden)?;
        self.text.forward_embeddings(xs, cache, logits)
    }
}

/// Idefics3's pixel shuffle of one tile's `[side * side, hidden]` features: each
/// `scale x scale` block of patches becomes one row of `hidden * scale²`, blocks row-major, and
/// within a row the block's patch rows outer, its patch columns inner.
pub fn pixel_shuffle(features: &[f32], hidden: usize, scale: usize) -> Vec<f32> {
    let side = ((features.len() / hidden) as f64).sqrt() as usize;
    let blocks = side / scale;
    let mut out = Vec::with_capacity(features.len());
    for block_row in 0..blocks {
        for block_col in 0..blocks {
            for dy in 0..scale {
                for dx in 0..scale {
                    let patch = (block_row * scale + dy) * side + block_col * scale + dx;
                    out.extend_from_slice(&features[patch * hidden..(patch + 1) * hidden]);
                }
            }
        }
    }
    out
}
