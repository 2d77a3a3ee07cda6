//! The whole runtime end to end on the built-in demo (a seeded tiny SmolVLM-structured model
//! as VLM, VLT and VLA; the humanoid's left arm; a synthetic camera): on the virtual clock it
//! is deterministic, the cerebellum keeps its rate whatever the brain does, and a failing or
//! panicking policy brings the robot to a controlled hold without taking the motion decoder
//! down; on the wall clock, the embedding API delivers plans, answers and chunks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink, MotionMode, StopReason};
use brainstem_runtime::config::RuntimeConfig;
use brainstem_runtime::demo::{demo_config, SyntheticCamera, DEMO_INSTRUCTION};
use brainstem_runtime::models::synthetic::Idefics3Shape;
use brainstem_runtime::pipeline::stages::{ActRequest, ActionOutput, ActionPolicy, Pipeline};
use brainstem_runtime::simulate::Simulation;
use brainstem_runtime::{Result, Runtime, RuntimeError, RuntimeEvent, RuntimeOptions};

const SECOND: u64 = 1_000_000_000;

fn config() -> RuntimeConfig {
    demo_config(&PathBuf::from(env!("CARGO_TARGET_TMPDIR"))).unwrap()
}

/// Every tenth command, written out in full precision, and every mode change.
#[derive(Clone, Default)]
struct LogSink {
    log: Arc<Mutex<Vec<String>>>,
    modes: Arc<Mutex<Vec<(u64, MotionMode)>>>,
}

impl JointSink for LogSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        let mut modes = self.modes.lock().unwrap();
        if modes.last().is_none_or(|(_, mode)| *mode != command.mode) {
            modes.push((command.time, command.mode));
        }
        if command.tick.is_multiple_of(10) {
            let line = format!("{} {:?} {:?}", command.time, command.mode, &command.positions[17..24]);
            self.log.lock().unwrap().push(line);
        }
    }
}

fn simulate(config: &RuntimeConfig, seconds: u64, wrap: impl FnOnce(Pipeline) -> Pipeline) -> (Simulation, LogSink) {
    let sink = LogSink::default();
    let pipeline = wrap(Pipeline::load(config).unwrap());
    let mut sim = Simulation::new(
        pipeline,
        Box::new(sink.clone()),
        Box::new(SyntheticCamera::default()),
        10.0,
    )
    .unwrap();
    sim.board().set_instruction(DEMO_INSTRUCTION).unwrap();
    sim.run_until(seconds * SECOND / 2);
    sim.board().ask("What is on the table?").unwrap();
    sim.run_until(seconds * SECOND);
    (sim, sink)
}

fn chunks(events: &[RuntimeEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, RuntimeEvent::Chunk { .. }))
        .count()
}

#[test]
fn the_virtual_clock_run_is_deterministic() {
    let config = config();
    let run = || {
        let (mut sim, sink) = simulate(&config, 2, |p| p);
        let events = serde_json::to_string(&sim.take_events()).unwrap();
        let log = sink.log.lock().unwrap().join("\n");
        (events, log, sim.interventions())
    };
    let (events, log, interventions) = run();
    assert_eq!(run(), (events.clone(), log.clone(), interventions));
    assert!(events.contains("\"Plan\"") && events.contains("\"Answer\""), "{events}");
    assert!(interventions.chunks_completed >= 15, "{interventions:?}");
    assert_eq!(interventions.stops(), 0, "{interventions:?}");
}

