//! A GGUF reader (versions 2 and 3) that bounds every length before it allocates or slices:
//! string lengths, array counts, nesting depth, tensor counts and dimensions are checked
//! against fixed limits and against the bytes that remain, so a truncated or hostile file
//! gives a typed error, never a panic or an out-of-bounds read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brainstem_kernels::quant::{ggml_type_name, DType};

use crate::error::{ModelError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_STRING: u64 = 16 << 20;
const MAX_ARRAY_DEPTH: usize = 3;
const MAX_DIMS: u32 = 4;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KVS: u64 = 1 << 20;
/// Array items reserved before any is read; beyond this the vector grows as items parse.
const MAX_ARRAY_PREALLOCATION: usize = 4096;
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            GgufValue::F32(v) => Some(v),
            GgufValue::F64(v) => Some(v as f32),
            _ => self.as_u64().map(|v| v as f32),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short rendering for listings: arrays show their length and first items.
    pub fn summary(&self) -> String {
        match self {
            GgufValue::String(s) if s.chars().count() > 80 => {
                format!(
                    "{:?}... ({} chars)",
                    s.chars().take(80).collect::<String>(),
                    s.chars().count()
                )
            }
            GgufValue::String(s) => format!("{s:?}"),
            GgufValue::Array(a) => {
                let head: Vec<String> = a.iter().take(4).map(GgufValue::summary).collect();
                let more = if a.len() > 4 { ", ..." } else { "" };
                format!("[{}{more}] ({} items)", head.join(", "), a.len())
            }
            other => format!("{other:?}")
                .split(['(', ')'])
                .nth(1)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// Where a tensor lies in the file, and its format as the file states it.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions outermost first (GGUF stores them innermost first).
    pub shape: Vec<usize>,
    /// The GGML type id, which brainstem may not support.
    pub ggml_type: u32,
    /// Absolute byte range in the file, checked to lie inside it.
    pub range: std::ops::Range<usize>,
}

impl GgufTensorInfo {
    pub fn dtype(&self) -> Option<DType> {
        DType::from_ggml_id(self.ggml_type)
    }

    pub fn type_name(&self) -> String {
        ggml_type_name(self.ggml_type)
    }
}

/// The parsed header of a GGUF file.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        if n > remaining {
            return Err(ModelError::Truncated {
                path: self.path.to_path_buf(),
                what: what.to_string(),
                offset: self.pos as u64,
                needed: n,
                len: self.bytes.len() as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn limit(&self, what: &'static str, found: u64, limit: u64) -> Result<()> {
        if found > limit {
            return Err(ModelError::LimitExceeded {
                path: self.path.to_path_buf(),
                what,
                limit,
                found,
            });
        }
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        self.limit("a string length", len, MAX_STRING)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.malformed(format!("{what} is not UTF-8")))
    }

    fn malformed(&self, message: String) -> ModelError {
        ModelError::Malformed {
            path: self.path.to_path_buf(),
            message: format!("{message} (at offset {})", self.pos),
        }
    }

    fn value(&mut self, kind: u32, depth: usize, key: &str) -> Result<GgufValue> {
        Ok(match kind {
            0 => GgufValue::U8(u8::from_le_bytes(self.array(key)?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(key)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => GgufValue::U32(self.u32(key)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.malformed(format!("{key}: bool byte {b}"))),
            },
            8 => GgufValue::String(self.string(key)?),
            9 => self.array_value(depth, key)?,
            10 => GgufValue::U64(self.u64(key)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => return Err(self.malformed(format!("{key}: unknown value type {other}"))),
        })
    }

    fn array_value(&mut self, depth: usize, key: &str) -> Result<GgufValue> {
        self.limit("array nesting depth", depth as u64 + 1, MAX_ARRAY_DEPTH as u64)?;
        let kind = self.u32(key)?;
        let count = self.u64(key)?;
        // Every element takes at least its type's smallest encoding, so the count can never
        // exceed what is left divided by that.
        let remaining = (self.bytes.len() - self.pos) as u64;
        self.limit(
            "an array length (at most what the bytes left can hold)",
            count,
            remaining / min_encoded_len(kind),
        )?;
        // A `GgufValue` is larger than its smallest encoding; the vector grows with the items
        // actually read rather than trusting the count for more than a page's worth up front.
        let mut items = Vec::with_capacity((count as usize).min(MAX_ARRAY_PREALLOCATION));
        for _ in 0..count {
            items.push(self.value(kind, depth + 1, key)?);
        }
        Ok(GgufValue::Array(items))
    }

    fn tensor_info(&mut self) -> Result<(String, Vec<usize>, u32, u64)> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        self.limit("tensor dimensions", n_dims.into(), MAX_DIMS.into())?;
        let mut shape = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = self.u64("tensor dimension")?;
            shape.push(usize::try_from(d).map_err(|_| self.malformed(format!("{name}: dimension {d}")))?);
        }
        shape.reverse();
        let ggml_type = self.u32("tensor type")?;
        let offset = self.u64("tensor offset")?;
        Ok((name, shape, ggml_type, offset))
    }
}

/// The fewest bytes an array element of value type `kind` takes in the file: a string or an
/// array is at least its length field (a nested array also its element type); an unknown type
/// counts as one byte and is refused when its first element is read.
fn min_encoded_len(kind: u32) -> u64 {
    match kind {
        0 | 1 | 7 => 1,
        2..=3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

/// Byte size of a tensor of a GGML type; `None` for types brainstem cannot size.
fn tensor_bytes(ggml_type: u32, shape: &[usize]) -> Option<u64> {
    let elems = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
    let dtype = DType::from_ggml_id(ggml_type)?;
    dtype.bytes_for(usize::try_from(elems).ok()?).ok().map(|b| b as u64)
}

impl GgufHeader {
    /// Parses the header of `bytes` (a whole GGUF file) and checks that every tensor of a
    /// known type lies inside the file.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<GgufHeader> {
        let mut r = Reader { bytes, pos: 0, path };
        let magic = r.take(4, "magic")?;
        if magic != MAGIC {
            return Err(ModelError::BadMagic {
                path: path.to_path_buf(),
                format: "GGUF",
                expected: "GGUF".into(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(r.malformed(format!("GGUF version {version}, expected 2 or 3")));
        }
        let tensor_count = r.u64("tensor count")?;
        let kv_count = r.u64("metadata count")?;
        r.limit("the tensor count", tensor_count, MAX_TENSORS)?;
        r.limit("the metadata count", kv_count, MAX_KVS)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = r.string("metadata key")?;
            let kind = r.u32(&key)?;
            let value = r.value(kind, 0, &key)?;
            metadata.insert(key, value);
        }
        let infos = (0..tensor_count).map(|_| r.tensor_info()).collect::<Result<Vec<_>>>()?;
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| r.malformed(format!("general.alignment must be a power of two, found {v:?}")))?,
        };
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let tensors = infos
            .into_iter()
            .map(|(name, shape, ggml_type, offset)| {
                let start = data_start.checked_add(offset);
                let size = tensor_bytes(ggml_type, &shape).unwrap_or(0);
                let end = start.and_then(|s| s.checked_add(size));
                match (start, end) {
                    (Some(start), Some(end)) if end <= bytes.len() as u64 => Ok(GgufTensorInfo {
                        name,
                        shape,
                        ggml_type,
                        range: start as usize..end as usize,
                    }),
                    _ => Err(ModelError::Truncated {
                        path: path.to_path_buf(),
                        what: format!("tensor {name}"),
                        offset: data_start.saturating_add(offset),
                        needed: size,
                        len: bytes.len() as u64,
                    }),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GgufHeader {
            version,
            metadata,
            tensors,
        })
    }
}

/// A string-keyed view of metadata with typed getters that name the file in errors.
pub struct Metadata<'a> {
    pub map: &'a BTreeMap<String, GgufValue>,
    pub path: &'a PathBuf,
}

impl Metadata<'_> {
    fn missing(&self, key: &str, wanted: &str) -> ModelError {
        ModelError::Config {
            path: self.path.clone(),
            message: format!("metadata {key} must be {wanted}"),
        }
    }

    pub fn u64_opt(&self, key: &str) -> Result<Option<u64>> {
        self.map
            .get(key)
            .map(|v| v.as_u64().ok_or_else(|| self.missing(key, "an unsigned integer")))
            .transpose()
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.u64_opt(key)?
            .map(|v| v as usize)
            .ok_or_else(|| self.missing(key, "present"))
    }

    pub fn f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.map
            .get(key)
            .map(|v| v.as_f32().ok_or_else(|| self.missing(key, "a number")))
            .transpose()
    }

    pub fn str_opt(&self, key: &str) -> Result<Option<&str>> {
        self.map
            .get(key)
            .map(|v| v.as_str().ok_or_else(|| self.missing(key, "a string")))
            .transpose()
    }

    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(value) = self.map.get(key) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| self.missing(key, "an array of strings"))?;
        items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| self.missing(key, "an array of strings")))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
