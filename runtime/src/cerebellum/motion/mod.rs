//! The motion decoder: the cerebellum's last stage, run once per control tick. It reads the
//! action stream, decodes tokens into chunk estimates (progressively where the scheme allows),
//! blends them into the schedule, interpolates the schedule from the policy rate to the
//! control rate, passes every joint through the safety envelope, and returns the command for
//! the robot's sink. A watchdog brings the robot to a controlled stop (decelerating within
//! the limits, then holding) when the schedule runs dry past the starvation horizon or a
//! chunk carries garbage; the next whole, valid chunk resumes motion.
//!
//! With the robot's [`Feedback`] attached ([`MotionDecoder::follow_robot`]), the decoder
//! commands nothing until a measured joint state has arrived, starts (and restarts after
//! every stop or pause) from the measured state, stops when the joints stray from their
//! commands, when the joint state or the camera goes stale, on a pause and on an emergency
//! stop, and resumes only on a whole chunk that arrives while the inputs are fresh. Without
//! it, the robot is taken to follow its commands exactly and starts at its home pose.
//!
//! Timing contract of [`MotionDecoder::tick`]: no allocation, no lock, no system call; at most
//! `max_events_per_tick` stream events decoded, one schedule merge, the envelope's bounded
//! work per joint, and with feedback one bounded read of the measured state, O(joints)
//! checks, and at a restart the bounded start-state search of `watch.rs`. Deterministic: the commands are a function of the events and tick times.

mod chunk;
mod config;
mod envelope;
mod interventions;
mod runner;
mod schedule;
mod watch;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use chunk::{ActionDecoding, ChunkFault};
pub use config::MotionConfig;
pub use envelope::{BrakingBounds, JointEnvelope, JointLimits, JointState, StepOutcome, Target};
pub use interventions::{InterventionCounts, Interventions};
pub use runner::{LoopOptions, LoopReport, MotionLoop, RealtimeSetup};
pub use schedule::{BlendMode, Placement, Schedule};

use crate::cerebellum::feedback::{Feedback, FeedbackLimits};
use crate::cerebellum::stream::{ActionReceiver, StreamEvent};
use crate::clock::Nanos;
use crate::error::Result;
use crate::robot::RobotDescription;
use chunk::InFlight;
use watch::Watch;

/// Why the watchdog stopped the robot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Starved,
    NonFinite,
    BadToken,
    Malformed,
    /// The model side reported that the policy failed.
    PolicyFailed,
    /// A joint stayed further from its command than its tracking limit for too long.
    Tracking,
    /// The newest measured joint state is older than allowed.
    StaleState,
    /// The newest camera frame is older than allowed.
    StaleFrame,
    /// The operator paused the robot.
    Paused,
    /// The operator pressed the emergency stop; the robot holds for the runtime's life.
    EmergencyStop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionMode {
    /// No measured joint state yet: the robot is not commanded (the loop sends nothing).
    Waiting,
    /// No chunk yet: every joint holds where it started (its measured position, or its home
    /// without feedback).
    Idle,
    /// Following the schedule.
    Following,
    /// Decelerating to rest after the watchdog tripped.
    Stopping(StopReason),
    /// At rest after a stop, waiting for a whole valid chunk.
    Holding(StopReason),
}

impl MotionMode {
    /// A number for interfaces that carry the mode as an integer: 0 idle, 1 following,
    /// 2 stopping, 3 holding, 4 waiting.
    pub fn code(self) -> u8 {
        match self {
            MotionMode::Waiting => 4,
            MotionMode::Idle => 0,
            MotionMode::Following => 1,
            MotionMode::Stopping(_) => 2,
            MotionMode::Holding(_) => 3,
        }
    }
}

/// One tick's command for every joint, in the robot's joint order.
#[derive(Debug, Clone, Copy)]
pub struct JointCommand<'a> {
    pub tick: u64,
    pub time: Nanos,
    pub mode: MotionMode,
    pub positions: &'a [f64],
    pub velocities: &'a [f64],
    pub accelerations: &'a [f64],
}

