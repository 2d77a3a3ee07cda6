//! Chip profiles: what one of the robot's AI chips can do, as a roofline and a power model.
//! A partition stands in for a chip; the work it ran (the backend's op ledger) becomes the
//! time that chip would have taken (per op kind, the slower of its compute and its memory
//! traffic, plus a dispatch cost per op) and the energy it would have drawn (idle power for
//! the whole wall time, plus the span between idle and peak for the busy time). With the
//! virtual clock this simulates a robot at any TOPS budget deterministically.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Result, RuntimeError};
use crate::kernels::{Cost, LedgerSnapshot};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChipProfile {
    pub name: String,
    /// Dense int8 tera-operations per second (a multiply-accumulate is two operations).
    pub int8_tops: f64,
    /// Half-precision tera-FLOP/s.
    pub fp16_tflops: f64,
    /// Single-precision tera-FLOP/s, which other float operations also run at.
    pub f32_tflops: f64,
    /// Memory bandwidth, GB/s.
    pub memory_gbps: f64,
    /// On-chip memory, MiB.
    pub scratchpad_mib: f64,
    /// Power when idle and at full load, watts.
    pub idle_watts: f64,
    pub peak_watts: f64,
    /// Fixed cost of dispatching one op, microseconds.
    pub dispatch_us: f64,
}

impl ChipProfile {
    /// A neural accelerator with `int8_tops` of int8 throughput. The other figures follow
    /// ratios typical of edge NPUs (half precision at a quarter of the int8 rate, f32 at a
    /// sixteenth; 8 GB/s of bandwidth and 0.25 W per TOPS; 1 MiB of scratchpad per TOPS):
    /// assumptions of the model, to be replaced by a real chip's datasheet in the config.
    pub fn npu(int8_tops: f64) -> Self {
        Self {
            name: format!("npu-{int8_tops}tops"),
            int8_tops,
            fp16_tflops: int8_tops / 4.0,
            f32_tflops: int8_tops / 16.0,
            memory_gbps: 8.0 * int8_tops,
            scratchpad_mib: int8_tops,
            idle_watts: 0.5 + 0.02 * int8_tops,
            peak_watts: 0.5 + 0.25 * int8_tops,
            dispatch_us: 5.0,
        }
    }

    /// `key` is where the profile sits in the configuration, for error messages.
    pub fn validate(&self, key: &str) -> Result<()> {
        let fields = [
            ("int8_tops", self.int8_tops),
            ("fp16_tflops", self.fp16_tflops),
            ("f32_tflops", self.f32_tflops),
            ("memory_gbps", self.memory_gbps),
            ("scratchpad_mib", self.scratchpad_mib),
            ("peak_watts", self.peak_watts),
        ];
        for (field, value) in fields {
            if !(value.is_finite() && value > 0.0) {
                return Err(RuntimeError::config(
                    format!("{key}.{field}"),
                    format!("must be positive, found {value}"),
                ));
            }
        }
        if !(self.idle_watts >= 0.0 && self.idle_watts <= self.peak_watts) {
            return Err(RuntimeError::config(
                format!("{key}.idle_watts"),
                format!(
                    "must be between 0 and peak_watts {}, found {}",
                    self.peak_watts, self.idle_watts
                ),
            ));
        }
        if !(self.dispatch_us.is_finite() && self.dispatch_us >= 0.0) {
            return Err(RuntimeError::config(
                format!("{key}.dispatch_us"),
                format!("must be zero or positive, found {}", self.dispatch_us),
            ));
        }
        Ok(())
    }

    /// Seconds for `calls` ops costing `cost` in total: the slower of compute and memory,
    /// plus dispatch.
    fn op_seconds(&self, calls: u64, cost: &Cost) -> f64 {
        let compute = 2.0 * cost.int8_macs as f64 / (self.int8_tops * 1e12)
            + 2.0 * cost.f16_macs as f64 / (self.fp16_tflops * 1e12)
            + (2.0 * cost.f32_macs as f64 + cost.float_ops as f64) / (self.f32_tflops * 1e12);
        let memory = (cost.bytes_read + cost.bytes_written) as f64 / (self.memory_gbps * 1e9);
        compute.max(memory) + calls as f64 * self.dispatch_us * 1e-6
    }

    /// The time this chip would take for `work`.
    pub fn time(&self, work: &LedgerSnapshot) -> Duration {
        let seconds: f64 = work
            .by_kind
            .iter()
            .map(|(_, calls, cost)| self.op_seconds(*calls, cost))
            .sum();
        Duration::from_secs_f64(seconds)
    }

    /// Joules drawn over `wall` time in which the chip did `work` (if the work needs longer
    /// than `wall`, the chip is taken to run at peak for as long as it needs).
    pub fn energy_joules(&self, work: &LedgerSnapshot, wall: Duration) -> f64 {
        let busy = self.time(work);
        self.idle_watts * wall.max(busy).as_secs_f64() + (self.peak_watts - self.idle_watts) * busy.as_secs_f64()
    }

    /// Tera-operations per second used over `wall`.
    pub fn tops_used(work: &LedgerSnapshot, wall: Duration) -> f64 {
        work.total().ops() as f64 / wall.as_secs_f64().max(1e-12) / 1e12
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::OpKind;

    fn work(kind: OpKind, calls: u64, cost: Cost) -> LedgerSnapshot {
        LedgerSnapshot {
            by_kind: vec![(kind, calls, cost)],
        }
    }

    #[test]
    fn compute_bound_and_memory_bound_ops_take_the_slower_side() {
        let chip = ChipProfile {
            dispatch_us: 0.0,
            ..ChipProfile::npu(10.0)
        };
        // 5e12 int8 MACs = 10e12 operations: one second at 10 TOPS; the bytes take less.
        let matmul = Cost {
            int8_macs: 5_000_000_000_000,
            bytes_read: 1_000_000,
            ..Cost::default()
        };
        assert!((chip.time(&work(OpKind::QuantMatmul, 1, matmul)).as_secs_f64() - 1.0).abs() < 1e-9);
        // 160 GB at 80 GB/s: two seconds, whatever the few float ops.
        let copy = Cost {
            bytes_read: 80_000_000_000,
            bytes_written: 80_000_000_000,
            float_ops: 1000,
            ..Cost::default()
        };
        assert!((chip.time(&work(OpKind::Copy, 1, copy)).as_secs_f64() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn energy_is_idle_power_plus_the_busy_share_of_the_rest() {
        let chip = ChipProfile {
            idle_watts: 1.0,
            peak_watts: 5.0,
            dispatch_us: 0.0,
            ..ChipProfile::npu(10.0)
        };
        let half_second = Cost {
            int8_macs: 2_500_000_000_000,
            ..Cost::default()
        };
        let joules = chip.energy_joules(&work(OpKind::QuantMatmul, 1, half_second), Duration::from_secs(2));
        assert!((joules - (2.0 + 4.0 * 0.5)).abs() < 1e-9);
        assert!(
            (ChipProfile::tops_used(&work(OpKind::QuantMatmul, 1, half_second), Duration::from_secs(1)) - 5.0).abs()
                < 1e-9
        );
    }

    #[test]
    fn invalid_profiles_name_the_field() {
        let chip = ChipProfile {
            memory_gbps: 0.0,
            ..ChipProfile::npu(4.0)
        };
        let error = chip.validate("partitions[1].chip").unwrap_err().to_string();
        assert!(error.contains("partitions[1].chip.memory_gbps"), "{error}");
        assert!(ChipProfile::npu(4.0).validate("chip").is_ok());
    }
}
