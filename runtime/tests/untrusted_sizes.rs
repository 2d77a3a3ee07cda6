//! Sizes and limits that come from outside never panic, loop without end or reserve memory
//! they name: a parquet footer's row counts are checked against the file before a row is
//! reserved, and a joint's limits whose ratios would make the safety envelope's braking
//! horizon overflow are refused by the robot file's validation, naming the joint and values,
//! while the envelope itself caps the horizon for limits that never went through it; a
//! configuration or robot file is read up to a bound, so naming /dev/zero is an error.

use std::path::Path;

use brainstem_runtime::cerebellum::motion::{JointEnvelope, JointLimits, JointState, Target};
use brainstem_runtime::offline::dataset::{Dataset, DatasetError};
use brainstem_runtime::robot::RobotDescription;
use brainstem_runtime::RuntimeConfig;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter};

use crate::common::scratch_copy;

const DATA_FILE: &str = "data/chunk-000/file-000.parquet";

fn metadata(path: &Path) -> ParquetMetaData {
    ParquetMetaDataReader::new()
        .parse_and_finish(&std::fs::File::open(path).unwrap())
        .unwrap()
}

/// Rewrites the footer of the parquet file at `path` with `edit` applied to its metadata (the
/// writer sums the row groups' counts into the file's).
fn refooter(path: &Path, edit: impl FnOnce(ParquetMetaData) -> ParquetMetaData) {
    let bytes = std::fs::read(path).unwrap();
    let footer_len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
    let body = &bytes[..bytes.len() - 8 - footer_len];
    let metadata = metadata(path);
    let mut out = body.to_vec();
    ParquetMetaDataWriter::new(&mut out, &edit(metadata)).finish().unwrap();
    std::fs::write(path, out).unwrap();
}

/// The metadata with the first row group's row count replaced.
fn with_group_rows(metadata: ParquetMetaData, rows: i64) -> ParquetMetaData {
    let mut groups = metadata.row_groups().to_vec();
    groups[0] = groups[0].clone().into_builder().set_num_rows(rows).build().unwrap();
    ParquetMetaData::new(metadata.file_metadata().clone(), groups)
}

/// Reads the first episode of a v3.0 dataset copy whose data file's footer `edit` rewrote.
fn first_episode_with(tag: &str, edit: impl FnOnce(ParquetMetaData) -> ParquetMetaData) -> DatasetError {
    let root = scratch_copy("v30-images", tag);
    refooter(&root.join(DATA_FILE), edit);
    let dataset = Dataset::open(&root).unwrap();
    let err = dataset.read_episode(0).err().expect("refused");
    std::fs::remove_dir_all(&root).unwrap();
    err
}

#[test]
fn a_rewritten_footer_still_reads() {
    // The rewriting itself keeps the file readable, so the refusals below are the counts'.
    let root = scratch_copy("v30-images", "refooter-same");
    refooter(&root.join(DATA_FILE), |metadata| metadata);
    let dataset = Dataset::open(&root).unwrap();
    assert!(!dataset.read_episode(0).unwrap().is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_footer_claiming_billions_of_rows_is_refused() {
    let reference = metadata(&crate::common::lerobot_reference("v30-images").join(DATA_FILE));
    let others: i64 = reference.row_groups()[1..].iter().map(|g| g.num_rows()).sum();
    let err = first_episode_with("footer-billions", |m| with_group_rows(m, 3_000_000_000));
    assert!(matches!(err, DatasetError::Format { .. }), "{err}");
    let message = err.to_string();
    let claim = format!(
        "the footer claims {} rows, more than the file's",
        3_000_000_000 + others
    );
    assert!(message.contains(&claim) && message.contains(DATA_FILE), "{message}");
}

#[test]
fn a_negative_row_count_is_refused() {
    let err = first_episode_with("footer-negative", |m| with_group_rows(m, -1_000_000));
    assert!(matches!(err, DatasetError::Format { .. }), "{err}");
    assert!(err.to_string().contains("the footer claims -"), "{err}");
}

#[test]
fn a_row_group_claiming_two_to_the_62_rows_is_refused() {
    let err = first_episode_with("group-huge", |m| with_group_rows(m, 1 << 62));
    assert!(err.to_string().contains("more than the file's"), "{err}");
}

fn robot_with(velocity: f64, acceleration: f64, jerk: f64) -> String {
    format!(
        r#"
        name = "arm"
        control_rate_hz = 1000.0
        [[joints]]
        name = "elbow"
        min_position = -1.0
        max_position = 1.0
        max_velocity = {velocity:e}
        max_acceleration = {acceleration:e}
        max_jerk = {jerk:e}
        "#
    )
}

#[test]
fn limits_whose_stop_would_never_end_are_refused_naming_joint_and_values() {
    // Within the magnitude bound, but a stop from top speed would take 1e12 s.
    let err = RobotDescription::from_toml(&robot_with(1e6, 1e-6, 1.0)).unwrap_err();
    let message = err.to_string();
    for part in ["joints[0].max_acceleration (elbow)", "1000000.0", "1e-6", "30 s"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    // The issue's two examples: each is refused, naming the joint and the value.
    let err = RobotDescription::from_toml(&robot_with(1e300, 20.0, 1e-300)).unwrap_err();
    assert!(err.to_string().contains("joints[0].max_velocity (elbow)"), "{err}");
    assert!(err.to_string().contains("1e300"), "{err}");
    let err = RobotDescription::from_toml(&robot_with(1e12, 1e-12, 400.0)).unwrap_err();
    assert!(err.to_string().contains("joints[0].max_velocity (elbow)"), "{err}");
    // The built-in humanoid's classes stop in well under the bound.
    RobotDescription::from_toml(&robot_with(3.0, 20.0, 400.0)).unwrap();
}

#[test]
fn the_envelope_caps_its_braking_horizon_for_unvalidated_limits() {
    for (velocity, acceleration, jerk) in [
        (1e300, 1e-300, 1e-300),
        (1e12, 1e-12, 400.0),
        (3.0, 20.0, f64::MIN_POSITIVE),
    ] {
        let limits = JointLimits {
            min_position: -1.0,
            max_position: 1.0,
            velocity,
            acceleration,
            jerk,
        };
        let envelope = JointEnvelope::new(limits, 1e-3);
        assert!(
            envelope.max_brake_steps() <= (1 << 23) + 16,
            "{limits:?}: {}",
            envelope.max_brake_steps()
        );
        let mut state = JointState::at_rest(0.0);
        for _ in 0..3 {
            state = envelope.track(state, &Target::at(0.5)).0;
            assert!(state.position.is_finite() && state.velocity.is_finite() && state.acceleration.is_finite());
        }
    }
}

#[test]
fn a_configuration_or_robot_file_that_never_ends_is_refused() {
    let endless = Path::new("/dev/zero");
    let robot = RobotDescription::from_file(endless).unwrap_err().to_string();
    assert!(robot.contains("larger than the 4194304 bytes"), "{robot}");
    let config = RuntimeConfig::from_file(endless).unwrap_err().to_string();
    assert!(config.contains("larger than the 4194304 bytes"), "{config}");
}
