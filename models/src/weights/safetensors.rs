//! Reading a `.safetensors` file: the header is parsed and validated by the `safetensors`
//! crate (offsets contiguous, inside the buffer, consistent with shapes); F32, F16 and BF16
//! tensors are handed out as borrowed host weights.

use std::collections::BTreeMap;
use std::path::Path;

use brainstem_kernels::DType;
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors};

use crate::error::{ModelError, Result};

/// A tensor entry: dtype as the file states it, shape, absolute byte range.
#[derive(Clone, Debug)]
pub struct SafeTensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub range: std::ops::Range<usize>,
}

/// Validates the header of a whole safetensors file and indexes its tensors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, SafeTensorInfo>> {
    if bytes.len() < 8 {
        return Err(ModelError::Truncated {
            path: path.to_path_buf(),
            what: "the header length".into(),
            offset: 0,
            needed: 8,
            len: bytes.len() as u64,
        });
    }
    // deserialize checks that the data section matches the header exactly.
    SafeTensors::deserialize(bytes).map_err(|e| ModelError::Malformed {
        path: path.to_path_buf(),
        message: format!("safetensors: {e}"),
    })?;
    let (header_len, metadata): (usize, Metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Malformed {
            path: path.to_path_buf(),
            message: format!("safetensors: {e}"),
        })?;
    let data_start = 8 + header_len;
    Ok(metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (start, end) = info.data_offsets;
            let entry = SafeTensorInfo {
                dtype: info.dtype,
                shape: info.shape.clone(),
                range: data_start + start..data_start + end,
            };
            (name, entry)
        })
        .collect())
}

/// brainstem's format for a safetensors dtype, if it reads it.
pub fn dtype(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}
