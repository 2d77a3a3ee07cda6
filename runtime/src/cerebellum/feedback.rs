//! What the robot and its operator tell the motion decoder, without a lock on the motion
//! loop's side: the measured joint state with its capture time, when the cameras last
//! captured a frame, and the operator's pause and emergency stop.
//!
//! The measured state is a sequence lock over one atomic per value: the writer (the embedder,
//! through the runtime) makes the sequence odd, stores the values, makes it even; the reader
//! copies the values between two reads of the sequence and keeps the copy only if the
//! sequence was even and unchanged. A reader never waits: a torn read is retried a bounded
//! number of times, then the previous reading stands. Writers are serialised by a mutex that
//! only writers take.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::clock::Nanos;

/// A capture time that means "never".
const NEVER: u64 = u64::MAX;
/// Tries at a consistent read of the measured state before the reader keeps its last one.
const READ_TRIES: usize = 4;

/// How old the robot's inputs may be, and how long the joints may stray from their commands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackLimits {
    /// The watchdog holds the robot when the newest measured joint state is older.
    pub max_state_age_ns: u64,
    /// The watchdog holds the robot when the newest camera frame is older; `None` when the
    /// motion decoder does not watch the cameras.
    pub max_frame_age_ns: Option<u64>,
    /// A joint beyond its tracking limit for this long stops the robot.
    pub tracking_timeout_ns: u64,
}

impl Default for FeedbackLimits {
    /// 100 ms for joint states, 500 ms for frames, 100 ms of tracking error.
    fn default() -> Self {
        Self {
            max_state_age_ns: 100_000_000,
            max_frame_age_ns: Some(500_000_000),
            tracking_timeout_ns: 100_000_000,
        }
    }
}

/// The shared, lock-free link from the robot to the motion decoder.
pub struct Feedback {
    sequence: AtomicU64,
    captured: AtomicU64,
    positions: Vec<AtomicU64>,
    velocities: Vec<AtomicU64>,
    has_velocities: AtomicBool,
    frame_captured: AtomicU64,
    paused: AtomicBool,
    emergency_stop: AtomicBool,
    writer: Mutex<()>,
}

/// One consistent reading of the measured state, copied into the reader's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateReading {
    pub captured: Nanos,
    pub has_velocities: bool,
}

impl Feedback {
    /// The link of a robot with `joints` joints; nothing measured yet.
    pub fn new(joints: usize) -> Self {
        let atomics = || (0..joints).map(|_| AtomicU64::new(0)).collect();
        Self {
            sequence: AtomicU64::new(0),
            captured: AtomicU64::new(NEVER),
            positions: atomics(),
            velocities: atomics(),
            has_velocities: AtomicBool::new(false),
            frame_captured: AtomicU64::new(NEVER),
            paused: AtomicBool::new(false),
            emergency_stop: AtomicBool::new(false),
            writer: Mutex::new(()),
        }
    }

    /// Publishes a measured state captured at `captured`. The caller has checked that it has
    /// one finite value per joint.
    pub fn publish_state(&self, captured: Nanos, positions: &[f64], velocities: Option<&[f64]>) {
        let _writing = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence.store(sequence.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, value) in self.positions.iter().zip(positions) {
            slot.store(value.to_bits(), Ordering::Relaxed);
        }
        for (slot, value) in self.velocities.iter().zip(velocities.unwrap_or(&[])) {
            slot.store(value.to_bits(), Ordering::Relaxed);
        }
        self.has_velocities.store(velocities.is_some(), Ordering::Relaxed);
        self.captured.store(captured, Ordering::Relaxed);
        self.sequence.store(sequence.wrapping_add(2), Ordering::Release);
    }

