//! What a robot team asks before it picks chips: at this TOPS budget and this placement,
//! what latency, control rate, power and energy per action? [`Layout`]s split a budget over
//! chips of one family and place the stages on them; [`simulate_point`] runs the pipeline on
//! the virtual clock with those chips and condenses the run into a [`SweepPoint`].

use serde::Serialize;

use crate::compute::chip::ChipProfile;
use crate::compute::partition::{ComputeConfig, PartitionConfig, PlacementConfig};
use crate::error::{Result, RuntimeError};
use crate::pipeline::loops::{CHUNK, FIRST_ACTION, PLAN, VISION};
use crate::simulate::Simulation;
use crate::telemetry::TelemetryReport;

/// How a robot's TOPS budget is split into chips and which chip runs which stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// Three equal chips: vision encoder, brain (VLM and VLT), VLA.
    Split,
    /// Three equal chips, the VLA on the brain's (the third one idles).
    VlaWithBrain,
    /// Two equal chips: vision encoder and brain on one, the VLA on the other.
    TwoChips,
    /// One chip with the whole budget for every stage.
    OneChip,
}

impl Layout {
    pub const ALL: [Layout; 4] = [Layout::Split, Layout::VlaWithBrain, Layout::TwoChips, Layout::OneChip];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Split => "split",
            Layout::VlaWithBrain => "vla-with-brain",
            Layout::TwoChips => "two-chips",
            Layout::OneChip => "one-chip",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|l| l.name()).collect();
            RuntimeError::config(
                "placement",
                format!("expected one of {}, found {name:?}", names.join(", ")),
            )
        })
    }

    pub fn chips(self) -> usize {
        match self {
            Layout::Split | Layout::VlaWithBrain => 3,
            Layout::TwoChips => 2,
            Layout::OneChip => 1,
        }
    }

    /// The partitions and placement on `host_cores` (which cores only matters when the
    /// layout runs for real, as `brainstem bench --measure` does): the VLA's partition gets a
    /// core to itself where there are two, and the most urgent priority.
    pub fn compute(self, host_cores: usize) -> ComputeConfig {
        let last = host_cores.max(1) - 1;
        let partition = |name: &str, cores: Vec<usize>, priority| PartitionConfig {
            name: name.into(),
            threads: Some(cores.len()),
            cores,
            priority: Some(priority),
            device: None,
            npu_tops: Some(20.0),
            chip: None,
        };
        let place = |vision: &str, brain: &str, vla: &str| PlacementConfig {
            vision: vision.into(),
            vlm: brain.into(),
            vlt: brain.into(),
            vla: vla.into(),
        };
        match self {
            Layout::Split => ComputeConfig::three_chips(host_cores),
            Layout::VlaWithBrain => ComputeConfig {
                placement: place("p0", "p1", "p1"),
                ..ComputeConfig::three_chips(host_cores)
            },
            Layout::TwoChips => ComputeConfig {
                partitions: vec![partition("p0", vec![0], 5), partition("p1", vec![last.min(1)], 0)],
                placement: place("p0", "p0", "p1"),
            },
            Layout::OneChip => ComputeConfig {
                partitions: vec![partition("p0", (0..=last).collect(), 0)],
                placement: place("p0", "p0", "p0"),
            },
        }
    }

    /// The chips for a robot with `budget_tops` in all, of `family`'s architecture.
    pub fn chips_for(self, family: &ChipProfile, budget_tops: f64) -> Vec<ChipProfile> {
        let each = family.with_tops(budget_tops / self.chips() as f64);
        vec![each; self.chips()]
    }
}

