//! What each fuzz target does with its input: hand the bytes to one of brainstem's readers of
//! outside files and use whatever the reader accepts the way the runtime would, so a panic,
//! an out-of-bounds read, an unbounded allocation or an endless loop anywhere on that path is
//! a crash libFuzzer reports. A reader's `Err` is a good answer; only a panic is a finding.
//!
//! The targets in `fuzz_targets/` are one line each, calling these functions. The stable
//! regression tests (`models/tests/fuzz_regressions.rs`, `runtime/tests/fuzz_regressions.rs`)
//! feed the committed crashing inputs under `fuzz/regressions/` to the same readers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use brainstem_models::smolvla::{Processors, SmolVlaConfig};
use brainstem_models::WeightFile;
use brainstem_runtime::cerebellum::motion::{JointEnvelope, JointState, Target};
use brainstem_runtime::offline::dataset::table::Table;
use brainstem_runtime::offline::dataset::{Dataset, EPISODE_COLUMNS};
use brainstem_runtime::robot::RobotDescription;
use brainstem_runtime::RuntimeConfig;

/// The repository's reference fixtures (tools/reference/out).
fn reference(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/out")
        .join(relative)
}

/// A scratch folder of this process's, made once.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("brainstem-fuzz-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a scratch folder");
    for entry in std::fs::read_dir(from).expect("a reference folder") {
        let path = entry.expect("a reference entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("a copied fixture");
        }
    }
}

/// Opens `bytes` as a weight file named `name` (its extension picks GGUF or safetensors when
/// the magic does not) and converts every tensor the file lists.
pub fn weights(name: &str, bytes: &[u8]) {
    let Ok(file) = WeightFile::from_bytes(Path::new(name), bytes.to_vec()) else {
        return;
    };
    if let Some(metadata) = file.gguf_metadata() {
        for key in metadata.map.keys() {
            let _ = metadata.strings(key);
            let _ = metadata.u64_opt(key);
            let _ = metadata.f32_opt(key);
        }
    }
    for entry in file.listing() {
        if let Ok(weight) = file.tensor(&entry.name) {
            let values = weight.to_f32().expect("a validated tensor converts");
            assert_eq!(values.len(), weight.elems());
        }
    }
}

/// A copy of the reference v3.0 image dataset whose one data file is replaced by each input.
fn image_dataset() -> &'static Path {
    static DATASET: OnceLock<PathBuf> = OnceLock::new();
    DATASET.get_or_init(|| {
        let root = scratch("dataset");
        copy_dir(&reference("lerobot/v30-images"), &root);
        root
    })
}

/// `bytes` as a parquet file: read as an episode table, then as the data file of a v3.0
/// dataset whose every episode, row and PNG frame is read back.
pub fn parquet_episode(bytes: &[u8]) {
    let root = image_dataset();
    let data = root.join("data/chunk-000/file-000.parquet");
    std::fs::write(&data, bytes).expect("the data file written");
    if let Ok(table) = Table::read(&data, &EPISODE_COLUMNS, &[], None) {
        for row in 0..table.len() {
            let _ = table.index(row, 0);
            let _ = table.strings(row, 1);
            let _ = table.float(row, 2);
        }
    }
    let dataset = Dataset::open(root).expect("the reference metadata opens");
    for position in 0..dataset.episodes.len() {
        let Ok(episode) = dataset.read_episode(position) else {
            continue;
        };
        let Ok(mut frames) = episode.frames() else {
            continue;
        };
        for frame in 0..episode.len() {
            let _ = frames.views(frame);
        }
    }
}

/// Drives every joint of a robot that validated through its safety envelope for a second's
/// worth of ticks toward a target past its upper limit and back: every state must stay finite.
fn drive(robot: &RobotDescription) {
    let dt = 1.0 / robot.control_rate_hz;
    let ticks = robot.control_rate_hz.min(200.0) as usize;
    for joint in &robot.joints {
        let envelope = JointEnvelope::new(joint.into(), dt);
        let mut state = JointState::at_rest(joint.home());
        let span = joint.max_position - joint.min_position;
        for tick in 0..ticks {
            let goal = if tick < ticks / 2 {
                joint.max_position + span
            } else {
                joint.min_position
            };
            state = envelope.track(state, &Target::at(goal)).0;
            assert!(
                state.position.is_finite() && state.velocity.is_finite() && state.acceleration.is_finite(),
                "{}: {state:?}",
                joint.name
            );
        }
    }
}

/// `bytes` as a robot description's TOML; a robot that validates is driven.
pub fn robot_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(robot) = RobotDescription::from_toml(text) {
        drive(&robot);
    }
}

/// `bytes` as the runtime's TOML configuration; one that validates yields its robot (inline,
/// built in, or a file that the fuzzer cannot name into existence) and compute layout.
pub fn runtime_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(config) = RuntimeConfig::from_toml(text) else {
        return;
    };
    let _ = config.chunk_period_ns();
    let _ = config.compute();
    if let Ok(robot) = config.robot() {
        drive(&robot);
    }
}

/// A policy folder whose stats files are the reference two-camera policy's.
fn policy_folder() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let dir = scratch("policy");
        let source = reference("smolvla/two-cameras");
        for entry in std::fs::read_dir(&source).expect("the reference policy") {
            let path = entry.expect("a reference entry").path();
            if path.extension().is_some_and(|e| e == "safetensors")
                && path.file_name() != Some("model.safetensors".as_ref())
            {
                std::fs::copy(&path, dir.join(path.file_name().expect("a file name"))).expect("a copied stats file");
            }
        }
        dir
    })
}

/// `bytes` as a policy folder's three JSON texts separated by NUL bytes (which JSON text
/// cannot hold): `config.json`, `policy_preprocessor.json`, `policy_postprocessor.json`.
/// A config that parses is read with the processors.
pub fn policy_json(bytes: &[u8]) {
    let mut parts = bytes.split(|&b| b == 0);
    let config = parts.next().unwrap_or_default();
    let Ok(text) = std::str::from_utf8(config) else {
        return;
    };
    let dir = policy_folder();
    let Ok(cfg) = SmolVlaConfig::from_json(text, &dir.join("config.json")) else {
        return;
    };
    let pre = parts.next().unwrap_or_default();
    let post = parts.next().unwrap_or_default();
    std::fs::write(dir.join("policy_preprocessor.json"), pre).expect("the preprocessor written");
    std::fs::write(dir.join("policy_postprocessor.json"), post).expect("the postprocessor written");
    if let Ok(processors) = Processors::load(dir, &cfg.processor_expectations()) {
        let mut state = vec![0.5; cfg.state_dim];
        processors.state.normalize(&mut state);
        let mut action = vec![0.5; cfg.action_dim];
        processors.action.unnormalize(&mut action);
    }
}