#[test]
fn the_cerebellum_keeps_its_rate_while_the_brain_is_busy() {
    let mut quiet = config();
    quiet.brain.rate_hz = 0.2;
    let mut busy = config();
    busy.brain.rate_hz = 50.0;
    busy.brain.plan_tokens = 120;
    let chunk_latency = |config: &RuntimeConfig| {
        let (mut sim, _) = simulate(config, 3, |p| p);
        let report = sim.telemetry();
        let events = sim.take_events();
        let vla = report.stages.iter().find(|s| s.name == "vla_chunk").unwrap().clone();
        let plans = events.iter().filter(|e| matches!(e, RuntimeEvent::Plan { .. })).count();
        (chunks(&events), vla, plans, sim.interventions())
    };
    let (quiet_chunks, quiet_vla, quiet_plans, _) = chunk_latency(&quiet);
    let (busy_chunks, busy_vla, busy_plans, interventions) = chunk_latency(&busy);
    assert!(
        busy_plans > 10 * quiet_plans.max(1),
        "{busy_plans} vs {quiet_plans} plans"
    );
    assert_eq!(busy_chunks, quiet_chunks);
    // The VLA's work differs only with its prompt (the subtask text the brain planned).
    let close = |a: f64, b: f64| (a - b).abs() <= 0.01 * b;
    assert!(
        close(busy_vla.p99_ms, quiet_vla.p99_ms),
        "{busy_vla:?} vs {quiet_vla:?}"
    );
    assert!(
        close(busy_vla.max_ms, quiet_vla.max_ms),
        "{busy_vla:?} vs {quiet_vla:?}"
    );
    assert_eq!(busy_vla.deadline_misses, 0);
    assert_eq!(interventions.stop_starved, 0);

    // The same load with the VLA placed on the brain's partition does delay it.
    let mut shared = busy.clone();
    let mut compute = shared.compute();
    compute.placement.vla = compute.placement.vlt.clone();
    shared.compute = Some(compute);
    let (_, shared_vla, _, _) = chunk_latency(&shared);
    assert!(
        shared_vla.max_ms > 1.5 * busy_vla.max_ms,
        "{shared_vla:?} vs {busy_vla:?}"
    );
}

/// The runtime's own policy, failing on some chunks: an error on chunk 10, a panic on 20.
struct Flaky {
    inner: Box<dyn ActionPolicy>,
}

impl ActionPolicy for Flaky {
    fn act(&mut self, request: &ActRequest<'_>, emit: &mut dyn FnMut(ActionOutput)) -> Result<()> {
        match request.chunk_id {
            10 => Err(RuntimeError::Observation("the camera cable came loose".into())),
            20 => {
                emit(ActionOutput::Token(300));
                panic!("the policy broke")
            }
            _ => self.inner.act(request, emit),
        }
    }
}

fn flaky(mut pipeline: Pipeline) -> Pipeline {
    let inner = std::mem::replace(&mut pipeline.models.policy, Box::new(NoPolicy));
    pipeline.models.policy = Box::new(Flaky { inner });
    pipeline
}

struct NoPolicy;

impl ActionPolicy for NoPolicy {
    fn act(&mut self, _: &ActRequest<'_>, _: &mut dyn FnMut(ActionOutput)) -> Result<()> {
        unreachable!("replaced before use")
    }
}

#[test]
fn a_failing_policy_holds_the_robot_and_is_reported() {
    let (mut sim, sink) = simulate(&config(), 3, flaky);
    let failures: Vec<String> = sim
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            RuntimeEvent::StageFailed {
                stage: "vla", message, ..
            } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("camera cable"), "{failures:?}");
    assert!(failures[1].contains("panicked: the policy broke"), "{failures:?}");
    assert_eq!(sim.interventions().stop_policy_failed, 2);
    let modes = sink.modes.lock().unwrap().clone();
    let stops = modes
        .iter()
        .filter(|(_, mode)| *mode == MotionMode::Stopping(StopReason::PolicyFailed))
        .count();
    assert_eq!(stops, 2, "{modes:?}");
    assert_eq!(modes.last().unwrap().1, MotionMode::Following, "{modes:?}");
}