/// One simulated run, condensed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    pub label: String,
    pub placement: &'static str,
    pub budget_tops: f64,
    pub chip: String,
    pub seconds: f64,
    pub vla_chunk_p50_ms: f64,
    pub vla_chunk_p99_ms: f64,
    pub first_action_p50_ms: f64,
    pub first_action_p99_ms: f64,
    pub plan_p50_ms: f64,
    pub plan_p99_ms: f64,
    pub vision_p50_ms: f64,
    /// Action chunks per second the VLA delivered, and plans per second the brain made.
    pub chunk_rate_hz: f64,
    pub replan_rate_hz: f64,
    pub deadline_misses: u64,
    pub safety_stops: u64,
    pub average_watts: f64,
    pub peak_watts: f64,
    /// Every chip's energy over the run, per chunk delivered.
    pub joules_per_chunk: f64,
    /// Energy over the ledger's operations, picojoules per operation.
    pub picojoules_per_op: f64,
    /// TOPS used over TOPS available, per chip.
    pub tops_utilisation: Vec<f64>,
}

/// Restarts `sim` with `chips`, gives it `instruction`, runs it for `seconds` and condenses
/// the run.
pub fn simulate_point(
    sim: &mut Simulation,
    chips: Vec<ChipProfile>,
    instruction: &str,
    seconds: f64,
    label: &str,
    placement: Layout,
    budget_tops: f64,
) -> Result<SweepPoint> {
    let chip = chips.first().map(|c| c.name.clone()).unwrap_or_default();
    sim.restart(chips)?;
    sim.board().set_instruction(instruction)?;
    sim.run_until((seconds * 1e9) as u64);
    let report = sim.telemetry();
    Ok(condense(&report, sim.peak_watts(), label, placement, budget_tops, chip))
}

fn condense(
    report: &TelemetryReport,
    peak_watts: f64,
    label: &str,
    placement: Layout,
    budget_tops: f64,
    chip: String,
) -> SweepPoint {
    let stage = |name: &str| report.stages.iter().find(|s| s.name == name);
    let p50 = |name: &str| stage(name).map_or(f64::NAN, |s| s.p50_ms);
    let p99 = |name: &str| stage(name).map_or(f64::NAN, |s| s.p99_ms);
    let count = |name: &str| stage(name).map_or(0, |s| s.count);
    let joules: f64 = report.partitions.iter().map(|p| p.energy_joules).sum();
    let ops: u64 = report
        .partitions
        .iter()
        .map(|p| 2 * (p.int8_macs + p.float_macs) + p.other_float_ops)
        .sum();
    let chunks = count(CHUNK);
    SweepPoint {
        label: label.to_string(),
        placement: placement.name(),
        budget_tops,
        chip,
        seconds: report.wall_s,
        vla_chunk_p50_ms: p50(CHUNK),
        vla_chunk_p99_ms: p99(CHUNK),
        first_action_p50_ms: p50(FIRST_ACTION),
        first_action_p99_ms: p99(FIRST_ACTION),
        plan_p50_ms: p50(PLAN),
        plan_p99_ms: p99(PLAN),
        vision_p50_ms: p50(VISION),
        chunk_rate_hz: chunks as f64 / report.wall_s,
        replan_rate_hz: count(PLAN) as f64 / report.wall_s,
        deadline_misses: report.stages.iter().map(|s| s.deadline_misses).sum(),
        safety_stops: report.interventions.stops(),
        average_watts: joules / report.wall_s,
        peak_watts,
        joules_per_chunk: joules / chunks.max(1) as f64,
        picojoules_per_op: joules * 1e12 / ops.max(1) as f64,
        tops_utilisation: report.partitions.iter().map(|p| p.tops_utilisation).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_split_the_budget_over_their_chips() {
        let family = ChipProfile::builtin("turing-like").unwrap();
        let chips = Layout::Split.chips_for(&family, 2250.0);
        assert_eq!(chips.len(), 3);
        assert!(chips.iter().all(|c| (c.int8_tops - 750.0).abs() < 1e-9));
        assert_eq!(Layout::OneChip.chips_for(&family, 500.0)[0].int8_tops, 500.0);
        for layout in Layout::ALL {
            let compute = layout.compute(2);
            compute.validate(2).unwrap();
            assert_eq!(compute.partitions.len(), layout.chips());
            assert_eq!(Layout::parse(layout.name()).unwrap(), layout);
        }
        assert_eq!(Layout::VlaWithBrain.compute(2).placement.vla, "p1");
        assert!(Layout::parse("three-chips").unwrap_err().to_string().contains("split"));
    }
}
