//! Helpers shared by the runtime tests: the humanoid's left arm that FAST-driven tests use
//! (seven joints, as many as the reference FAST tokenizer's action dimensions), and that
//! tokenizer.

#![allow(dead_code)]

use brainstem_runtime::models::action::FastTokenizer;

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
