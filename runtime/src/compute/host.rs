//! This machine's roofline, measured in the same run as the work it judges: a STREAM-like
//! probe of memory bandwidth (read-only sum and triad over buffers far larger than the last
//! level cache), an FMA loop that gives the peak f32 multiply-add rate and a `vpdpbusd`
//! loop that gives the peak int8 rate, on the current rayon pool. [`host_profile`] turns them, with the int8 rate and per-op cost the CPU
//! backend reaches, into the `host` chip profile a partition's simulation is checked
//! against.

use std::borrow::Cow;
use std::time::Instant;

use rayon::prelude::*;

use crate::compute::chip::{ChipProfile, HostCpu};
use crate::compute::host_code::measured_host_cpu;
use crate::compute::op_cost::decode_costs;
use crate::error::Result;
use crate::kernels::quant::quantize::quantize;
use crate::kernels::{
    AttentionMask, AttentionParams, Backend, BinaryOp, DType, DeviceBackend, HostWeight, KvCacheSpec,
};

/// Measured ceilings of the machine.
#[derive(Clone, Copy, Debug)]
pub struct Roofline {
    /// Bytes per second read by a parallel sum over 256 MiB.
    pub read_bytes_per_s: f64,
    /// Bytes per second moved by `a = b + s * c` (two reads and one write per element).
    pub triad_bytes_per_s: f64,
    /// f32 FLOP per second (2 per FMA) with every thread in the pool busy.
    pub f32_flops: f64,
    /// int8 ops per second (2 per multiply-accumulate) of `vpdpbusd` chains with every
    /// thread busy, where the CPU has AVX-512 VNNI or AVX-VNNI.
    pub int8_ops: Option<f64>,
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

    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn dpbusd_chains_256(iters: usize, seed: i32) {
        let (u, s) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2));
        let mut acc = [_mm256_set1_epi32(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_dpbusd_avx_epi32(*v, u, s);
            }
        }
        std::hint::black_box(acc);
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dpbusd_chains_512(iters: usize, seed: i32) {
        let (u, s) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let mut acc = [_mm512_set1_epi32(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, u, s);
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

/// Peak int8 ops/s (2 per multiply-accumulate): every thread runs independent chains of
/// `vpdpbusd`, 512 bits wide with AVX-512 VNNI, 256 with AVX-VNNI; `None` without either.
pub fn int8_peak() -> Option<f64> {
    let threads = rayon::current_num_threads();
    const ITERS: usize = 20_000_000;
    // Zero rounds: only asks whether the CPU has VNNI.
    int8_chains(0, 0)?;
    Some(best_of(3, || {
        let start = Instant::now();
        let ops: f64 = (0..threads)
            .into_par_iter()
            .map(|t| int8_chains(ITERS, t as i32).unwrap_or(0.0))
            .sum();
        ops / start.elapsed().as_secs_f64()
    }))
}

/// Runs `iters` rounds of 12 independent `vpdpbusd` chains, as wide as the CPU allows;
/// returns the int8 ops done, or `None` where the CPU has no VNNI.
fn int8_chains(iters: usize, seed: i32) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512f") {
            // SAFETY: the features were detected just above.
            unsafe { x86::dpbusd_chains_512(iters, seed) };
            return Some((iters * 12 * 64 * 2) as f64);
        }
        if is_x86_feature_detected!("avxvnni") {
            // SAFETY: the feature was detected just above.
            unsafe { x86::dpbusd_chains_256(iters, seed) };
            return Some((iters * 12 * 32 * 2) as f64);
        }
    }
    let _ = (iters, seed);
    None
}

/// Probes everything once.
pub fn measure() -> Roofline {
    Roofline {
        read_bytes_per_s: read_bandwidth(),
        triad_bytes_per_s: triad_bandwidth(),
        f32_flops: fma_peak(),
        int8_ops: int8_peak(),
    }
}

