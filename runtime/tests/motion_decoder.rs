//! The motion decoder end to end, on the virtual clock: whatever the stream carries (garbage
//! and silence included) every command respects every joint limit; a starved stream ends in a
//! hold within the configured time; garbage stops the robot and a valid chunk resumes it;
//! FAST chunks start moving the robot before they are complete; and a run is byte-for-byte
//! reproducible.

use std::sync::{Arc, Mutex};

use crate::common::{fast_tokenizer, joint, HUMANOID_ARM};
use brainstem_runtime::cerebellum::motion::{
    ActionDecoding, BlendMode, JointCommand, JointSink, LoopOptions, MotionConfig, MotionDecoder, MotionLoop,
    MotionMode, StopReason,
};
use brainstem_runtime::cerebellum::stream::{action_stream, ActionSender};
use brainstem_runtime::clock::{Clock, VirtualClock};
use brainstem_runtime::models::action::{BinTokenizer, Normalization};
use brainstem_runtime::robot::RobotDescription;
use proptest::prelude::*;

const TICK: u64 = 1_000_000;

/// Four joints, one with limits tight enough that almost any motion meets them.
fn test_robot() -> RobotDescription {
    RobotDescription {
        name: "test-arm".into(),
        control_rate_hz: 1000.0,
        joints: vec![
            joint("shoulder", (-2.0, 2.0), 3.0, 20.0, 400.0),
            joint("elbow", (0.0, 2.5), 2.0, 10.0, 150.0),
            joint("wrist", (-0.3, 0.3), 0.5, 2.0, 20.0),
            joint("gripper", (0.0, 0.08), 0.2, 5.0, 200.0),
        ],
    }
}

/// Actions normalised so that [-1, 1] spans a bit more than each joint's range.
fn normalization(robot: &RobotDescription, joints: &[&str]) -> Vec<Normalization> {
    joints
        .iter()
        .map(|name| {
            let spec = &robot.joints[robot.joint_index(name).unwrap()];
            let margin = 0.2 * (spec.max_position - spec.min_position);
            Normalization::Bounds {
                low: spec.min_position - margin,
                high: spec.max_position + margin,
            }
        })
        .collect()
}

fn decoder(
    robot: &RobotDescription,
    joints: &[&str],
    steps: usize,
    decoding: ActionDecoding,
    blend: BlendMode,
) -> (MotionDecoder, ActionSender) {
    let mut config = MotionConfig::for_joints(robot, joints, normalization(robot, joints), 50.0, steps).unwrap();
    config.blend = blend;
    let (sender, receiver) = action_stream(4096);
    (MotionDecoder::new(robot, config, decoding, receiver).unwrap(), sender)
}

/// Checks one command against the limits, given the previous one, and returns its copy.
struct LimitChecker {
    previous: Vec<(f64, f64, f64)>,
    dt: f64,
}

impl LimitChecker {
    fn new(decoder: &MotionDecoder, robot: &RobotDescription) -> Self {
        Self {
            previous: decoder.home().iter().map(|&p| (p, 0.0, 0.0)).collect(),
            dt: 1.0 / robot.control_rate_hz,
        }
    }

    fn check(&mut self, robot: &RobotDescription, command: &JointCommand<'_>) -> Result<(), String> {
        for (i, spec) in robot.joints.iter().enumerate() {
            let (p, v, a) = (command.positions[i], command.velocities[i], command.accelerations[i]);
            let (p0, v0, a0) = self.previous[i];
            let tick = command.tick;
            let fail = |what: &str, value: f64, limit: f64| {
                Err(format!("tick {tick}, {}: {what} {value} over {limit}", spec.name))
            };
            if !(spec.min_position..=spec.max_position).contains(&p) {
                return fail("position", p, spec.max_position);
            }
            let finite_v = (p - p0) / self.dt;
            let finite_a = (v - v0) / self.dt;
            let finite_j = (a - a0) / self.dt;
            let slack = 1.0 + 1e-9;
            if (finite_v - v).abs() > 1e-6 * (1.0 + v.abs()) || (finite_a - a).abs() > 1e-3 * (1.0 + a.abs()) {
                return Err(format!(
                    "tick {tick}, {}: reported v/a disagree with the positions",
                    spec.name
                ));
            }
            if v.abs() > spec.max_velocity * slack {
                return fail("velocity", v, spec.max_velocity);
            }
            if a.abs() > spec.max_acceleration * slack {
                return fail("acceleration", a, spec.max_acceleration);
            }
            if finite_j.abs() > spec.max_jerk * (1.0 + 1e-6) {
                return fail("jerk", finite_j, spec.max_jerk);
            }
            self.previous[i] = (p, v, a);
        }
        Ok(())
    }
}

