//! Helpers shared by the runtime tests: a joint of given limits; the humanoid's left arm that FAST-driven tests use
//! (seven joints, as many as the reference FAST tokenizer's action dimensions), and that
//! tokenizer; the reference LeRobotDatasets, and scratch copies of them to spoil.

#![allow(dead_code)]

use brainstem_runtime::models::action::FastTokenizer;
use brainstem_runtime::robot::JointSpec;

/// A joint with its range, speed, acceleration and jerk limits, resting mid-range.
pub fn joint(name: &str, range: (f64, f64), velocity: f64, acceleration: f64, jerk: f64) -> JointSpec {
    JointSpec {
        name: name.into(),
        min_position: range.0,
        max_position: range.1,
        max_velocity: velocity,
        max_acceleration: acceleration,
        max_jerk: jerk,
        home: None,
        max_tracking_error: None,
    }
}

/// Seven joints of the built-in humanoid, one per dimension of the reference FAST tokenizer.
pub const HUMANOID_ARM: [&str; 7] = [
    "left_shoulder_pitch",
    "left_shoulder_roll",
    "left_shoulder_yaw",
    "left_elbow",
    "left_wrist_yaw",
    "left_wrist_pitch",
    "left_index_0",
];

/// The FAST tokenizer tools/reference/action_reference.py fitted with lerobot (16 steps x 7).
pub fn fast_tokenizer() -> FastTokenizer {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/out/fast-tokenizer");
    FastTokenizer::from_dir(&dir, None).expect("the committed FAST tokenizer")
}

/// A reference dataset tools/reference/lerobot_datasets.py wrote (or a file beside them).
pub fn lerobot_reference(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/out/lerobot")
        .join(name)
}

/// A fresh copy of reference dataset `name` under the temporary directory, to spoil.
pub fn scratch_copy(name: &str, tag: &str) -> std::path::PathBuf {
    let target = std::env::temp_dir().join(format!("brainstem-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&target);
    copy_dir(&lerobot_reference(name), &target);
    target
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