/// Where commands go: the robot implements it. Called on the motion loop's thread once per
/// tick; it must return well within the control period and must not block on the model side.
pub trait JointSink: Send {
    fn send(&mut self, command: &JointCommand<'_>);
}

/// A sink that drives nothing, where the commands are read elsewhere or not needed
/// (benchmarks, offline evaluation).
pub struct NoHardware;

impl JointSink for NoHardware {
    fn send(&mut self, _command: &JointCommand<'_>) {}
}

/// The stream's framing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiving {
    Outside,
    Chunk {
        start: i64,
    },
    /// Dropping the rest of a chunk that was stale, too far ahead or faulty.
    Ignoring,
}

pub struct MotionDecoder {
    config: MotionConfig,
    receiver: ActionReceiver,
    envelopes: Vec<JointEnvelope>,
    states: Vec<JointState>,
    home: Vec<f64>,
    schedule: Schedule,
    in_flight: InFlight,
    receiving: Receiving,
    chunk_dirty: bool,
    /// Whether any step of the chunk being received made it into the schedule.
    chunk_scheduled: bool,
    mode: MotionMode,
    policy_period_ns: u64,
    control_period_ns: u64,
    tick: u64,
    interventions: Arc<Interventions>,
    /// The real robot, when the decoder follows it.
    watch: Option<Watch>,
    /// The current tick's time.
    now: Nanos,
    /// The refused-event count at the start of the chunk being received, and the last one seen.
    chunk_refused: u64,
    last_refused: u64,
    /// Scratch, sized at construction: the chunk in joint units, the reference, the targets.
    joint_chunk: Vec<f64>,
    /// The reference now and 1, 2, 3 control periods ago, per action dimension.
    path: [Vec<f64>; 4],
    targets: Vec<Target>,
    positions: Vec<f64>,
    velocities: Vec<f64>,
    accelerations: Vec<f64>,
}

impl MotionDecoder {
    pub fn new(
        robot: &RobotDescription,
        config: MotionConfig,
        decoding: ActionDecoding,
        receiver: ActionReceiver,
    ) -> Result<Self> {
        robot.validate()?;
        config.validate(robot)?;
        let dt = 1.0 / robot.control_rate_hz;
        let envelopes: Vec<JointEnvelope> = robot
            .joints
            .iter()
            .map(|joint| JointEnvelope::new(joint.into(), dt))
            .collect();
        let home: Vec<f64> = robot.joints.iter().map(|joint| joint.home()).collect();
        let (steps, dims) = (config.chunk_steps, config.action_dims());
        let joints = robot.joints.len();
        Ok(Self {
            in_flight: InFlight::new(decoding, steps, dims)?,
            schedule: Schedule::new(dims, steps, config.blend, config.transition_steps),
            policy_period_ns: config.policy_period_ns(),
            control_period_ns: robot.control_period_ns(),
            states: home.iter().map(|&p| JointState::at_rest(p)).collect(),
            targets: home.iter().map(|&position| Target::at(position)).collect(),
            positions: home.clone(),
            home,
            envelopes,
            receiver,
            receiving: Receiving::Outside,
            chunk_dirty: false,
            chunk_scheduled: false,
            mode: MotionMode::Idle,
            tick: 0,
            interventions: Arc::new(Interventions::default()),
            watch: None,
            now: 0,
            chunk_refused: 0,
            last_refused: 0,
            joint_chunk: vec![0.0; steps * dims],
            path: std::array::from_fn(|_| vec![0.0; dims]),
            velocities: vec![0.0; joints],
            accelerations: vec![0.0; joints],
            config,
        })
    }

    /// Follows the real robot through `feedback`: nothing is commanded until a measured state
    /// arrives, and the decoder starts, stops and restarts as the module's doc says. Each
    /// joint's tracking limit comes from the robot's description.
    pub fn follow_robot(mut self, robot: &RobotDescription, feedback: Arc<Feedback>, limits: FeedbackLimits) -> Self {
        let tracking_limits = robot.joints.iter().map(|joint| joint.tracking_limit()).collect();
        self.watch = Some(Watch::new(feedback, limits, tracking_limits));
        self.mode = MotionMode::Waiting;
        self
    }

    /// The counters, shared: read them from any thread.
    pub fn interventions(&self) -> Arc<Interventions> {
        self.interventions.clone()
    }

