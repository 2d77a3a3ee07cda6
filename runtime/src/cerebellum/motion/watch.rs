//! The motion decoder's view of the real robot: the newest measured joint state it read from
//! the [`Feedback`] link, whether the robot may move now (no emergency stop, no pause, a
//! fresh joint state and, where the cameras are watched, a fresh frame), whether the joints
//! have strayed from their commands for too long, and the state a restart begins from.
//!
//! Timing contract: no allocation after construction, no lock; O(joints) per tick, and at a
//! restart one viability check per joint for each of at most [`START_TRIES`] speeds.

use std::sync::Arc;

use super::envelope::{JointEnvelope, JointState};
use super::StopReason;
use crate::cerebellum::feedback::{Feedback, FeedbackLimits, StateReading};
use crate::clock::Nanos;

/// Measured speeds tried at a restart, each half the last, before starting at rest.
const START_TRIES: usize = 8;

pub(super) struct Watch {
    feedback: Arc<Feedback>,
    limits: FeedbackLimits,
    /// How far each joint may be from its command before it counts as straying.
    tracking_limits: Vec<f64>,
    positions: Vec<f64>,
    velocities: Vec<f64>,
    /// Where a read lands before it is known to be consistent.
    scratch: (Vec<f64>, Vec<f64>),
    reading: Option<StateReading>,
    /// Since when some joint has been beyond its tracking limit.
    straying_since: Option<Nanos>,
}

impl Watch {
    pub fn new(feedback: Arc<Feedback>, limits: FeedbackLimits, tracking_limits: Vec<f64>) -> Self {
        let joints = tracking_limits.len();
        Self {
            feedback,
            limits,
            tracking_limits,
            positions: vec![0.0; joints],
            velocities: vec![0.0; joints],
            scratch: (vec![0.0; joints], vec![0.0; joints]),
            reading: None,
            straying_since: None,
        }
    }

    /// Takes the newest measured state; a read that raced the writer keeps the last one.
    pub fn refresh(&mut self) {
        let (positions, velocities) = &mut self.scratch;
        if let Some(reading) = self.feedback.read_state(positions, velocities) {
            std::mem::swap(&mut self.positions, positions);
            std::mem::swap(&mut self.velocities, velocities);
            self.reading = Some(reading);
        }
    }

    pub fn has_state(&self) -> bool {
        self.reading.is_some()
    }

    /// Why the robot may not move at `now`, or `None` when it may.
    pub fn blocker(&self, now: Nanos) -> Option<StopReason> {
        let age = |captured: Nanos| now.saturating_sub(captured);
        if self.feedback.is_emergency_stopped() {
            return Some(StopReason::EmergencyStop);
        }
        if self.feedback.is_paused() {
            return Some(StopReason::Paused);
        }
        match self.reading {
            Some(reading) if age(reading.captured) <= self.limits.max_state_age_ns => {}
            _ => return Some(StopReason::StaleState),
        }
        match (self.limits.max_frame_age_ns, self.feedback.frame_captured()) {
            (None, _) => None,
            (Some(max), Some(captured)) if age(captured) <= max => None,
            (Some(_), _) => Some(StopReason::StaleFrame),
        }
    }

    /// Whether some joint has been further than its limit from `commanded` for the tracking
    /// timeout or longer, as of `now`.
    pub fn tracking_lost(&mut self, now: Nanos, commanded: &[f64]) -> bool {
        let straying = commanded
            .iter()
            .zip(&self.positions)
            .zip(&self.tracking_limits)
            .any(|((command, measured), limit)| (command - measured).abs() > *limit);
        if !straying {
            self.straying_since = None;
            return false;
        }
        let since = *self.straying_since.get_or_insert(now);
        now.saturating_sub(since) >= self.limits.tracking_timeout_ns
    }

    /// Where `joint` starts again: its measured position (clamped into its range) and, where
    /// the robot reports it, its measured speed, slowed until the envelope can still stop it.
    pub fn start_state(&mut self, joint: usize, envelope: &JointEnvelope) -> JointState {
        self.straying_since = None;
        let limits = envelope.limits();
        let position = self.positions[joint].clamp(limits.min_position, limits.max_position);
        let mut velocity = self.velocities[joint].clamp(-limits.velocity, limits.velocity);
        for _ in 0..START_TRIES {
            let state = JointState {
                position,
                velocity,
                acceleration: 0.0,
            };
            if velocity == 0.0 || envelope.is_viable(state) {
                return state;
            }
            velocity *= 0.5;
        }
        JointState::at_rest(position)
    }
}
