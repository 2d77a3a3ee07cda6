//! Telemetry: per-stage latency histograms with deadline misses, and per-partition work
//! (the op ledger, turned by the partition's chip profile into busy time, utilisation, TOPS
//! and energy), gathered into a report that serialises to JSON. Stages record from the model
//! loops; nothing here is on the motion decoder's path.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cerebellum::motion::{InterventionCounts, LoopReport};
use crate::compute::chip::ChipProfile;
use crate::kernels::LedgerSnapshot;

struct StageRecord {
    latency_ns: Histogram<u64>,
    deadline: Option<Duration>,
    misses: u64,
}

/// Latencies of the named stages, recorded from any thread.
#[derive(Default)]
pub struct StageLatencies {
    stages: Mutex<BTreeMap<String, StageRecord>>,
}

/// One stage's latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    pub name: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub deadline_ms: Option<f64>,
    pub deadline_misses: u64,
}

impl StageLatencies {
    /// Declares a stage with a deadline; a latency above it counts as a miss.
    pub fn set_deadline(&self, stage: &str, deadline: Duration) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages
            .entry(stage.to_string())
            .or_insert_with(StageRecord::new)
            .deadline = Some(deadline);
    }

    pub fn record(&self, stage: &str, latency: Duration) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let record = stages.entry(stage.to_string()).or_insert_with(StageRecord::new);
        record.latency_ns.saturating_record(latency.as_nanos().max(1) as u64);
        record.misses += u64::from(record.deadline.is_some_and(|d| latency > d));
    }

    /// Stage `stage`'s recorded latencies as (milliseconds, count) pairs, in increasing
    /// order, and its deadline misses.
    pub fn recorded_ms(&self, stage: &str) -> Option<(Vec<(f64, u64)>, u64)> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let record = stages.get(stage)?;
        let buckets = record
            .latency_ns
            .iter_recorded()
            .map(|v| (v.value_iterated_to() as f64 / 1e6, v.count_at_value()))
            .collect();
        Some((buckets, record.misses))
    }

    pub fn report(&self) -> Vec<StageReport> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages
            .iter()
            .map(|(name, record)| {
                let ms = |ns: u64| ns as f64 / 1e6;
                let h = &record.latency_ns;
                StageReport {
                    name: name.clone(),
                    count: h.len(),
                    p50_ms: ms(h.value_at_quantile(0.5)),
                    p99_ms: ms(h.value_at_quantile(0.99)),
                    max_ms: ms(h.max()),
                    deadline_ms: record.deadline.map(|d| d.as_secs_f64() * 1e3),
                    deadline_misses: record.misses,
                }
            })
            .collect()
    }
}

impl StageRecord {
    fn new() -> Self {
        Self {
            latency_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("constant histogram bounds are valid"),
            deadline: None,
            misses: 0,
        }
    }
}

/// What one partition did over a wall-clock span, and what its chip would make of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionReport {
    pub name: String,
    pub chip: String,
    pub int8_macs: u64,
    pub float_macs: u64,
    pub other_float_ops: u64,
    pub bytes: u64,
    /// Time the chip would be busy with this work.
    pub chip_busy_s: f64,
    /// Busy time over the wall time.
    pub chip_utilisation: f64,
    pub tops_used: f64,
    /// TOPS used over the chip's int8 TOPS.
    pub tops_utilisation: f64,
    pub energy_joules: f64,
}

impl PartitionReport {
    /// `work` is the partition's ledger since the start of the span, `wall` its length.
    pub fn new(name: &str, chip: &ChipProfile, work: &LedgerSnapshot, wall: Duration) -> Self {
        let total = work.total();
        let busy = chip.time(work);
        Self {
            name: name.to_string(),
            chip: chip.name.clone(),
            int8_macs: total.int8_macs,
            float_macs: total.f16_macs + total.f32_macs,
            other_float_ops: total.float_ops,
            bytes: total.bytes_read + total.bytes_written,
            chip_busy_s: busy.as_secs_f64(),
            chip_utilisation: busy.as_secs_f64() / wall.as_secs_f64().max(1e-12),
            tops_used: ChipProfile::tops_used(work, wall),
            tops_utilisation: ChipProfile::tops_used(work, wall) / chip.int8_tops,
            energy_joules: chip.energy_joules(work, wall),
        }
    }
}