    pub fn control_period_ns(&self) -> u64 {
        self.control_period_ns
    }

    pub fn mode(&self) -> MotionMode {
        self.mode
    }

    pub fn states(&self) -> &[JointState] {
        &self.states
    }

    /// The policy step due at `time`, fractional.
    fn policy_step(&self, time: Nanos) -> f64 {
        time as f64 / self.policy_period_ns as f64
    }

    /// Runs one control tick at `now` and returns the command to send.
    pub fn tick(&mut self, now: Nanos) -> JointCommand<'_> {
        self.now = now;
        self.read_robot();
        self.drain_stream();
        self.check_starvation(now);
        self.check_robot(now);
        let step = self.policy_step(now).floor() as i64;
        let oldest_read = self.policy_step(now.saturating_sub(3 * self.control_period_ns)).floor() as i64;
        self.schedule.advance_to(step, oldest_read - 1);
        self.set_targets(now);
        if self.mode != MotionMode::Waiting {
            self.apply_envelope();
        }
        self.tick += 1;
        JointCommand {
            tick: self.tick - 1,
            time: now,
            mode: self.mode,
            positions: &self.positions,
            velocities: &self.velocities,
            accelerations: &self.accelerations,
        }
    }

    fn drain_stream(&mut self) {
        for _ in 0..self.config.max_events_per_tick {
            let Some(event) = self.receiver.pop() else { break };
            self.handle(event);
        }
        if self.chunk_dirty {
            self.merge_in_flight(false);
        }
    }

    fn handle(&mut self, event: StreamEvent) {
        let outcome = match (event, self.receiving) {
            (
                StreamEvent::ChunkStart {
                    start_time, refused, ..
                },
                receiving,
            ) => {
                if let Receiving::Chunk { .. } = receiving {
                    self.end_chunk(refused);
                }
                self.last_refused = refused;
                self.chunk_refused = refused;
                self.begin_chunk(start_time);
                Ok(())
            }
            (StreamEvent::Halt, _) => {
                self.stop(StopReason::PolicyFailed);
                Ok(())
            }
            (StreamEvent::Token(token), Receiving::Chunk { .. }) => self.in_flight.push_token(token),
            (StreamEvent::Value(value), Receiving::Chunk { .. }) => self.in_flight.push_value(value),
            (StreamEvent::ChunkEnd { refused }, Receiving::Chunk { .. }) => {
                self.end_chunk(refused);
                Ok(())
            }
            (StreamEvent::ChunkEnd { refused }, Receiving::Ignoring) => {
                self.last_refused = refused;
                self.receiving = Receiving::Outside;
                Ok(())
            }
            (StreamEvent::ChunkEnd { refused }, Receiving::Outside) if refused > self.last_refused => {
                // The chunk's start was refused: it was lost whole.
                self.last_refused = refused;
                Interventions::add(&self.interventions.lost_chunks, 1);
                Ok(())
            }
            (_, Receiving::Ignoring) => Ok(()),
            (_, Receiving::Outside) => Err(ChunkFault::Malformed),
        };
        match outcome {
            Ok(()) => self.chunk_dirty |= matches!(self.receiving, Receiving::Chunk { .. }),
            Err(fault) => self.fault(fault),
        }
    }

    fn begin_chunk(&mut self, start_time: Nanos) {
        if self.is_held() {
            Interventions::add(&self.interventions.held_chunks, 1);
            self.receiving = Receiving::Ignoring;
            return;
        }
        let start = (start_time as f64 / self.policy_period_ns as f64).round() as i64;
        self.receiving = match self.schedule.begin_chunk(start, self.config.chunk_steps) {
            Placement::Placed => {
                self.in_flight.reset();
                self.chunk_scheduled = false;
                Receiving::Chunk { start }
            }
            Placement::Stale => {
                Interventions::add(&self.interventions.stale_chunks, 1);
                Receiving::Ignoring
            }
            Placement::TooFarAhead => {
                Interventions::add(&self.interventions.distant_chunks, 1);
                Receiving::Ignoring
            }
        };
    }

