//! Chip profiles: what one of the robot's AI chips can do, as a roofline and an energy model.
//! A partition stands in for a chip; the work it ran (the backend's op ledger) becomes the
//! time that chip would have taken (per op kind, the slower of its compute and its memory
//! traffic, plus a dispatch cost per op) and the energy it would have drawn (idle power for
//! the whole wall time, plus a fixed energy per int8 multiply-accumulate, per float
//! operation and per byte of DRAM traffic). With the virtual clock this simulates a robot at
//! any TOPS budget deterministically.
//!
//! Host-side work (sampling, constraints, image preparation, tokenization, turning outputs
//! into actions: the ledger's [`OpKind::is_host`] kinds) runs where the profile says: on the
//! robot's host CPU, a roofline of its own ([`HostCpu`]) that does not grow with the chip's
//! TOPS, or, with no host CPU named, on the chip at its float rate.
//!
//! Built-in profiles ([`ChipProfile::builtin`]) come from public figures where they exist,
//! and say which of their numbers are assumptions of the model.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::kernels::{Cost, LedgerSnapshot, OpKind};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChipProfile {
    pub name: String,
    /// Dense int8 tera-operations per second (a multiply-accumulate is two operations).
    pub int8_tops: f64,
    /// Dense half-precision tera-FLOP/s.
    pub fp16_tflops: f64,
    /// Single-precision tera-FLOP/s, which other float operations also run at.
    pub f32_tflops: f64,
    /// Memory bandwidth, GB/s.
    pub memory_gbps: f64,
    /// On-chip memory, MiB (reported; the roofline charges every ledger byte to DRAM).
    pub scratchpad_mib: f64,
    /// Power drawn whether or not the chip works, watts.
    pub idle_watts: f64,
    /// Energy of one int8 multiply-accumulate, picojoules.
    pub int8_mac_pj: f64,
    /// Energy of one floating-point operation (a half or single multiply-accumulate is two),
    /// picojoules.
    pub float_op_pj: f64,
    /// Energy of moving one byte to or from DRAM, picojoules.
    pub dram_byte_pj: f64,
    /// Fixed cost of dispatching one op, microseconds.
    pub dispatch_us: f64,
    /// Where host-side work runs: this CPU, or the chip itself when none is named.
    #[serde(default)]
    pub host_cpu: Option<HostCpu>,
}

/// One core of the robot's host CPU, which runs the host-side work of the stage on its chip
/// (one thread per stage).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostCpu {
    pub name: String,
    /// Host-code operations per second, giga (the ledger counts a comparison, a branch or an
    /// arithmetic step of host code as one).
    pub gops: f64,
    /// Memory bandwidth one core reaches, GB/s.
    pub memory_gbps: f64,
    /// Energy of one host-code operation, picojoules (instruction fetch and scheduling
    /// included).
    pub op_pj: f64,
}

impl HostCpu {
    /// A host CPU core like the Arm Cortex-A78AE and Neoverse cores of Jetson Orin and Thor:
    /// 2.2 to 2.6 GHz retiring about two host-code operations per cycle, 20 GB/s for one core,
    /// about 100 pJ per operation. Assumptions of the model, not measurements.
    pub fn arm_core(name: &str, ghz: f64) -> Self {
        Self {
            name: name.into(),
            gops: 2.0 * ghz,
            memory_gbps: 20.0,
            op_pj: 100.0,
        }
    }

    fn seconds(&self, calls: u64, cost: &Cost) -> f64 {
        let compute = cost.float_ops as f64 / (self.gops * 1e9);
        let memory = (cost.bytes_read + cost.bytes_written) as f64 / (self.memory_gbps * 1e9);
        // A host call is a function call, not a dispatch to a device: 50 ns.
        compute.max(memory) + calls as f64 * 50e-9
    }
}

