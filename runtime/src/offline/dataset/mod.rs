//! Recorded robot episodes in LeRobotDataset format, v3.0 and v2.1 (the robot-learning
//! ecosystem's format): `meta/info.json` ([`info`]), the episode index (`meta/episodes/`
//! parquet files in v3.0, `meta/episodes.jsonl` in v2.1), the data parquet files ([`table`]:
//! one per episode in v2.1, many episodes per file in v3.0, located by
//! `dataset_from_index`/`dataset_to_index`), and camera frames ([`frames`]: PNG bytes in the
//! parquet, or MP4 video decoded with FFmpeg when the `video` feature is compiled in).
//!
//! Whatever the files hold, reading them gives a [`DatasetError`] that names the file and
//! says what was expected and what was found: a missing file, a schema that disagrees with
//! info.json, a NaN, a truncated parquet. An episode's error is that episode's alone.

pub mod frames;
pub mod info;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use frames::FrameReader;
pub use info::{Info, VectorStats, Version};

use info::{fill_template, inside, read_json_lines, read_stats, TemplateValue};
use table::Table;

pub const ACTION: &str = "action";
pub const STATE: &str = "observation.state";
/// The columns a v3.0 dataset's episode index is read from (`meta/episodes/*.parquet`).
pub const EPISODE_COLUMNS: [&str; 7] = [
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: disagrees with meta/info.json: {reason}")]
    Schema { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Value { path: PathBuf, reason: String },
    #[error("{path}: video frames need FFmpeg, and this build has none (build with `--features video`)")]
    VideoNotCompiled { path: PathBuf },
    #[error("{path}: {reason}")]
    Video { path: PathBuf, reason: String },
}

impl DatasetError {
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }
    }
}

/// Where one episode's rows and frames are.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeMeta {
    pub index: u64,
    pub tasks: Vec<String>,
    pub length: usize,
    pub data_file: PathBuf,
    /// The rows of `data_file` that are this episode's.
    pub rows: std::ops::Range<usize>,
    /// Per camera: the video file and where in it the episode starts, seconds.
    pub videos: BTreeMap<String, (PathBuf, f64)>,
}

/// One episode's recording, checked against info.json.
pub struct Episode {
    pub meta: EpisodeMeta,
    /// Seconds from the episode's start, one per frame.
    pub timestamps: Vec<f64>,
    pub state: Option<Vec<Vec<f32>>>,
    pub action: Vec<Vec<f32>>,
    cameras: Vec<frames::CameraSource>,
}

impl Episode {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The task the episode was recorded for (its first, when it has several).
    pub fn task(&self) -> &str {
        self.meta.tasks.first().map(String::as_str).unwrap_or("")
    }

    /// The camera frames, in frame order: one view per camera feature, in name order.
    pub fn frames(&self) -> Result<FrameReader<'_>, DatasetError> {
        FrameReader::open(&self.cameras, &self.timestamps)
    }
}

pub struct Dataset {
    pub root: PathBuf,
    pub info: Info,
    pub version: Version,
    pub episodes: Vec<EpisodeMeta>,
    /// Camera feature keys, in name order: a frame's views come in this order.
    pub cameras: Vec<String>,
    pub action_stats: Option<VectorStats>,
}

impl Dataset {
    pub fn open(root: &Path) -> Result<Self, DatasetError> {
        let (info, version) = Info::read(root)?;
        let action_len = info.vector_len(ACTION).ok_or_else(|| DatasetError::Format {
            path: root.join("meta/info.json"),
            reason: "needs an `action` feature of shape [joints]".into(),
        })?;
        let episodes = match version {
            Version::V3 => v3_episodes(root, &info)?,
            Version::V2 => v2_episodes(root, &info)?,
        };
        Ok(Self {
            root: root.to_path_buf(),
            cameras: info.cameras(),
            action_stats: read_stats(root, ACTION, action_len)?,
            info,
            version,
            episodes,
        })
    }

    pub fn action_len(&self) -> usize {
        self.info.vector_len(ACTION).unwrap_or(0)
    }

    /// The names of the action's entries, when info.json gives them.
    pub fn action_names(&self) -> Option<Vec<String>> {
        self.info.features.get(ACTION)?.entry_names()
    }

