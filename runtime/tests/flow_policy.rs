//! A lerobot SmolVLA, pi0 or pi0-FAST checkpoint as the runtime's VLA (the tiny policies that
//! tools/reference/smolvla_reference.py, pi0_reference.py and pi0fast_reference.py saved with
//! lerobot): on the virtual clock their chunks stream to the motion decoder as values (pi0-FAST:
//! as FAST tokens, each sent as it is sampled), each starting at its frame's capture time, the
//! commands stay inside the robot's limits, and a configuration that does not fit the policy is
//! refused by name.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink};
use brainstem_runtime::config::RuntimeConfig;
use brainstem_runtime::demo::{demo_config, SyntheticCamera, DEMO_ARM, DEMO_INSTRUCTION};
use brainstem_runtime::pipeline::stages::Pipeline;
use brainstem_runtime::simulate::Simulation;
use brainstem_runtime::RuntimeEvent;

const SECOND: u64 = 1_000_000_000;

fn reference() -> PathBuf {
    reference_of("smolvla")
}

fn reference_of(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/reference/out")
        .join(kind)
}

/// The demo with the tiny SmolVLA as its VLA, driving the first six joints of the arm.
fn config() -> RuntimeConfig {
    config_of("smolvla", "models--brainstem-test--tiny-smolvlm2")
}

/// The demo with a tiny `kind` policy as its VLA, its backbone or tokenizer the snapshot of
/// `repository` in the reference's Hugging Face cache.
fn config_of(kind: &str, repository: &str) -> RuntimeConfig {
    let mut config = demo_config(&PathBuf::from(env!("CARGO_TARGET_TMPDIR"))).unwrap();
    let snapshots = reference_of(kind)
        .join("hf-home/hub")
        .join(repository)
        .join("snapshots");
    config.models.vla = Some(reference_of(kind).join("two-cameras"));
    config.models.vla_backbone = Some(snapshot(&snapshots));
    config.policy.joints = DEMO_ARM[..6].iter().map(|j| j.to_string()).collect();
    config.policy.chunk_steps = 6;
    config
}

/// The one snapshot in a cache repository's `snapshots` folder.
fn snapshot(snapshots: &std::path::Path) -> PathBuf {
    std::fs::read_dir(snapshots).unwrap().next().unwrap().unwrap().path()
}

/// Every command's positions of the driven joints, and whether each was inside the limits.
#[derive(Clone, Default)]
struct Commands {
    inside: Arc<Mutex<Vec<bool>>>,
    limits: Vec<(usize, f64, f64)>,
}

impl JointSink for Commands {
    fn send(&mut self, command: &JointCommand<'_>) {
        let inside = self
            .limits
            .iter()
            .all(|&(j, low, high)| (low - 1e-9..=high + 1e-9).contains(&command.positions[j]));
        self.inside.lock().unwrap().push(inside);
    }
}

#[test]
fn a_smolvla_checkpoint_drives_the_robot_inside_its_limits() {
    let chunks = drives_the_robot_inside_its_limits(&config());
    assert!(chunks.iter().all(|&values| values == 6 * 6), "{chunks:?}");
}

#[test]
fn a_pi0_checkpoint_drives_the_robot_inside_its_limits() {
    let chunks = drives_the_robot_inside_its_limits(&config_of("pi0", "models--google--paligemma-3b-pt-224"));
    assert!(chunks.iter().all(|&values| values == 6 * 6), "{chunks:?}");
}

#[test]
fn a_pi0_fast_checkpoint_streams_its_tokens_inside_the_limits() {
    let mut config = config_of("pi0fast", "models--google--paligemma-3b-pt-224");
    let actions = reference_of("pi0fast").join("hf-home/hub/models--lerobot--fast-action-tokenizer/snapshots");
    config.models.vla_action_tokenizer = Some(snapshot(&actions));
    config.policy.chunk_steps = 8;
    let chunks = drives_the_robot_inside_its_limits(&config);
    assert!(
        chunks.iter().all(|&tokens| (1..=24).contains(&tokens)),
        "FAST tokens per chunk (24 sampled at most): {chunks:?}"
    );
}