/// Energies per operation the built-in profiles share, picojoules: assumptions of the model
/// after Horowitz, "Computing's energy problem" (ISSCC 2014: at 45 nm an 8-bit multiply is
/// 0.2 pJ and an add 0.03 pJ, a 16-bit float multiply-add about 1.5 pJ, a DRAM access 20
/// to 40 pJ per byte), taken down one process step for on-chip work; LPDDR5 at about
/// 4 pJ/bit is 32 pJ per byte.
const INT8_MAC_PJ: f64 = 0.2;
const FLOAT_OP_PJ: f64 = 0.6;
const DRAM_BYTE_PJ: f64 = 32.0;

/// The names [`ChipProfile::builtin`] knows.
pub const BUILTIN_CHIPS: [&str; 3] = ["turing-like", "orin-like", "thor-like"];

impl ChipProfile {
    /// A neural accelerator with `int8_tops` of int8 throughput. The other figures follow
    /// ratios typical of edge NPUs (half precision at a quarter of the int8 rate, f32 at a
    /// sixteenth; 8 GB/s of bandwidth and 1 MiB of scratchpad per TOPS; 0.5 W plus 20 mW per
    /// TOPS when idle): assumptions of the model, to be replaced by a real chip's datasheet in
    /// the config.
    pub fn npu(int8_tops: f64) -> Self {
        Self {
            name: format!("npu-{int8_tops}tops"),
            int8_tops,
            fp16_tflops: int8_tops / 4.0,
            f32_tflops: int8_tops / 16.0,
            memory_gbps: 8.0 * int8_tops,
            scratchpad_mib: int8_tops,
            idle_watts: 0.5 + 0.02 * int8_tops,
            int8_mac_pj: INT8_MAC_PJ,
            float_op_pj: FLOAT_OP_PJ,
            dram_byte_pj: DRAM_BYTE_PJ,
            dispatch_us: 5.0,
            host_cpu: None,
        }
    }

    /// A built-in profile by name:
    ///
    /// - `turing-like`: one of the robot's three chips, 750 dense int8 TOPS each (2,250 for
    ///   the robot). The issue that asked for it gives only the TOPS; the rest is scaled from
    ///   `thor-like` (bandwidth, float rates and idle power per TOPS) and is an assumption.
    /// - `orin-like`: NVIDIA Jetson AGX Orin 64GB. Public: 275 sparse int8 TOPS (GPU 170 +
    ///   two DLAs 105), so about 138 dense; 2048 CUDA cores at 5.3 f32 TFLOPS; 204.8 GB/s
    ///   LPDDR5; 15 to 60 W. Assumed: dense fp16 at half the GPU's dense int8 (42.5 TFLOPS),
    ///   the 4 MB L2 as scratchpad, 15 W idle (its lowest power mode).
    /// - `thor-like`: NVIDIA Jetson AGX Thor T5000. Public: 2,070 sparse FP4 TFLOPS, so
    ///   about 517 dense FP8 and int8; 2560 CUDA cores (20 SMs) at about 8 f32 TFLOPS;
    ///   273 GB/s LPDDR5X; 32 MiB L2; 40 to 130 W. Assumed: dense fp16 at half of FP8
    ///   (258 TFLOPS), 40 W idle (its lowest power mode).
    ///
    /// All three use the model's energies per operation (0.2 pJ per int8 MAC, 0.6 pJ per
    /// float operation, 32 pJ per DRAM byte) and 5 us per dispatched op, and run host-side
    /// work on the board's CPU ([`HostCpu::arm_core`]: Orin's Cortex-A78AE at 2.2 GHz, Thor's
    /// Neoverse V3AE at 2.6 GHz; `turing-like` takes Thor's).
    pub fn builtin(name: &str) -> Option<Self> {
        let ghz = if name == "orin-like" { 2.2 } else { 2.6 };
        let host_cpu = Some(HostCpu::arm_core(&format!("{name} host core"), ghz));
        let chip = |name: &str, tops: f64, fp16: f64, f32: f64, gbps: f64, scratch: f64, idle: f64| Self {
            name: name.into(),
            int8_tops: tops,
            fp16_tflops: fp16,
            f32_tflops: f32,
            memory_gbps: gbps,
            scratchpad_mib: scratch,
            idle_watts: idle,
            int8_mac_pj: INT8_MAC_PJ,
            float_op_pj: FLOAT_OP_PJ,
            dram_byte_pj: DRAM_BYTE_PJ,
            dispatch_us: 5.0,
            host_cpu: host_cpu.clone(),
        };
        match name {
            "orin-like" => Some(chip("orin-like", 138.0, 42.5, 5.3, 204.8, 4.0, 15.0)),
            "thor-like" => Some(chip("thor-like", 517.0, 258.0, 8.0, 273.0, 32.0, 40.0)),
            "turing-like" => {
                let thor = Self::builtin("thor-like")?;
                Some(Self {
                    name: "turing-like".into(),
                    ..thor.with_tops(750.0)
                })
            }
            _ => None,
        }
    }