    /// Reads episode `position` (in the episode index's order), checking every row.
    pub fn read_episode(&self, position: usize) -> Result<Episode, DatasetError> {
        let meta = self
            .episodes
            .get(position)
            .cloned()
            .ok_or_else(|| DatasetError::Format {
                path: self.root.clone(),
                reason: format!("no episode at position {position}; there are {}", self.episodes.len()),
            })?;
        let state_len = self.info.vector_len(STATE);
        let mut columns = vec!["timestamp", "episode_index", ACTION];
        if state_len.is_some() {
            columns.push(STATE);
        }
        let image_columns: Vec<&str> = self
            .cameras
            .iter()
            .filter(|c| self.info.features[*c].dtype == "image")
            .map(String::as_str)
            .collect();
        columns.extend(&image_columns);
        let table = Table::read(&meta.data_file, &columns, &[], Some(meta.rows.clone()))?;
        if table.is_empty() {
            return Err(DatasetError::Value {
                path: meta.data_file.clone(),
                reason: format!("episode {} has no frames", meta.index),
            });
        }
        let mut episode = Episode {
            timestamps: Vec::with_capacity(table.len()),
            state: state_len.map(|_| Vec::with_capacity(table.len())),
            action: Vec::with_capacity(table.len()),
            cameras: Vec::new(),
            meta,
        };
        for row in 0..table.len() {
            self.read_row(&table, row, &mut episode)?;
        }
        episode.cameras = self.camera_sources(&table, &episode.meta)?;
        Ok(episode)
    }

    fn read_row(&self, table: &Table, row: usize, episode: &mut Episode) -> Result<(), DatasetError> {
        let value_error = |reason: String| DatasetError::Value {
            path: table.path.clone(),
            reason,
        };
        let index = table.int(row, 1)?;
        if index != episode.meta.index as i64 {
            return Err(value_error(format!(
                "row {} belongs to episode {index}, expected episode {}",
                episode.meta.rows.start + row,
                episode.meta.index
            )));
        }
        let timestamp = table.float(row, 0)?;
        if !timestamp.is_finite() || episode.timestamps.last().is_some_and(|&t| timestamp <= t) {
            return Err(value_error(format!(
                "frame {row}'s timestamp {timestamp} does not follow {:?}",
                episode.timestamps.last()
            )));
        }
        episode.timestamps.push(timestamp);
        let action = table.vector(row, 2, self.action_len())?;
        check_finite(&action, ACTION, row).map_err(value_error)?;
        episode.action.push(action);
        if let (Some(states), Some(len)) = (episode.state.as_mut(), self.info.vector_len(STATE)) {
            let state = table.vector(row, 3, len)?;
            check_finite(&state, STATE, row).map_err(value_error)?;
            states.push(state);
        }
        Ok(())
    }

    fn camera_sources(&self, table: &Table, meta: &EpisodeMeta) -> Result<Vec<frames::CameraSource>, DatasetError> {
        let first_image_column = table.columns.iter().position(|c| self.cameras.contains(c));
        let mut image_column = first_image_column.unwrap_or(0);
        self.cameras
            .iter()
            .map(|key| {
                if self.info.features[key].dtype == "image" {
                    let column = image_column;
                    image_column += 1;
                    let frames = (0..table.len())
                        .map(|row| table.image_bytes(row, column))
                        .collect::<Result<_, _>>()?;
                    Ok(frames::CameraSource::Png {
                        path: table.path.clone(),
                        frames,
                    })
                } else {
                    let (path, start) = meta.videos.get(key).cloned().ok_or_else(|| DatasetError::Format {
                        path: self.root.join("meta"),
                        reason: format!("episode {} has no video file for `{key}`", meta.index),
                    })?;
                    Ok(frames::CameraSource::Video { path, start })
                }
            })
            .collect()
    }
}

fn check_finite(values: &[f32], what: &str, row: usize) -> Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(j) => Err(format!("frame {row}: {what}[{j}] is {}", values[j])),
        None => Ok(()),
    }
}

/// v2.1: `meta/episodes.jsonl`, one data file per episode, one video file per episode and
/// camera.
fn v2_episodes(root: &Path, info: &Info) -> Result<Vec<EpisodeMeta>, DatasetError> {
    #[derive(Deserialize)]
    struct Line {
        episode_index: u64,
        #[serde(default)]
        tasks: Vec<String>,
        length: usize,
    }
    let lines: Vec<Line> = read_json_lines(&root.join("meta/episodes.jsonl"))?;
    let chunk_size = info.chunks_size.unwrap_or(1000).max(1);
    lines
        .into_iter()
        .map(|line| {
            let chunk = line.episode_index / chunk_size;
            let data_file = templated(root, &info.data_path, &v2_values(chunk, line.episode_index, None))?;
            let mut videos = BTreeMap::new();
            for camera in info.cameras().iter().filter(|c| info.features[*c].dtype == "video") {
                let values = v2_values(chunk, line.episode_index, Some(camera));
                let path = templated(root, video_template(root, info)?, &values)?;
                videos.insert(camera.clone(), (path, 0.0));
            }
            Ok(EpisodeMeta {
                index: line.episode_index,
                tasks: line.tasks,
                length: line.length,
                data_file,
                rows: 0..line.length,
                videos,
            })
        })
        .collect()
}

