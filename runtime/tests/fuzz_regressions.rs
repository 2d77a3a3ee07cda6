//! The inputs cargo-fuzz found crashing the runtime's readers (`fuzz/regressions/<target>/`,
//! minimized; docs/fuzzing.md says how each was found and fixed), replayed on the stable
//! toolchain: each must give `Ok` or a typed error, and a robot that validates must run
//! through its safety envelope with finite commands.

use std::path::PathBuf;

use brainstem_runtime::cerebellum::motion::{JointEnvelope, JointState, Target};
use brainstem_runtime::robot::RobotDescription;
use brainstem_runtime::RuntimeError;

/// Every file of `fuzz/regressions/<target>/`, which must hold at least one.
fn regressions(target: &str) -> Vec<(PathBuf, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            (path, text)
        })
        .collect()
}

#[test]
fn robot_toml_regressions_are_refused_or_run_finite() {
    for (path, text) in regressions("robot_toml") {
        match RobotDescription::from_toml(&text) {
            Ok(robot) => {
                let dt = 1.0 / robot.control_rate_hz;
                for joint in &robot.joints {
                    let envelope = JointEnvelope::new(joint.into(), dt);
                    let mut state = JointState::at_rest(joint.home());
                    for _ in 0..100 {
                        state = envelope.track(state, &Target::at(joint.max_position)).0;
                        assert!(state.position.is_finite(), "{}: {state:?}", path.display());
                    }
                }
            }
            Err(RuntimeError::Config { key, reason }) => {
                assert!(
                    key.starts_with("joints[") || key.starts_with("line "),
                    "{}: {key}: {reason}",
                    path.display()
                );
            }
            Err(other) => panic!("{}: not a configuration error: {other}", path.display()),
        }
    }
}

#[test]
fn the_brake_horizon_overflow_is_refused_naming_the_joint() {
    let (path, text) = regressions("robot_toml")
        .into_iter()
        .find(|(path, _)| path.ends_with("brake-horizon-overflow.toml"))
        .expect("the first finding");
    let err = RobotDescription::from_toml(&text).unwrap_err().to_string();
    assert!(
        err.contains("joints[0].max_velocity (sr)") && err.contains("1e63"),
        "{}: {err}",
        path.display()
    );
}
