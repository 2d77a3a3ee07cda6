//! The motion decoder following a real robot, on the virtual clock: nothing is commanded
//! before the first measured state; the first command starts where the robot was measured;
//! for any measured start inside the limits and any stream (garbage, NaN, silence, a stale
//! camera) every command stays inside the envelope; a joint that does not follow its commands,
//! a stale joint state and a stale camera each stop the robot as their own intervention, and
//! fresh input resumes it; a chunk that lost an event in a full stream is refused whole; pause
//! and the emergency stop hold the robot; and a replay is byte-identical.

use std::sync::Arc;

use brainstem_runtime::cerebellum::feedback::{Feedback, FeedbackLimits};
use brainstem_runtime::cerebellum::motion::{ActionDecoding, MotionConfig, MotionDecoder, MotionMode, StopReason};
use brainstem_runtime::cerebellum::stream::{action_stream, ActionSender};
use brainstem_runtime::models::action::Normalization;
use brainstem_runtime::robot::{JointSpec, RobotDescription};

use crate::common::joint;
use proptest::prelude::*;

const TICK: u64 = 1_000_000;
const STEPS: usize = 10;

fn robot() -> RobotDescription {
    let joint = |name, range, velocity, acceleration, jerk| JointSpec {
        max_tracking_error: Some(0.05),
        ..joint(name, range, velocity, acceleration, jerk)
    };
    RobotDescription {
        name: "two-joint arm".into(),
        control_rate_hz: 1000.0,
        joints: vec![
            joint("shoulder", (-2.0, 2.0), 3.0, 20.0, 400.0),
            joint("elbow", (0.0, 2.5), 2.0, 10.0, 150.0),
        ],
    }
}

fn limits() -> FeedbackLimits {
    FeedbackLimits {
        max_state_age_ns: 50 * TICK,
        max_frame_age_ns: Some(150 * TICK),
        tracking_timeout_ns: 40 * TICK,
    }
}

/// A decoder following the robot through the returned feedback link; actions are raw joint
/// positions (identity normalisation), 10 steps at 50 Hz.
fn following(capacity: usize) -> (MotionDecoder, ActionSender, Arc<Feedback>, RobotDescription) {
    let robot = robot();
    let identity = vec![Normalization::Identity; 2];
    let config = MotionConfig::for_joints(&robot, &["shoulder", "elbow"], identity, 50.0, STEPS).unwrap();
    let (sender, receiver) = action_stream(capacity);
    let feedback = Arc::new(Feedback::new(2));
    let decoder = MotionDecoder::new(&robot, config, ActionDecoding::Values, receiver)
        .unwrap()
        .follow_robot(&robot, feedback.clone(), limits());
    (decoder, sender, feedback, robot)
}

/// A chunk from `start` holding every joint's `targets` at each step.
fn send_chunk(sender: &mut ActionSender, id: u64, start: u64, targets: [f32; 2]) {
    sender.begin_chunk(id, start).unwrap();
    for _ in 0..STEPS {
        for value in targets {
            sender.value(value).unwrap();
        }
    }
    sender.end_chunk().unwrap();
}

/// The robot, simulated: it reports where it was last commanded (`frozen`: where it started),
/// and its camera, unless the camera is `blind`.
struct World {
    at: [f64; 2],
    frozen: bool,
    blind: bool,
}

impl World {
    /// A robot at `at` that follows its commands, its camera working.
    fn new(at: [f64; 2]) -> Self {
        Self {
            at,
            frozen: false,
            blind: false,
        }
    }

    fn report(&self, feedback: &Feedback, now: u64) {
        feedback.publish_state(now, &self.at, None);
        if !self.blind {
            feedback.publish_frame(now);
        }
    }
}

/// Ticks from `from` to `to` (exclusive), the world reporting before each; returns the modes.
fn run(decoder: &mut MotionDecoder, feedback: &Feedback, world: &mut World, from: u64, to: u64) -> Vec<MotionMode> {
    let mut modes = Vec::new();
    for t in (from..to).step_by(TICK as usize) {
        world.report(feedback, t);
        let command = decoder.tick(t);
        if !world.frozen && command.mode != MotionMode::Waiting {
            world.at = [command.positions[0], command.positions[1]];
        }
        modes.push(command.mode);
    }
    modes
}

#[test]
fn nothing_is_commanded_before_a_measured_state_and_the_first_command_starts_there() {
    let (mut decoder, mut sender, feedback, _) = following(256);
    send_chunk(&mut sender, 0, 0, [1.0, 1.0]);
    assert_eq!(decoder.tick(0).mode, MotionMode::Waiting);
    assert_eq!(
        decoder.interventions().snapshot().held_chunks,
        1,
        "a chunk before the state is dropped"
    );
    feedback.publish_state(TICK, &[0.4, 1.2], Some(&[0.5, 0.0]));
    feedback.publish_frame(TICK);
    let command = decoder.tick(TICK);
    assert_eq!(command.mode, MotionMode::Idle);
    let step = (command.positions[0] - 0.4).abs();
    assert!(
        step <= 3.0 * 1e-3 + 1e-12 && step > 0.0,
        "moved {step} from the measured 0.4 at 0.5 rad/s"
    );
    assert_eq!(command.positions[1], 1.2);
}

