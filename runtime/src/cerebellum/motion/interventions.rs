//! Counters of everything the motion decoder did that the policy did not ask for. They are
//! atomics, written by the motion loop and read by anyone (telemetry, tests) without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Interventions {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct InterventionCounts {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Interventions {
            pub fn snapshot(&self) -> InterventionCounts {
                InterventionCounts { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl InterventionCounts {
            /// (name, count) pairs, for reports.
            pub fn entries(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Joint-ticks whose reference lay outside the joint's position range.
    position_clamped,
    /// Joint-ticks whose reference needed more jerk, acceleration or speed than allowed.
    rate_limited,
    /// Joint-ticks that braked because following the reference left no room to stop.
    braked,
    /// Controlled stops because no action was scheduled for longer than the horizon.
    stop_starved,
    /// Controlled stops because a chunk carried a NaN or an infinity.
    stop_non_finite,
    /// Controlled stops because a chunk carried a token outside the action vocabulary.
    stop_bad_token,
    /// Controlled stops because the stream broke its framing.
    stop_malformed,
    /// Controlled stops because the model side reported a failed policy.
    stop_policy_failed,
    /// Controlled stops because a joint strayed from its commands beyond its tracking limit.
    stop_tracking,
    /// Controlled stops because the measured joint state went stale.
    stop_stale_state,
    /// Controlled stops because the camera frames went stale.
    stop_stale_frame,
    /// Controlled stops because the operator paused the robot.
    stop_paused,
    /// Controlled stops because the operator pressed the emergency stop.
    stop_emergency,
    /// Chunks whose every step arrived after it was due (at its start, or by its end).
    stale_chunks,
    /// Chunks too far ahead of the present to schedule.
    distant_chunks,
    /// Chunks padded or truncated to their shape.
    relaxed_chunks,
    /// Chunks that lost an event in a full stream, refused whole.
    lost_chunks,
    /// Chunks dropped because the robot was held (paused, stopped for good, inputs stale, or
    /// not yet measured).
    held_chunks,
    /// Chunks received whole and scheduled.
    chunks_completed,
}

impl Interventions {
    pub fn add(counter: &AtomicU64, amount: u64) {
        if amount > 0 {
            counter.fetch_add(amount, Ordering::Relaxed);
        }
    }
}

impl InterventionCounts {
    pub fn stops(&self) -> u64 {
        self.stop_starved
            + self.stop_non_finite
            + self.stop_bad_token
            + self.stop_malformed
            + self.stop_policy_failed
            + self.stop_tracking
            + self.stop_stale_state
            + self.stop_stale_frame
            + self.stop_paused
            + self.stop_emergency
    }
}