    /// Copies the newest measured state into `positions` and `velocities` (zero where the robot
    /// reports none). `None` when nothing was ever measured, or when every try raced a writer;
    /// the buffers may then hold a torn copy and must not be used. Wait-free and bounded.
    pub fn read_state(&self, positions: &mut [f64], velocities: &mut [f64]) -> Option<StateReading> {
        for _ in 0..READ_TRIES {
            let before = self.sequence.load(Ordering::Acquire);
            if before % 2 == 1 {
                continue;
            }
            let captured = self.captured.load(Ordering::Relaxed);
            let has_velocities = self.has_velocities.load(Ordering::Relaxed);
            for (out, slot) in positions.iter_mut().zip(&self.positions) {
                *out = f64::from_bits(slot.load(Ordering::Relaxed));
            }
            for (out, slot) in velocities.iter_mut().zip(&self.velocities) {
                *out = if has_velocities {
                    f64::from_bits(slot.load(Ordering::Relaxed))
                } else {
                    0.0
                };
            }
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return (captured != NEVER).then_some(StateReading {
                    captured,
                    has_velocities,
                });
            }
        }
        None
    }

    /// A frame from every camera was captured at `captured`.
    pub fn publish_frame(&self, captured: Nanos) {
        let newer = |latest: u64| (latest == NEVER || captured > latest).then_some(captured);
        let _ = self
            .frame_captured
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, newer);
    }

    /// When the newest frame was captured, if there was one.
    pub fn frame_captured(&self) -> Option<Nanos> {
        Some(self.frame_captured.load(Ordering::Relaxed)).filter(|&t| t != NEVER)
    }

    /// Holds the robot (a controlled stop) until [`Feedback::resume`]; chunks that arrive
    /// meanwhile are dropped.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
    }

    /// Lets the next whole chunk move the robot again, from its measured state.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
    }

    /// Stops the robot under control and holds it for the rest of the runtime's life.
    pub fn emergency_stop(&self) {
        self.emergency_stop.store(true, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    pub fn is_emergency_stopped(&self) -> bool {
        self.emergency_stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nothing_is_read_before_a_state_is_published() {
        let feedback = Feedback::new(2);
        let (mut p, mut v) = ([9.0; 2], [9.0; 2]);
        assert_eq!(feedback.read_state(&mut p, &mut v), None);
        feedback.publish_state(7, &[0.5, -0.5], None);
        let reading = feedback.read_state(&mut p, &mut v).unwrap();
        assert_eq!((reading.captured, reading.has_velocities), (7, false));
        assert_eq!((p, v), ([0.5, -0.5], [0.0, 0.0]));
        feedback.publish_state(9, &[0.1, 0.2], Some(&[1.0, -1.0]));
        assert!(feedback.read_state(&mut p, &mut v).unwrap().has_velocities);
        assert_eq!(v, [1.0, -1.0]);
    }

    #[test]
    fn a_reader_never_sees_a_torn_state() {
        let feedback = Arc::new(Feedback::new(8));
        let writer = {
            let feedback = feedback.clone();
            std::thread::spawn(move || {
                for k in 0..20_000u64 {
                    feedback.publish_state(k, &[k as f64; 8], None);
                }
            })
        };
        let (mut p, mut v) = ([0.0; 8], [0.0; 8]);
        // Every reading taken while the writer runs must be whole; how many there are depends
        // on the scheduler, so none is required.
        while !writer.is_finished() {
            if let Some(reading) = feedback.read_state(&mut p, &mut v) {
                assert!(
                    p.iter().all(|&x| x == reading.captured as f64),
                    "{p:?} at {}",
                    reading.captured
                );
            }
        }
        writer.join().unwrap();
        assert_eq!(feedback.read_state(&mut p, &mut v).map(|r| r.captured), Some(19_999));
        assert_eq!(p, [19_999.0; 8]);
    }

    #[test]
    fn the_newest_frame_time_wins() {
        let feedback = Feedback::new(1);
        assert_eq!(feedback.frame_captured(), None);
        feedback.publish_frame(50);
        feedback.publish_frame(40);
        assert_eq!(feedback.frame_captured(), Some(50));
    }
}
