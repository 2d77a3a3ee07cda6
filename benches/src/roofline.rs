//! This machine's roofline, measured in the same run as the kernels it judges: a STREAM-like
//! probe of memory bandwidth (read-only sum and triad over buffers far larger than the last
//! level cache) and an FMA loop that gives the peak f32 multiply-add rate.

use std::time::Instant;

use rayon::prelude::*;

/// Measured ceilings of the machine.
#[derive(Clone, Copy, Debug)]
pub struct Roofline {
    /// Bytes per second read by a parallel sum over 256 MiB.
    pub read_bytes_per_s: f64,
    /// Bytes per second moved by `a = b + s * c` (two reads and one write per element).
    pub triad_bytes_per_s: f64,
    /// f32 FLOP per second (2 per FMA) with every thread in the pool busy.
    pub f32_flops: f64,
}

const PROBE_ELEMS: usize = 64 << 20;

fn best_of<F: FnMut() -> f64>(runs: usize, mut f: F) -> f64 {
    (0..runs).map(|_| f()).fold(0f64, f64::max)
}

/// Parallel sum of a large buffer, in bytes per second (best of a few runs).
pub fn read_bandwidth() -> f64 {
    let data = vec![1.0f32; PROBE_ELEMS];
    best_of(5, || {
        let start = Instant::now();
        let sum: f32 = data.par_chunks(1 << 16).map(sum_wide).sum();
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        (PROBE_ELEMS * 4) as f64 / secs
    })
}

/// A sum with 16 independent lanes, which the compiler keeps in vector registers.
fn sum_wide(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for chunk in xs.chunks_exact(16) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum()
}

/// STREAM triad in bytes per second (best of a few runs).
pub fn triad_bandwidth() -> f64 {
    let n = PROBE_ELEMS / 2;
    let (b, c) = (vec![1.0f32; n], vec![2.0f32; n]);
    let mut a = vec![0f32; n];
    best_of(5, || {
        let start = Instant::now();
        a.par_chunks_mut(1 << 16)
            .zip(b.par_chunks(1 << 16))
            .zip(c.par_chunks(1 << 16))
            .for_each(|((a, b), c)| {
                for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                    *a = b + 3.0 * c;
                }
            });
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(&a);
        (3 * n * 4) as f64 / secs
    })
}

/// Peak f32 FLOP/s: every thread runs independent chains of vector FMAs.
pub fn fma_peak() -> f64 {
    let threads = rayon::current_num_threads();
    const ITERS: usize = 20_000_000;
    best_of(3, || {
        let start = Instant::now();
        let flops: f64 = (0..threads).into_par_iter().map(|t| fma_chains(ITERS, t as f32)).sum();
        flops / start.elapsed().as_secs_f64()
    })
}

/// Runs `iters` rounds of 12 independent vector FMA chains, as wide as the CPU allows;
/// returns the FLOPs done.
fn fma_chains(iters: usize, seed: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected just above.
            unsafe { x86::fma_chains_512(iters, seed) };
            return (iters * 12 * 16 * 2) as f64;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected just above.
            unsafe { x86::fma_chains_256(iters, seed) };
            return (iters * 12 * 8 * 2) as f64;
        }
    }
    let mut acc = [seed; 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = *v * 0.999_999 + 1e-7;
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_chains_256(iters: usize, seed: f32) {
        let (m, a) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, m, a);
            }
        }
        std::hint::black_box(acc);
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_chains_512(iters: usize, seed: f32) {
        let (m, a) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, m, a);
            }
        }
        std::hint::black_box(acc);
    }
}

/// Probes everything once.
pub fn measure() -> Roofline {
    Roofline {
        read_bytes_per_s: read_bandwidth(),
        triad_bytes_per_s: triad_bandwidth(),
        f32_flops: fma_peak(),
    }
}
