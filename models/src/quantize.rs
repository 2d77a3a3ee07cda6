//! `quantize_model`: a Llama GGUF file or a Hugging Face Llama checkpoint written out as a
//! llama GGUF whose matrices are in one block format, as llama.cpp's `llama-quantize` (and,
//! for a checkpoint, its `convert_hf_to_gguf.py`) would write it.
//!
//! Every 2-D `*.weight` tensor is quantized to the target format when its rows are a whole
//! number of blocks, and otherwise to Q8_0 (or kept in F32 when even that does not fit),
//! which the report lists as a fallback; every other tensor (the norms) is written in F32.
//! Sources are widened to f32 first through [`HostWeight::to_f32`].

mod hf;

use std::borrow::Cow;
use std::path::Path;

use brainstem_kernels::quant::quantize::quantize;
use brainstem_kernels::{DType, HostWeight};

use crate::error::{ModelError, Result};
use crate::weights::gguf::GgufValue;
use crate::weights::gguf_writer::GgufWriter;
use crate::weights::{Container, WeightFile};

/// What `quantize_model` wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizeReport {
    /// The format asked for.
    pub format: DType,
    /// Tensors written in each format, in [`DType::ALL`] order, formats with none left out.
    pub tensors: Vec<(DType, usize)>,
    /// Matrices that could not take the target format.
    pub fallbacks: Vec<Fallback>,
    /// Other things worth knowing (a tokenizer that was not converted, ...).
    pub notes: Vec<String>,
    /// Size of the input weight file.
    pub input_bytes: u64,
    /// Size of the file written.
    pub output_bytes: u64,
}

/// A matrix written in another format than the one asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Fallback {
    pub tensor: String,
    pub dtype: DType,
    pub reason: String,
}

/// One tensor to write: its GGUF name, its name in the input, and, for the Q and K
/// projections of a Hugging Face checkpoint, the (heads, head_dim) its rows are permuted by.
struct TensorPlan {
    name: String,
    source: String,
    permute: Option<(usize, usize)>,
}

/// What an input contributes to the output: metadata, tensors, notes for the report.
struct Source {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<TensorPlan>,
    notes: Vec<String>,
}

/// Quantizes the model at `input` (a `.gguf` file, a checkpoint directory, or its
/// `model.safetensors`) into a llama GGUF at `output` with its matrices in `format`.
pub fn quantize_model(input: &Path, output: &Path, format: DType) -> Result<QuantizeReport> {
    let _span = tracing::info_span!("quantize_model", %format).entered();
    let weights_path = match input.is_dir() {
        true => input.join("model.safetensors"),
        false => input.to_path_buf(),
    };
    let file = WeightFile::open(&weights_path)?;
    let source = match file.container() {
        Container::Gguf(_) => gguf_source(&file)?,
        Container::SafeTensors(_) => hf::source(&file)?,
    };
    let mut report = QuantizeReport {
        format,
        tensors: Vec::new(),
        fallbacks: Vec::new(),
        notes: source.notes,
        input_bytes: file_len(&weights_path)?,
        output_bytes: 0,
    };
    let mut writer = GgufWriter::new();
    for (key, value) in source.metadata {
        writer.set(key, value);
    }
    writer.set("general.file_type", GgufValue::U32(file_type(format)));
    if format.is_quantized() {
        writer.set("general.quantization_version", GgufValue::U32(2));
    }
    for plan in &source.tensors {
        let weight = convert(&file, plan, format, &mut report)?;
        writer.add_tensor(plan.name.clone(), weight)?;
    }
    report.output_bytes = writer.write(output)?;
    Ok(report)
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A llama GGUF keeps its metadata (tokenizer included) and its tensor names.
fn gguf_source(file: &WeightFile) -> Result<Source> {
    let Container::Gguf(header) = file.container() else {
        return Err(ModelError::Malformed {
            path: file.path().to_path_buf(),
            message: "expected a GGUF file".into(),
        });
    };
    let arch = header.metadata.get("general.architecture").and_then(GgufValue::as_str);
    if arch != Some("llama") {
        return Err(ModelError::UnsupportedArchitecture {
            path: file.path().to_path_buf(),
            expected: "llama",
            found: arch.unwrap_or("").to_string(),
        });
    }
    let tensors = header
        .tensors
        .iter()
        .map(|t| TensorPlan {
            name: t.name.clone(),
            source: t.name.clone(),
            permute: None,
        })
        .collect();
    Ok(Source {
        metadata: header.metadata.clone().into_iter().collect(),
        tensors,
        notes: Vec::new(),
    })
}

/// Reads, permutes where planned, and quantizes one tensor, recording it in the report.
fn convert(
    file: &WeightFile,
    plan: &TensorPlan,
    format: DType,
    report: &mut QuantizeReport,
) -> Result<HostWeight<'static>> {
    let weight = file.tensor(&plan.source)?;
    let mut values = weight.to_f32()?;
    if let Some((heads, head_dim)) = plan.permute {
        let (rows, cols) = weight.matrix_dims();
        if weight.shape.len() != 2 || rows != heads * head_dim {
            return Err(ModelError::TensorShape {
                path: file.path().to_path_buf(),
                name: plan.source.clone(),
                expected: vec![heads * head_dim, cols],
                found: weight.shape.clone(),
            });
        }
        values = hf::permute_rows(&values, heads, head_dim, cols);
    }
    let (dtype, reason) = target(&plan.name, &weight.shape, format);
    if let Some(reason) = reason {
        report.fallbacks.push(Fallback {
            tensor: plan.name.clone(),
            dtype,
            reason,
        });
    }
    let bytes = quantize(dtype, &values)?;
    report.count(dtype);
    Ok(HostWeight {
        dtype,
        shape: weight.shape,
        bytes: Cow::Owned(bytes),
    })
}

