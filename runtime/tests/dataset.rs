//! The LeRobotDataset reader against what lerobot 0.6.1 itself reads back from the datasets
//! tools/reference/lerobot_datasets.py wrote: every timestamp, state and action value, and
//! every frame's pixels (exactly for PNG, within the codec's error for AV1 video). Then bad
//! data, on copies: each fault is a clear error for its episode alone.

use std::path::{Path, PathBuf};

use brainstem_runtime::offline::dataset::{Dataset, DatasetError, Version};
use serde_json::Value;

use crate::common::{lerobot_reference, scratch_copy};

fn reference() -> PathBuf {
    lerobot_reference("")
}

fn expected(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(reference().join("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[name].as_array().unwrap().clone()
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// Checks every episode's rows against lerobot's reading; returns the dataset.
fn check_rows(name: &str, version: Version) -> Dataset {
    let dataset = Dataset::open(&reference().join(name)).unwrap();
    assert_eq!(dataset.version, version);
    let expected = expected(name);
    assert_eq!(dataset.episodes.len(), expected.len());
    for (position, want) in expected.iter().enumerate() {
        let episode = dataset.read_episode(position).unwrap();
        assert_eq!(episode.task(), want["task"].as_str().unwrap());
        assert_eq!(episode.timestamps.len(), want["timestamps"].as_array().unwrap().len());
        for (t, w) in episode.timestamps.iter().zip(floats(&want["timestamps"])) {
            assert!((t - w).abs() < 1e-6, "{name} episode {position}: timestamp {t} vs {w}");
        }
        let rows = |key: &str| want[key].as_array().unwrap().iter().map(floats).collect::<Vec<_>>();
        let state = episode.state.as_ref().unwrap();
        for (got, want) in [(&episode.action, rows("action")), (state, rows("state"))] {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                // float32 values, written by Python's json as doubles.
                let w: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                assert_eq!(g, &w, "{name} episode {position}");
            }
        }
    }
    dataset
}

/// Checks every frame's mean colour per channel against lerobot's within `tolerance` (lerobot
/// averages in float32), and below one level also the first pixels exactly.
fn check_frames(dataset: &Dataset, name: &str, tolerance: f64) {
    for (position, want) in expected(name).iter().enumerate() {
        let episode = dataset.read_episode(position).unwrap();
        let mut frames = episode.frames().unwrap();
        for (c, camera) in dataset.cameras.iter().enumerate() {
            let want = &want["cameras"][camera];
            for (f, mean) in want["mean_rgb"].as_array().unwrap().iter().enumerate() {
                let views = frames.views(f).unwrap();
                let image = &views[c];
                let pixels = image.pixels();
                let count = (pixels.len() / 3) as f64;
                for (channel, w) in floats(mean).iter().enumerate() {
                    let got = pixels
                        .iter()
                        .skip(channel)
                        .step_by(3)
                        .map(|&p| f64::from(p))
                        .sum::<f64>()
                        / count;
                    assert!(
                        (got - w).abs() <= tolerance,
                        "{name} ep {position} frame {f} ch {channel}: {got} vs {w}"
                    );
                }
                if f == 0 && tolerance < 1.0 {
                    let first = floats(&want["pixels"][0]);
                    let got: Vec<f64> = pixels[..3].iter().map(|&p| f64::from(p)).collect();
                    assert_eq!(got, first);
                }
            }
        }
    }
}

#[test]
fn v3_with_png_frames_reads_as_lerobot_wrote_it() {
    let dataset = check_rows("v30-images", Version::V3);
    assert_eq!(dataset.cameras, ["observation.images.front"]);
    assert_eq!(dataset.action_names().unwrap()[0], "shoulder_pan");
    let stats = dataset.action_stats.as_ref().unwrap();
    assert_eq!(stats.mean.len(), 6);
    check_frames(&dataset, "v30-images", 1e-3);
}

#[test]
fn v2_with_png_frames_reads_as_lerobot_converts_it() {
    let dataset = check_rows("v21-images", Version::V2);
    // v2.1 keeps statistics per episode; pooled, their extremes are the whole dataset's.
    let stats = dataset.action_stats.as_ref().unwrap();
    let all: Vec<f64> = expected("v21-images")
        .iter()
        .flat_map(|e| {
            e["action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[0].as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let min = all.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!((stats.min[0] - min).abs() < 1e-6, "{} vs {min}", stats.min[0]);
    check_frames(&dataset, "v21-images", 1e-3);
}

#[test]
fn the_mujoco_humanoid_episode_reads_whole() {
    let dataset = check_rows("humanoid", Version::V3);
    assert_eq!(dataset.action_len(), 21);
    assert_eq!(dataset.info.fps, 20.0);
    check_frames(&dataset, "humanoid", 1e-3);
}

#[test]
fn v3_with_video_reads_rows_and_frames_from_one_shared_file() {
    let dataset = check_rows("v30-video", Version::V3);
    let starts: Vec<f64> = dataset
        .episodes
        .iter()
        .map(|e| e.videos["observation.images.front"].1)
        .collect();
    assert_eq!(starts, [0.0, 1.2, 2.1]);
    let episode = dataset.read_episode(1).unwrap();
    match episode.frames() {
        // AV1 at lerobot's default CRF 30 moves flat colours by a few levels.
        Ok(_) => check_frames(&dataset, "v30-video", 4.0),
        Err(error) => {
            let video_compiled = cfg!(feature = "video");
            assert!(!video_compiled, "{error}");
            assert!(matches!(error, DatasetError::VideoNotCompiled { .. }), "{error}");
            assert!(error.to_string().contains("--features video"), "{error}");
        }
    }
}

fn episode_error(root: &Path, position: usize) -> String {
    let dataset = Dataset::open(root).unwrap();
    let error = dataset.read_episode(position).err().expect("the spoiled episode fails");
    for other in (0..dataset.episodes.len()).filter(|&p| p != position) {
        if dataset.version == Version::V2 {
            dataset.read_episode(other).unwrap();
        }
    }
    error.to_string()
}

#[test]
fn bad_data_is_a_clear_error_for_that_episode() {
    let v2 = scratch_copy("v21-images", "dataset-nan");
    std::fs::copy(
        reference().join("bad/nan-action.parquet"),
        v2.join("data/chunk-000/episode_000001.parquet"),
    )
    .unwrap();
    let nan = episode_error(&v2, 1);
    assert!(
        nan.contains("frame 3: action[2] is NaN") && nan.contains("episode_000001"),
        "{nan}"
    );

    let missing = scratch_copy("v21-images", "dataset-missing");
    std::fs::remove_file(missing.join("data/chunk-000/episode_000002.parquet")).unwrap();
    let gone = episode_error(&missing, 2);
    assert!(
        gone.contains("episode_000002.parquet") && gone.contains("No such file"),
        "{gone}"
    );

    let truncated = scratch_copy("v21-images", "dataset-truncated");
    let file = truncated.join("data/chunk-000/episode_000000.parquet");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let cut = episode_error(&truncated, 0);
    assert!(cut.contains("episode_000000.parquet"), "{cut}");

    let schema = scratch_copy("v30-images", "dataset-schema");
    let info = schema.join("meta/info.json");
    let text = std::fs::read_to_string(&info).unwrap();
    let wrong = text.replacen(
        "\"shape\": [\n                6\n            ]",
        "\"shape\": [\n                5\n            ]",
        2,
    );
    assert_ne!(text, wrong);
    std::fs::write(&info, wrong).unwrap();
    let disagree = episode_error(&schema, 0);
    assert!(
        disagree.contains("disagrees with meta/info.json")
            && disagree.contains("a list of 5 floats, found a list of 6"),
        "{disagree}"
    );

    for dir in [v2, missing, truncated, schema] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_dataset_without_its_metadata_says_which_file() {
    let missing = Dataset::open(Path::new("/nonexistent/dataset"))
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("/nonexistent/dataset/meta/info.json"), "{missing}");
    let old = scratch_copy("v30-images", "dataset-version");
    let info = old.join("meta/info.json");
    let text = std::fs::read_to_string(&info).unwrap().replace("\"v3.0\"", "\"v1.6\"");
    std::fs::write(&info, text).unwrap();
    let version = Dataset::open(&old).err().unwrap().to_string();
    assert!(version.contains("\"v1.6\" is not one this reads"), "{version}");
    let _ = std::fs::remove_dir_all(old);
}

/// Every truncation and many single-byte corruptions of a data file and of an episode table:
/// an error or (where the damage misses what is read) the episode, never a panic.
#[test]
fn damaged_parquet_files_never_panic() {
    let cases = [
        ("v21-images", "data/chunk-000/episode_000000.parquet"),
        ("v30-images", "meta/episodes/chunk-000/file-000.parquet"),
        ("v30-images", "data/chunk-000/file-000.parquet"),
    ];
    for (name, file) in cases {
        let copy = scratch_copy(name, &format!("dataset-damage-{}", name.len() + file.len()));
        let path = copy.join(file);
        let pristine = std::fs::read(&path).unwrap();
        let mut damaged: Vec<Vec<u8>> = (0..pristine.len())
            .step_by(97)
            .map(|n| pristine[..n].to_vec())
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = pristine.clone();
            let at = (state % bytes.len() as u64) as usize;
            bytes[at] = bytes[at].wrapping_add(1 + (state >> 32) as u8 % 255);
            damaged.push(bytes);
        }
        for bytes in damaged {
            std::fs::write(&path, &bytes).unwrap();
            let outcome = std::panic::catch_unwind(|| {
                let dataset = Dataset::open(&copy)?;
                let episode = dataset.read_episode(0)?;
                let mut frames = episode.frames()?;
                for frame in 0..episode.len() {
                    frames.views(frame)?;
                }
                Ok::<_, DatasetError>(())
            });
            assert!(
                outcome.is_ok(),
                "{name} {file}: a damaged file of {} bytes panicked",
                bytes.len()
            );
        }
        let _ = std::fs::remove_dir_all(copy);
    }
}
