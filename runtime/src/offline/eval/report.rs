//! An evaluation's report: each episode's sums and trajectories, the episodes that could not
//! be evaluated and why, the overall summary computed from the sums, shard merging, and the
//! parity of two configurations on the same episodes. JSON both ways, so shards evaluated on
//! different machines merge into the report one machine would have written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::metrics::{joint_errors, normalizer, ErrorSums, JerkSums, Latencies};
use crate::cerebellum::motion::InterventionCounts;
use crate::error::{Result, RuntimeError};
use crate::offline::dataset::VectorStats;

/// One evaluated episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeResult {
    pub episode: u64,
    pub task: String,
    /// Seconds from the episode's start, one per frame.
    pub timestamps: Vec<f64>,
    /// The motion decoder's command at the end of each frame's period, per action joint.
    pub predicted: Vec<Vec<f64>>,
    /// The recorded action of each frame.
    pub recorded: Vec<Vec<f64>>,
    pub errors: Vec<ErrorSums>,
    pub jerk_predicted: JerkSums,
    pub jerk_recorded: JerkSums,
    /// Per stage (`vla_chunk`, `vla_first_action`, ...): latency on the virtual clock.
    pub latency: BTreeMap<String, Latencies>,
    pub interventions: BTreeMap<String, u64>,
    /// Model stages that failed during the episode, with their messages.
    pub stage_failures: Vec<String>,
    /// Host seconds the episode took to evaluate, of which reading and decoding its frames.
    pub wall_seconds: f64,
    pub read_seconds: f64,
}

impl EpisodeResult {
    /// Builds the sums from the trajectories.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        episode: u64,
        task: String,
        timestamps: Vec<f64>,
        predicted: Vec<Vec<f64>>,
        recorded: Vec<Vec<f64>>,
        fps: f64,
        latency: BTreeMap<String, Latencies>,
        interventions: InterventionCounts,
    ) -> Self {
        Self {
            errors: joint_errors(&predicted, &recorded),
            jerk_predicted: JerkSums::of(&predicted, fps),
            jerk_recorded: JerkSums::of(&recorded, fps),
            episode,
            task,
            timestamps,
            predicted,
            recorded,
            latency,
            interventions: interventions
                .entries()
                .into_iter()
                .map(|(name, count)| (name.to_string(), count))
                .collect(),
            stage_failures: Vec::new(),
            wall_seconds: 0.0,
            read_seconds: 0.0,
        }
    }
}

/// The motion decoder's count of chunks it scheduled: reported beside its interventions,
/// not one of them.
pub const CHUNKS_COMPLETED: &str = "chunks_completed";

impl EpisodeResult {
    /// Mean absolute error over every joint and frame.
    pub fn mae(&self) -> f64 {
        let abs: f64 = self.errors.iter().map(|s| s.abs).sum();
        abs / (self.timestamps.len() * self.errors.len()).max(1) as f64
    }

    /// The motion decoder's interventions of every kind, together.
    pub fn interventions_total(&self) -> u64 {
        self.interventions
            .iter()
            .filter(|(name, _)| *name != CHUNKS_COMPLETED)
            .map(|(_, count)| count)
            .sum()
    }
}

/// An episode that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeFailure {
    pub episode: u64,
    pub error: String,
}

/// Which part of the episode list a report covers: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub dataset: String,
    pub codebase_version: String,
    pub fps: f64,
    /// What was evaluated: the configuration's name.
    pub config: String,
    pub joints: Vec<String>,
    /// The dataset's action statistics, for normalised errors.
    pub action_mean: Option<Vec<f64>>,
    pub action_std: Option<Vec<f64>>,
    pub action_min: Option<Vec<f64>>,
    pub action_max: Option<Vec<f64>>,
    pub shards: Vec<Shard>,
    pub episodes: Vec<EpisodeResult>,
    pub failures: Vec<EpisodeFailure>,
}