fn v2_values(chunk: u64, episode: u64, camera: Option<&str>) -> Vec<(&'static str, TemplateValue<'_>)> {
    let mut values = vec![
        ("episode_chunk", TemplateValue::Int(chunk)),
        ("episode_index", TemplateValue::Int(episode)),
    ];
    if let Some(camera) = camera {
        values.push(("video_key", TemplateValue::Text(camera)));
    }
    values
}

/// v3.0: the episode tables under `meta/episodes/`, in file order.
fn v3_episodes(root: &Path, info: &Info) -> Result<Vec<EpisodeMeta>, DatasetError> {
    let cameras: Vec<String> = info
        .cameras()
        .into_iter()
        .filter(|c| info.features[c].dtype == "video")
        .collect();
    let mut columns: Vec<String> = EPISODE_COLUMNS.map(String::from).to_vec();
    for camera in &cameras {
        for field in ["chunk_index", "file_index", "from_timestamp"] {
            columns.push(format!("videos/{camera}/{field}"));
        }
    }
    let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut episodes = Vec::new();
    for file in episode_tables(&root.join("meta/episodes"))? {
        let table = Table::read(&file, &column_refs, &[], None)?;
        for row in 0..table.len() {
            episodes.push(table_episode(root, info, &table, row, &cameras)?);
        }
    }
    // Rows of a data file are numbered from the first episode stored in it.
    let mut first_row: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for episode in &episodes {
        let first = first_row.entry(episode.data_file.clone()).or_insert(usize::MAX);
        *first = (*first).min(episode.rows.start);
    }
    for episode in &mut episodes {
        let base = first_row[&episode.data_file];
        episode.rows = episode.rows.start - base..episode.rows.end - base;
    }
    Ok(episodes)
}

fn table_episode(
    root: &Path,
    info: &Info,
    table: &Table,
    row: usize,
    cameras: &[String],
) -> Result<EpisodeMeta, DatasetError> {
    let index = table.index(row, 0)? as u64;
    let (from, to) = (table.index(row, 5)?, table.index(row, 6)?);
    let length = table.index(row, 2)?;
    if to < from || to - from != length {
        return Err(DatasetError::Value {
            path: table.path.clone(),
            reason: format!("episode {index}: rows {from}..{to} disagree with its length {length}"),
        });
    }
    let file_values = |chunk: usize, file: usize| {
        vec![
            ("chunk_index", TemplateValue::Int(chunk as u64)),
            ("file_index", TemplateValue::Int(file as u64)),
        ]
    };
    let data_file = templated(
        root,
        &info.data_path,
        &file_values(table.index(row, 3)?, table.index(row, 4)?),
    )?;
    let mut videos = BTreeMap::new();
    for (c, camera) in cameras.iter().enumerate() {
        let at = 7 + 3 * c;
        let mut values = file_values(table.index(row, at)?, table.index(row, at + 1)?);
        values.push(("video_key", TemplateValue::Text(camera)));
        let path = templated(root, video_template(root, info)?, &values)?;
        videos.insert(camera.clone(), (path, table.float(row, at + 2)?));
    }
    Ok(EpisodeMeta {
        index,
        tasks: table.strings(row, 1)?,
        length,
        data_file,
        rows: from..to,
        videos,
    })
}

fn video_template<'a>(root: &Path, info: &'a Info) -> Result<&'a str, DatasetError> {
    info.video_path.as_deref().ok_or_else(|| DatasetError::Format {
        path: root.join("meta/info.json"),
        reason: "a video feature needs `video_path`".into(),
    })
}

fn templated(root: &Path, template: &str, values: &[(&str, TemplateValue)]) -> Result<PathBuf, DatasetError> {
    let relative = fill_template(template, values).map_err(|reason| DatasetError::Format {
        path: root.join("meta/info.json"),
        reason,
    })?;
    inside(root, &relative, template)
}

/// The parquet files under `dir`, sorted by path (chunk, then file).
fn episode_tables(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = Vec::new();
    let chunks = std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))?;
    for chunk in chunks {
        let chunk = chunk.map_err(|e| DatasetError::io(dir, e))?.path();
        if !chunk.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&chunk).map_err(|e| DatasetError::io(&chunk, e))? {
            let file = file.map_err(|e| DatasetError::io(&chunk, e))?.path();
            if file.extension().is_some_and(|e| e == "parquet") {
                files.push(file);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::Format {
            path: dir.to_path_buf(),
            reason: "no episode tables (chunk-*/file-*.parquet)".into(),
        });
    }
    Ok(files)
}
