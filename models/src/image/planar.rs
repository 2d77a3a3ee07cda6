//! Float images in the layout policies take them (`[3, height, width]`, channel-major, values
//! in [0, 1]) and the resizing the openpi-derived policies apply: PyTorch's
//! `F.interpolate(mode="bilinear", align_corners=False)` without antialiasing, computed as
//! PyTorch's CPU kernel does in f32, and lerobot's `resize_with_pad`, which keeps the aspect
//! ratio and pads the rest (on the top and left for SmolVLA, centred for pi0).

use super::RgbImage;

/// A float image, channel-major: `data[c * height * width + y * width + x]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanarImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl PlanarImage {
    /// An 8-bit RGB image scaled to [0, 1], as a camera frame reaches a lerobot policy.
    pub fn from_rgb(image: &RgbImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let plane = width * height;
        let mut data = vec![0f32; 3 * plane];
        for (i, pixel) in image.pixels().chunks_exact(3).enumerate() {
            for (c, &value) in pixel.iter().enumerate() {
                data[c * plane + i] = f32::from(value) / 255.0;
            }
        }
        Self { width, height, data }
    }

    /// A `width` x `height` image of one value in every channel.
    pub fn filled(width: usize, height: usize, value: f32) -> Self {
        Self {
            width,
            height,
            data: vec![value; 3 * width * height],
        }
    }

    /// Whether `data` holds exactly three planes of `width` x `height`.
    pub fn is_whole(&self) -> bool {
        self.width.checked_mul(self.height).and_then(|p| p.checked_mul(3)) == Some(self.data.len())
    }

    fn plane(&self, channel: usize) -> &[f32] {
        let size = self.width * self.height;
        &self.data[channel * size..(channel + 1) * size]
    }
}

/// Where the resized image sits in the padded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadPlacement {
    /// Padding on the top and left, the image in the bottom-right corner (SmolVLA, xVLA).
    BottomRight,
    /// Padding split evenly, the odd pixel at the bottom and right (openpi's pi0).
    Centered,
}

/// One axis of a bilinear resize: for each output index, the two input indices and their
/// weights, as PyTorch's `area_pixel_compute_source_index` gives them.
fn taps(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let source = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let low = (source as usize).min(input - 1);
            let high = if low < input - 1 { low + 1 } else { low };
            let high_weight = source - low as f32;
            (low, high, 1.0 - high_weight, high_weight)
        })
        .collect()
}

/// PyTorch's bilinear resize (`align_corners=False`, no antialiasing) to `width` x `height`.
pub fn resize_bilinear(image: &PlanarImage, width: usize, height: usize) -> PlanarImage {
    if image.width == 0 || image.height == 0 || width == 0 || height == 0 {
        return PlanarImage::filled(width, height, 0.0);
    }
    let rows = taps(image.height, height);
    let cols = taps(image.width, width);
    let mut data = Vec::with_capacity(3 * width * height);
    for channel in 0..3 {
        let src = image.plane(channel);
        for &(y0, y1, wy0, wy1) in &rows {
            for &(x0, x1, wx0, wx1) in &cols {
                let at = |y: usize, x: usize| src[y * image.width + x];
                let top = wx0 * at(y0, x0) + wx1 * at(y0, x1);
                let bottom = wx0 * at(y1, x0) + wx1 * at(y1, x1);
                data.push(wy0 * top + wy1 * bottom);
            }
        }
    }
    PlanarImage { width, height, data }
}

/// lerobot's `resize_with_pad`: the largest resize that fits `width` x `height` with the
/// aspect ratio kept (sizes truncated as Python's `int` does), the rest filled with
/// `pad_value`. An image already of that size is returned as it is.
pub fn resize_with_pad(
    image: &PlanarImage,
    width: usize,
    height: usize,
    placement: PadPlacement,
    pad_value: f32,
) -> PlanarImage {
    if image.width == width && image.height == height {
        return image.clone();
    }
    let ratio = (image.width as f64 / width as f64).max(image.height as f64 / height as f64);
    let resized_width = ((image.width as f64 / ratio) as usize).min(width);
    let resized_height = ((image.height as f64 / ratio) as usize).min(height);
    let resized = resize_bilinear(image, resized_width, resized_height);
    let (pad_x, pad_y) = (width - resized_width, height - resized_height);
    let (left, top) = match placement {
        PadPlacement::BottomRight => (pad_x, pad_y),
        PadPlacement::Centered => (pad_x / 2, pad_y / 2),
    };
    let mut out = PlanarImage::filled(width, height, pad_value);
    for channel in 0..3 {
        let src = resized.plane(channel);
        for y in 0..resized_height {
            let dst = channel * width * height + (top + y) * width + left;
            out.data[dst..dst + resized_width].copy_from_slice(&src[y * resized_width..(y + 1) * resized_width]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscaling_by_two_interpolates_between_neighbours() {
        let image = PlanarImage {
            width: 2,
            height: 1,
            data: vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        };
        let out = resize_bilinear(&image, 4, 1);
        assert_eq!(&out.data[..4], &[0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn a_wide_image_is_padded_above_for_smolvla_and_around_for_pi0() {
        let image = PlanarImage::filled(4, 2, 1.0);
        let smolvla = resize_with_pad(&image, 4, 4, PadPlacement::BottomRight, 0.0);
        assert_eq!(smolvla.data[..8], [0.0; 8]);
        assert_eq!(smolvla.data[8..16], [1.0; 8]);
        let pi0 = resize_with_pad(&image, 4, 4, PadPlacement::Centered, 0.0);
        assert_eq!(pi0.data[..4], [0.0; 4]);
        assert_eq!(pi0.data[4..12], [1.0; 8]);
        assert_eq!(pi0.data[12..16], [0.0; 4]);
    }
}
