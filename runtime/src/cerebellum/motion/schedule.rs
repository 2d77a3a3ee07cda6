//! The action schedule: joint-space targets on the policy's time grid (step `n` is due at
//! `n * policy_period`), kept in a ring, blended as chunks arrive, and read at control rate
//! through a Catmull-Rom cubic (C1 everywhere, whatever the samples are).
//!
//! The steps that the segment being executed depends on (up to `n + 2` at step `n`) are
//! *committed*: later chunks never rewrite them, so the reference never jumps. A new chunk
//! blends into the steps after that (after `freeze` more under [`BlendMode::FreezePrefix`]),
//! with a smoothstep ramp over `transition_steps` from the schedule it replaces.
//!
//! Timing contract: no allocation after construction; a merge is O(chunk steps x dims), a
//! reference read O(dims).

/// How a new chunk combines with the schedule it overlaps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlendMode {
    /// The new chunk replaces the old one (after the transition ramp).
    LatestOnly,
    /// Overlapping steps become `old + new_weight * (new - old)`, as lerobot's async
    /// inference `weighted_average` (new weight 0.7) does.
    WeightedAverage { new_weight: f64 },
    /// Real-time chunking: the next `steps` after the committed ones keep the old chunk (the
    /// robot executes them while the new chunk is computed); the new chunk takes over after.
    FreezePrefix { steps: usize },
}

pub struct Schedule {
    dims: usize,
    capacity: usize,
    /// `[capacity, dims]`, step `n` in slot `n % capacity`: the schedule being executed.
    values: Vec<f64>,
    /// The schedule as it was when the in-flight chunk began: what blending starts from.
    base: Vec<f64>,
    first: i64,
    end: i64,
    base_end: i64,
    committed: i64,
    blend: BlendMode,
    transition_steps: usize,
}

/// Why a chunk could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Placed,
    /// Every step of the chunk is already committed.
    Stale,
    /// The chunk reaches past what the ring can hold.
    TooFarAhead,
}

impl Schedule {
    pub fn new(dims: usize, chunk_steps: usize, blend: BlendMode, transition_steps: usize) -> Self {
        let freeze = match blend {
            BlendMode::FreezePrefix { steps } => steps,
            _ => 0,
        };
        let capacity = 2 * chunk_steps + freeze + 16;
        Self {
            dims,
            capacity,
            values: vec![0.0; capacity * dims],
            base: vec![0.0; capacity * dims],
            first: 0,
            end: 0,
            base_end: 0,
            committed: i64::MIN / 2,
            blend,
            transition_steps,
        }
    }

    fn slot(&self, step: i64) -> usize {
        step.rem_euclid(self.capacity as i64) as usize * self.dims
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.first
    }

    /// One past the last scheduled step.
    pub fn end(&self) -> i64 {
        self.end
    }

    /// Checks that a chunk of `steps` starting at `start` fits, and remembers the current
    /// schedule as the base the chunk blends into.
    pub fn begin_chunk(&mut self, start: i64, steps: usize) -> Placement {
        if start + steps as i64 <= self.committed + 1 {
            return Placement::Stale;
        }
        // An empty schedule begins at the chunk's first step that is not committed.
        let first = if self.is_empty() {
            start.max(self.committed + 1)
        } else {
            self.first
        };
        if start + steps as i64 - first > self.capacity as i64 {
            return Placement::TooFarAhead;
        }
        if self.is_empty() {
            self.first = first;
            self.end = first;
        }
        self.base.copy_from_slice(&self.values);
        self.base_end = self.end;
        Placement::Placed
    }

    /// Forgets every scheduled step (after a stop, motion resumes only on a new chunk).
    pub fn clear(&mut self) {
        self.end = self.first;
        self.base_end = self.first;
    }

    /// Puts the schedule back as it was before the in-flight chunk.
    pub fn discard_chunk(&mut self) {
        self.values.copy_from_slice(&self.base);
        self.end = self.base_end;
    }

    /// Blends the first `known` steps of the in-flight chunk starting at `start`
    /// (`chunk[(k - start) * dims + d]`, already in joint units) into the schedule. `complete`
    /// ends the schedule with the chunk; otherwise the old schedule's tail is kept after it.
    /// Returns whether any step was written (false when every known step is committed).
    pub fn merge(&mut self, start: i64, chunk: &[f64], known: usize, complete: bool) -> bool {
        // Only steps the old schedule has can stay frozen.
        let old_uncommitted = (self.base_end - self.committed - 1).max(0);
        let freeze = match self.blend {
            BlendMode::FreezePrefix { steps } => (steps as i64).min(old_uncommitted),
            _ => 0,
        };
        let writable = start.max(self.committed + 1 + freeze).max(self.first);
        let known_end = start + known as i64;
        if known_end <= writable {
            return false;
        }
        if self.is_empty() {
            // Nothing to continue from: the schedule begins where the chunk can be written.
            self.first = writable;
            self.end = writable;
        }
        // Steps between the schedule's end and the first writable step (a chunk that starts
        // ahead of it, or is partly stale) hold the last scheduled value.
        for step in self.end..writable {
            self.hold_from_previous(step);
        }
        for step in writable..known_end {
            let ramp = smoothstep((step - writable + 1) as f64 / (self.transition_steps + 1) as f64);
            let has_old = step < self.base_end && step >= self.first;
            let weight = match self.blend {
                BlendMode::WeightedAverage { new_weight } if has_old => new_weight,
                _ => 1.0,
            } * if has_old { ramp } else { 1.0 };
            let slot = self.slot(step);
            let row = (step - start) as usize * self.dims;
            for d in 0..self.dims {
                let old = self.base[slot + d];
                self.values[slot + d] = old + weight * (chunk[row + d] - old);
            }
        }
        self.end = if complete {
            known_end
        } else {
            known_end.max(self.base_end)
        };
        true
    }

