//! Partitions: the runtime's stand-ins for the robot's AI chips. Each owns an executor (a CPU
//! thread pool pinned to its cores where the system allows, or a wgpu device) and the profile
//! of the chip it stands for. The compute configuration (TOML, unknown keys refused, every error naming the
//! key) declares the partitions and places the model stages on them.

use std::sync::Arc;

use serde::Deserialize;

use crate::compute::chip::{ChipProfile, BUILTIN_CHIPS};
use crate::error::{Result, RuntimeError};
use crate::kernels::{ActivationPrecision, Backend, CpuBackend, Device, DeviceBackend};

/// The model stages a partition can host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The vision encoder, shared by every model that looks at the frame.
    Vision,
    /// Answering about the scene.
    Vlm,
    /// Planning tasks.
    Vlt,
    /// Emitting actions.
    Vla,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Vision, Stage::Vlm, Stage::Vlt, Stage::Vla];

    pub fn key(self) -> &'static str {
        match self {
            Stage::Vision => "vision",
            Stage::Vlm => "vlm",
            Stage::Vlt => "vlt",
            Stage::Vla => "vla",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    pub name: String,
    /// Host cores the partition's threads are pinned to.
    pub cores: Vec<usize>,
    /// Worker threads (default: one per core).
    #[serde(default)]
    pub threads: Option<usize>,
    /// The workers' scheduling priority as a Unix nice value, -20 (most urgent) to 19
    /// (default 0). Values below 0 need privileges; without them the workers keep 0.
    #[serde(default)]
    pub priority: Option<i32>,
    /// The chip as an NPU of this many int8 TOPS (see [`ChipProfile::npu`]) ...
    #[serde(default)]
    pub npu_tops: Option<f64>,
    /// ... or a built-in profile by name, or a full profile.
    #[serde(default)]
    pub chip: Option<ChipSpec>,
    /// Where its models run: "cpu" (default; a thread pool on `cores`), "wgpu" (the best
    /// adapter) or "wgpu:ADAPTER" (an index or part of a name).
    #[serde(default)]
    pub device: Option<String>,
}

/// A chip named from [`ChipProfile::builtin`]'s list, or described in full.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ChipSpec {
    Builtin(String),
    Profile(ChipProfile),
}

/// Which partition each stage runs on, by partition name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    pub vision: String,
    pub vlm: String,
    pub vlt: String,
    pub vla: String,
}

impl PlacementConfig {
    fn of(&self, stage: Stage) -> &str {
        match stage {
            Stage::Vision => &self.vision,
            Stage::Vlm => &self.vlm,
            Stage::Vlt => &self.vlt,
            Stage::Vla => &self.vla,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    #[serde(rename = "partition")]
    pub partitions: Vec<PartitionConfig>,
    pub placement: PlacementConfig,
}

impl ComputeConfig {
    /// Three partitions: P0 for the vision encoder, P1 for VLM and VLT decoding, P2 for the
    /// VLA, each standing for a 20-TOPS NPU. With fewer than three host cores they share
    /// cores: the VLA's partition gets the last core to itself when there are two. The VLA
    /// runs at the default priority, the vision encoder below it and the brain lowest, so
    /// where cores are shared the cerebellum's work goes first.
    pub fn three_chips(host_cores: usize) -> Self {
        let core = |i: usize| vec![i.min(host_cores.max(1) - 1)];
        let (p0, p1, p2) = match host_cores {
            0 | 1 => (core(0), core(0), core(0)),
            2 => (core(0), core(0), core(1)),
            _ => (core(0), core(1), core(2)),
        };
        let partition = |name: &str, cores, priority| PartitionConfig {
            name: name.into(),
            cores,
            threads: None,
            priority: Some(priority),
            device: None,
            npu_tops: Some(20.0),
            chip: None,
        };
        Self {
            partitions: vec![partition("p0", p0, 5), partition("p1", p1, 10), partition("p2", p2, 0)],
            placement: PlacementConfig {
                vision: "p0".into(),
                vlm: "p1".into(),
                vlt: "p1".into(),
                vla: "p2".into(),
            },
        }
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| RuntimeError::toml(text, &e))?;
        config.validate(available_cores())?;
        Ok(config)
    }

    /// Checks names, cores (on a host with `host_cores`), chips and placement.
    pub fn validate(&self, host_cores: usize) -> Result<()> {
        if self.partitions.is_empty() {
            return Err(RuntimeError::config("partition", "no partitions"));
        }
        for (i, partition) in self.partitions.iter().enumerate() {
            let key = format!("partition[{i}]");
            if self.partitions[..i].iter().any(|p| p.name == partition.name) {
                return Err(RuntimeError::config(
                    format!("{key}.name"),
                    format!("{:?} names two partitions", partition.name),
                ));
            }
            if partition.cores.is_empty() {
                return Err(RuntimeError::config(format!("{key}.cores"), "no cores"));
            }
            if let Some(&core) = partition.cores.iter().find(|&&c| c >= host_cores) {
                return Err(RuntimeError::config(
                    format!("{key}.cores"),
                    format!("core {core} does not exist; this host has {host_cores}"),
                ));
            }
            if let Some(priority) = partition.priority.filter(|p| !(-20..=19).contains(p)) {
                return Err(RuntimeError::config(
                    format!("{key}.priority"),
                    format!("a nice value is -20 to 19, found {priority}"),
                ));
            }
            partition.device(&key)?;
            if partition.threads == Some(0) {
                return Err(RuntimeError::config(format!("{key}.threads"), "must be at least 1"));
            }
            partition.chip_profile(&key)?;
        }
        for stage in Stage::ALL {
            let name = self.placement.of(stage);
            if !self.partitions.iter().any(|p| p.name == name) {
                return Err(RuntimeError::config(
                    format!("placement.{}", stage.key()),
                    format!("no partition is named {name:?}"),
                ));
            }
        }
        Ok(())
    }
}

impl ComputeConfig {
    /// The same configuration with every partition on `device`.
    pub fn on_device(mut self, device: &Device) -> Self {
        for partition in &mut self.partitions {
            partition.device = Some(device.to_string());
        }
        self
    }
}

impl PartitionConfig {
    /// The device the partition's models run on.
    pub fn device(&self, key: &str) -> Result<Device> {
        match &self.device {
            None => Ok(Device::Cpu),
            Some(text) => text
                .parse()
                .map_err(|e: String| RuntimeError::config(format!("{key}.device"), e)),
        }
    }

