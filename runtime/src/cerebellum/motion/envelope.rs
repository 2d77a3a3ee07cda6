//! The safety envelope: the last stage before the joints. Whatever reference it is given, the
//! commands it emits stay inside every joint's position, velocity, acceleration and jerk
//! limits, measured as finite differences of consecutive commands at the control period.
//!
//! Each joint's state `(p, v, a)` advances by a chosen jerk `j`: `a' = a + j dt`,
//! `v' = v + a' dt`, `p' = p + v' dt`, so `v` and `a` are exactly the commanded positions'
//! first and second differences. The jerk is clamped to the jerk limit and to what keeps
//! `|a'| <= A`. That alone cannot keep velocity and position in bounds: acceleration takes time
//! to unwind, and a moving joint needs room to stop. So a candidate state is accepted only if
//! it is *viable*: from it, the braking policy [`brake_step`] comes to rest without breaking a
//! limit. If it is not, the joint takes a braking step instead, and since a braking step from
//! a viable state lands on a viable state (it is the first step of the run that proved it
//! viable), the joint can never be cornered.
//!
//! Viability is decided exactly by simulating the braking run, except when a cheap bound on the
//! run's peak speed and travel already shows it stays clear of the limits (tested against the
//! simulation in this module's tests).
//!
//! Timing contract: no allocation after construction; per joint and tick, O(1) work unless the
//! joint is near a limit, then one braking simulation of at most `max_brake_steps` steps.

use crate::robot::JointSpec;

/// |v| and |a| below which a braking joint is considered at rest and snapped to it.
const REST_VELOCITY: f64 = 1e-9;
const REST_ACCELERATION: f64 = 1e-6;

/// The most braking steps a viability test simulates, whatever the limits: above twice the
/// longest stop a validated robot may have at its highest control rate
/// (2 x [`crate::robot::MAX_STOPPING_SECONDS`] x 100 kHz = 6 million).
const MAX_BRAKE_STEPS: usize = 1 << 23;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JointLimits {
    pub min_position: f64,
    pub max_position: f64,
    pub velocity: f64,
    pub acceleration: f64,
    pub jerk: f64,
}

impl From<&JointSpec> for JointLimits {
    fn from(spec: &JointSpec) -> Self {
        Self {
            min_position: spec.min_position,
            max_position: spec.max_position,
            velocity: spec.max_velocity,
            acceleration: spec.max_acceleration,
            jerk: spec.max_jerk,
        }
    }
}

/// One joint's commanded position, velocity and acceleration.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JointState {
    pub position: f64,
    pub velocity: f64,
    pub acceleration: f64,
}

impl JointState {
    pub fn at_rest(position: f64) -> Self {
        Self {
            position,
            ..Self::default()
        }
    }

    fn advance(self, jerk: f64, dt: f64) -> Self {
        let acceleration = self.acceleration + jerk * dt;
        let velocity = self.velocity + acceleration * dt;
        Self {
            position: self.position + velocity * dt,
            velocity,
            acceleration,
        }
    }

    fn is_resting(&self) -> bool {
        self.velocity.abs() <= REST_VELOCITY && self.acceleration.abs() <= REST_ACCELERATION
    }
}

/// What the envelope did to one joint in one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The reference was followed exactly.
    Tracked,
    /// The reference needed more jerk, acceleration or speed than allowed; the joint
    /// approaches it at the limits.
    RateLimited,
    /// Following the reference would have left no room to stop; the joint braked.
    Braked,
}

/// One joint's limits and control period, with the braking policy and viability test.
#[derive(Debug, Clone, Copy)]
pub struct JointEnvelope {
    limits: JointLimits,
    dt: f64,
    max_brake_steps: usize,
    gains: Gains,
}

/// Linear-zone gains (1/s) of the approach: the acceleration loop converges within a few
/// ticks, and each outer loop is four times slower than the one inside it.
#[derive(Debug, Clone, Copy)]
struct Gains {
    position: f64,
    velocity: f64,
    acceleration: f64,
}

impl Gains {
    fn new(dt: f64) -> Self {
        let acceleration = 0.25 / dt;
        let velocity = acceleration / 4.0;
        let position = velocity / 4.0;
        Self {
            position,
            velocity,
            acceleration,
        }
    }
}

