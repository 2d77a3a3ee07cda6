//! A LeRobotDataset's `meta/info.json` (its version, frame rate, features and file-path
//! templates) and its statistics (`meta/stats.json` in v3.0, per-episode
//! `meta/episodes_stats.jsonl` pooled in v2.1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::DatasetError;

/// The two layouts of LeRobotDataset that are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One parquet file per episode, episodes in `meta/episodes.jsonl` (v2.0 and v2.1).
    V2,
    /// Many episodes per data and video file, episodes in `meta/episodes/**.parquet`.
    V3,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    pub codebase_version: String,
    pub fps: f64,
    pub features: BTreeMap<String, Feature>,
    pub data_path: String,
    #[serde(default)]
    pub video_path: Option<String>,
    #[serde(default)]
    pub chunks_size: Option<u64>,
    #[serde(default)]
    pub robot_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Feature {
    pub dtype: String,
    pub shape: Vec<usize>,
    #[serde(default)]
    pub names: Option<Value>,
}

impl Feature {
    /// A camera: frames as PNG bytes in the parquet, or in MP4 files.
    pub fn is_camera(&self) -> bool {
        self.dtype == "image" || self.dtype == "video"
    }

    /// The names of a vector's entries: a list, or (as older datasets wrote) an object whose
    /// one value is the list.
    pub fn entry_names(&self) -> Option<Vec<String>> {
        let strings = |list: &Vec<Value>| list.iter().map(|v| v.as_str().map(String::from)).collect();
        match self.names.as_ref()? {
            Value::Array(list) => strings(list),
            Value::Object(map) if map.len() == 1 => map.values().next()?.as_array().and_then(strings),
            _ => None,
        }
    }
}

impl Info {
    pub fn read(root: &Path) -> Result<(Self, Version), DatasetError> {
        let path = root.join("meta/info.json");
        let info: Info = read_json(&path)?;
        let version = match info.codebase_version.as_str() {
            "v3.0" => Version::V3,
            "v2.0" | "v2.1" => Version::V2,
            other => {
                return Err(DatasetError::Format {
                    path,
                    reason: format!("codebase_version {other:?} is not one this reads (v2.0, v2.1 or v3.0)"),
                })
            }
        };
        if !(info.fps.is_finite() && info.fps > 0.0) {
            return Err(DatasetError::Format {
                path,
                reason: format!("fps must be positive, found {}", info.fps),
            });
        }
        Ok((info, version))
    }

    /// The length of vector feature `key` (its shape's only dimension).
    pub fn vector_len(&self, key: &str) -> Option<usize> {
        match self.features.get(key)?.shape.as_slice() {
            [n] => Some(*n),
            _ => None,
        }
    }

