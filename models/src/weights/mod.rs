//! Weight files: a GGUF file, or a Hugging Face checkpoint (`model.safetensors`, beside its
//! `config.json`). Both are memory-mapped (the pages a model never reads, such as a
//! checkpoint's unused layers, are never loaded), validated once, and hand out borrowed host
//! weights by their own tensor names. [`gguf_writer`] writes GGUF files.

pub mod gguf;
pub mod gguf_writer;
pub mod safetensors;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brainstem_kernels::HostWeight;

use crate::error::{ModelError, Result};
use gguf::{GgufHeader, Metadata};

/// Which container a weight file is.
#[derive(Clone, Debug)]
pub enum Container {
    Gguf(GgufHeader),
    SafeTensors(BTreeMap<String, safetensors::SafeTensorInfo>),
}

/// One entry of a file's tensor listing.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorListing {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: usize,
}

/// A weight file's bytes: mapped from disk, or held (a file built in memory).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

/// A weight file, mapped or in memory.
pub struct WeightFile {
    path: PathBuf,
    bytes: Bytes,
    container: Container,
}

/// A text file (a `config.json`), which must be UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_file(path)?).map_err(|_| ModelError::Config {
        path: path.to_path_buf(),
        message: "not UTF-8".into(),
    })
}

/// The most a text file beside the weights (a config, a processor pipeline, a tokenizer's JSON)
/// may hold: far above any real one, low enough that a huge or endless file cannot exhaust
/// memory.
const MAX_TEXT_FILE_BYTES: u64 = 256 << 20;

/// A text file's bytes, refused past [`MAX_TEXT_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_TEXT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TEXT_FILE_BYTES {
        return Err(ModelError::LimitExceeded {
            path: path.to_path_buf(),
            what: "the file's size in bytes",
            limit: MAX_TEXT_FILE_BYTES,
            found: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

impl WeightFile {
    /// Opens a `.gguf` file or a `.safetensors` file, told apart by their first bytes, and
    /// maps it into memory.
    pub fn open(path: &Path) -> Result<WeightFile> {
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives as long as this value; every read is checked
        // against the header's ranges, which `parse` validated against the mapped length. A
        // model file rewritten underneath a running process is outside what any loader can
        // defend against (candle and safetensors map files the same way).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(path, Bytes::Mapped(map))
    }

    /// Parses a file's bytes (`path` only names it in errors).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<WeightFile> {
        Self::parse(path, Bytes::Owned(bytes))
    }

    fn parse(path: &Path, bytes: Bytes) -> Result<WeightFile> {
        let container = if bytes.starts_with(b"GGUF") || path.extension().is_some_and(|e| e == "gguf") {
            Container::Gguf(GgufHeader::parse(&bytes, path)?)
        } else {
            Container::SafeTensors(safetensors::parse(&bytes, path)?)
        };
        Ok(WeightFile {
            path: path.to_path_buf(),
            bytes,
            container,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn container(&self) -> &Container {
        &self.container
    }

    /// GGUF metadata; `None` for a safetensors file.
    pub fn gguf_metadata(&self) -> Option<Metadata<'_>> {
        match &self.container {
            Container::Gguf(h) => Some(Metadata {
                map: &h.metadata,
                path: &self.path,
            }),
            Container::SafeTensors(_) => None,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        match &self.container {
            Container::Gguf(h) => h.tensors.iter().any(|t| t.name == name),
            Container::SafeTensors(m) => m.contains_key(name),
        }
    }

    /// Every tensor with its dtype (as the file names it), shape and size.
    pub fn listing(&self) -> Vec<TensorListing> {
        match &self.container {
            Container::Gguf(h) => h
                .tensors
                .iter()
                .map(|t| TensorListing {
                    name: t.name.clone(),
                    dtype: t.type_name(),
                    shape: t.shape.clone(),
                    bytes: t.range.len(),
                })
                .collect(),
            Container::SafeTensors(m) => m
                .iter()
                .map(|(name, t)| TensorListing {
                    name: name.clone(),
                    dtype: format!("{:?}", t.dtype),
                    shape: t.shape.clone(),
                    bytes: t.range.len(),
                })
                .collect(),
        }
    }

    /// The tensor `name`, borrowed from the file's bytes.
    pub fn tensor(&self, name: &str) -> Result<HostWeight<'_>> {
        let missing = || ModelError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        };
        let (dtype, shape, range, dtype_name) = match &self.container {
            Container::Gguf(h) => {
                let t = h.tensors.iter().find(|t| t.name == name).ok_or_else(missing)?;
                (t.dtype(), t.shape.clone(), t.range.clone(), t.type_name())
            }
            Container::SafeTensors(m) => {
                let t = m.get(name).ok_or_else(missing)?;
                (
                    safetensors::dtype(t.dtype),
                    t.shape.clone(),
                    t.range.clone(),
                    format!("{:?}", t.dtype),
                )
            }
        };
        let dtype = dtype.ok_or_else(|| ModelError::UnsupportedDType {
            path: self.path.clone(),
            tensor: name.to_string(),
            dtype: dtype_name,
        })?;
        let weight = HostWeight {
            dtype,
            shape,
            bytes: Cow::Borrowed(&self.bytes[range]),
        };
        weight.validate()?;
        Ok(weight)
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn tensor_with_shape(&self, name: &str, shape: &[usize]) -> Result<HostWeight<'_>> {
        let weight = self.tensor(name)?;
        if weight.shape != shape {
            return Err(ModelError::TensorShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: weight.shape,
            });
        }
        Ok(weight)
    }
}
