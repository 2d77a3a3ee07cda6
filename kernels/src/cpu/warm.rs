//! A rayon pool whose workers stay awake through a burst of parallel ops.
//!
//! A forward pass is hundreds of short parallel ops in a row (a SmolLM2 decode step runs
//! about 150 matmuls of 10 to 300 us). Between two of them rayon's idle workers go to
//! sleep within some tens of microseconds, and the next op waits for the kernel, and on a
//! virtual machine for the hypervisor, to give a sleeping worker's CPU back: 45 us with no
//! gap and 0.7 to 3 ms after an idle 5 ms on the 2-vCPU VMs this project measures on, when
//! the op itself takes 10 us. [`WarmPool::install_warm`] runs a burst with every other
//! worker kept awake: each one loops on `rayon::yield_now`, which runs any job the burst
//! makes, so a split op starts on every worker within a microsecond.
//!
//! The spinning is bounded: a worker stops as soon as the burst returns, and also once it
//! has found no work for [`WARM_IDLE_LIMIT`] (the burst is then doing host-side work, and a
//! later op pays one wake-up again). Only one burst per pool keeps workers warm at a time;
//! a nested or concurrent one runs as a plain `install`, so a worker never holds a warm
//! loop on top of a job that another burst waits for beyond that idle limit. A pool of one
//! thread never spins. Spinning workers hold their cores for the whole pass, so a runtime
//! partition of several threads should have its cores to itself (the default partitions
//! have one core and one thread each).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a kept-warm worker spins without finding work before it lets rayon put it to
/// sleep: longer than the host-side gaps between a forward pass's ops, short enough that
/// a pass that stops issuing parallel work frees its cores at once.
pub const WARM_IDLE_LIMIT: Duration = Duration::from_millis(2);

/// A rayon thread pool and whether a burst is keeping its workers warm.
pub struct WarmPool {
    pool: rayon::ThreadPool,
    warming: AtomicBool,
}

/// Clears `warming` and tells the warm workers to stop, even if the burst panics.
struct BurstEnd<'a> {
    warming: &'a AtomicBool,
    done: Arc<AtomicBool>,
}

impl Drop for BurstEnd<'_> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        self.warming.store(false, Ordering::Release);
    }
}

impl WarmPool {
    pub fn new(pool: rayon::ThreadPool) -> WarmPool {
        WarmPool {
            pool,
            warming: AtomicBool::new(false),
        }
    }

    /// The underlying pool, for `broadcast` and thread counts.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// Runs `f` on one of the pool's workers (directly when already on one), as
    /// `rayon::ThreadPool::install` does.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Runs `f` on one of the pool's workers while the others spin for its jobs (see the
    /// module doc for the bound on that spinning).
    pub fn install_warm<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(|| {
            let first = self
                .warming
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if !first || self.pool.current_num_threads() < 2 {
                if first {
                    self.warming.store(false, Ordering::Release);
                }
                return f();
            }
            let owner = rayon::current_thread_index();
            let done = Arc::new(AtomicBool::new(false));
            let until = Arc::clone(&done);
            self.pool.spawn_broadcast(move |worker| {
                if Some(worker.index()) != owner {
                    keep_warm(&until);
                }
            });
            let _end = BurstEnd {
                warming: &self.warming,
                done,
            };
            f()
        })
    }
}

/// Runs the pool's pending jobs until `done`, or until none has come for
/// [`WARM_IDLE_LIMIT`]. The clock is read once every [`IDLE_ROUNDS_PER_CLOCK`] idle rounds.
fn keep_warm(done: &AtomicBool) {
    let mut idle_since: Option<Instant> = None;
    let mut idle_rounds = 0u32;
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            (idle_since, idle_rounds) = (None, 0);
            continue;
        }
        std::hint::spin_loop();
        idle_rounds += 1;
        if idle_rounds.is_multiple_of(IDLE_ROUNDS_PER_CLOCK) {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() > WARM_IDLE_LIMIT {
                return;
            }
        }
    }
}

/// Idle rounds between two clock reads in [`keep_warm`]: a round is a steal attempt and a
/// pause, well under a microsecond, so the idle limit is still kept to a few microseconds.
const IDLE_ROUNDS_PER_CLOCK: u32 = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> WarmPool {
        WarmPool::new(rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap())
    }

    #[test]
    fn a_warm_burst_runs_its_parallel_work_and_returns_its_value() {
        let pool = pool(2);
        let sum: u64 = pool.install_warm(|| (0..100_000u64).into_par_iter().map(|i| i * i).sum());
        assert_eq!(sum, (0..100_000u64).map(|i| i * i).sum::<u64>());
        assert!(!pool.warming.load(Ordering::Acquire));
    }

    #[test]
    fn nested_and_concurrent_bursts_complete() {
        let pool = pool(2);
        let total: u64 = std::thread::scope(|s| {
            let runs: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        pool.install_warm(|| {
                            (0..50u64)
                                .into_par_iter()
                                .map(|i| pool.install_warm(|| (0..1000u64).into_par_iter().map(|j| i ^ j).sum::<u64>()))
                                .sum::<u64>()
                        })
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).sum()
        });
        let expected: u64 = (0..50u64).map(|i| (0..1000u64).map(|j| i ^ j).sum::<u64>()).sum();
        assert_eq!(total, 3 * expected);
    }

    #[test]
    fn a_panicking_burst_clears_its_claim() {
        let pool = pool(2);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.install_warm(|| panic!("boom"))));
        assert!(caught.is_err());
        assert!(!pool.warming.load(Ordering::Acquire));
        assert_eq!(pool.install_warm(|| 7), 7);
    }
}