#[test]
fn a_joint_that_does_not_follow_stops_the_robot_and_a_fresh_chunk_restarts_from_it() {
    let (mut decoder, mut sender, feedback, _) = following(256);
    let mut world = World {
        frozen: true,
        ..World::new([0.0, 1.0])
    };
    send_chunk(&mut sender, 0, 0, [1.0, 2.0]);
    let modes = run(&mut decoder, &feedback, &mut world, 0, 800 * TICK);
    let changes: Vec<_> = modes
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] != w[1])
        .map(|(t, w)| (t, w[1]))
        .collect();
    assert!(
        modes.contains(&MotionMode::Holding(StopReason::Tracking)),
        "{changes:?}"
    );
    assert_eq!(decoder.interventions().snapshot().stop_tracking, 1);
    world.frozen = false;
    send_chunk(&mut sender, 1, 800 * TICK, [0.2, 1.1]);
    let restart = decoder.tick(800 * TICK);
    assert_eq!(restart.mode, MotionMode::Following);
    assert!(
        (restart.positions[0] - world.at[0]).abs() <= 3.0e-3,
        "restarted from the measured state"
    );
}

#[test]
fn a_stale_camera_or_joint_state_holds_the_robot_until_fresh_input_returns() {
    let (mut decoder, mut sender, feedback, _) = following(256);
    let mut world = World::new([0.0, 1.0]);
    send_chunk(&mut sender, 0, 0, [0.5, 1.5]);
    run(&mut decoder, &feedback, &mut world, 0, 100 * TICK);
    world.blind = true;
    let modes = run(&mut decoder, &feedback, &mut world, 100 * TICK, 1000 * TICK);
    assert_eq!(modes.last(), Some(&MotionMode::Holding(StopReason::StaleFrame)));
    send_chunk(&mut sender, 1, 1000 * TICK, [0.0, 1.0]);
    run(&mut decoder, &feedback, &mut world, 1000 * TICK, 1010 * TICK);
    assert_eq!(
        decoder.interventions().snapshot().held_chunks,
        1,
        "no chunk starts on a stale camera"
    );
    world.blind = false;
    send_chunk(&mut sender, 2, 1010 * TICK, [0.0, 1.0]);
    let modes = run(&mut decoder, &feedback, &mut world, 1010 * TICK, 1020 * TICK);
    assert_eq!(modes.last(), Some(&MotionMode::Following));
    // The joint encoders go quiet: the state ages past its limit.
    for t in (1020..2000).map(|ms| ms * TICK) {
        feedback.publish_frame(t);
        decoder.tick(t);
    }
    assert_eq!(decoder.mode(), MotionMode::Holding(StopReason::StaleState));
    let counts = decoder.interventions().snapshot();
    assert_eq!((counts.stop_stale_frame, counts.stop_stale_state), (1, 1));
}

#[test]
fn a_chunk_that_lost_an_event_in_a_full_stream_is_refused_whole() {
    let (mut decoder, mut sender, feedback, _) = following(32);
    feedback.publish_state(0, &[0.0, 1.0], None);
    feedback.publish_frame(0);
    decoder.tick(0);
    sender.begin_chunk(0, 0).unwrap();
    let refused = (0..4 * STEPS).filter(|_| sender.value(0.9).is_err()).count();
    assert_eq!(
        refused,
        4 * STEPS - 31,
        "every value after the first refused one is refused"
    );
    decoder.tick(0);
    sender.end_chunk().unwrap();
    decoder.tick(TICK);
    let counts = decoder.interventions().snapshot();
    assert_eq!(
        (counts.lost_chunks, counts.relaxed_chunks, counts.chunks_completed),
        (1, 0, 0)
    );
    send_chunk(&mut sender, 1, 40 * TICK, [0.1, 1.0]);
    assert_eq!(
        decoder.tick(40 * TICK).mode,
        MotionMode::Following,
        "the next whole chunk is taken"
    );
}

