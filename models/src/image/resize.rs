//! Resizing as Pillow's `Image.resize` does it for 8-bit RGB, so that preprocessing matches
//! the Python processors pixel for pixel: a separable convolution with the filter stretched
//! by the scale when shrinking, coefficients normalised to sum to one and then fixed to
//! 22-bit integers, the horizontal pass first (rounded and clipped to 8 bits), then the
//! vertical one. Pillow's Lanczos filter is `sinc(x) sinc(x / 3)` on `[-3, 3)`.

use super::RgbImage;

/// Bits of the fixed-point coefficients (Pillow: 32 - 8 - 2, room for 8-bit pixels and the
/// overshoot of negative lobes).
const PRECISION_BITS: u32 = 22;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

const LANCZOS_SUPPORT: f64 = 3.0;

/// For each output position: the first input index, and fixed-point weights over the inputs
/// from there.
struct Taps {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = LANCZOS_SUPPORT * filter_scale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for out in 0..out_size {
        let center = (out as f64 + 0.5) * scale;
        // C casts truncate toward zero; the bounds are clamped into the input.
        let first = ((center - support + 0.5) as i64).max(0) as usize;
        let end = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (first..end)
            .map(|x| lanczos((x as f64 - center + 0.5) / filter_scale))
            .collect();
        let sum: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if sum != 0.0 { w / sum } else { w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                (if scaled < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
            })
            .collect();
        starts.push(first);
        weights.push(fixed);
    }
    Taps { starts, weights }
}

fn clip8(accumulator: i32) -> u8 {
    (accumulator >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Filters `lines` lines of `len` RGB pixels each, `stride` bytes from one pixel to the next
/// along a line and `line_stride` between lines, into `out` (packed the same way).
fn convolve(src: &[u8], taps: &Taps, lines: usize, pixel_stride: usize, line_stride: usize, out: &mut RgbLines) {
    for line in 0..lines {
        for (o, (start, weights)) in taps.starts.iter().zip(&taps.weights).enumerate() {
            let mut sums = [1i32 << (PRECISION_BITS - 1); 3];
            for (i, &w) in weights.iter().enumerate() {
                let at = line * line_stride + (start + i) * pixel_stride;
                for (sum, &value) in sums.iter_mut().zip(&src[at..at + 3]) {
                    *sum += value as i32 * w;
                }
            }
            let at = out.offset(line, o);
            for (c, &sum) in sums.iter().enumerate() {
                out.pixels[at + c] = clip8(sum);
            }
        }
    }
}

/// An output buffer addressed by (line, position along the line).
struct RgbLines {
    pixels: Vec<u8>,
    pixel_stride: usize,
    line_stride: usize,
}

impl RgbLines {
    fn offset(&self, line: usize, position: usize) -> usize {
        line * self.line_stride + position * self.pixel_stride
    }
}

/// `image` resized to `width x height` with Pillow's Lanczos filter.
pub fn resize_lanczos(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let mut current = image.clone();
    if out_w != in_w {
        let mut out = RgbLines {
            pixels: vec![0; out_w * in_h * 3],
            pixel_stride: 3,
            line_stride: out_w * 3,
        };
        convolve(current.pixels(), &taps(in_w, out_w), in_h, 3, in_w * 3, &mut out);
        current = RgbImage {
            width,
            height: in_h as u32,
            pixels: out.pixels,
        };
    }
    if out_h != in_h {
        let mut out = RgbLines {
            pixels: vec![0; out_w * out_h * 3],
            pixel_stride: out_w * 3,
            line_stride: 3,
        };
        convolve(current.pixels(), &taps(in_h, out_h), out_w, out_w * 3, 3, &mut out);
        current = RgbImage {
            width,
            height,
            pixels: out.pixels,
        };
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_the_identity_and_flat_images_stay_flat() {
        let pixels: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let image = RgbImage::new(5, 4, pixels).unwrap();
        assert_eq!(resize_lanczos(&image, 5, 4), image);
        let flat = RgbImage::new(9, 7, vec![77; 9 * 7 * 3]).unwrap();
        let resized = resize_lanczos(&flat, 4, 13);
        assert!(resized.pixels().iter().all(|&p| p == 77));
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (from, to) in [(150, 128), (100, 86), (128, 64), (30, 97)] {
            for weights in taps(from, to).weights {
                let sum: i64 = weights.iter().map(|&w| w as i64).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= weights.len() as i64);
            }
        }
    }
}