/// Everything the runtime reports, ready for JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryReport {
    pub wall_s: f64,
    pub stages: Vec<StageReport>,
    pub partitions: Vec<PartitionReport>,
    pub interventions: InterventionCounts,
    /// The motion loop's timing, once it has stopped.
    pub motion: Option<MotionSummary>,
}

/// The motion loop's tick timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotionSummary {
    pub ticks: u64,
    pub overruns: u64,
    pub work_p50_us: f64,
    pub work_p99_us: f64,
    pub work_max_us: f64,
    pub jitter_p50_us: f64,
    pub jitter_p99_us: f64,
    pub jitter_max_us: f64,
}

impl MotionSummary {
    pub fn new(report: &LoopReport) -> Self {
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
        Self {
            ticks: report.ticks,
            overruns: report.overruns,
            work_p50_us: us(&report.work_ns, 0.5),
            work_p99_us: us(&report.work_ns, 0.99),
            work_max_us: report.work_ns.max() as f64 / 1e3,
            jitter_p50_us: us(&report.jitter_ns, 0.5),
            jitter_p99_us: us(&report.jitter_ns, 0.99),
            jitter_max_us: report.jitter_ns.max() as f64 / 1e3,
        }
    }
}

impl TelemetryReport {
    /// The report of a run `wall` long: its stages, the work each partition (named, with its
    /// chip) did over it, and
    /// the interventions (the motion loop's timing comes at its end).
    pub fn collect(
        wall: Duration,
        stages: &StageLatencies,
        chips: &[(&str, &ChipProfile)],
        work: &[LedgerSnapshot],
        interventions: InterventionCounts,
    ) -> Self {
        Self {
            wall_s: wall.as_secs_f64(),
            stages: stages.report(),
            partitions: chips
                .iter()
                .zip(work)
                .map(|((name, chip), work)| PartitionReport::new(name, chip, work, wall))
                .collect(),
            interventions,
            motion: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Cost, OpKind};

    #[test]
    fn stage_latencies_count_deadline_misses() {
        let stages = StageLatencies::default();
        stages.set_deadline("vla_chunk", Duration::from_millis(100));
        for ms in [40, 60, 80, 120, 90] {
            stages.record("vla_chunk", Duration::from_millis(ms));
        }
        stages.record("vlm_answer", Duration::from_millis(900));
        let report = stages.report();
        let vla = report.iter().find(|s| s.name == "vla_chunk").unwrap();
        assert_eq!((vla.count, vla.deadline_misses), (5, 1));
        assert!((vla.p50_ms - 80.0).abs() < 0.1, "{vla:?}");
        assert!((vla.max_ms - 120.0).abs() < 0.2);
        assert_eq!(
            report.iter().find(|s| s.name == "vlm_answer").unwrap().deadline_misses,
            0
        );
    }

    #[test]
    fn a_report_serialises_to_json_with_chip_figures() {
        let chip = ChipProfile {
            dispatch_us: 0.0,
            ..ChipProfile::npu(10.0)
        };
        let work = LedgerSnapshot {
            by_kind: vec![(
                OpKind::QuantMatmul,
                3,
                Cost {
                    int8_macs: 2_500_000_000_000,
                    ..Cost::default()
                },
            )],
        };
        let partition = PartitionReport::new("p2", &chip, &work, Duration::from_secs(2));
        assert!((partition.chip_utilisation - 0.25).abs() < 1e-9);
        assert!((partition.tops_used - 2.5).abs() < 1e-9);
        let report = TelemetryReport {
            wall_s: 2.0,
            stages: Vec::new(),
            partitions: vec![partition],
            interventions: InterventionCounts::default(),
            motion: None,
        };
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["partitions"][0]["chip"], "npu-10tops");
        assert_eq!(json["interventions"]["braked"], 0);
    }
}
