//! The Idefics3/SmolVLM image processor, as transformers' `Idefics3ImageProcessorPil`
//! computes it: resize so the longest edge is `size.longest_edge` (height or width made even),
//! then to multiples of the vision encoder's tile (`max_image_size.longest_edge`), cut into
//! tiles row by row, plus the whole image resized to one tile as the global view; rescale to
//! [0, 1] and normalise per channel. The prompt's `<image>` placeholder then expands into
//! `<fake_token_around_image><row_r_col_c><image>...` for every tile and a `<global-img>`
//! block for the global view.

use std::path::Path;

use serde::Deserialize;

use super::resize::resize_lanczos;
use super::{ImageError, RgbImage};

/// transformers' absolute cap on a resized side.
const MAX_RESIZED_SIDE: u32 = 4096;

/// Pillow's resampling filter ids; only Lanczos (1) is implemented.
const LANCZOS: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
struct LongestEdge {
    longest_edge: u32,
}

/// The image processor's configuration, as `preprocessor_config.json` or the
/// `image_processor` entry of `processor_config.json` hold it (keys we do not use, such as the
/// processor class, are ignored: the file is not ours).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Idefics3ImageConfig {
    #[serde(default = "yes")]
    pub do_resize: bool,
    size: LongestEdge,
    max_image_size: LongestEdge,
    #[serde(default = "yes")]
    pub do_image_splitting: bool,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "one_over_255")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    #[serde(default = "lanczos")]
    resample: u32,
}

fn yes() -> bool {
    true
}

fn one_over_255() -> f64 {
    1.0 / 255.0
}

fn lanczos() -> u32 {
    LANCZOS
}

/// `processor_config.json`: the image processor nested, with the number of `<image>` tokens
/// per tile.
#[derive(Debug, Deserialize)]
struct ProcessorFile {
    image_processor: Option<Idefics3ImageConfig>,
    image_seq_len: Option<usize>,
}

/// The processor of one checkpoint: image configuration and tokens per tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3Processor {
    pub image: Idefics3ImageConfig,
    pub image_seq_len: usize,
}

/// A frame turned into tiles: `[tiles, 3, tile_size, tile_size]`, the grid tiles first (row
/// by row), then the global view; `rows == cols == 0` when the frame fit in one tile.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTiles {
    pub pixels: Vec<f32>,
    pub tiles: usize,
    pub tile_size: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Idefics3Processor {
    /// Reads `processor_config.json` (transformers 5 nests the image processor there) or, as
    /// older checkpoints have it, `preprocessor_config.json` beside it.
    pub fn from_dir(dir: &Path) -> Result<Self, ImageError> {
        let read = |name: &str| -> Result<Option<String>, ImageError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(config_error(&path, e.to_string())),
            }
        };
        let processor_path = dir.join("processor_config.json");
        let processor: ProcessorFile = match read("processor_config.json")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| config_error(&processor_path, e.to_string()))?,
            None => ProcessorFile {
                image_processor: None,
                image_seq_len: None,
            },
        };
        let image = match processor.image_processor {
            Some(image) => image,
            None => {
                let path = dir.join("preprocessor_config.json");
                let text = read("preprocessor_config.json")?.ok_or_else(|| {
                    config_error(
                        &path,
                        "missing, and processor_config.json has no image_processor".into(),
                    )
                })?;
                serde_json::from_str(&text).map_err(|e| config_error(&path, e.to_string()))?
            }
        };
        let image_seq_len = processor
            .image_seq_len
            .ok_or_else(|| config_error(&processor_path, "no image_seq_len".into()))?;
        let processor = Self { image, image_seq_len };
        processor.validate(&processor_path)?;
        Ok(processor)
    }

    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        let image = &self.image;
        if image.resample != LANCZOS {
            return Err(config_error(
                path,
                format!("resample {} is not Lanczos (1)", image.resample),
            ));
        }
        if image.max_image_size.longest_edge == 0 || image.size.longest_edge == 0 {
            return Err(config_error(path, "image sizes must be positive".into()));
        }
        if image.image_std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
            return Err(config_error(
                path,
                format!("image_std {:?} must be positive", image.image_std),
            ));
        }
        if self.image_seq_len == 0 {
            return Err(config_error(path, "image_seq_len must be positive".into()));
        }
        Ok(())
    }

    /// The side of a tile, which the vision encoder's `image_size` must equal.
    pub fn tile_size(&self) -> u32 {
        self.image.max_image_size.longest_edge
    }

    /// The frame as normalised tiles.
    pub fn preprocess(&self, frame: &RgbImage) -> ImageTiles {
        let config = &self.image;
        let tile = self.tile_size();
        let mut image = frame.clone();
        if config.do_resize {
            let (w, h) = longest_edge_size(image.width(), image.height(), config.size.longest_edge);
            image = resize_lanczos(&image, w, h);
        }
        let (views, rows, cols) = if config.do_image_splitting {
            let (w, h) = tile_multiple_size(image.width(), image.height(), tile);
            image = resize_lanczos(&image, w, h);
            split(&image, tile)
        } else {
            (vec![resize_lanczos(&image, tile, tile)], 0, 0)
        };
        let tile_size = tile as usize;
        let mut pixels = Vec::with_capacity(views.len() * 3 * tile_size * tile_size);
        for view in &views {
            self.normalize_into(view, &mut pixels);
        }
        ImageTiles {
            pixels,
            tiles: views.len(),
            tile_size,
            rows,
            cols,
        }
    }

    /// Appends `view` as CHW floats: rescaled in f64 then stored as f32, normalised in f32, as
    /// transformers' numpy code does.
    fn normalize_into(&self, view: &RgbImage, out: &mut Vec<f32>) {
        let config = &self.image;
        for channel in 0..3 {
            let (mean, std) = (config.image_mean[channel] as f32, config.image_std[channel] as f32);
            out.extend(view.pixels().chunks_exact(3).map(|pixel| {
                let mut value = pixel[channel] as f32;
                if config.do_rescale {
                    value = (pixel[channel] as f64 * config.rescale_factor) as f32;
                }
                if config.do_normalize {
                    value = (value - mean) / std;
                }
                value
            }));
        }
    }

    /// The text that replaces one `<image>` placeholder for a frame cut into `rows x cols`.
    pub fn image_prompt(&self, rows: usize, cols: usize) -> String {
        let image_tokens = "<image>".repeat(self.image_seq_len);
        let global = format!("<fake_token_around_image><global-img>{image_tokens}<fake_token_around_image>");
        if rows == 0 && cols == 0 {
            return global;
        }
        let mut text = String::new();
        for row in 1..=rows {
            for col in 1..=cols {
                text.push_str(&format!("<fake_token_around_image><row_{row}_col_{col}>{image_tokens}"));
            }
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&global);
        text
    }

    /// `prompt` with its `<image>` placeholder expanded for `tiles`.
    pub fn expand_prompt(&self, prompt: &str, tiles: &ImageTiles) -> String {
        prompt.replacen("<image>", &self.image_prompt(tiles.rows, tiles.cols), 1)
    }
}

