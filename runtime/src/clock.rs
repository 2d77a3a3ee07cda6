//! Injected time. The motion decoder and the loops ask a [`Clock`] for the time and to wait
//! for a deadline: on the robot that is the wall clock, which sleeps and then spins to the
//! deadline; in tests and simulation it is a [`VirtualClock`], whose time only moves when told,
//! so a run is a pure function of its inputs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since the clock's epoch.
pub type Nanos = u64;

pub trait Clock: Send + Sync {
    fn now(&self) -> Nanos;
    /// Returns at or after `deadline`. Must not allocate or take locks.
    fn sleep_until(&self, deadline: Nanos);
}

/// The host's monotonic clock. `sleep_until` sleeps until `spin` before the deadline (the
/// scheduler wakes threads late by tens of microseconds), then spins on the clock.
pub struct WallClock {
    epoch: Instant,
    spin: Duration,
}

impl WallClock {
    pub fn new() -> Self {
        Self::with_spin(Duration::from_micros(150))
    }

    pub fn with_spin(spin: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            spin,
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    fn sleep_until(&self, deadline: Nanos) {
        let now = self.now();
        let spin = self.spin.as_nanos() as Nanos;
        if deadline > now + spin {
            std::thread::sleep(Duration::from_nanos(deadline - now - spin));
        }
        while self.now() < deadline {
            std::hint::spin_loop();
        }
    }
}

/// Simulated time: starts at zero and moves only forward, by `advance_to` or when a waiter
/// sleeps past it (the waiter is the only thing that could have happened in between).
#[derive(Default)]
pub struct VirtualClock {
    now: AtomicU64,
}

impl VirtualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance_to(&self, time: Nanos) {
        self.now.fetch_max(time, Ordering::AcqRel);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::Acquire)
    }

    fn sleep_until(&self, deadline: Nanos) {
        self.advance_to(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_never_wakes_early() {
        let clock = WallClock::new();
        for _ in 0..20 {
            let deadline = clock.now() + 300_000;
            clock.sleep_until(deadline);
            assert!(clock.now() >= deadline);
        }
    }

    #[test]
    fn virtual_time_only_moves_forward() {
        let clock = VirtualClock::new();
        clock.sleep_until(5_000);
        clock.advance_to(1_000);
        assert_eq!(clock.now(), 5_000);
    }
}
