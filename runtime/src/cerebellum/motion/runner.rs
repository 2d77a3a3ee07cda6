//! The motion loop: a thread that calls [`MotionDecoder::tick`] at the robot's control rate
//! and hands each command to the sink (none while the decoder waits for the robot's first
//! measured state). It pins itself to a core and asks for `SCHED_FIFO`
//! where the system allows, and reports what it got. It measures each tick's work (from
//! wake-up to the sink's return) and its jitter (wake-up minus deadline) into preallocated
//! histograms, so measuring allocates nothing either.
//!
//! Ticks are stamped with their deadline, not the wake-up time, so the trajectory is sampled
//! on an exact grid; a tick that overruns its period is counted and the loop skips to the next
//! deadline in the future rather than bursting to catch up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use hdrhistogram::Histogram;

use super::{InterventionCounts, Interventions, JointSink, MotionDecoder, MotionMode};
use crate::clock::Clock;
use crate::error::{Result, RuntimeError};
use crate::kernels::cpu::affinity::pin_current_thread;

#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    /// Pin the loop to this CPU core.
    pub core: Option<usize>,
    /// Ask for SCHED_FIFO at this priority (1 to 99).
    pub realtime_priority: Option<i32>,
    /// Lock the process's memory (mlockall, current and future pages) so that the loop never
    /// waits on a page fault.
    pub lock_memory: bool,
    /// Stop by itself after this many ticks.
    pub ticks: Option<u64>,
}

impl LoopOptions {
    /// These options, with `fallback`'s where these leave one unset (memory is locked when
    /// either asks).
    pub fn or(self, fallback: &LoopOptions) -> Self {
        Self {
            core: self.core.or(fallback.core),
            realtime_priority: self.realtime_priority.or(fallback.realtime_priority),
            lock_memory: self.lock_memory || fallback.lock_memory,
            ticks: self.ticks.or(fallback.ticks),
        }
    }
}

/// What the loop asked of the operating system and what it got.
#[derive(Debug, Clone, Default)]
pub struct RealtimeSetup {
    pub pinned_core: Option<Result<usize, String>>,
    pub fifo_priority: Option<Result<i32, String>>,
    pub memory_locked: Option<Result<(), String>>,
}

pub struct LoopReport {
    pub ticks: u64,
    /// Deadlines missed because a tick ran past its period.
    pub overruns: u64,
    /// Nanoseconds from wake-up to the sink's return.
    pub work_ns: Histogram<u64>,
    /// Nanoseconds from the deadline to wake-up.
    pub jitter_ns: Histogram<u64>,
    pub realtime: RealtimeSetup,
    pub interventions: InterventionCounts,
}

pub struct MotionLoop {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<LoopReport>,
    interventions: Arc<Interventions>,
}

impl MotionLoop {
    pub fn spawn(
        mut decoder: MotionDecoder,
        clock: Arc<dyn Clock>,
        mut sink: Box<dyn JointSink>,
        options: LoopOptions,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let interventions = decoder.interventions();
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("brainstem-motion".into())
            .spawn(move || {
                let realtime = setup_realtime(&options);
                run(&mut decoder, clock.as_ref(), sink.as_mut(), &options, &flag, realtime)
            })
            .map_err(|e| RuntimeError::Thread(e.to_string()))?;
        Ok(Self {
            stop,
            handle,
            interventions,
        })
    }

    pub fn interventions(&self) -> InterventionCounts {
        self.interventions.snapshot()
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the loop after its current tick and returns its report.
    pub fn stop(self) -> Result<LoopReport> {
        self.stop.store(true, Ordering::Release);
        self.join()
    }

    /// Waits for a loop started with a tick limit.
    pub fn join(self) -> Result<LoopReport> {
        self.handle
            .join()
            .map_err(|_| RuntimeError::Thread("the motion loop panicked".into()))
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("constant histogram bounds are valid")
}

fn run(
    decoder: &mut MotionDecoder,
    clock: &dyn Clock,
    sink: &mut dyn JointSink,
    options: &LoopOptions,
    stop: &AtomicBool,
    realtime: RealtimeSetup,
) -> LoopReport {
    let period = decoder.control_period_ns();
    let (mut work_ns, mut jitter_ns) = (histogram(), histogram());
    let (mut ticks, mut overruns) = (0u64, 0u64);
    let mut deadline = clock.now().div_ceil(period) * period;
    while !stop.load(Ordering::Acquire) && options.ticks.is_none_or(|limit| ticks < limit) {
        clock.sleep_until(deadline);
        let woke = clock.now();
        let command = decoder.tick(deadline);
        if command.mode != MotionMode::Waiting {
            sink.send(&command);
        }
        let done = clock.now();
        jitter_ns.saturating_record(woke.saturating_sub(deadline).max(1));
        work_ns.saturating_record(done.saturating_sub(woke).max(1));
        ticks += 1;
        deadline += period;
        if done > deadline {
            let missed = (done - deadline).div_ceil(period);
            overruns += missed;
            deadline += missed * period;
        }
    }
    LoopReport {
        ticks,
        overruns,
        work_ns,
        jitter_ns,
        realtime,
        interventions: decoder.interventions().snapshot(),
    }
}

fn setup_realtime(options: &LoopOptions) -> RealtimeSetup {
    let setup = RealtimeSetup {
        pinned_core: options.core.map(pin_current_thread),
        fifo_priority: options.realtime_priority.map(request_fifo),
        memory_locked: options.lock_memory.then(lock_memory),
    };
    for (what, outcome) in [
        (
            "pin the motion loop to a core",
            setup.pinned_core.as_ref().map(|r| r.as_ref().err()),
        ),
        (
            "run the motion loop at SCHED_FIFO",
            setup.fifo_priority.as_ref().map(|r| r.as_ref().err()),
        ),
        (
            "lock the process's memory",
            setup.memory_locked.as_ref().map(|r| r.as_ref().err()),
        ),
    ] {
        if let Some(Some(reason)) = outcome {
            tracing::warn!("could not {what}: {reason}; running without it");
        }
    }
    setup
}

#[cfg(target_os = "linux")]
fn request_fifo(priority: i32) -> Result<i32, String> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler only reads the sched_param passed by reference.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(priority)
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(target_os = "linux")]
fn lock_memory() -> Result<(), String> {
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(not(target_os = "linux"))]
fn lock_memory() -> Result<(), String> {
    Err("locking memory is implemented for Linux only".into())
}

#[cfg(not(target_os = "linux"))]
fn request_fifo(_priority: i32) -> Result<i32, String> {
    Err("SCHED_FIFO is implemented for Linux only".into())
}