/// One scripted thing the model side does before a tick.
#[derive(Debug, Clone)]
enum Act {
    Wait(u64),
    Start { offset_ms: i64 },
    Token(u32),
    Value(f32),
    End,
}

/// A value as a policy might emit it: mostly sensible, sometimes wild or not a number.
fn value() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        20 => -1.2f32..1.2,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => prop_oneof![Just(-1e30f32), Just(1e30f32)],
    ]
}

/// A token: mostly inside the action vocabulary `low..high`, sometimes anything.
fn token(low: u32, high: u32) -> impl Strategy<Value = u32> + Clone {
    prop_oneof![30 => low..high, 1 => any::<u32>()]
}

/// A chunk's events: its start `offset_ms` from now, the payload, and the end if `end`.
fn framed((offset_ms, body, end): (i64, Vec<Act>, bool)) -> Vec<Act> {
    let mut acts = vec![Act::Start { offset_ms }];
    acts.extend(body);
    if end {
        acts.push(Act::End);
    }
    acts
}

/// Chunks (a start, a payload of about a chunk's length, usually an end) separated by
/// silences, with stray events between them.
fn script(payload: impl Strategy<Value = Act> + Clone, chunk_len: usize) -> impl Strategy<Value = Vec<Act>> {
    let chunk = (
        -300i64..300,
        proptest::collection::vec(payload.clone(), 1..chunk_len + 4),
        proptest::bool::weighted(0.9),
    )
        .prop_map(framed);
    let silence = (0u64..500).prop_map(|ticks| vec![Act::Wait(ticks)]);
    let stray = prop_oneof![payload, Just(Act::End)].prop_map(|act| vec![act]);
    proptest::collection::vec(prop_oneof![6 => chunk, 6 => silence, 1 => stray], 1..24)
        .prop_map(|parts| parts.into_iter().flatten().collect())
}

/// Long enough for any scripted chunk to run out (it starts at most 300 ms ahead and lasts at
/// most 320 ms), the 200 ms starvation horizon to pass, and the slowest joint to brake to rest.
const TAIL_TICKS: u64 = 1_500;

/// After the tail's silence the robot must be resting: idle, or holding after a stop.
fn assert_resting(decoder: &MotionDecoder) -> Result<(), String> {
    let mode = decoder.mode();
    let moving = decoder
        .states()
        .iter()
        .filter(|s| s.velocity != 0.0 || s.acceleration != 0.0)
        .count();
    match mode {
        MotionMode::Idle | MotionMode::Holding(_) if moving == 0 => Ok(()),
        _ => Err(format!("after the silence: {mode:?} with {moving} joints moving")),
    }
}

/// Plays `script` into the decoder tick by tick and checks every command.
fn play(
    robot: &RobotDescription,
    mut decoder: MotionDecoder,
    mut sender: ActionSender,
    script: &[Act],
    tail_ticks: u64,
) -> Result<(MotionDecoder, Vec<u8>), String> {
    let mut checker = LimitChecker::new(&decoder, robot);
    let mut log = Vec::new();
    let mut now = 0u64;
    let mut chunk_id = 0;
    let mut tick = |decoder: &mut MotionDecoder, now: u64, log: &mut Vec<u8>| -> Result<(), String> {
        let command = decoder.tick(now);
        checker.check(robot, &command)?;
        for value in command.positions.iter().chain(command.velocities) {
            log.extend_from_slice(&value.to_le_bytes());
        }
        Ok(())
    };
    for act in script {
        let sent = match *act {
            Act::Wait(ticks) => {
                for _ in 0..ticks {
                    tick(&mut decoder, now, &mut log)?;
                    now += TICK;
                }
                Ok(())
            }
            Act::Start { offset_ms } => {
                chunk_id += 1;
                let start = (now as i64 + offset_ms * 1_000_000).max(0) as u64;
                sender.begin_chunk(chunk_id, start)
            }
            Act::Token(token) => sender.token(token),
            Act::Value(value) => sender.value(value),
            Act::End => sender.end_chunk(),
        };
        sent.map_err(|e| e.to_string())?;
    }
    for _ in 0..tail_ticks {
        tick(&mut decoder, now, &mut log)?;
        now += TICK;
    }
    Ok((decoder, log))
}

const ARM: [&str; 4] = ["shoulder", "elbow", "wrist", "gripper"];