/// The format a tensor is written in, and why when it is not `format`.
fn target(name: &str, shape: &[usize], format: DType) -> (DType, Option<String>) {
    let &[_, cols] = shape else {
        return (DType::F32, None);
    };
    if !name.ends_with(".weight") {
        return (DType::F32, None);
    }
    if cols % format.block_elems() == 0 {
        return (format, None);
    }
    let fallback = if cols % DType::Q8_0.block_elems() == 0 {
        DType::Q8_0
    } else {
        DType::F32
    };
    let reason = format!(
        "rows of {cols} are not a multiple of the {}-element {format} block",
        format.block_elems()
    );
    (fallback, Some(reason))
}

/// llama.cpp's `general.file_type` (`enum llama_ftype`) for a file mostly in `format`.
fn file_type(format: DType) -> u32 {
    match format {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q8_0 => 7,
        DType::Q4K => 14,
        DType::Q6K => 18,
        DType::BF16 => 32,
    }
}

impl QuantizeReport {
    fn count(&mut self, dtype: DType) {
        match self.tensors.iter_mut().find(|(d, _)| *d == dtype) {
            Some((_, n)) => *n += 1,
            None => {
                self.tensors.push((dtype, 1));
                let order = |d: &DType| DType::ALL.iter().position(|a| a == d);
                self.tensors.sort_by_key(|(d, _)| order(d));
            }
        }
    }

    /// Tensors written in `dtype`.
    pub fn tensors_in(&self, dtype: DType) -> usize {
        self.tensors.iter().find(|(d, _)| *d == dtype).map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_take_the_format_or_fall_back() {
        assert_eq!(target("blk.0.attn_q.weight", &[8, 512], DType::Q4K), (DType::Q4K, None));
        assert_eq!(target("blk.0.attn_norm.weight", &[512], DType::Q4K), (DType::F32, None));
        assert_eq!(target("rope_freqs", &[4, 512], DType::Q4_0), (DType::F32, None));
        let (dtype, reason) = target("blk.0.ffn_up.weight", &[8, 576], DType::Q6K);
        assert_eq!(dtype, DType::Q8_0);
        assert!(reason.unwrap().contains("576"));
        assert_eq!(target("x.weight", &[8, 20], DType::Q4_0).0, DType::F32);
    }

    #[test]
    fn report_counts_in_dtype_order() {
        let mut report = QuantizeReport {
            format: DType::Q4K,
            tensors: Vec::new(),
            fallbacks: Vec::new(),
            notes: Vec::new(),
            input_bytes: 0,
            output_bytes: 0,
        };
        for dtype in [DType::Q4K, DType::F32, DType::Q8_0, DType::Q4K] {
            report.count(dtype);
        }
        assert_eq!(report.tensors, vec![(DType::F32, 1), (DType::Q8_0, 1), (DType::Q4K, 2)]);
        assert_eq!(report.tensors_in(DType::Q6K), 0);
    }
}