/// Where the schedule wants a joint at the tick's time, with the velocity, acceleration and
/// jerk of its path there, as backward differences at the control period: the same measure
/// the joint's own state uses, so a joint on the path stays exactly on it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Target {
    pub position: f64,
    pub velocity: f64,
    pub acceleration: f64,
    pub jerk: f64,
}

impl Target {
    /// A target standing still at `position`.
    pub fn at(position: f64) -> Self {
        Self {
            position,
            ..Self::default()
        }
    }

    /// The target from the path's positions now and 1, 2 and 3 control periods ago.
    pub fn from_path(now: f64, back1: f64, back2: f64, back3: f64, dt: f64) -> Self {
        Self {
            position: now,
            velocity: (now - back1) / dt,
            acceleration: (now - 2.0 * back1 + back2) / (dt * dt),
            jerk: (now - 3.0 * back1 + 3.0 * back2 - back3) / (dt * dt * dt),
        }
    }
}

impl JointEnvelope {
    pub fn new(limits: JointLimits, dt: f64) -> Self {
        let JointLimits {
            velocity: v,
            acceleration: a,
            jerk: j,
            ..
        } = limits;
        // A stop from top speed with the acceleration at its worst takes v/a + 3a/j; allow
        // twice that. A run that has not rested by then counts as not viable. Limits the robot
        // file's validation refuses (`MAX_STOPPING_SECONDS`) could make that horizon overflow
        // or be NaN; it is capped instead, which only makes the envelope brake sooner.
        let horizon = (2.0 * (v / a + 3.0 * a / j) / dt).ceil();
        let max_brake_steps = horizon.min(MAX_BRAKE_STEPS as f64) as usize + 16;
        Self {
            gains: Gains::new(dt),
            limits,
            dt,
            max_brake_steps,
        }
    }

    pub fn limits(&self) -> &JointLimits {
        &self.limits
    }

    pub fn max_brake_steps(&self) -> usize {
        self.max_brake_steps
    }

    /// One tick toward `target` (its position clamped into the range first).
    pub fn track(&self, state: JointState, target: &Target) -> (JointState, StepOutcome) {
        let target = Target {
            position: target
                .position
                .clamp(self.limits.min_position, self.limits.max_position),
            velocity: target.velocity.clamp(-self.limits.velocity, self.limits.velocity),
            acceleration: target
                .acceleration
                .clamp(-self.limits.acceleration, self.limits.acceleration),
            jerk: target.jerk.clamp(-self.limits.jerk, self.limits.jerk),
        };
        let (jerk, saturated) = self.follow_jerk(state, &target);
        let admissible = self.admissible_jerk(state, jerk);
        let mut outcome = if saturated || admissible != jerk {
            StepOutcome::RateLimited
        } else {
            StepOutcome::Tracked
        };
        let candidate = state.advance(admissible, self.dt);
        if self.is_viable(candidate) {
            return (candidate, outcome);
        }
        outcome = StepOutcome::Braked;
        (self.brake_step(state), outcome)
    }

    /// The jerk that follows the reference: the reference's own jerk, corrected by nested
    /// loops (position error to velocity, velocity error to acceleration, acceleration error
    /// to jerk) on the state that jerk alone would reach, each loop fed forward with the
    /// reference's velocity and acceleration, so a reachable moving reference is followed
    /// closely. Far from it each loop asks for what can still be undone in time
    /// (`sqrt(A |e|)`: braking at half the acceleration limit; `sqrt(J |ev|)` likewise for
    /// acceleration); near it, a linear law, each loop four times slower than the one inside
    /// it, so the approach settles without ringing. Also says whether a limit shaped the answer.
    fn follow_jerk(&self, state: JointState, target: &Target) -> (f64, bool) {
        let JointLimits {
            velocity: v_max,
            acceleration: a_max,
            jerk: j_max,
            ..
        } = self.limits;
        let Gains {
            position,
            velocity,
            acceleration,
        } = self.gains;
        let mut saturated = false;
        let mut shaped = |error: f64, gain: f64, rate: f64, cap: f64| {
            let linear = gain * error.abs();
            let limit = cap.min((rate * error.abs()).sqrt());
            saturated |= linear > limit;
            error.signum() * linear.min(limit)
        };
        let free = state.advance(target.jerk, self.dt);
        let error = target.position - free.position;
        let v_wanted = target.velocity + shaped(error, position, a_max, v_max);
        let v_error = v_wanted.clamp(-v_max, v_max) - free.velocity;
        let a_wanted = target.acceleration + shaped(v_error, velocity, j_max, a_max);
        saturated |= v_wanted.abs() > v_max || a_wanted.abs() > a_max;
        let jerk = target.jerk + acceleration * (a_wanted.clamp(-a_max, a_max) - free.acceleration);
        (jerk, saturated)
    }

