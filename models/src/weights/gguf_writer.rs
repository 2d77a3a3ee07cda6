//! A GGUF v3 writer, the counterpart of [`super::gguf`]: metadata key/values of every
//! [`GgufValue`] type, tensor infos (dimensions innermost first, GGML type ids, offsets
//! relative to the data section) and tensor data, each tensor padded to
//! `general.alignment` (always 32 here) as llama.cpp and gguf-py lay files out.
//!
//! Layout: magic `GGUF`, version u32, tensor count u64, metadata count u64, the key/values
//! (key string, value type u32, value), the tensor infos (name string, n_dims u32, dims u64
//! each, type u32, offset u64), padding to the alignment, then the tensor data. Strings are
//! a u64 byte length and UTF-8 bytes; arrays an element type u32, a count u64 and items.

use std::io::Write;
use std::path::Path;

use brainstem_kernels::HostWeight;

use super::gguf::GgufValue;
use crate::error::{ModelError, Result};

/// The alignment of the data section and of every tensor in it.
pub const ALIGNMENT: usize = 32;
const VERSION: u32 = 3;

/// A GGUF file being assembled: metadata in insertion order, then tensors in order.
#[derive(Default)]
pub struct GgufWriter<'a> {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, HostWeight<'a>)>,
}

/// The GGUF value type id of a value.
fn type_id(value: &GgufValue) -> u32 {
    match value {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Appends a value without its type id. Arrays must hold items of one type; an empty
/// array is written as an array of u8.
fn put_value(out: &mut Vec<u8>, key: &str, value: &GgufValue) -> std::result::Result<(), String> {
    match value {
        GgufValue::U8(v) => out.extend(v.to_le_bytes()),
        GgufValue::I8(v) => out.extend(v.to_le_bytes()),
        GgufValue::U16(v) => out.extend(v.to_le_bytes()),
        GgufValue::I16(v) => out.extend(v.to_le_bytes()),
        GgufValue::U32(v) => out.extend(v.to_le_bytes()),
        GgufValue::I32(v) => out.extend(v.to_le_bytes()),
        GgufValue::U64(v) => out.extend(v.to_le_bytes()),
        GgufValue::I64(v) => out.extend(v.to_le_bytes()),
        GgufValue::F32(v) => out.extend(v.to_le_bytes()),
        GgufValue::F64(v) => out.extend(v.to_le_bytes()),
        GgufValue::Bool(v) => out.push(u8::from(*v)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(items) => {
            let kind = items.first().map_or(0, type_id);
            if items.iter().any(|v| type_id(v) != kind) {
                return Err(format!("metadata {key}: an array must hold items of one type"));
            }
            out.extend(kind.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, key, item)?;
            }
        }
    }
    Ok(())
}

fn padding(len: usize) -> usize {
    len.next_multiple_of(ALIGNMENT) - len
}

impl<'a> GgufWriter<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a metadata key, replacing an earlier value in place. `general.alignment` is
    /// always written as 32, whatever is set here.
    pub fn set(&mut self, key: impl Into<String>, value: GgufValue) {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.metadata.push((key, value)),
        }
    }

    /// Adds a tensor (shape outermost first, as [`HostWeight`] holds it) after checking
    /// that its bytes match its shape and format. Names must be unique (checked on write).
    pub fn add_tensor(&mut self, name: impl Into<String>, weight: HostWeight<'a>) -> Result<()> {
        weight.validate()?;
        self.tensors.push((name.into(), weight));
        Ok(())
    }

    /// The header: everything before the data section, padded to the alignment. `path`
    /// only names the file in errors.
    fn header(&self, path: &Path) -> Result<Vec<u8>> {
        let malformed = |message| ModelError::Malformed {
            path: path.to_path_buf(),
            message,
        };
        let alignment = ("general.alignment".to_string(), GgufValue::U32(ALIGNMENT as u32));
        let metadata: Vec<_> = self
            .metadata
            .iter()
            .filter(|(k, _)| k != "general.alignment")
            .chain(std::iter::once(&alignment))
            .collect();
        let mut out = b"GGUF".to_vec();
        out.extend(VERSION.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata {
            put_str(&mut out, key);
            out.extend(type_id(value).to_le_bytes());
            put_value(&mut out, key, value).map_err(malformed)?;
        }
        let mut names = std::collections::HashSet::new();
        if let Some((name, _)) = self.tensors.iter().find(|(n, _)| !names.insert(n)) {
            return Err(malformed(format!("tensor {name} is added twice")));
        }
        let mut offset = 0usize;
        for (name, weight) in &self.tensors {
            put_str(&mut out, name);
            out.extend((weight.shape.len() as u32).to_le_bytes());
            for &d in weight.shape.iter().rev() {
                out.extend((d as u64).to_le_bytes());
            }
            out.extend(weight.dtype.ggml_id().to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offset += weight.bytes.len() + padding(weight.bytes.len());
        }
        out.resize(out.len() + padding(out.len()), 0);
        Ok(out)
    }

    fn write_all(&self, header: &[u8], mut w: impl Write) -> std::io::Result<()> {
        w.write_all(header)?;
        for (_, weight) in &self.tensors {
            w.write_all(&weight.bytes)?;
            w.write_all(&[0u8; ALIGNMENT][..padding(weight.bytes.len())])?;
        }
        w.flush()
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let path = Path::new("<memory>");
        let header = self.header(path)?;
        let mut out = Vec::new();
        self.write_all(&header, &mut out).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(out)
    }

    /// Writes the file to `path` and returns its size in bytes.
    pub fn write(&self, path: &Path) -> Result<u64> {
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let header = self.header(path)?;
        let file = std::fs::File::create(path).map_err(io)?;
        self.write_all(&header, std::io::BufWriter::new(file)).map_err(io)?;
        let data: usize = self
            .tensors
            .iter()
            .map(|(_, w)| w.bytes.len().next_multiple_of(ALIGNMENT))
            .sum();
        Ok((header.len() + data) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use brainstem_kernels::quant::quantize::quantize;
    use brainstem_kernels::DType;

    use super::*;
    use crate::weights::gguf::GgufHeader;
    use crate::weights::WeightFile;

    fn every_value() -> Vec<(&'static str, GgufValue)> {
        vec![
            ("t.u8", GgufValue::U8(200)),
            ("t.i8", GgufValue::I8(-100)),
            ("t.u16", GgufValue::U16(60_000)),
            ("t.i16", GgufValue::I16(-30_000)),
            ("t.u32", GgufValue::U32(4_000_000_000)),
            ("t.i32", GgufValue::I32(-2_000_000_000)),
            ("t.f32", GgufValue::F32(-1.5e-7)),
            ("t.bool", GgufValue::Bool(true)),
            ("t.string", GgufValue::String("naïve ✓".into())),
            ("t.empty", GgufValue::String(String::new())),
            ("t.u64", GgufValue::U64(u64::MAX)),
            ("t.i64", GgufValue::I64(i64::MIN)),
            ("t.f64", GgufValue::F64(std::f64::consts::PI)),
            (
                "t.strings",
                GgufValue::Array(vec![GgufValue::String("a b".into()), GgufValue::String("Ġc".into())]),
            ),
            (
                "t.nested",
                GgufValue::Array(vec![
                    GgufValue::Array(vec![GgufValue::I32(1)]),
                    GgufValue::Array(vec![]),
                ]),
            ),
            ("general.alignment", GgufValue::U32(64)),
        ]
    }

    fn weight(dtype: DType, shape: Vec<usize>, seed: usize) -> HostWeight<'static> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| ((i * 7 + seed) % 23) as f32 / 7.0 - 1.5).collect();
        HostWeight {
            dtype,
            bytes: Cow::Owned(quantize(dtype, &values).unwrap()),
            shape,
        }
    }

    #[test]
    fn written_file_reads_back_identically() {
        let mut w = GgufWriter::new();
        for (k, v) in every_value() {
            w.set(k, v);
        }
        let tensors = [
            ("norm.weight", weight(DType::F32, vec![5], 0)),
            ("blk.0.attn_q.weight", weight(DType::Q8_0, vec![3, 64], 1)),
            ("blk.0.ffn_up.weight", weight(DType::Q4K, vec![2, 256], 2)),
            ("cube", weight(DType::F16, vec![2, 3, 7], 3)),
        ];
        for (name, t) in &tensors {
            w.add_tensor(*name, t.clone()).unwrap();
        }
        let bytes = w.to_bytes().unwrap();
        let header = GgufHeader::parse(&bytes, Path::new("t.gguf")).unwrap();
        assert_eq!(header.version, 3);
        let mut expected: std::collections::BTreeMap<_, _> =
            every_value().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        expected.insert("general.alignment".into(), GgufValue::U32(32));
        assert_eq!(header.metadata, expected);
        let file = WeightFile::from_bytes(Path::new("t.gguf"), bytes).unwrap();
        for ((name, t), info) in tensors.iter().zip(&header.tensors) {
            assert_eq!(info.name, *name);
            assert_eq!(info.range.start % ALIGNMENT, 0, "{name} is aligned");
            let back = file.tensor(name).unwrap();
            assert_eq!((back.dtype, &back.shape), (t.dtype, &t.shape), "{name}");
            assert_eq!(back.bytes, t.bytes, "{name}");
        }
    }

    #[test]
    fn written_file_size_is_reported_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        let mut w = GgufWriter::new();
        w.add_tensor("x", weight(DType::F32, vec![3], 0)).unwrap();
        assert_eq!(w.write(&path).unwrap(), std::fs::metadata(&path).unwrap().len());
        w.add_tensor("x", weight(DType::F32, vec![3], 0)).unwrap();
        assert!(matches!(w.write(&path), Err(ModelError::Malformed { .. })));
        w.tensors.pop();
        w.set("mixed", GgufValue::Array(vec![GgufValue::U8(1), GgufValue::I8(1)]));
        assert!(matches!(w.write(&path), Err(ModelError::Malformed { .. })));
        let short = HostWeight {
            dtype: DType::Q8_0,
            shape: vec![32],
            bytes: Cow::Owned(vec![0; 3]),
        };
        assert!(w.add_tensor("short", short).is_err());
    }
}