/// One joint's overall errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JointSummary {
    pub joint: String,
    pub mae: f64,
    pub rmse: f64,
    pub max_abs: f64,
    /// The same, divided by the dataset's standard deviation of the joint's action.
    pub mae_normalized: Option<f64>,
    pub rmse_normalized: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub deadline_misses: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub episodes: usize,
    pub failed: usize,
    pub frames: u64,
    pub joints: Vec<JointSummary>,
    pub mae: f64,
    pub rmse: f64,
    pub mae_normalized: Option<f64>,
    pub jerk_rms_predicted: f64,
    pub jerk_rms_recorded: f64,
    pub stages: Vec<StageSummary>,
    pub interventions: BTreeMap<String, u64>,
    pub stage_failures: usize,
    pub wall_seconds: f64,
    pub read_seconds: f64,
    pub episodes_per_second: f64,
}

impl EvalReport {
    pub fn stats(&self) -> Option<VectorStats> {
        Some(VectorStats {
            mean: self.action_mean.clone()?,
            std: self.action_std.clone()?,
            min: self.action_min.clone()?,
            max: self.action_max.clone()?,
        })
    }

    pub fn summary(&self) -> Summary {
        let stats = self.stats();
        let mut errors = vec![ErrorSums::default(); self.joints.len()];
        let (mut jerk_p, mut jerk_r) = (JerkSums::default(), JerkSums::default());
        let mut latency: BTreeMap<String, Latencies> = BTreeMap::new();
        let mut interventions: BTreeMap<String, u64> = BTreeMap::new();
        for episode in &self.episodes {
            for (sum, part) in errors.iter_mut().zip(&episode.errors) {
                sum.merge(part);
            }
            jerk_p.merge(&episode.jerk_predicted);
            jerk_r.merge(&episode.jerk_recorded);
            for (stage, part) in &episode.latency {
                latency.entry(stage.clone()).or_default().merge(part);
            }
            for (name, count) in &episode.interventions {
                *interventions.entry(name.clone()).or_default() += count;
            }
        }
        let joints = joint_summaries(&self.joints, &errors, stats.as_ref());
        let mut all = ErrorSums::default();
        errors.iter().for_each(|e| all.merge(e));
        let normalized: Option<Vec<f64>> = joints.iter().map(|j| j.mae_normalized).collect();
        let wall: f64 = self.episodes.iter().map(|e| e.wall_seconds).sum();
        Summary {
            episodes: self.episodes.len(),
            failed: self.failures.len(),
            frames: errors.first().map_or(0, |e| e.frames),
            mae: all.mae(),
            rmse: all.rmse(),
            mae_normalized: normalized.map(|n| n.iter().sum::<f64>() / n.len().max(1) as f64),
            joints,
            jerk_rms_predicted: jerk_p.rms(),
            jerk_rms_recorded: jerk_r.rms(),
            stages: latency
                .iter()
                .map(|(stage, l)| StageSummary {
                    stage: stage.clone(),
                    count: l.count(),
                    p50_ms: l.quantile(0.5),
                    p99_ms: l.quantile(0.99),
                    max_ms: l.quantile(1.0),
                    deadline_misses: l.deadline_misses,
                })
                .collect(),
            interventions,
            stage_failures: self.episodes.iter().map(|e| e.stage_failures.len()).sum(),
            wall_seconds: wall,
            read_seconds: self.episodes.iter().map(|e| e.read_seconds).sum(),
            episodes_per_second: self.episodes.len() as f64 / wall.max(1e-9),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A report read back, checked to be whole: every episode has a row of every joint per
    /// frame, and sums for every joint.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let report: Self = serde_json::from_str(text)
            .map_err(|e| RuntimeError::config(origin, format!("not an evaluation report: {e}")))?;
        let joints = report.joints.len();
        for episode in &report.episodes {
            let frames = episode.timestamps.len();
            let rows_fit = |rows: &[Vec<f64>]| rows.len() == frames && rows.iter().all(|r| r.len() == joints);
            if !(rows_fit(&episode.predicted) && rows_fit(&episode.recorded) && episode.errors.len() == joints) {
                return Err(RuntimeError::config(
                    origin,
                    format!(
                        "episode {} does not have {joints} joints in each of its {frames} frames",
                        episode.episode
                    ),
                ));
            }
        }
        Ok(report)
    }

    /// Shards of one evaluation merged into one report, episodes in episode order. The shards
    /// must come from the same dataset and configuration and not overlap.
    pub fn merge(mut parts: Vec<Self>) -> Result<Self> {
        let Some(mut merged) = parts.first().cloned() else {
            return Err(RuntimeError::config("merge", "no reports to merge"));
        };
        merged.episodes.clear();
        merged.failures.clear();
        merged.shards.clear();
        let mut seen = BTreeSet::new();
        for (i, part) in parts.iter_mut().enumerate() {
            let same = part.dataset == merged.dataset && part.config == merged.config && part.joints == merged.joints;
            if !same {
                return Err(RuntimeError::config(
                    format!("report {i}"),
                    format!(
                        "evaluates {} with {}, the first evaluates {} with {}",
                        part.dataset, part.config, merged.dataset, merged.config
                    ),
                ));
            }
            let episodes = part.episodes.iter().map(|e| e.episode);
            for episode in episodes.chain(part.failures.iter().map(|f| f.episode)) {
                if !seen.insert(episode) {
                    return Err(RuntimeError::config(
                        format!("report {i}"),
                        format!("episode {episode} is in two of the reports"),
                    ));
                }
            }
            merged.episodes.append(&mut part.episodes);
            merged.failures.append(&mut part.failures);
            merged.shards.append(&mut part.shards);
        }
        merged.episodes.sort_by_key(|e| e.episode);
        merged.failures.sort_by_key(|f| f.episode);
        merged.shards.sort_by_key(|s| s.index);
        Ok(merged)
    }
}

/// How far configuration B's commands are from configuration A's on the episodes both
/// evaluated (f32 against quantized, one placement against another, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parity {
    pub a: String,
    pub b: String,
    pub episodes: usize,
    pub joints: Vec<JointSummary>,
    pub mae: f64,
    pub max_abs: f64,
}