    /// Closes the chunk being received; `refused` is the sender's count of refused events at
    /// its end (or at the next chunk's start, when its end was lost).
    fn end_chunk(&mut self, refused: u64) {
        self.last_refused = refused;
        if refused != self.chunk_refused {
            self.schedule.discard_chunk();
            self.receiving = Receiving::Outside;
            Interventions::add(&self.interventions.lost_chunks, 1);
            return;
        }
        match self.in_flight.finish() {
            Ok(relaxed) => {
                Interventions::add(&self.interventions.relaxed_chunks, relaxed as u64);
                self.merge_in_flight(true);
                let counter = match self.chunk_scheduled {
                    true => &self.interventions.chunks_completed,
                    // Every step arrived after it was due.
                    false => &self.interventions.stale_chunks,
                };
                Interventions::add(counter, 1);
                self.receiving = Receiving::Outside;
                if !self.schedule.is_empty() && self.mode != MotionMode::Following {
                    self.start_following();
                }
            }
            Err(fault) => self.fault(fault),
        }
    }

    /// Writes the in-flight chunk's usable steps, in joint units, into the schedule.
    fn merge_in_flight(&mut self, complete: bool) {
        self.chunk_dirty = false;
        let Receiving::Chunk { start } = self.receiving else {
            return;
        };
        let known = self.in_flight.known_steps();
        if known == 0 {
            return;
        }
        let dims = self.config.action_dims();
        let estimate = self.in_flight.estimate();
        for (k, (out, value)) in self.joint_chunk.iter_mut().zip(estimate).enumerate().take(known * dims) {
            *out = self.config.normalization[k % dims].unnormalize(*value);
        }
        self.chunk_scheduled |= self.schedule.merge(start, &self.joint_chunk, known, complete);
        if self.mode == MotionMode::Idle && !self.schedule.is_empty() {
            self.start_following();
        }
    }

    fn fault(&mut self, fault: ChunkFault) {
        if let Receiving::Chunk { .. } = self.receiving {
            self.schedule.discard_chunk();
        }
        self.receiving = Receiving::Ignoring;
        self.chunk_dirty = false;
        let reason = match fault {
            ChunkFault::NonFinite => StopReason::NonFinite,
            ChunkFault::BadToken => StopReason::BadToken,
            ChunkFault::Malformed => StopReason::Malformed,
        };
        self.stop(reason);
    }

    fn stop(&mut self, reason: StopReason) {
        let counter: &AtomicU64 = match reason {
            StopReason::Starved => &self.interventions.stop_starved,
            StopReason::NonFinite => &self.interventions.stop_non_finite,
            StopReason::BadToken => &self.interventions.stop_bad_token,
            StopReason::Malformed => &self.interventions.stop_malformed,
            StopReason::PolicyFailed => &self.interventions.stop_policy_failed,
            StopReason::Tracking => &self.interventions.stop_tracking,
            StopReason::StaleState => &self.interventions.stop_stale_state,
            StopReason::StaleFrame => &self.interventions.stop_stale_frame,
            StopReason::Paused => &self.interventions.stop_paused,
            StopReason::EmergencyStop => &self.interventions.stop_emergency,
        };
        Interventions::add(counter, 1);
        if let Receiving::Chunk { .. } = self.receiving {
            self.receiving = Receiving::Ignoring;
        }
        self.schedule.clear();
        self.mode = MotionMode::Stopping(reason);
    }

    fn check_starvation(&mut self, now: Nanos) {
        if self.mode != MotionMode::Following {
            return;
        }
        let last_step_time = (self.schedule.end() - 1).max(0) as u64 * self.policy_period_ns;
        if self.schedule.is_empty() || now > last_step_time + self.config.starvation_horizon_ns {
            self.stop(StopReason::Starved);
        }
    }

    /// Takes the robot's newest measured state; the first one ends the wait and becomes where
    /// every joint holds.
    fn read_robot(&mut self) {
        let Some(watch) = &mut self.watch else { return };
        watch.refresh();
        if self.mode == MotionMode::Waiting && watch.has_state() {
            self.restart_from_measured();
            self.mode = MotionMode::Idle;
        }
    }

    /// Whether a chunk may not start now: the robot is held, or not yet measured.
    fn is_held(&self) -> bool {
        match &self.watch {
            Some(watch) => self.mode == MotionMode::Waiting || watch.blocker(self.now).is_some(),
            None => false,
        }
    }

