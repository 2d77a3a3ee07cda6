//! Offline evaluation through the real runtime on the reference datasets lerobot wrote:
//! every episode replayed, commands that start where the recording starts and stay inside
//! the robot, the same report twice, shards that merge into the whole, parity, and a bad
//! episode listed with its error while the others are evaluated.

use std::path::PathBuf;

use brainstem_runtime::offline::dataset::Dataset;
use brainstem_runtime::offline::eval::report::{EvalReport, Parity, Shard};
use brainstem_runtime::offline::eval::{dataset_config, Evaluator};

use crate::common::{lerobot_reference as reference, scratch_copy};

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn evaluate(dataset: &Dataset, positions: &[usize], shard: Option<Shard>) -> EvalReport {
    let config = dataset_config(dataset, &cache()).unwrap();
    let mut evaluator = Evaluator::new("demo", &config, dataset).unwrap();
    evaluator.evaluate(dataset, positions, shard, |_| {})
}

#[test]
fn every_episode_replays_inside_the_robot_from_where_it_started() {
    let dataset = Dataset::open(&reference("v30-images")).unwrap();
    let report = evaluate(&dataset, &[0, 1, 2], None);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.episodes.len(), 3);
    let config = dataset_config(&dataset, &cache()).unwrap();
    let robot = config.robot().unwrap();
    for (position, episode) in report.episodes.iter().enumerate() {
        let recorded = dataset.read_episode(position).unwrap();
        assert_eq!(episode.predicted.len(), recorded.len());
        assert_eq!(episode.timestamps[0], 0.0);
        for (j, joint) in robot.joints.iter().enumerate() {
            for row in &episode.predicted {
                assert!((joint.min_position..=joint.max_position).contains(&row[j]), "{row:?}");
            }
            // One frame period at the joint's speed limit from the recorded start at most.
            let start = f64::from(recorded.state.as_ref().unwrap()[0][j]);
            let reach = joint.max_velocity / dataset.info.fps;
            assert!((episode.predicted[0][j] - start).abs() <= reach + 1e-9, "joint {j}");
        }
        assert!(episode.latency["vla_chunk"].count() > 0);
        assert!(episode.stage_failures.is_empty(), "{:?}", episode.stage_failures);
    }
    let summary = report.summary();
    assert_eq!(summary.frames, 36);
    assert!(summary.mae.is_finite() && summary.mae > 0.0);
    assert!(summary.joints.iter().all(|j| j.mae_normalized.is_some()));
}

#[test]
fn shards_merge_into_the_report_of_the_whole() {
    let dataset = Dataset::open(&reference("v21-images")).unwrap();
    let whole = evaluate(&dataset, &[0, 1, 2], None);
    let first = evaluate(&dataset, &[0, 2], Some(Shard { index: 0, count: 2 }));
    let second = evaluate(&dataset, &[1], Some(Shard { index: 1, count: 2 }));
    let json = [second.to_json(), first.to_json()];
    let parts = json
        .iter()
        .map(|j| EvalReport::from_json(j, "shard").unwrap())
        .collect();
    let merged = EvalReport::merge(parts).unwrap();
    let strip = |report: &EvalReport| -> Vec<_> {
        report
            .episodes
            .iter()
            .map(|e| (e.episode, e.predicted.clone(), e.errors.clone(), e.latency.clone()))
            .collect()
    };
    assert_eq!(strip(&merged), strip(&whole));
    assert_eq!(merged.shards.len(), 2);
    let (a, b) = (merged.summary(), whole.summary());
    assert_eq!((a.mae, a.rmse, a.frames), (b.mae, b.rmse, b.frames));
    assert_eq!(a.stages, b.stages);
    let overlap = EvalReport::merge(vec![first.clone(), first]).unwrap_err().to_string();
    assert!(overlap.contains("in two of the reports"), "{overlap}");
    assert_eq!(Parity::of(&whole, &merged).max_abs, 0.0);
}

#[test]
fn quantized_weights_are_compared_with_float_ones_on_the_same_episodes() {
    let dataset = Dataset::open(&reference("v30-images")).unwrap();
    let float = evaluate(&dataset, &[0], None);
    let mut config = dataset_config(&dataset, &cache()).unwrap();
    config.models.quantize = Some("q4_0".into());
    let mut evaluator = Evaluator::new("demo q4_0", &config, &dataset).unwrap();
    let quantized = evaluator.evaluate(&dataset, &[0], None, |_| {});
    let parity = Parity::of(&float, &quantized);
    assert_eq!(parity.episodes, 1);
    assert!(parity.mae.is_finite());
    assert_eq!((parity.a.as_str(), parity.b.as_str()), ("demo", "demo q4_0"));
}

#[test]
fn a_bad_episode_is_listed_and_the_others_are_evaluated() {
    let copy = scratch_copy("v21-images", "eval-nan");
    std::fs::copy(
        reference("bad/nan-action.parquet"),
        copy.join("data/chunk-000/episode_000001.parquet"),
    )
    .unwrap();
    std::fs::remove_file(copy.join("data/chunk-000/episode_000002.parquet")).unwrap();
    let dataset = Dataset::open(&copy).unwrap();
    let report = evaluate(&dataset, &[0, 1, 2], None);
    assert_eq!(report.episodes.iter().map(|e| e.episode).collect::<Vec<_>>(), [0]);
    let failures: Vec<(u64, &str)> = report.failures.iter().map(|f| (f.episode, f.error.as_str())).collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures[0].0 == 1 && failures[0].1.contains("action[2] is NaN"),
        "{failures:?}"
    );
    assert!(
        failures[1].0 == 2 && failures[1].1.contains("episode_000002.parquet"),
        "{failures:?}"
    );
    assert_eq!(report.summary().failed, 2);
    let _ = std::fs::remove_dir_all(copy);
}
