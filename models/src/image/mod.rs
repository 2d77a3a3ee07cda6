//! Camera frames as the models see them: decoding PNG and JPEG into RGB ([`RgbImage`]),
//! resizing exactly as Pillow does ([`resize`]), and the Idefics3/SmolVLM image processor
//! ([`idefics3`]) that turns a frame into normalised tiles and expands the prompt's image
//! placeholder. Nothing here needs a model.

pub mod idefics3;
pub mod planar;
pub mod resize;

use std::io::Cursor;
use std::path::Path;

/// The largest side accepted from a file: decoding a larger one is refused before it
/// allocates (a small compressed file can claim an enormous image).
pub const MAX_SIDE: u32 = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{what}: the image is {width}x{height}; both sides must be between 1 and {max}")]
    BadSize {
        what: String,
        width: u32,
        height: u32,
        max: u32,
    },
    #[error("image data is {found} bytes, expected {expected} for {width}x{height} RGB")]
    BadBuffer {
        width: u32,
        height: u32,
        expected: usize,
        found: usize,
    },
    #[error("image processor configuration {path}: {reason}")]
    Config { path: String, reason: String },
}

/// An 8-bit RGB image, rows top to bottom, pixels `[r, g, b]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, ImageError> {
        check_size("frame", width, height)?;
        let expected = width as usize * height as usize * 3;
        if pixels.len() != expected {
            return Err(ImageError::BadBuffer {
                width,
                height,
                expected,
                found: pixels.len(),
            });
        }
        Ok(Self { width, height, pixels })
    }

    /// Decodes a PNG or JPEG file (the format is read from its first bytes).
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let unreadable = |reason: String| ImageError::Unreadable {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        Self::decode(&bytes).map_err(|e| match e {
            ImageError::Unreadable { reason, .. } => unreadable(reason),
            ImageError::BadSize { width, height, max, .. } => ImageError::BadSize {
                what: path.display().to_string(),
                width,
                height,
                max,
            },
            other => other,
        })
    }

    /// Decodes PNG or JPEG bytes. The header's size is checked before any pixel is decoded.
    pub fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        let unreadable = |reason: String| ImageError::Unreadable {
            path: "image data".into(),
            reason,
        };
        let reader = || {
            image::ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|e| unreadable(e.to_string()))
        };
        let probe = reader()?;
        if probe.format().is_none() {
            return Err(unreadable("neither PNG nor JPEG".into()));
        }
        let (width, height) = probe.into_dimensions().map_err(|e| unreadable(e.to_string()))?;
        check_size("image data", width, height)?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        let mut decoder = reader()?;
        decoder.limits(limits);
        let decoded = decoder.decode().map_err(|e| unreadable(e.to_string()))?.into_rgb8();
        let (width, height) = decoded.dimensions();
        Self::new(width, height, decoded.into_raw())
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The `width x height` region whose top-left corner is `(x, y)`; it must lie inside.
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> RgbImage {
        let row_bytes = width as usize * 3;
        let mut pixels = Vec::with_capacity(row_bytes * height as usize);
        for row in y..y + height {
            let start = (row as usize * self.width as usize + x as usize) * 3;
            pixels.extend_from_slice(&self.pixels[start..start + row_bytes]);
        }
        RgbImage { width, height, pixels }
    }
}

fn check_size(what: &str, width: u32, height: u32) -> Result<(), ImageError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::BadSize {
            what: what.into(),
            width,
            height,
            max: MAX_SIDE,
        });
    }
    Ok(())
}
