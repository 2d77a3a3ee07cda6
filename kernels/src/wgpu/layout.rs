//! Weight layouts on the device: GGUF blocks rewritten so that every field starts on a
//! 4-byte word, since WGSL reads storage buffers as `array<u32>`. The values and their
//! order are GGUF's; only the f16 scales of Q8_0, Q4_0 and Q6_K move to (or are padded to)
//! a word of their own. `shaders/matmul.wgsl` documents the layouts it reads.

use crate::error::Result;
use crate::quant::{DType, HostWeight};

/// GGUF bytes per block and device words per block of a block format.
fn block_sizes(dtype: DType) -> Option<(usize, usize)> {
    match dtype {
        DType::Q8_0 => Some((34, 9)),
        DType::Q4_0 => Some((18, 5)),
        DType::Q4_1 => Some((20, 5)),
        DType::Q4K => Some((144, 36)),
        DType::Q6K => Some((210, 53)),
        DType::F32 | DType::F16 | DType::BF16 => None,
    }
}

/// The words a validated block-format weight occupies on the device, or `None` for a dense
/// format (which is uploaded as f32).
pub fn device_words(weight: &HostWeight) -> Result<Option<Vec<u32>>> {
    weight.validate()?;
    let Some((block_bytes, block_words)) = block_sizes(weight.dtype) else {
        return Ok(None);
    };
    let blocks = weight.bytes.len() / block_bytes;
    let mut words = vec![0u32; blocks * block_words];
    for (block, out) in weight
        .bytes
        .chunks_exact(block_bytes)
        .zip(words.chunks_exact_mut(block_words))
    {
        repack(weight.dtype, block, out);
    }
    Ok(Some(words))
}

fn repack(dtype: DType, block: &[u8], out: &mut [u32]) {
    match dtype {
        // f16 scale, then the quants from byte 2: the scale gets a word of its own.
        DType::Q8_0 | DType::Q4_0 => {
            out[0] = u16::from_le_bytes([block[0], block[1]]) as u32;
            pack_words(&block[2..], &mut out[1..]);
        }
        // Q4_1 and Q4_K start with their two f16 scales and every field is word-aligned;
        // Q6_K ends with its f16 scale at byte 208, which the last word pads.
        _ => pack_words(block, out),
    }
}

/// Little-endian words from `bytes`, the last one zero-padded.
fn pack_words(bytes: &[u8], out: &mut [u32]) {
    for (chunk, word) in bytes.chunks(4).zip(out.iter_mut()) {
        let mut le = [0u8; 4];
        le[..chunk.len()].copy_from_slice(chunk);
        *word = u32::from_le_bytes(le);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn q8_0_scale_moves_to_its_own_word_and_quants_follow() {
        let mut block = vec![0u8; 34];
        block[0..2].copy_from_slice(&0x3c00u16.to_le_bytes());
        for (i, b) in block[2..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let weight = HostWeight {
            dtype: DType::Q8_0,
            shape: vec![1, 32],
            bytes: Cow::Owned(block),
        };
        let words = device_words(&weight).unwrap().unwrap();
        assert_eq!(words.len(), 9);
        assert_eq!(words[0], 0x3c00);
        assert_eq!(words[1], u32::from_le_bytes([0, 1, 2, 3]));
        assert_eq!(words[8], u32::from_le_bytes([28, 29, 30, 31]));
    }

    #[test]
    fn q6_k_scale_is_padded_into_the_last_word() {
        let mut block = vec![0u8; 210];
        block[208..].copy_from_slice(&[0xAB, 0xCD]);
        let weight = HostWeight {
            dtype: DType::Q6K,
            shape: vec![1, 256],
            bytes: Cow::Owned(block),
        };
        let words = device_words(&weight).unwrap().unwrap();
        assert_eq!(words.len(), 53);
        assert_eq!(words[52], 0xCDAB);
    }
}