    /// Camera feature keys, in name order.
    pub fn cameras(&self) -> Vec<String> {
        self.features
            .iter()
            .filter(|(_, f)| f.is_camera())
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Fills a Python format-string path template (`chunk-{chunk_index:03d}`, `{video_key}`) from
/// named values.
pub fn fill_template(template: &str, values: &[(&str, TemplateValue)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in {template:?}"))?;
        let field = &rest[open + 1..open + close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("{template:?} names `{name}`, which this layout has no value for"))?;
        match value {
            TemplateValue::Int(n) => {
                let width = spec.trim_start_matches('0').trim_end_matches('d');
                let width: usize = if width.is_empty() {
                    0
                } else {
                    width.parse().map_err(|_| format!("format `{spec}` in {template:?}"))?
                };
                out.push_str(&format!("{n:0width$}"));
            }
            TemplateValue::Text(text) => out.push_str(text),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub enum TemplateValue<'a> {
    Int(u64),
    Text(&'a str),
}

/// A vector feature's statistics over the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorStats {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

#[derive(Deserialize)]
struct RawStats {
    mean: Value,
    std: Value,
    min: Value,
    max: Value,
    #[serde(default)]
    count: Option<Value>,
}

impl RawStats {
    fn vector(&self, len: usize) -> Option<(VectorStats, f64)> {
        let list = |v: &Value| -> Option<Vec<f64>> {
            let list: Vec<f64> = v.as_array()?.iter().map(Value::as_f64).collect::<Option<_>>()?;
            (list.len() == len).then_some(list)
        };
        let count = self
            .count
            .as_ref()
            .and_then(|c| c.as_array().and_then(|a| a.first()).or(Some(c)).and_then(Value::as_f64))
            .unwrap_or(1.0);
        let stats = VectorStats {
            mean: list(&self.mean)?,
            std: list(&self.std)?,
            min: list(&self.min)?,
            max: list(&self.max)?,
        };
        Some((stats, count))
    }
}

/// Statistics of `key` (a vector of `len`): v3.0's and v2.0's `meta/stats.json`, or v2.1's
/// per-episode statistics pooled (count-weighted mean, pooled variance). `None` when the
/// dataset has none for it.
pub fn read_stats(root: &Path, key: &str, len: usize) -> Result<Option<VectorStats>, DatasetError> {
    let whole = root.join("meta/stats.json");
    if whole.is_file() {
        let stats: BTreeMap<String, RawStats> = read_json(&whole)?;
        return Ok(stats.get(key).and_then(|s| s.vector(len)).map(|(s, _)| s));
    }
    let per_episode = root.join("meta/episodes_stats.jsonl");
    if !per_episode.is_file() {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Line {
        stats: BTreeMap<String, RawStats>,
    }
    let lines: Vec<Line> = read_json_lines(&per_episode)?;
    let parts: Vec<(VectorStats, f64)> = lines
        .iter()
        .filter_map(|line| line.stats.get(key).and_then(|s| s.vector(len)))
        .collect();
    Ok(pool(&parts, len))
}

fn pool(parts: &[(VectorStats, f64)], len: usize) -> Option<VectorStats> {
    let total: f64 = parts.iter().map(|(_, n)| n).sum();
    if parts.is_empty() || total <= 0.0 {
        return None;
    }
    let mut pooled = VectorStats {
        mean: vec![0.0; len],
        std: vec![0.0; len],
        min: vec![f64::INFINITY; len],
        max: vec![f64::NEG_INFINITY; len],
    };
    for j in 0..len {
        let mean = parts.iter().map(|(s, n)| s.mean[j] * n).sum::<f64>() / total;
        let variance = parts
            .iter()
            .map(|(s, n)| n * (s.std[j].powi(2) + (s.mean[j] - mean).powi(2)))
            .sum::<f64>()
            / total;
        pooled.mean[j] = mean;
        pooled.std[j] = variance.sqrt();
        pooled.min[j] = parts.iter().map(|(s, _)| s.min[j]).fold(f64::INFINITY, f64::min);
        pooled.max[j] = parts.iter().map(|(s, _)| s.max[j]).fold(f64::NEG_INFINITY, f64::max);
    }
    Some(pooled)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DatasetError> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| DatasetError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn read_json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, DatasetError> {
    let text = read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| DatasetError::Format {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", n + 1),
            })
        })
        .collect()
}

fn read_text(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))
}

/// `root` joined with a template-filled relative path, refusing paths that leave `root`.
pub fn inside(root: &Path, relative: &str, template: &str) -> Result<PathBuf, DatasetError> {
    let relative_path = Path::new(relative);
    let escapes = relative_path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if escapes {
        return Err(DatasetError::Format {
            path: root.join("meta/info.json"),
            reason: format!("path template {template:?} gives {relative:?}, which leaves the dataset"),
        });
    }
    Ok(root.join(relative_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_like_python_format_strings() {
        let filled = fill_template(
            "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            &[
                ("video_key", TemplateValue::Text("observation.images.front")),
                ("chunk_index", TemplateValue::Int(2)),
                ("file_index", TemplateValue::Int(15)),
            ],
        );
        assert_eq!(
            filled.unwrap(),
            "videos/observation.images.front/chunk-002/file-015.mp4"
        );
        let v2 = fill_template(
            "episode_{episode_index:06d}.parquet",
            &[("episode_index", TemplateValue::Int(7))],
        );
        assert_eq!(v2.unwrap(), "episode_000007.parquet");
        assert!(fill_template("{unknown}", &[]).unwrap_err().contains("unknown"));
        assert!(fill_template("chunk-{chunk_index", &[]).is_err());
    }

    #[test]
    fn pooled_statistics_match_the_whole() {
        let stats = |mean: f64, std: f64| VectorStats {
            mean: vec![mean],
            std: vec![std],
            min: vec![mean - std],
            max: vec![mean + std],
        };
        // Two halves {0, 2} and {4, 6}: means 1 and 5, std 1 each; the whole has mean 3 and
        // variance (9 + 1 + 1 + 9) / 4 = 5.
        let pooled = pool(&[(stats(1.0, 1.0), 2.0), (stats(5.0, 1.0), 2.0)], 1).unwrap();
        assert_eq!(pooled.mean, vec![3.0]);
        assert!((pooled.std[0] - 5f64.sqrt()).abs() < 1e-12);
        assert_eq!((pooled.min[0], pooled.max[0]), (0.0, 6.0));
    }
}