/// Runs `config` for 3 s on the virtual clock; returns each chunk's count of tokens or values.
fn drives_the_robot_inside_its_limits(config: &RuntimeConfig) -> Vec<usize> {
    let pipeline = Pipeline::load(config).unwrap();
    let robot = &pipeline.motion.robot;
    let limits = config
        .policy
        .joints
        .iter()
        .map(|name| {
            let j = robot.joint_index(name).unwrap();
            (j, robot.joints[j].min_position, robot.joints[j].max_position)
        })
        .collect();
    let sink = Commands {
        limits,
        ..Commands::default()
    };
    let camera = Box::new(SyntheticCamera::default());
    let mut sim = Simulation::new(pipeline, Box::new(sink.clone()), camera, 30.0).unwrap();
    sim.board().set_instruction(DEMO_INSTRUCTION).unwrap();
    sim.run_until(3 * SECOND);
    let events = sim.take_events();
    let failures: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, RuntimeEvent::StageFailed { .. }))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let chunks: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Chunk { tokens, .. } => Some(*tokens),
            _ => None,
        })
        .collect();
    assert!(chunks.len() >= 5, "{} chunks in 3 s", chunks.len());
    let inside = sink.inside.lock().unwrap();
    assert!(inside.len() > 1000, "{} commands", inside.len());
    assert!(inside.iter().all(|&ok| ok), "a command left the joint limits");
    let report = sim.telemetry();
    let completed = report
        .interventions
        .entries()
        .into_iter()
        .find(|(name, _)| *name == "chunks_completed")
        .map_or(0, |(_, n)| n);
    assert!(completed > 0, "{:?}", report.interventions.entries());
    chunks
}

#[test]
fn a_configuration_that_does_not_fit_the_policy_is_refused() {
    let mut wrong_joints = config();
    wrong_joints.policy.joints.pop();
    let message = Pipeline::load(&wrong_joints).err().unwrap().to_string();
    assert!(
        message.contains("policy.joints") && message.contains("5 joints"),
        "{message}"
    );
    let mut wrong_chunk = config();
    wrong_chunk.policy.chunk_steps = 10;
    let message = Pipeline::load(&wrong_chunk).err().unwrap().to_string();
    assert!(
        message.contains("policy.chunk_steps") && message.contains("chunks of 6"),
        "{message}"
    );
}

#[test]
fn a_policy_with_real_time_chunking_runs_in_the_loop() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smolvla-rtc");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(reference().join("two-cameras")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let path = dir.join("config.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["rtc_config"] = serde_json::json!({
        "enabled": true, "execution_horizon": 4, "max_guidance_weight": 5.0,
        "prefix_attention_schedule": "LINEAR", "debug": false, "debug_maxlen": 100
    });
    std::fs::write(&path, json.to_string()).unwrap();
    let mut config = config();
    config.models.vla = Some(dir);
    let camera = Box::new(SyntheticCamera::default());
    let sink = Commands::default();
    let mut sim = Simulation::new(Pipeline::load(&config).unwrap(), Box::new(sink), camera, 30.0).unwrap();
    sim.board().set_instruction(DEMO_INSTRUCTION).unwrap();
    sim.run_until(2 * SECOND);
    let events = sim.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, RuntimeEvent::StageFailed { .. })),
        "{events:?}"
    );
    let chunks = events
        .iter()
        .filter(|e| matches!(e, RuntimeEvent::Chunk { .. }))
        .count();
    assert!(chunks >= 3, "{chunks} chunks");
}

/// The median simulated chunk latency of `config`'s policy over two seconds.
fn chunk_p50_ms(config: &RuntimeConfig) -> f64 {
    let camera = Box::new(SyntheticCamera::default());
    let mut sim = Simulation::new(
        Pipeline::load(config).unwrap(),
        Box::new(Commands::default()),
        camera,
        30.0,
    )
    .unwrap();
    sim.board().set_instruction(DEMO_INSTRUCTION).unwrap();
    sim.run_until(2 * SECOND);
    let report = sim.telemetry();
    let chunk = report.stages.iter().find(|s| s.name == "vla_chunk" && s.count > 0);
    chunk.expect("no chunk completed").p50_ms
}

#[test]
fn fewer_denoising_steps_make_a_shorter_chunk_and_a_token_policy_has_none() {
    let stored = chunk_p50_ms(&config());
    let mut fewer = config();
    fewer.policy.denoising_steps = Some(1);
    let one_step = chunk_p50_ms(&fewer);
    assert!(
        one_step < stored,
        "one step {one_step} ms, the checkpoint's steps {stored} ms"
    );
    let mut tokens = demo_config(&PathBuf::from(env!("CARGO_TARGET_TMPDIR"))).unwrap();
    tokens.policy.denoising_steps = Some(4);
    let message = Pipeline::load(&tokens).err().unwrap().to_string();
    assert!(message.contains("policy.denoising_steps"), "{message}");
}
