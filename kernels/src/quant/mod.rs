//! Weight element formats (dense and GGUF block formats), host-side weights as loaded from a
//! file, and the quantized matrix that the CPU backend multiplies with.

mod act_avx512;
mod avx2;
pub mod blocks;
mod dequant_gemm;
mod format;
mod matrix;
mod neon;
pub mod quantize;
pub mod scalar;
mod tiles;
mod tiles_f32;
mod tiles_k;

use std::borrow::Cow;
use std::fmt;

use crate::error::{KernelError, Result};
pub use dequant_gemm::multi_row_path;
pub use format::QuantFormat;
pub use matrix::{ActivationPrecision, QData, QMatrix};
pub use tiles::available as vnni_tiles_available;

/// Element formats of a weight tensor. Block formats are bit-compatible with GGUF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
}

impl DType {
    /// Every supported format, for listings and tests.
    pub const ALL: [DType; 8] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q8_0,
        DType::Q4K,
        DType::Q6K,
    ];

    /// The format of a GGML type id, when brainstem supports it.
    pub fn from_ggml_id(id: u32) -> Option<DType> {
        Self::ALL.into_iter().find(|d| d.ggml_id() == id)
    }

    /// The GGML type id (`enum ggml_type`).
    pub fn ggml_id(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q8_0 => 8,
            DType::Q4K => 12,
            DType::Q6K => 14,
            DType::BF16 => 30,
        }
    }

    /// Elements per block (1 for dense formats).
    pub fn block_elems(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q8_0 => blocks::QK,
            DType::Q4K | DType::Q6K => blocks::QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        use std::mem::size_of;
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q4_0 => size_of::<blocks::BlockQ4_0>(),
            DType::Q4_1 => size_of::<blocks::BlockQ4_1>(),
            DType::Q8_0 => size_of::<blocks::BlockQ8_0>(),
            DType::Q4K => size_of::<blocks::BlockQ4K>(),
            DType::Q6K => size_of::<blocks::BlockQ6K>(),
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes of `elems` elements, or an error when `elems` is not a whole number of blocks
    /// or the size overflows.
    pub fn bytes_for(self, elems: usize) -> Result<usize> {
        let block = self.block_elems();
        if !elems.is_multiple_of(block) {
            return Err(KernelError::BlockAlignment {
                dtype: self,
                block,
                cols: elems,
            });
        }
        (elems / block)
            .checked_mul(self.block_bytes())
            .ok_or_else(|| KernelError::InvalidArgument {
                op: "bytes_for",
                message: format!("{elems} elements of {self} overflow usize"),
            })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q8_0 => "Q8_0",
            DType::Q4K => "Q4_K",
            DType::Q6K => "Q6_K",
        };
        f.write_str(name)
    }
}

/// The name of any GGML type id, supported or not, for messages.
pub fn ggml_type_name(id: u32) -> String {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
        "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES
        .get(id as usize)
        .map_or_else(|| format!("ggml type {id}"), |n| n.to_string())
}

/// A weight as read from a file: its format, its shape (outermost dimension first, as
/// PyTorch writes it) and its raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct HostWeight<'a> {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Cow<'a, [u8]>,
}

impl HostWeight<'static> {
    /// An f32 weight of `shape` holding `values`.
    pub fn from_f32(values: &[f32], shape: Vec<usize>) -> Self {
        HostWeight {
            dtype: DType::F32,
            shape,
            bytes: Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }
}

impl HostWeight<'_> {
    /// Checks that the bytes hold exactly the shape in this format.
    pub fn validate(&self) -> Result<()> {
        let elems = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| KernelError::InvalidArgument {
                op: "weight",
                message: format!("shape {:?} overflows usize", self.shape),
            })?;
        let inner = self.shape.last().copied().unwrap_or(1);
        self.dtype.bytes_for(inner)?;
        let expected = self.dtype.bytes_for(elems)?;
        if expected != self.bytes.len() {
            return Err(KernelError::WeightBytes {
                dtype: self.dtype,
                shape: self.shape.clone(),
                expected,
                found: self.bytes.len(),
            });
        }
        Ok(())
    }

    /// Number of elements.
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }

    /// (rows, cols) of the weight seen as a matrix: the innermost dimension is the columns.
    pub fn matrix_dims(&self) -> (usize, usize) {
        let cols = self.shape.last().copied().unwrap_or(1);
        let rows = self.shape.iter().rev().skip(1).product();
        (rows, cols)
    }

    /// All elements as f32 (dequantizing block formats).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        self.validate()?;
        let mut out = vec![0f32; self.elems()];
        scalar::dequantize_bytes(self.dtype, &self.bytes, &mut out);
        Ok(out)
    }
}