#[test]
fn the_embedding_api_runs_on_the_wall_clock() {
    let sink = LogSink::default();
    let pipeline = flaky(Pipeline::load(&config()).unwrap());
    let runtime = Runtime::start(pipeline, Box::new(sink.clone()), RuntimeOptions::default()).unwrap();
    assert!(runtime.push_state(&[f64::NAN; 82]).is_err());
    assert!(runtime.push_state(&[0.0; 3]).is_err());
    runtime.set_instruction(DEMO_INSTRUCTION).unwrap();
    let camera = SyntheticCamera::default();
    let question = runtime.ask("What is on the table?").unwrap();
    let (mut plans, mut answers, mut chunks, mut failures) = (0, 0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (plans == 0 || answers == 0 || chunks < 25) && Instant::now() < deadline {
        runtime.push_frame(camera.frame(runtime.now())).unwrap();
        while let Some(event) = runtime.wait_event(Duration::from_millis(50)) {
            match event {
                RuntimeEvent::Plan { .. } => plans += 1,
                RuntimeEvent::Answer { id, .. } => answers += usize::from(id == question),
                RuntimeEvent::Chunk { .. } => chunks += 1,
                RuntimeEvent::StageFailed { .. } => failures += 1,
                RuntimeEvent::InputStale { .. } | RuntimeEvent::InputFresh { .. } => {
                    panic!("the demo follows its commands and watches no input: {event:?}")
                }
            }
        }
    }
    assert!(runtime.subtask().is_some());
    let live = runtime.telemetry();
    let report = runtime.stop().unwrap();
    assert!(plans > 0 && answers == 1 && chunks >= 25, "{plans} {answers} {chunks}");
    assert_eq!(failures, 2);
    assert!(live.stages.iter().any(|s| s.name == "vla_chunk" && s.count > 0));
    let motion = report.motion.clone().unwrap();
    assert!(motion.ticks > 1000, "{motion:?}");
    assert_eq!(report.interventions.stop_policy_failed, 2);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["partitions"].as_array().unwrap().len(), 3);
}

#[test]
fn a_vla_with_its_own_vision_tower_gets_its_own_encoding() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wider-tiny-vla");
    std::fs::create_dir_all(&dir).unwrap();
    let shape = Idefics3Shape {
        text_hidden: 96,
        text_heads: 6,
        text_kv_heads: 3,
        ..Idefics3Shape::tiny()
    };
    shape.write_checkpoint(&dir).unwrap();
    let mut config = config();
    config.models.vla = Some(dir);
    let pipeline = Pipeline::load(&config).unwrap();
    assert!(!pipeline.models.vision.is_shared());
    let sink = LogSink::default();
    let mut sim = Simulation::new(pipeline, Box::new(sink), Box::new(SyntheticCamera::default()), 10.0).unwrap();
    sim.board().set_instruction(DEMO_INSTRUCTION).unwrap();
    sim.run_until(SECOND);
    let encoded = sim.board().encoded.clone().unwrap().2;
    assert_eq!((encoded.brain.embedding.hidden, encoded.vla.embedding.hidden), (64, 96));
    assert!(chunks(&sim.take_events()) >= 5);
    assert_eq!(sim.interventions().stops(), 0);
}

#[test]
fn a_robot_with_two_cameras_shows_every_model_both_views() {
    let mut config = config();
    config.cameras = 2;
    let pipeline = Pipeline::load(&config).unwrap();
    let camera = Box::new(SyntheticCamera::with_views(2));
    let mut sim = Simulation::new(pipeline, Box::new(LogSink::default()), camera, 10.0).unwrap();
    sim.board().set_instruction(DEMO_INSTRUCTION).unwrap();
    sim.run_until(SECOND);
    let encoded = sim.board().encoded.clone().unwrap().2;
    assert_eq!(encoded.brain.views.len(), 2);
    let events = sim.take_events();
    assert!(chunks(&events) >= 5, "{events:?}");
    assert!(events.iter().any(|e| matches!(e, RuntimeEvent::Plan { .. })));
    // A camera that gives the wrong number of views is reported, not ignored.
    let pipeline = Pipeline::load(&config).unwrap();
    let one_view = Box::new(SyntheticCamera::default());
    let mut sim = Simulation::new(pipeline, Box::new(LogSink::default()), one_view, 10.0).unwrap();
    sim.run_until(SECOND / 10);
    let failure = sim.take_events().into_iter().find_map(|e| match e {
        RuntimeEvent::StageFailed {
            stage: "vision",
            message,
            ..
        } => Some(message),
        _ => None,
    });
    assert!(failure.unwrap().contains("expected 2, found 1"));
}