    /// `jerk` clamped to the jerk limit and to what keeps the next acceleration in limits.
    fn admissible_jerk(&self, state: JointState, jerk: f64) -> f64 {
        let JointLimits {
            acceleration: a_max,
            jerk: j_max,
            ..
        } = self.limits;
        let low = (-j_max).max((-a_max - state.acceleration) / self.dt);
        let high = j_max.min((a_max - state.acceleration) / self.dt);
        if jerk.is_nan() {
            return 0.0_f64.clamp(low, high);
        }
        jerk.clamp(low, high)
    }

    /// The braking policy: one step toward rest. It rests in two steps when the velocity is
    /// small enough to cancel outright; otherwise it follows `a = -sqrt(2 J |v*|)`, where `v*`
    /// is the velocity the joint will have once its acceleration is unwound, the curve along
    /// which velocity and acceleration reach zero together.
    pub fn brake_step(&self, state: JointState) -> JointState {
        if state.is_resting() {
            return JointState::at_rest(state.position);
        }
        let JointLimits {
            acceleration: a_max,
            jerk: j_max,
            ..
        } = self.limits;
        let dt = self.dt;
        let cancel = -state.velocity / dt;
        let jerk = if cancel.abs() <= j_max * dt && (cancel - state.acceleration).abs() <= j_max * dt {
            (cancel - state.acceleration) / dt
        } else {
            let unwound = state.velocity + state.acceleration * state.acceleration.abs() / (2.0 * j_max);
            let acceleration = -unwound.signum() * a_max.min((2.0 * j_max * unwound.abs()).sqrt());
            (acceleration - state.acceleration) / dt
        };
        state.advance(self.admissible_jerk(state, jerk), dt)
    }

    fn within_limits(&self, state: &JointState) -> bool {
        let limits = &self.limits;
        state.position >= limits.min_position
            && state.position <= limits.max_position
            && state.velocity.abs() <= limits.velocity
            && state.acceleration.abs() <= limits.acceleration
    }

    /// True when braking from `state` reaches rest inside every limit.
    pub fn is_viable(&self, state: JointState) -> bool {
        if !self.within_limits(&state) {
            return false;
        }
        self.clear_of_limits(&state) || self.brakes_to_rest(state)
    }

    /// Bounds on the braking run (the module tests check them against the simulation) that
    /// show it stays clear of every limit.
    fn clear_of_limits(&self, state: &JointState) -> bool {
        let JointLimits {
            min_position,
            max_position,
            velocity: v_max,
            acceleration: a_max,
            jerk: j_max,
        } = self.limits;
        let bounds = BrakingBounds::of(state, a_max, j_max, self.dt);
        bounds.up_speed <= v_max
            && bounds.down_speed <= v_max
            && bounds.up_travel <= max_position - state.position
            && bounds.down_travel <= state.position - min_position
    }

    /// The braking run, simulated until it rests or until the bounds show the rest of it
    /// clear of the limits.
    fn brakes_to_rest(&self, mut state: JointState) -> bool {
        for _ in 0..self.max_brake_steps {
            if state.is_resting() {
                return true;
            }
            state = self.brake_step(state);
            if !self.within_limits(&state) {
                return false;
            }
            if self.clear_of_limits(&state) {
                return true;
            }
        }
        false
    }
}

/// Bounds on the braking run from a state, in each direction: the highest speed it reaches
/// and how far it travels. While the acceleration unwinds at the jerk limit the velocity moves
/// by `a|a| / 2J` (plus a step's worth), so the velocity stays between the velocity now and
/// the velocity after unwinding, widened by a step. Each way the run travels at most: that
/// way's peak speed while the acceleration turns to full braking, `v^2 / 2A` while braking,
/// and the sqrt curve's last stretch, with a tenth more for margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrakingBounds {
    pub up_speed: f64,
    pub down_speed: f64,
    pub up_travel: f64,
    pub down_travel: f64,
}

