//! Power over simulated time: each partition draws its chip's idle power all along, and each
//! job adds its own energy spread evenly over the job. The peak is the highest sum over all
//! partitions at any moment.

use crate::clock::Nanos;

/// One job's extra draw on a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    start: Nanos,
    end: Nanos,
    watts: f64,
}

#[derive(Debug, Default, Clone)]
pub struct PowerTimeline {
    draws: Vec<Draw>,
}

impl PowerTimeline {
    /// A job from `start` to `end` that took `joules` beyond idle power.
    pub fn record(&mut self, start: Nanos, end: Nanos, joules: f64) {
        if end > start && joules > 0.0 {
            let watts = joules / ((end - start) as f64 * 1e-9);
            self.draws.push(Draw { start, end, watts });
        }
    }

    /// The highest total draw, given the partitions' idle power together.
    pub fn peak_watts(&self, idle_watts: f64) -> f64 {
        let mut edges: Vec<(Nanos, f64)> = self
            .draws
            .iter()
            .flat_map(|d| [(d.start, d.watts), (d.end, -d.watts)])
            .collect();
        // At equal times, ends before starts: back-to-back jobs do not overlap.
        edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (mut now, mut peak) = (0.0f64, 0.0f64);
        for (_, delta) in edges {
            now += delta;
            peak = peak.max(now);
        }
        idle_watts + peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_highest_overlap_of_jobs_above_idle() {
        let mut power = PowerTimeline::default();
        power.record(0, 1_000_000_000, 2.0); // 2 W for a second
        power.record(500_000_000, 1_000_000_000, 1.5); // 3 W for half a second
        power.record(1_000_000_000, 1_250_000_000, 2.5); // 10 W, right after both end
        power.record(2_000_000_000, 2_000_000_000, 5.0); // no duration: not a draw
        assert!((power.peak_watts(4.0) - 14.0).abs() < 1e-9);
        let mut overlapping = PowerTimeline::default();
        overlapping.record(0, 1_000_000_000, 2.0);
        overlapping.record(500_000_000, 1_000_000_000, 1.5);
        assert!((overlapping.peak_watts(0.0) - 5.0).abs() < 1e-9);
    }
}