    /// Stops the robot when it may not move (emergency stop, pause, stale inputs) or has
    /// strayed from its commands; drops a chunk being received while it is held.
    fn check_robot(&mut self, now: Nanos) {
        let Some(watch) = &mut self.watch else { return };
        let reason = match watch.blocker(now) {
            Some(reason) => reason,
            None if self.mode == MotionMode::Following && watch.tracking_lost(now, &self.positions) => {
                StopReason::Tracking
            }
            None => return,
        };
        let operator = matches!(reason, StopReason::Paused | StopReason::EmergencyStop);
        match self.mode {
            MotionMode::Following => self.stop(reason),
            MotionMode::Stopping(held) | MotionMode::Holding(held) if operator && held != reason => self.stop(reason),
            _ if matches!(self.receiving, Receiving::Chunk { .. }) => {
                self.schedule.discard_chunk();
                self.receiving = Receiving::Ignoring;
                Interventions::add(&self.interventions.held_chunks, 1);
            }
            _ => {}
        }
    }

    /// Moves again on the schedule, from the measured state when following the robot; a
    /// robot that may not move keeps holding and the schedule is dropped.
    fn start_following(&mut self) {
        if self.is_held() {
            self.schedule.clear();
            Interventions::add(&self.interventions.held_chunks, 1);
            return;
        }
        self.restart_from_measured();
        self.mode = MotionMode::Following;
    }

    /// Every joint's state becomes its measured one (nothing happens without feedback).
    fn restart_from_measured(&mut self) {
        let Some(watch) = &mut self.watch else { return };
        for (joint, envelope) in self.envelopes.iter().enumerate() {
            let state = watch.start_state(joint, envelope);
            self.states[joint] = state;
            self.targets[joint] = Target::at(state.position);
            self.positions[joint] = state.position;
            self.velocities[joint] = state.velocity;
            self.accelerations[joint] = 0.0;
        }
    }

    fn set_targets(&mut self, now: Nanos) {
        if self.mode != MotionMode::Following {
            return;
        }
        for (back, path) in self.path.iter_mut().enumerate() {
            let time = now as f64 - (back as u64 * self.control_period_ns) as f64;
            if !self.schedule.reference(time / self.policy_period_ns as f64, path) {
                return;
            }
        }
        let dt = self.control_period_ns as f64 * 1e-9;
        let [now, back1, back2, back3] = &self.path;
        for (d, &joint) in self.config.action_joints.iter().enumerate() {
            self.targets[joint] = Target::from_path(now[d], back1[d], back2[d], back3[d], dt);
        }
    }

    fn apply_envelope(&mut self) {
        let (mut clamped, mut limited, mut braked) = (0, 0, 0);
        let stopping = matches!(self.mode, MotionMode::Stopping(_) | MotionMode::Holding(_));
        let mut all_resting = true;
        for (joint, envelope) in self.envelopes.iter().enumerate() {
            let state = self.states[joint];
            let next = if stopping {
                envelope.brake_step(state)
            } else {
                let target = &self.targets[joint];
                let limits = envelope.limits();
                clamped += u64::from(!(limits.min_position..=limits.max_position).contains(&target.position));
                let (next, outcome) = envelope.track(state, target);
                limited += u64::from(outcome == StepOutcome::RateLimited);
                braked += u64::from(outcome == StepOutcome::Braked);
                next
            };
            all_resting &= next.velocity == 0.0 && next.acceleration == 0.0;
            self.states[joint] = next;
            self.positions[joint] = next.position;
            self.velocities[joint] = next.velocity;
            self.accelerations[joint] = next.acceleration;
        }
        Interventions::add(&self.interventions.position_clamped, clamped);
        Interventions::add(&self.interventions.rate_limited, limited);
        Interventions::add(&self.interventions.braked, braked);
        if let (MotionMode::Stopping(reason), true) = (self.mode, all_resting) {
            self.mode = MotionMode::Holding(reason);
            for (target, &position) in self.targets.iter_mut().zip(&self.positions) {
                *target = Target::at(position);
            }
        }
    }

    /// The home position of every joint (where the robot starts).
    pub fn home(&self) -> &[f64] {
        &self.home
    }
}