    fn hold_from_previous(&mut self, step: i64) {
        let (from, to) = (self.slot(step - 1), self.slot(step));
        for d in 0..self.dims {
            self.values[to + d] = self.values[from + d];
        }
    }

    /// Commits the steps the segment at `step` depends on, and drops the steps before
    /// `keep_from` (the oldest step a reference read still needs).
    pub fn advance_to(&mut self, step: i64, keep_from: i64) {
        self.committed = self.committed.max(step + 2);
        if !self.is_empty() {
            self.first = self.first.max(keep_from.min(step - 1).min(self.end - 1));
        }
    }

    /// The reference position at policy-time `u` (in steps, fractional) for every
    /// dimension, written into `out`, or `false` if nothing is scheduled. Past the end it
    /// holds the last step.
    pub fn reference(&self, u: f64, out: &mut [f64]) -> bool {
        if self.is_empty() {
            return false;
        }
        let n = u.floor() as i64;
        let s = u - n as f64;
        let clamp = |step: i64| step.clamp(self.first, self.end - 1);
        let slots = [n - 1, n, n + 1, n + 2].map(|step| self.slot(clamp(step)));
        let (s2, s3) = (s * s, s * s * s);
        let h00 = 2.0 * s3 - 3.0 * s2 + 1.0;
        let h10 = s3 - 2.0 * s2 + s;
        let h01 = -2.0 * s3 + 3.0 * s2;
        let h11 = s3 - s2;
        for (d, value) in out.iter_mut().enumerate().take(self.dims) {
            let [x0, x1, x2, x3] = slots.map(|slot| self.values[slot + d]);
            let (m1, m2) = (0.5 * (x2 - x0), 0.5 * (x3 - x1));
            *value = h00 * x1 + h10 * m1 + h01 * x2 + h11 * m2;
        }
        true
    }
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_chunk(steps: usize, offset: f64) -> Vec<f64> {
        (0..steps).map(|k| offset + k as f64).collect()
    }

    #[test]
    fn the_reference_interpolates_the_samples_and_is_c1() {
        let mut schedule = Schedule::new(1, 8, BlendMode::LatestOnly, 0);
        assert_eq!(schedule.begin_chunk(10, 8), Placement::Placed);
        let chunk: Vec<f64> = (0..8).map(|k| (k as f64 * 0.7).sin()).collect();
        schedule.merge(10, &chunk, 8, true);
        let at = |u: f64| {
            let mut out = [0.0];
            assert!(schedule.reference(u, &mut out));
            out[0]
        };
        for (k, value) in chunk.iter().enumerate() {
            assert!((at(10.0 + k as f64) - value).abs() < 1e-12);
        }
        let h = 1e-6;
        for knot in 11..16 {
            let left = (at(knot as f64) - at(knot as f64 - h)) / h;
            let right = (at(knot as f64 + h) - at(knot as f64)) / h;
            assert!((left - right).abs() < 1e-4, "slope jumps at {knot}: {left} vs {right}");
        }
        assert!((at(40.0) - chunk[7]).abs() < 1e-12, "holds the last step");
    }

    #[test]
    fn committed_steps_are_never_rewritten() {
        let mut schedule = Schedule::new(1, 8, BlendMode::LatestOnly, 0);
        schedule.begin_chunk(0, 8);
        schedule.merge(0, &ramp_chunk(8, 0.0), 8, true);
        schedule.advance_to(3, 2);
        let mut before = [0.0];
        schedule.reference(3.5, &mut before);
        schedule.begin_chunk(2, 8);
        schedule.merge(2, &ramp_chunk(8, 100.0), 8, true);
        let mut after = [0.0];
        schedule.reference(3.5, &mut after);
        assert_eq!(before, after);
        let mut later = [0.0];
        schedule.reference(9.0, &mut later);
        assert_eq!(later[0], 107.0);
    }

    #[test]
    fn weighted_average_and_freeze_blend_as_configured() {
        let mut average = Schedule::new(1, 8, BlendMode::WeightedAverage { new_weight: 0.7 }, 0);
        average.begin_chunk(0, 8);
        average.merge(0, &[0.0; 8], 8, true);
        average.begin_chunk(0, 8);
        average.merge(0, &[10.0; 8], 8, true);
        let mut out = [0.0];
        average.reference(5.0, &mut out);
        assert!((out[0] - 7.0).abs() < 1e-12);

        let mut frozen = Schedule::new(1, 8, BlendMode::FreezePrefix { steps: 2 }, 0);
        frozen.begin_chunk(0, 8);
        frozen.merge(0, &[0.0; 8], 8, true);
        frozen.advance_to(0, -1);
        frozen.begin_chunk(0, 8);
        frozen.merge(0, &[10.0; 8], 8, true);
        let values: Vec<f64> = (0..8)
            .map(|k| {
                frozen.reference(k as f64, &mut out);
                out[0]
            })
            .collect();
        assert_eq!(values, [0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 10.0, 10.0]);
    }

    #[test]
    fn stale_and_distant_chunks_are_refused() {
        let mut schedule = Schedule::new(1, 4, BlendMode::LatestOnly, 0);
        schedule.begin_chunk(0, 4);
        schedule.merge(0, &[1.0; 4], 4, true);
        schedule.advance_to(20, 19);
        assert_eq!(schedule.begin_chunk(10, 4), Placement::Stale);
        assert_eq!(schedule.begin_chunk(1000, 4), Placement::TooFarAhead);
    }
}