/// int8 multiply-accumulates per second the backend's quantized matmul reaches on a
/// cache-resident Q8_0 weight (64 activation rows, as a prefill would), by its own ledger.
fn int8_mac_rate<B: Backend>(backend: &B) -> Result<f64> {
    Ok(ledger_rates(backend, DType::Q8_0, 64, 1024, 1024)?.int8_macs)
}

/// Per-second ledger counts of an op sequence, the best of several runs.
#[derive(Clone, Copy, Debug, Default)]
struct Rates {
    int8_macs: f64,
    f32_macs: f64,
    bytes_read: f64,
}

/// The ledger's rates over ten `[rows, cols] x [out, cols]^T` products with a `dtype`
/// weight, the last result read back so that a device backend runs them all.
fn ledger_rates<B: Backend>(backend: &B, dtype: DType, rows: usize, cols: usize, out: usize) -> Result<Rates> {
    let values: Vec<f32> = (0..cols * out)
        .map(|i| ((i * 7919) % 255) as f32 / 127.0 - 1.0)
        .collect();
    let bytes = match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => quantize(dtype, &values)?,
    };
    let weight = backend.upload_weight(&HostWeight {
        dtype,
        shape: vec![out, cols],
        bytes: Cow::Owned(bytes),
    })?;
    let x = backend.upload(&vec![0.5; rows * cols], rows, cols)?;
    backend.read(&backend.matmul(&x, &weight)?)?;
    let mut best = Rates::default();
    for _ in 0..5 {
        let before = backend.ledger().snapshot();
        let start = Instant::now();
        let mut last = backend.matmul(&x, &weight)?;
        for _ in 1..10 {
            last = backend.matmul(&x, &weight)?;
        }
        backend.read(&last)?;
        let secs = start.elapsed().as_secs_f64();
        let cost = backend.ledger().snapshot().since(&before).total();
        best.int8_macs = best.int8_macs.max(cost.int8_macs as f64 / secs);
        best.f32_macs = best.f32_macs.max(cost.f32_macs as f64 / secs);
        best.bytes_read = best.bytes_read.max(cost.bytes_read as f64 / secs);
    }
    Ok(best)
}

/// Float operations per second (two per f32 multiply-accumulate, and the softmax's) the
/// backend's attention reaches over a SigLIP-sized tile: 1024 positions, 12 heads of 64,
/// every position seeing every other. This is the float work of a quantized model, whose
/// products are int8.
fn attention_flops<B: Backend>(backend: &B) -> Result<f64> {
    let (rows, heads, head_dim) = (1024, 12, 64);
    let values: Vec<f32> = (0..rows * heads * head_dim)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
        .collect();
    let x = backend.upload(&values, rows, heads * head_dim)?;
    let spec = KvCacheSpec {
        kv_heads: heads,
        head_dim,
        max_positions: rows,
    };
    let params = AttentionParams {
        heads,
        kv_heads: heads,
        head_dim,
        scale: 0.125,
        mask: AttentionMask::Full,
    };
    let mut cache = backend.kv_cache(spec)?;
    let mut best = 0f64;
    for _ in 0..3 {
        backend.kv_clear(&mut cache);
        let before = backend.ledger().snapshot();
        let start = Instant::now();
        backend.read(&backend.attention(&x, &x, &x, &mut cache, params)?)?;
        let secs = start.elapsed().as_secs_f64();
        let cost = backend.ledger().snapshot().since(&before).total();
        best = best.max((2 * cost.f32_macs + cost.float_ops) as f64 / secs);
    }
    Ok(best)
}

/// Microseconds one small op costs the backend beyond its arithmetic (a device backend's
/// recorded ops are run by one read at the end).
fn dispatch_us<B: Backend>(backend: &B) -> Result<f64> {
    let x = backend.upload(&[1.0; 8], 1, 8)?;
    let start = Instant::now();
    const OPS: usize = 2000;
    let mut last = backend.binary(&x, &x, BinaryOp::Add)?;
    for _ in 1..OPS {
        last = backend.binary(&x, &last, BinaryOp::Add)?;
    }
    backend.read(&last)?;
    Ok(start.elapsed().as_secs_f64() * 1e6 / OPS as f64)
}