    /// The same architecture built to `int8_tops`: float rates, bandwidth, scratchpad and
    /// idle power scale with it; energies per operation and the dispatch cost do not. So a
    /// bigger chip is never slower, and never spends less energy per operation over the same
    /// wall time.
    pub fn with_tops(&self, int8_tops: f64) -> Self {
        let k = int8_tops / self.int8_tops;
        Self {
            name: format!("{}@{int8_tops}tops", self.name.split('@').next().unwrap_or(&self.name)),
            int8_tops,
            fp16_tflops: self.fp16_tflops * k,
            f32_tflops: self.f32_tflops * k,
            memory_gbps: self.memory_gbps * k,
            scratchpad_mib: self.scratchpad_mib * k,
            idle_watts: self.idle_watts * k,
            ..self.clone()
        }
    }

    /// The mean of two measurements of the same chip: every rate and cost averaged.
    pub fn mean(&self, other: &ChipProfile) -> Self {
        let mid = |a: f64, b: f64| (a + b) / 2.0;
        Self {
            int8_tops: mid(self.int8_tops, other.int8_tops),
            fp16_tflops: mid(self.fp16_tflops, other.fp16_tflops),
            f32_tflops: mid(self.f32_tflops, other.f32_tflops),
            memory_gbps: mid(self.memory_gbps, other.memory_gbps),
            dispatch_us: mid(self.dispatch_us, other.dispatch_us),
            host_cpu: match (&self.host_cpu, &other.host_cpu) {
                (Some(a), Some(b)) => Some(HostCpu {
                    gops: mid(a.gops, b.gops),
                    memory_gbps: mid(a.memory_gbps, b.memory_gbps),
                    ..a.clone()
                }),
                (a, _) => a.clone(),
            },
            ..self.clone()
        }
    }

