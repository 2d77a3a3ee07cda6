//! A closed-loop evaluation's report: one run per configuration (brainstem's variants, and
//! lerobot's PyTorch as the comparison row) over the same seeds, each with its episodes and
//! the summary a person compares runs by: success rate, time to success, interventions,
//! chunk latency and host time.

use serde::Serialize;

use super::SimEpisode;
use crate::offline::eval::metrics::Latencies;
use crate::pipeline::loops::CHUNK;

/// Every run of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub task: String,
    pub instruction: String,
    pub policy: String,
    pub first_seed: u64,
    pub seconds_limit: f64,
    /// Control ticks a second: an episode's distances are one a tick.
    pub control_rate_hz: f64,
    pub success_radius: f64,
    pub runs: Vec<SimRun>,
}

/// One configuration's episodes.
#[derive(Debug, Clone, Serialize)]
pub struct SimRun {
    pub name: String,
    pub episodes: Vec<SimEpisode>,
    pub summary: RunSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub episodes: usize,
    pub successes: usize,
    pub success_rate: f64,
    pub median_seconds_to_success: Option<f64>,
    /// Interventions of the motion decoder over every episode (clamps, rate limits, brakes
    /// and stops, counted per joint-tick or per stop).
    pub interventions: u64,
    /// The VLA chunk's latency: on the virtual clock (the chip profile's time) for brainstem,
    /// the host's for lerobot.
    pub chunk_p50_ms: Option<f64>,
    pub chunk_p99_ms: Option<f64>,
    pub wall_seconds: f64,
}

impl SimRun {
    pub fn new(name: &str, episodes: Vec<SimEpisode>) -> Self {
        let summary = RunSummary::of(&episodes);
        Self {
            name: name.to_string(),
            episodes,
            summary,
        }
    }
}

impl RunSummary {
    pub fn of(episodes: &[SimEpisode]) -> Self {
        let mut times: Vec<f64> = episodes.iter().filter_map(|e| e.seconds_to_success).collect();
        times.sort_by(f64::total_cmp);
        let mut chunk = Latencies::default();
        for latency in episodes.iter().filter_map(|e| e.latency.get(CHUNK)) {
            chunk.merge(latency);
        }
        let successes = times.len();
        Self {
            episodes: episodes.len(),
            successes,
            success_rate: successes as f64 / episodes.len().max(1) as f64,
            median_seconds_to_success: (!times.is_empty()).then(|| times[times.len() / 2]),
            interventions: episodes
                .iter()
                .flat_map(|e| e.interventions.iter())
                .filter(|(k, _)| is_intervention(k))
                .map(|(_, v)| v)
                .sum(),
            chunk_p50_ms: chunk.quantile(0.5),
            chunk_p99_ms: chunk.quantile(0.99),
            wall_seconds: episodes.iter().map(|e| e.wall_seconds).sum(),
        }
    }
}

/// Whether an intervention counter counts the decoder acting on the policy's commands (not
/// the chunks it merely received).
fn is_intervention(counter: &str) -> bool {
    counter != "chunks_completed"
}