/// Valid FAST tokens of random smooth chunks, with stray ids mixed in.
fn fast_payload() -> impl Strategy<Value = Vec<Act>> {
    let tokenizer = fast_tokenizer();
    (
        proptest::collection::vec(-1.0f64..1.0, 7 * 3),
        proptest::bool::weighted(0.1),
        0u32..600,
    )
        .prop_map(move |(knots, corrupt, stray)| {
            // A smooth chunk: each dimension interpolates three random knots over 16 steps.
            let chunk: Vec<f64> = (0..16 * 7)
                .map(|i| {
                    let (t, d) = ((i / 7) as f64 / 15.0, i % 7);
                    let (a, b, c) = (knots[d * 3], knots[d * 3 + 1], knots[d * 3 + 2]);
                    a * (1.0 - t) * (1.0 - t) + 2.0 * b * t * (1.0 - t) + c * t * t
                })
                .collect();
            let mut tokens = tokenizer.encode(&chunk).unwrap();
            if corrupt {
                let at = stray as usize % tokens.len();
                tokens[at] = stray;
            }
            tokens.into_iter().map(Act::Token).collect()
        })
}

fn fast_script() -> impl Strategy<Value = Vec<Act>> {
    let chunk = (-300i64..300, fast_payload(), proptest::bool::weighted(0.9)).prop_map(framed);
    let silence = (0u64..500).prop_map(|ticks| vec![Act::Wait(ticks)]);
    proptest::collection::vec(prop_oneof![chunk, silence], 1..16)
        .prop_map(|parts| parts.into_iter().flatten().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn raw_value_streams_never_break_a_limit(script in script(value().prop_map(Act::Value), 40)) {
        let robot = test_robot();
        let (decoder, sender) = decoder(&robot, &ARM, 10, ActionDecoding::Values, BlendMode::LatestOnly);
        let (decoder, _) = play(&robot, decoder, sender, &script, TAIL_TICKS).map_err(TestCaseError::fail)?;
        assert_resting(&decoder).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn binned_token_streams_never_break_a_limit(script in script(token(48_896, 49_152).prop_map(Act::Token), 40)) {
        let robot = test_robot();
        let bins = BinTokenizer::new(49_152, 256).unwrap();
        let blend = BlendMode::WeightedAverage { new_weight: 0.7 };
        let (decoder, sender) = decoder(&robot, &ARM, 10, ActionDecoding::Bins(bins), blend);
        let (decoder, _) = play(&robot, decoder, sender, &script, TAIL_TICKS).map_err(TestCaseError::fail)?;
        assert_resting(&decoder).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fast_token_streams_never_break_a_limit(script in fast_script()) {
        let robot = RobotDescription::humanoid();
        let (decoder, sender) = decoder(&robot, &HUMANOID_ARM, 16, ActionDecoding::Fast(Arc::new(fast_tokenizer())), BlendMode::FreezePrefix { steps: 3 });
        let (decoder, _) = play(&robot, decoder, sender, &script, TAIL_TICKS).map_err(TestCaseError::fail)?;
        assert_resting(&decoder).map_err(TestCaseError::fail)?;
    }
}

/// A smooth chunk of raw values for the test arm: every joint sweeps from its home towards
/// `level` (in normalised units) over the chunk.
fn sweep(sender: &mut ActionSender, chunk_id: u64, start: u64, level: f32) {
    sender.begin_chunk(chunk_id, start).unwrap();
    for step in 0..10 {
        for _ in 0..ARM.len() {
            sender.value(level * step as f32 / 9.0).unwrap();
        }
    }
    sender.end_chunk().unwrap();
}

fn run_ticks(decoder: &mut MotionDecoder, from: u64, ticks: u64) -> u64 {
    for tick in 0..ticks {
        decoder.tick(from + tick * TICK);
    }
    from + ticks * TICK
}

#[test]
fn garbage_stops_the_robot_and_a_valid_chunk_resumes_it() {
    let robot = test_robot();
    let (mut decoder, mut sender) = decoder(&robot, &ARM, 10, ActionDecoding::Values, BlendMode::LatestOnly);
    sweep(&mut sender, 1, 0, 0.8);
    let mut now = run_ticks(&mut decoder, 0, 100);
    assert_eq!(decoder.mode(), MotionMode::Following);
    assert!(
        decoder.states()[0].velocity.abs() > 0.1,
        "the shoulder should be moving"
    );

    sender.begin_chunk(2, now).unwrap();
    sender.value(0.1).unwrap();
    sender.value(f32::NAN).unwrap();
    now = run_ticks(&mut decoder, now, 1);
    assert_eq!(decoder.mode(), MotionMode::Stopping(StopReason::NonFinite));
    now = run_ticks(&mut decoder, now, 1000);
    assert_eq!(decoder.mode(), MotionMode::Holding(StopReason::NonFinite));
    assert!(decoder.states().iter().all(|s| s.velocity == 0.0));
    let held = decoder.states()[0].position;

    sender.end_chunk().unwrap();
    sweep(&mut sender, 3, now, -0.8);
    run_ticks(&mut decoder, now, 50);
    assert_eq!(decoder.mode(), MotionMode::Following);
    assert!(
        decoder.states()[0].position < held,
        "the shoulder should head for the new chunk"
    );
    let counts = decoder.interventions().snapshot();
    assert_eq!((counts.stop_non_finite, counts.chunks_completed), (1, 2));
}

#[test]
fn a_chunk_whose_steps_all_arrive_late_counts_as_stale_and_moves_nothing() {
    let robot = test_robot();
    let (mut decoder, mut sender) = decoder(&robot, &ARM, 10, ActionDecoding::Values, BlendMode::LatestOnly);
    sender.begin_chunk(1, 0).unwrap();
    let now = run_ticks(&mut decoder, 0, 300);
    // The chunk covered 0 to 180 ms; its values come at 300 ms.
    for _ in 0..10 * ARM.len() {
        sender.value(0.5).unwrap();
    }
    sender.end_chunk().unwrap();
    run_ticks(&mut decoder, now, 10);
    let counts = decoder.interventions().snapshot();
    assert_eq!((counts.stale_chunks, counts.chunks_completed), (1, 0));
    assert_eq!(decoder.mode(), MotionMode::Idle);
    assert_resting(&decoder).unwrap();
}

#[test]
fn a_starved_stream_stops_at_the_horizon_and_holds() {
    let robot = test_robot();
    let (mut decoder, mut sender) = decoder(&robot, &ARM, 10, ActionDecoding::Values, BlendMode::LatestOnly);
    sweep(&mut sender, 1, 0, 0.8);
    // The last step is due at 9 policy periods (180 ms); the horizon is 200 ms.
    let deadline = 9 * 20_000_000 + 200_000_000;
    let mut now = 0;
    while decoder.mode() == MotionMode::Following || decoder.mode() == MotionMode::Idle {
        decoder.tick(now);
        now += TICK;
        assert!(now <= deadline + 2 * TICK, "no stop by {now} ns");
    }
    assert!(now > deadline, "stopped early, at {now} ns");
    assert_eq!(decoder.mode(), MotionMode::Stopping(StopReason::Starved));
    run_ticks(&mut decoder, now, TAIL_TICKS);
    assert_resting(&decoder).unwrap();
    assert_eq!(decoder.interventions().snapshot().stop_starved, 1);
}

#[test]
fn fast_chunks_move_the_robot_before_they_are_complete() {
    let robot = RobotDescription::humanoid();
    let blend = BlendMode::LatestOnly;
    let (mut decoder, mut sender) = decoder(
        &robot,
        &HUMANOID_ARM,
        16,
        ActionDecoding::Fast(Arc::new(fast_tokenizer())),
        blend,
    );
    let chunk: Vec<f64> = (0..16 * 7).map(|i| 0.5 + 0.3 * ((i / 7) as f64 / 15.0)).collect();
    let tokens = fast_tokenizer().encode(&chunk).unwrap();
    sender.begin_chunk(1, 0).unwrap();
    let mut first_motion = None;
    for (n, &token) in tokens.iter().enumerate() {
        sender.token(token).unwrap();
        decoder.tick(n as u64 * TICK);
        if first_motion.is_none() && decoder.mode() == MotionMode::Following {
            first_motion = Some(n + 1);
        }
    }
    let first_motion = first_motion.expect("the robot never moved");
    assert!(
        first_motion < tokens.len(),
        "moved only after all {} tokens",
        tokens.len()
    );
    let shoulder = robot.joint_index("left_shoulder_pitch").unwrap();
    assert!(
        decoder.states()[shoulder].velocity != 0.0,
        "{:?} {:?} {first_motion} of {}",
        decoder.mode(),
        decoder.states()[shoulder],
        tokens.len()
    );
}

/// Records every command's bytes.
struct Recorder(Arc<Mutex<Vec<u8>>>);

impl JointSink for Recorder {
    fn send(&mut self, command: &JointCommand<'_>) {
        let mut log = self.0.lock().unwrap();
        log.extend_from_slice(&command.tick.to_le_bytes());
        for value in command
            .positions
            .iter()
            .chain(command.velocities)
            .chain(command.accelerations)
        {
            log.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// The motion loop on its own thread, on the virtual clock, with a stream filled in advance.
fn threaded_run() -> Vec<u8> {
    let robot = RobotDescription::humanoid();
    let (decoder, mut sender) = decoder(
        &robot,
        &HUMANOID_ARM,
        16,
        ActionDecoding::Fast(Arc::new(fast_tokenizer())),
        BlendMode::LatestOnly,
    );
    let tokenizer = fast_tokenizer();
    for (chunk_id, level) in [(1u64, 0.6), (2, -0.4), (3, 0.2)] {
        let chunk: Vec<f64> = (0..16 * 7).map(|i| level * ((i / 7) as f64 / 15.0)).collect();
        sender.begin_chunk(chunk_id, (chunk_id - 1) * 200_000_000).unwrap();
        for token in tokenizer.encode(&chunk).unwrap() {
            sender.token(token).unwrap();
        }
        sender.end_chunk().unwrap();
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new());
    let options = LoopOptions {
        ticks: Some(1500),
        ..LoopOptions::default()
    };
    let motion = MotionLoop::spawn(decoder, clock, Box::new(Recorder(log.clone())), options).unwrap();
    let report = motion.join().unwrap();
    assert_eq!(report.ticks, 1500);
    assert_eq!(report.interventions.chunks_completed, 3);
    let bytes = log.lock().unwrap().clone();
    bytes
}

#[test]
fn runs_are_byte_identical() {
    let first = threaded_run();
    assert_eq!(first, threaded_run());
    assert_eq!(first.len(), 1500 * (8 + 3 * 82 * 8));

    let robot = test_robot();
    let script: Vec<Act> = [
        Act::Start { offset_ms: 0 },
        Act::Value(0.3),
        Act::Value(0.5),
        Act::Value(-0.2),
        Act::Value(0.9),
        Act::End,
        Act::Wait(150),
        Act::Start { offset_ms: -40 },
    ]
    .into_iter()
    .chain((0..40).map(|i| Act::Value((i as f32 * 0.37).sin())))
    .chain([Act::End, Act::Wait(600)])
    .collect();
    let logs: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let (decoder, sender) = decoder(&robot, &ARM, 10, ActionDecoding::Values, BlendMode::LatestOnly);
            play(&robot, decoder, sender, &script, 100).unwrap().1
        })
        .collect();
    assert_eq!(logs[0], logs[1]);
}

/// A policy streaming overlapping 20-step chunks of binned tokens for all 82 joints, each
/// chunk's tokens spread over 100 ms, starting at the observation time: the first steps of
/// every chunk are already committed when they arrive. Motion must start on the first chunk's
/// partial data and the watchdog must never trip.
#[test]
fn a_steady_token_stream_never_trips_the_watchdog() {
    let robot = RobotDescription::humanoid();
    let names: Vec<&str> = robot.joints.iter().map(|j| j.name.as_str()).collect();
    let bins = BinTokenizer::new(49_152, 256).unwrap();
    let (mut decoder, mut sender) = decoder(
        &robot,
        &names,
        20,
        ActionDecoding::Bins(bins.clone()),
        BlendMode::LatestOnly,
    );
    let mut pending: Vec<(u64, Option<u32>)> = Vec::new();
    let mut checker = LimitChecker::new(&decoder, &robot);
    for tick in 0..3000u64 {
        let now = tick * TICK;
        if now.is_multiple_of(200_000_000) {
            sender.begin_chunk(now / 200_000_000, now).unwrap();
            let tokens = (0..20 * 82).map(|k| {
                let t = (now + (k / 82) * 20_000_000) as f64 * 1e-9;
                let value = 0.3 * (std::f64::consts::TAU * 0.4 * t + (k % 82) as f64 * 0.37).sin();
                bins.encode_value(value).unwrap()
            });
            pending.extend(
                tokens
                    .enumerate()
                    .map(|(k, token)| (now + k as u64 * 100_000_000 / 1640, Some(token))),
            );
            pending.push((now + 100_000_000, None));
        }
        pending.retain(|&(at, token)| {
            if at > now {
                return true;
            }
            match token {
                Some(token) => sender.token(token).unwrap(),
                None => sender.end_chunk().unwrap(),
            }
            false
        });
        let command = decoder.tick(now);
        checker.check(&robot, &command).unwrap();
        if tick == 50 {
            assert_eq!(decoder.mode(), MotionMode::Following);
        }
    }
    let counts = decoder.interventions().snapshot();
    assert_eq!(counts.stops(), 0, "{counts:?}");
    assert_eq!(counts.chunks_completed, 15);
}