impl BrakingBounds {
    pub fn of(state: &JointState, a_max: f64, j_max: f64, dt: f64) -> Self {
        let (v, a) = (state.velocity, state.acceleration);
        let unwound = v + a * a.abs() / (2.0 * j_max);
        let widen = a.abs() * dt + j_max * dt * dt;
        let up_speed = v.max(unwound).max(0.0) + widen;
        let down_speed = (-v).max(-unwound).max(0.0) + widen;
        // Turning the acceleration around to full braking, then braking at A, then the last
        // stretch along the sqrt curve (below A^2 / 2J, lasting A / J).
        let turn = (a.abs() + a_max) / j_max + 4.0 * dt;
        let tail = a_max * a_max * a_max / (2.0 * j_max * j_max);
        let travel =
            |speed: f64| 1.1 * (speed * turn + speed * speed / (2.0 * a_max) + tail) + 2.0 * j_max * dt * dt * dt;
        Self {
            up_speed,
            down_speed,
            up_travel: travel(up_speed),
            down_travel: travel(down_speed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn joint() -> JointEnvelope {
        JointEnvelope::new(
            JointLimits {
                min_position: -1.0,
                max_position: 1.0,
                velocity: 3.0,
                acceleration: 20.0,
                jerk: 400.0,
            },
            1e-3,
        )
    }

    proptest! {
        /// The cheap bounds never promise more than the simulated braking run delivers.
        #[test]
        fn the_braking_bounds_cover_the_simulated_run(v in -3.0f64..3.0, a in -20.0f64..20.0) {
            let envelope = joint();
            let start = JointState { position: 0.0, velocity: v, acceleration: a };
            let bounds = BrakingBounds::of(&start, 20.0, 400.0, 1e-3);
            let mut state = start;
            let mut steps = 0;
            while !state.is_resting() {
                state = envelope.brake_step(state);
                prop_assert!(state.velocity <= bounds.up_speed && -state.velocity <= bounds.down_speed,
                    "velocity {} outside the bounds {:?}", state.velocity, bounds);
                prop_assert!(state.position <= bounds.up_travel && -state.position <= bounds.down_travel,
                    "position {} outside the bounds {:?}", state.position, bounds);
                steps += 1;
                prop_assert!(steps <= envelope.max_brake_steps(), "no rest after {} steps", steps);
            }
        }
    }

    #[test]
    fn a_far_target_is_approached_at_the_limits_and_reached() {
        let envelope = joint();
        let mut state = JointState::at_rest(-0.8);
        let mut outcomes = Vec::new();
        for _ in 0..3000 {
            let (next, outcome) = envelope.track(state, &Target::at(0.7));
            outcomes.push(outcome);
            state = next;
        }
        assert!(
            (state.position - 0.7).abs() < 1e-6,
            "settled at {:?} {:?}",
            state,
            &outcomes[outcomes.len() - 5..]
        );
        assert!(outcomes.contains(&StepOutcome::RateLimited));
        assert_eq!(outcomes.last(), Some(&StepOutcome::Tracked));
    }

    #[test]
    fn a_reachable_moving_reference_is_followed_closely() {
        let envelope = joint();
        let omega = std::f64::consts::PI;
        let mut state = JointState::at_rest(0.0);
        let mut worst: f64 = 0.0;
        for tick in 1..=3000 {
            let path = |back: i32| 0.5 * (omega * (tick - back) as f64 * 1e-3).sin();
            let target = Target::from_path(path(0), path(1), path(2), path(3), 1e-3);
            let (next, outcome) = envelope.track(state, &target);
            state = next;
            if tick > 1000 {
                assert_eq!(outcome, StepOutcome::Tracked);
                worst = worst.max((state.position - target.position).abs());
            }
        }
        assert!(worst < 1e-9, "tracking error {worst}");
    }

    #[test]
    fn a_target_beyond_the_range_stops_at_the_limit() {
        let envelope = joint();
        let mut state = JointState::at_rest(0.0);
        for _ in 0..3000 {
            state = envelope.track(state, &Target::at(50.0)).0;
            assert!(state.position <= 1.0);
        }
        assert!((state.position - 1.0).abs() < 1e-6);
    }
}