impl Parity {
    pub fn of(a: &EvalReport, b: &EvalReport) -> Self {
        let stats = a.stats();
        let mut errors = vec![ErrorSums::default(); a.joints.len()];
        let mut episodes = 0;
        for ea in &a.episodes {
            let Some(eb) = b.episodes.iter().find(|e| e.episode == ea.episode) else {
                continue;
            };
            episodes += 1;
            for (sum, part) in errors.iter_mut().zip(joint_errors(&eb.predicted, &ea.predicted)) {
                sum.merge(&part);
            }
        }
        let mut all = ErrorSums::default();
        errors.iter().for_each(|e| all.merge(e));
        Self {
            a: a.config.clone(),
            b: b.config.clone(),
            episodes,
            joints: joint_summaries(&a.joints, &errors, stats.as_ref()),
            mae: all.mae(),
            max_abs: all.max_abs,
        }
    }
}

fn joint_summaries(names: &[String], errors: &[ErrorSums], stats: Option<&VectorStats>) -> Vec<JointSummary> {
    names
        .iter()
        .zip(errors)
        .enumerate()
        .map(|(j, (name, sum))| {
            let scale = normalizer(stats, j);
            JointSummary {
                joint: name.clone(),
                mae: sum.mae(),
                rmse: sum.rmse(),
                max_abs: sum.max_abs,
                mae_normalized: scale.map(|s| sum.mae() / s),
                rmse_normalized: scale.map(|s| sum.rmse() / s),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_ragged_rows_is_refused() {
        let episode = EpisodeResult::new(
            3,
            "task".into(),
            vec![0.0, 0.1],
            vec![vec![0.0, 1.0], vec![0.5, 1.0]],
            vec![vec![0.0, 1.0], vec![0.0, 1.0]],
            10.0,
            BTreeMap::new(),
            InterventionCounts::default(),
        );
        let mut report = EvalReport {
            dataset: "d".into(),
            codebase_version: "v3.0".into(),
            fps: 10.0,
            config: "c".into(),
            joints: vec!["a".into(), "b".into()],
            action_mean: None,
            action_std: None,
            action_min: None,
            action_max: None,
            shards: Vec::new(),
            episodes: vec![episode],
            failures: Vec::new(),
        };
        let back = EvalReport::from_json(&report.to_json(), "r.json").unwrap();
        assert_eq!(back, report);
        assert_eq!(back.summary().joints[0].mae, 0.25);
        report.episodes[0].predicted[1].pop();
        let error = EvalReport::from_json(&report.to_json(), "r.json")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("episode 3 does not have 2 joints in each of its 2 frames"),
            "{error}"
        );
    }
}