    pub fn chip_profile(&self, key: &str) -> Result<ChipProfile> {
        let chip = match (&self.chip, self.npu_tops) {
            (Some(ChipSpec::Profile(chip)), None) => chip.clone(),
            (Some(ChipSpec::Builtin(name)), None) => ChipProfile::builtin(name).ok_or_else(|| {
                RuntimeError::config(
                    format!("{key}.chip"),
                    format!("expected one of {}, found {name:?}", BUILTIN_CHIPS.join(", ")),
                )
            })?,
            (None, Some(tops)) => ChipProfile::npu(tops),
            _ => {
                return Err(RuntimeError::config(
                    key.to_string(),
                    "give exactly one of npu_tops and a [chip] table",
                ))
            }
        };
        chip.validate(&format!("{key}.chip"))?;
        Ok(chip)
    }
}

/// The host's cores, as the scheduler lets this process use them.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sets the calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn set_thread_nice(nice: i32) -> std::result::Result<i32, String> {
    // SAFETY: gettid has no arguments; setpriority reads only its integer arguments. On Linux
    // PRIO_PROCESS with a thread id applies to that one thread.
    let outcome = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if outcome == 0 {
        Ok(nice)
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_thread_nice(_nice: i32) -> std::result::Result<i32, String> {
    Err("thread priorities are implemented for Linux only".into())
}

pub struct Partition {
    pub name: String,
    pub chip: ChipProfile,
    pub backend: Arc<DeviceBackend>,
    /// Per worker: the core it was pinned to, or why it could not be (none on a wgpu device).
    pub pinning: Vec<std::result::Result<usize, String>>,
    /// Per worker: the nice value it runs at, or why it could not be set.
    pub priority: Vec<std::result::Result<i32, String>>,
}

/// Opens `p`'s device: a pinned, prioritized CPU pool, or a wgpu adapter.
fn start_partition(key: &str, p: &PartitionConfig) -> Result<Partition> {
    let device_error = |e: crate::kernels::KernelError| RuntimeError::config(key.to_string(), e.to_string());
    let chip = p.chip_profile(key)?;
    let device = p.device(key)?;
    if device != Device::Cpu {
        let backend = device.open(1, ActivationPrecision::Int8).map_err(device_error)?;
        tracing::info!("partition {} runs on {}", p.name, backend.name());
        return Ok(Partition {
            name: p.name.clone(),
            chip,
            backend: Arc::new(backend),
            pinning: Vec::new(),
            priority: Vec::new(),
        });
    }
    let threads = p.threads.unwrap_or(p.cores.len());
    let (backend, pinning) = CpuBackend::pinned(threads, &p.cores).map_err(device_error)?;
    for failure in pinning.iter().filter_map(|r| r.as_ref().err()) {
        tracing::warn!("partition {}: a worker runs unpinned: {failure}", p.name);
    }
    let nice = p.priority.unwrap_or(0);
    let priority = backend.on_each_worker(|_| set_thread_nice(nice));
    for failure in priority.iter().filter_map(|r| r.as_ref().err()) {
        tracing::warn!("partition {}: a worker keeps its priority: {failure}", p.name);
    }
    Ok(Partition {
        name: p.name.clone(),
        chip,
        backend: Arc::new(DeviceBackend::Cpu(backend)),
        pinning,
        priority,
    })
}

/// The partitions, and which one each stage runs on.
pub struct Partitions {
    partitions: Vec<Partition>,
    placement: [usize; 4],
}

impl Partitions {
    /// Starts every partition's pool (pinned where the system allows).
    pub fn start(config: &ComputeConfig) -> Result<Self> {
        config.validate(available_cores())?;
        let partitions = config
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| start_partition(&format!("partition[{i}]"), p))
            .collect::<Result<Vec<_>>>()?;
        let placement = Stage::ALL.map(|stage| {
            let name = config.placement.of(stage);
            partitions.iter().position(|p| p.name == name).unwrap_or(0)
        });
        Ok(Self { partitions, placement })
    }

    pub fn all(&self) -> &[Partition] {
        &self.partitions
    }

    /// The partition `stage` runs on.
    pub fn for_stage(&self, stage: Stage) -> &Partition {
        &self.partitions[self.placement[stage as usize]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
        [[partition]]
        name = "vision-npu"
        cores = [0]
        npu_tops = 8.0

        [[partition]]
        name = "brain"
        cores = [0]
        threads = 2
        [partition.chip]
        name = "gpu"
        int8_tops = 100.0
        fp16_tflops = 50.0
        f32_tflops = 12.0
        memory_gbps = 200.0
        scratchpad_mib = 4.0
        idle_watts = 3.0
        int8_mac_pj = 0.3
        float_op_pj = 1.0
        dram_byte_pj = 30.0
        dispatch_us = 8.0

        [placement]
        vision = "vision-npu"
        vlm = "brain"
        vlt = "brain"
        vla = "vision-npu"
    "#;

    #[test]
    fn a_config_places_stages_on_started_partitions() {
        let config = ComputeConfig::from_toml(CONFIG).unwrap();
        let partitions = Partitions::start(&config).unwrap();
        assert_eq!(partitions.for_stage(Stage::Vlt).name, "brain");
        assert_eq!(partitions.for_stage(Stage::Vla).chip.int8_tops, 8.0);
        let named = ComputeConfig::from_toml(&CONFIG.replace("npu_tops = 8.0", "chip = \"orin-like\"")).unwrap();
        assert_eq!(named.partitions[0].chip_profile("p").unwrap().memory_gbps, 204.8);
        assert_eq!(partitions.for_stage(Stage::Vlm).pinning.len(), 2);
        let default = ComputeConfig::three_chips(available_cores());
        default.validate(available_cores()).unwrap();
        let started = Partitions::start(&default).unwrap();
        assert_eq!(started.all().len(), 3);
        // Raising a nice value needs no privileges, so the brain's workers always get theirs.
        assert_eq!(started.for_stage(Stage::Vlt).priority, vec![Ok(10)]);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (CONFIG.replace("npu_tops = 8.0", "npu_top = 8.0"), "npu_top"),
            (CONFIG.replace("vla = \"vision-npu\"", "vla = \"arm\""), "placement.vla"),
            (
                CONFIG.replace("cores = [0]\n        npu_tops", "cores = [64]\n        npu_tops"),
                "partition[0].cores",
            ),
            (
                CONFIG.replace("memory_gbps = 200.0", "memory_gbps = -1.0"),
                "partition[1].chip.memory_gbps",
            ),
            (CONFIG.replace("npu_tops = 8.0", ""), "partition[0]"),
            (CONFIG.replace("npu_tops = 8.0", "chip = \"tpu\""), "partition[0].chip"),
            (
                CONFIG.replace("threads = 2", "threads = 2\n        priority = 40"),
                "partition[1].priority",
            ),
            (
                CONFIG.replace("name = \"brain\"", "name = \"vision-npu\""),
                "partition[1].name",
            ),
            (
                CONFIG.replace("npu_tops = 8.0", "npu_tops = 8.0\n        device = \"gpu\""),
                "partition[0].device",
            ),
        ];
        for (text, key) in cases {
            let error = ComputeConfig::from_toml(&text).unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn a_partition_can_own_a_wgpu_device() {
        let text = CONFIG.replace("threads = 2", "threads = 2\n        device = \"wgpu\"");
        let partitions = Partitions::start(&ComputeConfig::from_toml(&text).unwrap()).unwrap();
        let [npu, brain] = partitions.all() else {
            panic!("two partitions")
        };
        assert!(npu.backend.as_cpu().is_some(), "{}", npu.backend.name());
        assert!(brain.backend.as_wgpu().is_some(), "{}", brain.backend.name());
        assert!(brain.pinning.is_empty());
        let everything_on_cpu = ComputeConfig::from_toml(&text).unwrap().on_device(&Device::Cpu);
        assert!(everything_on_cpu
            .partitions
            .iter()
            .all(|p| p.device.as_deref() == Some("cpu")));
    }
}
