//! Shared pieces of the benchmark binaries: timing statistics and a description of the
//! machine a figure was measured on.

pub use brainstem_runtime::compute::host as roofline;

use std::time::Duration;

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// CPU model, logical CPUs, the 1-minute load average (from /proc where it exists), and the
/// kernel family that runs; an invalid `BRAINSTEM_KERNELS` is an error rather than a family
/// silently detected in its place.
pub fn machine_description() -> anyhow::Result<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    use brainstem_runtime::kernels::family;
    let pinned = match family::from_env()? {
        Some(_) => "pinned",
        None => "detected",
    };
    let family = family::active();
    let many_rows = brainstem_runtime::kernels::quant::multi_row_path();
    Ok(format!(
        "{model}, {cpus} logical CPUs, load average {load}, kernels {family} ({pinned}; many-row products: {many_rows})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        assert_eq!(median(&ms(&[5, 1, 3])), Duration::from_millis(3));
        assert_eq!(median(&ms(&[4, 1, 3, 2])), Duration::from_micros(2500));
    }
}