#[test]
fn pause_holds_until_resume_and_the_emergency_stop_holds_for_good() {
    let (mut decoder, mut sender, feedback, _) = following(256);
    let mut world = World::new([0.0, 1.0]);
    send_chunk(&mut sender, 0, 0, [0.5, 1.5]);
    run(&mut decoder, &feedback, &mut world, 0, 50 * TICK);
    feedback.pause();
    send_chunk(&mut sender, 1, 60 * TICK, [0.5, 1.5]);
    let modes = run(&mut decoder, &feedback, &mut world, 50 * TICK, 1000 * TICK);
    assert_eq!(modes.last(), Some(&MotionMode::Holding(StopReason::Paused)));
    feedback.resume();
    send_chunk(&mut sender, 2, 1000 * TICK, [0.5, 1.5]);
    run(&mut decoder, &feedback, &mut world, 1000 * TICK, 1050 * TICK);
    assert_eq!(decoder.mode(), MotionMode::Following);
    feedback.emergency_stop();
    feedback.resume();
    send_chunk(&mut sender, 3, 1100 * TICK, [0.0, 1.0]);
    let modes = run(&mut decoder, &feedback, &mut world, 1050 * TICK, 2000 * TICK);
    assert_eq!(modes.last(), Some(&MotionMode::Holding(StopReason::EmergencyStop)));
    let counts = decoder.interventions().snapshot();
    assert_eq!((counts.stop_paused, counts.stop_emergency), (1, 1));
}

/// The commands of a scripted run with a tracking fault and a stale camera, as bits.
fn replay() -> Vec<u64> {
    let (mut decoder, mut sender, feedback, _) = following(256);
    let mut world = World::new([0.3, 0.7]);
    let mut bits = Vec::new();
    for (k, ms) in (0..2000u64).step_by(200).enumerate() {
        send_chunk(&mut sender, k as u64, ms * TICK, [0.3 + 0.1 * k as f32, 1.0]);
        world.frozen = k == 3;
        world.blind = (6..8).contains(&k);
        for t in (ms..ms + 200).map(|ms| ms * TICK) {
            world.report(&feedback, t);
            let command = decoder.tick(t);
            bits.extend(command.positions.iter().map(|p| p.to_bits()));
            bits.push(u64::from(command.mode.code()));
            if !world.frozen {
                world.at = [command.positions[0], command.positions[1]];
            }
        }
    }
    let counts = decoder.interventions().snapshot();
    assert!(counts.stop_tracking >= 1 && counts.stop_stale_frame >= 1, "{counts:?}");
    bits
}

#[test]
fn a_replay_with_faults_is_byte_identical() {
    assert_eq!(replay(), replay());
}

/// What the model side does in one 20 ms policy period of the property test.
#[derive(Debug, Clone)]
enum Period {
    Chunk(Vec<f32>),
    Silence,
    CameraFreezes,
    CameraReturns,
}

fn period() -> impl Strategy<Value = Period> {
    let value = prop_oneof![10 => -3.0f32..3.0, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY)];
    prop_oneof![
        4 => prop::collection::vec(value, 0..2 * STEPS + 3).prop_map(Period::Chunk),
        2 => Just(Period::Silence),
        1 => Just(Period::CameraFreezes),
        1 => Just(Period::CameraReturns),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn no_command_leaves_the_envelope_from_any_measured_start(
        start in (-2.0f64..2.0, 0.0f64..2.5),
        speed in (-3.0f64..3.0, -2.0f64..2.0),
        periods in prop::collection::vec(period(), 1..40),
    ) {
        let (mut decoder, mut sender, feedback, robot) = following(4096);
        let mut world = World::new([start.0, start.1]);
        feedback.publish_state(0, &world.at, Some(&[speed.0, speed.1]));
        feedback.publish_frame(0);
        let first = decoder.tick(0);
        for (j, spec) in robot.joints.iter().enumerate() {
            let step = (first.positions[j] - world.at[j]).abs();
            prop_assert!(step <= spec.max_velocity * 1e-3 * (1.0 + 1e-9), "joint {j} stepped {step}");
        }
        world.at = [first.positions[0], first.positions[1]];
        let mut now = TICK;
        for (k, period) in periods.iter().enumerate() {
            match period {
                Period::Chunk(values) => {
                    let _ = sender.begin_chunk(k as u64, now);
                    values.iter().for_each(|&v| { let _ = sender.value(v); });
                    let _ = sender.end_chunk();
                }
                Period::Silence => {}
                Period::CameraFreezes => world.blind = true,
                Period::CameraReturns => world.blind = false,
            }
            for _ in 0..20 {
                world.report(&feedback, now);
                let command = decoder.tick(now);
                for (j, spec) in robot.joints.iter().enumerate() {
                    let (p, v, a) = (command.positions[j], command.velocities[j], command.accelerations[j]);
                    prop_assert!((spec.min_position..=spec.max_position).contains(&p), "joint {j} at {p}");
                    prop_assert!(v.abs() <= spec.max_velocity * (1.0 + 1e-9), "joint {j} at {v} rad/s");
                    prop_assert!(a.abs() <= spec.max_acceleration * (1.0 + 1e-9), "joint {j} at {a} rad/s2");
                }
                world.at = [command.positions[0], command.positions[1]];
                now += TICK;
            }
        }
    }
}
