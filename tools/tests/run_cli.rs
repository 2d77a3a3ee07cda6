//! `brainstem run` on a configuration whose motion decoder follows a measured robot: the
//! command line plays the robot (its last command is its measured state), the robot moves, and
//! frames stamped as captured long before they are pushed stop the cerebellum, reported.

mod common;

use common::brainstem;
use std::path::Path;

use brainstem_runtime::demo::{demo_checkpoint, DEMO_ARM};

#[test]
fn a_measured_robot_moves_and_is_held_while_its_camera_is_late() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-cli-measured");
    std::fs::create_dir_all(&cache).unwrap();
    let vlm = demo_checkpoint(&cache).unwrap();
    let joints: Vec<String> = DEMO_ARM.iter().map(|j| format!("{j:?}")).collect();
    let config = cache.join("measured.toml");
    let text = format!(
        "[models]\nvlm = {:?}\n\n[policy]\njoints = [{}]\nrate_hz = 50.0\nchunk_steps = 10\nactions = \"bins\"\n\n\
         [motion]\nstate = \"measured\"\nmax_state_age_ms = 500\n",
        vlm.display().to_string(),
        joints.join(", ")
    );
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let fresh = brainstem(&["run", "--config", &config, "--seconds", "3"]);
    assert!(
        fresh.contains("reports its last command as its measured state"),
        "{fresh}"
    );
    assert!(fresh.contains("chunks_completed"), "{fresh}");
    let late = brainstem(&[
        "run",
        "--config",
        &config,
        "--seconds",
        "3",
        "--camera-latency-ms",
        "60000",
    ]);
    // Frames captured a minute before they arrive: fresh only while the clock is younger than
    // the frame age limit (capture times do not go below the clock's start), then stale for good.
    assert!(late.contains("camera is stale"), "{late}");
    assert!(!late.contains("inputs fresh again"), "{late}");
}