    /// This chip when a stage gets only `share` (0 to 1] of it, as partitions pinned to the
    /// same cores of a measured host do while they are all busy: every rate, its host core's
    /// included, times `share`, every op's dispatch divided by it.
    pub fn time_share(&self, share: f64) -> Self {
        let k = 1.0 / share.clamp(1e-3, 1.0);
        Self {
            name: format!("{} at {:.0}%", self.name, 100.0 / k),
            int8_tops: self.int8_tops / k,
            fp16_tflops: self.fp16_tflops / k,
            f32_tflops: self.f32_tflops / k,
            memory_gbps: self.memory_gbps / k,
            dispatch_us: self.dispatch_us * k,
            host_cpu: self.host_cpu.as_ref().map(|cpu| HostCpu {
                gops: cpu.gops / k,
                memory_gbps: cpu.memory_gbps / k,
                ..cpu.clone()
            }),
            ..self.clone()
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
        ];
        for (field, value) in fields {
            if !(value.is_finite() && value > 0.0) {
                return Err(RuntimeError::config(
                    format!("{key}.{field}"),
                    format!("must be positive, found {value}"),
                ));
            }
        }
        let non_negative = [
            ("idle_watts", self.idle_watts),
            ("int8_mac_pj", self.int8_mac_pj),
            ("float_op_pj", self.float_op_pj),
            ("dram_byte_pj", self.dram_byte_pj),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(RuntimeError::config(
                    format!("{key}.{field}"),
                    format!("must be zero or positive, found {value}"),
                ));
            }
        }
        if let Some(cpu) = &self.host_cpu {
            for (field, value) in [
                ("gops", cpu.gops),
                ("memory_gbps", cpu.memory_gbps),
                ("op_pj", cpu.op_pj),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(RuntimeError::config(
                        format!("{key}.host_cpu.{field}"),
                        format!("must be positive, found {value}"),
                    ));
                }
            }
        }
        if !(self.dispatch_us.is_finite() && self.dispatch_us >= 0.0) {
            return Err(RuntimeError::config(
                format!("{key}.dispatch_us"),
                format!("must be zero or positive, found {}", self.dispatch_us),
            ));
        }
        Ok(())
    }

    /// Seconds for `calls` ops of `kind` costing `cost` in total: the slower of compute and
    /// memory, plus dispatch; host work on the host CPU when the profile names one.
    fn op_seconds(&self, kind: OpKind, calls: u64, cost: &Cost) -> f64 {
        if let (true, Some(cpu)) = (kind.is_host(), &self.host_cpu) {
            return cpu.seconds(calls, cost);
        }
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
            .map(|(kind, calls, cost)| self.op_seconds(*kind, *calls, cost))
            .sum();
        Duration::from_secs_f64(seconds)
    }

    /// Joules the operations in `work` take, idle power aside (host work on the host CPU at
    /// its energy per operation).
    pub fn dynamic_joules(&self, work: &LedgerSnapshot) -> f64 {
        let (mut chip, mut host) = (Cost::default(), Cost::default());
        for (kind, _, cost) in &work.by_kind {
            match kind.is_host() && self.host_cpu.is_some() {
                true => host += *cost,
                false => chip += *cost,
            }
        }
        let float_ops = 2 * (chip.f16_macs + chip.f32_macs) + chip.float_ops;
        let bytes = chip.bytes_read + chip.bytes_written + host.bytes_read + host.bytes_written;
        let host_op_pj = self.host_cpu.as_ref().map_or(0.0, |cpu| cpu.op_pj);
        1e-12
            * (chip.int8_macs as f64 * self.int8_mac_pj
                + float_ops as f64 * self.float_op_pj
                + host.float_ops as f64 * host_op_pj
                + bytes as f64 * self.dram_byte_pj)
    }

    /// Joules drawn over `wall` time in which the chip did `work`: idle power for the whole
    /// time (or for as long as the work needs, if longer) plus the work's own energy.
    pub fn energy_joules(&self, work: &LedgerSnapshot, wall: Duration) -> f64 {
        self.idle_watts * wall.max(self.time(work)).as_secs_f64() + self.dynamic_joules(work)
    }

    /// Watts at full int8 rate with the memory bus saturated: the most the model can draw.
    pub fn peak_watts(&self) -> f64 {
        self.idle_watts
            + self.int8_tops * 1e12 / 2.0 * self.int8_mac_pj * 1e-12
            + self.memory_gbps * 1e9 * self.dram_byte_pj * 1e-12
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
    fn energy_is_idle_power_plus_the_energy_of_each_operation() {
        let chip = ChipProfile {
            idle_watts: 1.0,
            int8_mac_pj: 0.5,
            float_op_pj: 2.0,
            dram_byte_pj: 10.0,
            dispatch_us: 0.0,
            ..ChipProfile::npu(10.0)
        };
        // 2.5e12 int8 MACs (half a second at 10 TOPS) at 0.5 pJ, 3e9 float operations (a
        // billion f32 MACs and a billion others) at 2 pJ, 1e10 bytes at 10 pJ.
        let cost = Cost {
            int8_macs: 2_500_000_000_000,
            f32_macs: 1_000_000_000,
            float_ops: 1_000_000_000,
            bytes_read: 6_000_000_000,
            bytes_written: 4_000_000_000,
            ..Cost::default()
        };
        let work = work(OpKind::QuantMatmul, 1, cost);
        let dynamic = 2.5e12 * 0.5e-12 + 3e9 * 2e-12 + 1e10 * 10e-12;
        assert!((chip.dynamic_joules(&work) - dynamic).abs() < 1e-9);
        let joules = chip.energy_joules(&work, Duration::from_secs(2));
        assert!((joules - (2.0 + dynamic)).abs() < 1e-9, "{joules}");
        // Idle power runs for as long as the work needs when that is longer than the wall.
        let long = chip.energy_joules(&work, Duration::from_millis(100));
        assert!((long - (chip.time(&work).as_secs_f64() + dynamic)).abs() < 1e-9);
        assert!((ChipProfile::tops_used(&work, Duration::from_secs(1)) - 5.003).abs() < 1e-9);
        // 10 TOPS is 5e12 MAC/s at 0.5 pJ, 80 GB/s at 10 pJ: 1 + 2.5 + 0.8 watts.
        assert!((chip.peak_watts() - 4.3).abs() < 1e-9);
    }

    #[test]
    fn a_bigger_chip_of_the_same_family_is_never_slower() {
        let chip = ChipProfile::builtin("turing-like").unwrap();
        assert_eq!(chip.int8_tops, 750.0);
        let mixed = Cost {
            int8_macs: 4_000_000_000,
            f32_macs: 10_000_000,
            float_ops: 50_000_000,
            bytes_read: 300_000_000,
            ..Cost::default()
        };
        let work = work(OpKind::QuantMatmul, 200, mixed);
        let mut last = Duration::MAX;
        for tops in [50.0, 250.0, 750.0, 2250.0] {
            let time = chip.with_tops(tops).time(&work);
            assert!(time <= last, "{tops} TOPS: {time:?} after {last:?}");
            last = time;
        }
        for name in BUILTIN_CHIPS {
            ChipProfile::builtin(name).unwrap().validate(name).unwrap();
        }
        assert!(ChipProfile::builtin("tpu").is_none());
    }

    #[test]
    fn host_work_runs_on_the_host_cpu_when_the_profile_names_one() {
        let host = Cost::host(2_000_000_000, 0, 0);
        let work = LedgerSnapshot {
            by_kind: vec![(OpKind::Constrain, 10, host), (OpKind::QuantMatmul, 1, Cost::default())],
        };
        let npu = ChipProfile {
            dispatch_us: 0.0,
            ..ChipProfile::npu(16.0)
        };
        // On the chip: 2e9 float operations at 1 TFLOP/s.
        assert!((npu.time(&work).as_secs_f64() - 2e-3).abs() < 1e-9);
        // On a 4 Gops host core: half a second, plus 50 ns per call, whatever the TOPS.
        let robot = ChipProfile {
            host_cpu: Some(HostCpu::arm_core("core", 2.0)),
            ..npu.clone()
        };
        for tops in [16.0, 1000.0] {
            let seconds = robot.with_tops(tops).time(&work).as_secs_f64();
            assert!((seconds - (0.5 + 10.0 * 50e-9)).abs() < 1e-9, "{seconds}");
        }
        let joules = robot.dynamic_joules(&work);
        assert!((joules - 2e9 * 100e-12).abs() < 1e-9, "{joules}");
        // A quarter of the chip and its host core: the operations take four times as long.
        let quarter = robot.time_share(0.25).time(&work).as_secs_f64();
        assert!((quarter - (2.0 + 10.0 * 50e-9)).abs() < 1e-9, "{quarter}");
        let bad = ChipProfile {
            host_cpu: Some(HostCpu {
                gops: 0.0,
                ..HostCpu::arm_core("core", 2.0)
            }),
            ..npu
        };
        let error = bad.validate("chip").unwrap_err().to_string();
        assert!(error.contains("chip.host_cpu.gops"), "{error}");
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