fn config_error(path: &Path, reason: String) -> ImageError {
    ImageError::Config {
        path: path.display().to_string(),
        reason,
    }
}

/// The longest edge scaled to `longest` (the other edge truncated, then made even), then
/// capped at 4096, as transformers computes it.
fn longest_edge_size(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let aspect = width as f64 / height as f64;
    let (mut w, mut h) = if width >= height {
        let h = (longest as f64 / aspect) as u32;
        (longest, h + h % 2)
    } else {
        let w = (longest as f64 * aspect) as u32;
        (w + w % 2, longest)
    };
    (w, h) = (w.max(1), h.max(1));
    let aspect = w as f64 / h as f64;
    if w >= h && w > MAX_RESIZED_SIDE {
        (w, h) = (MAX_RESIZED_SIDE, (MAX_RESIZED_SIDE as f64 / aspect) as u32);
    } else if h > w && h > MAX_RESIZED_SIDE {
        (w, h) = ((MAX_RESIZED_SIDE as f64 * aspect) as u32, MAX_RESIZED_SIDE);
    }
    (w.max(1), h.max(1))
}

/// Both edges rounded up to multiples of the tile, keeping the aspect ratio in between.
fn tile_multiple_size(width: u32, height: u32, tile: u32) -> (u32, u32) {
    let aspect = width as f64 / height as f64;
    let up = |side: u32| side.div_ceil(tile) * tile;
    if width >= height {
        let w = up(width);
        (w, up((w as f64 / aspect) as u32))
    } else {
        let h = up(height);
        (up((h as f64 * aspect) as u32), h)
    }
}

/// Tiles row by row and the global view, or the image alone if it fits in one tile.
fn split(image: &RgbImage, tile: u32) -> (Vec<RgbImage>, usize, usize) {
    if image.width() <= tile && image.height() <= tile {
        return (vec![image.clone()], 0, 0);
    }
    let rows = ((image.height() - tile) / tile + 1) as usize;
    let cols = ((image.width() - tile) / tile + 1) as usize;
    let mut views = Vec::with_capacity(rows * cols + 1);
    for row in 0..rows as u32 {
        for col in 0..cols as u32 {
            views.push(image.crop(col * tile, row * tile, tile, tile));
        }
    }
    views.push(resize_lanczos(image, tile, tile));
    (views, rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_transformers_arithmetic() {
        assert_eq!(longest_edge_size(150, 100, 128), (128, 86));
        assert_eq!(longest_edge_size(100, 150, 128), (86, 128));
        assert_eq!(longest_edge_size(640, 480, 2048), (2048, 1536));
        assert_eq!(tile_multiple_size(128, 86, 64), (128, 128));
        assert_eq!(tile_multiple_size(2048, 1536, 512), (2048, 1536));
    }
}