/// The largest CPU cache Linux reports, MiB (1 where it reports none).
fn last_level_cache_mib() -> f64 {
    let sizes = (0..8).filter_map(|index| {
        let path = format!("/sys/devices/system/cpu/cpu0/cache/index{index}/size");
        let text = std::fs::read_to_string(path).ok()?;
        let text = text.trim();
        let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
        let value: f64 = digits.parse().ok()?;
        Some(match unit {
            "K" => value / 1024.0,
            "M" => value,
            "G" => value * 1024.0,
            _ => value / (1024.0 * 1024.0),
        })
    });
    sizes.fold(1.0, f64::max)
}

/// The core a partition's stage runs its host-side work on: a core of the partition's own
/// pool for the CPU backend, the calling thread's for a device's.
fn host_cpu(backend: &DeviceBackend) -> Result<HostCpu> {
    match backend {
        DeviceBackend::Cpu(cpu) => cpu.scope(|| measured_host_cpu("host core", read_bandwidth())),
        DeviceBackend::Wgpu(_) => measured_host_cpu("host core", read_bandwidth()),
    }
}

/// The `host` profile of a partition's backend: the int8 rate its kernels reach, the f32
/// rate (for every float operation; the CPU computes half precision in f32), the bandwidth,
/// the cost of an op beyond its arithmetic and the rate of its host core, all measured now.
/// On the CPU the f32 rate is what its attention reaches over a SigLIP-sized tile (the float
/// work of a quantized model), and the bandwidth and op cost come from decoding through
/// stacks of Q8_0 layers ([`decode_costs`]); on a wgpu device the f32 rate and bandwidth are
/// what its dense matmul and its 4096 x 4096 Q8_0 matvec (17 MB of weights) reach, and the
/// op cost that of a chain of small ops. Power is not measured (no energy counters are
/// readable in a VM): the profile carries the model's energies per operation and no idle
/// power.
pub fn host_profile(backend: &DeviceBackend) -> Result<ChipProfile> {
    let int8_macs = int8_mac_rate(backend)?;
    let (name, f32_flops, read) = match backend {
        DeviceBackend::Cpu(cpu) => {
            let flops = cpu.scope(|| attention_flops(backend))?;
            // The bandwidth comes from a decode below (`decode_costs`), with the op cost.
            (format!("host-{}threads", cpu.threads()), flops, 0.0)
        }
        DeviceBackend::Wgpu(gpu) => {
            let dense = ledger_rates(gpu, DType::F32, 64, 1024, 1024)?;
            let stream = ledger_rates(gpu, DType::Q8_0, 1, 4096, 4096)?;
            (
                format!("wgpu-{}", gpu.adapter_name()),
                2.0 * dense.f32_macs,
                stream.bytes_read,
            )
        }
    };
    let model = ChipProfile::npu(1.0);
    let rates = ChipProfile {
        name,
        int8_tops: 2.0 * int8_macs / 1e12,
        fp16_tflops: f32_flops / 1e12,
        f32_tflops: f32_flops / 1e12,
        memory_gbps: (read / 1e9).max(f64::MIN_POSITIVE),
        scratchpad_mib: last_level_cache_mib(),
        idle_watts: 0.0,
        dispatch_us: 0.0,
        host_cpu: Some(host_cpu(backend)?),
        ..model
    };
    match backend {
        DeviceBackend::Cpu(_) => {
            let (dispatch_us, memory_gbps) = decode_costs(backend, &rates)?;
            Ok(ChipProfile {
                dispatch_us,
                memory_gbps,
                ..rates
            })
        }
        DeviceBackend::Wgpu(_) => Ok(ChipProfile {
            dispatch_us: dispatch_us(backend)?,
            ..rates
        }),
    }
}
