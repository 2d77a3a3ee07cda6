//! Inputs and comparisons shared by the kernels' tests.
#![allow(dead_code)]

use std::borrow::Cow;

use brainstem_kernels::{DType, HostWeight, KernelStyle, WgpuBackend};
use half::f16;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const BLOCK_FORMATS: [DType; 5] = [DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4K, DType::Q6K];

pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

pub fn random_activations(n: usize, rng: &mut SmallRng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

pub fn dense_weight(values: &[f32], rows: usize, cols: usize) -> HostWeight<'static> {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    HostWeight {
        dtype: DType::F32,
        shape: vec![rows, cols],
        bytes: Cow::Owned(bytes),
    }
}

/// A weight in any format: random block bytes with finite, realistic f16 scales, or random
/// values in a dense format.
pub fn random_weight(dtype: DType, rows: usize, cols: usize, rng: &mut SmallRng) -> HostWeight<'static> {
    if !dtype.is_quantized() {
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-0.5f32..0.5)).collect();
        let bytes = match dtype {
            DType::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            DType::BF16 => values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
            _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        return HostWeight {
            dtype,
            shape: vec![rows, cols],
            bytes: Cow::Owned(bytes),
        };
    }
    let n_blocks = rows * cols / dtype.block_elems();
    let size = dtype.block_bytes();
    let mut bytes = vec![0u8; n_blocks * size];
    rng.fill(bytes.as_mut_slice());
    let scale_offsets: &[usize] = match dtype {
        DType::Q4_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q4K => &[0, 2],
        DType::Q6K => &[208],
        _ => &[],
    };
    for block in bytes.chunks_exact_mut(size) {
        for &off in scale_offsets {
            let v = f16::from_f32(rng.random_range(-0.02f32..0.02));
            block[off..off + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    HostWeight {
        dtype,
        shape: vec![rows, cols],
        bytes: Cow::Owned(bytes),
    }
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{what}[{i}]: {x} vs {y}");
    }
}

/// The wgpu backend on the best adapter here. The tests need one: `tools/test.sh` installs
/// Debian's software Vulkan device (mesa-vulkan-drivers) when the machine has none.
pub fn wgpu_backend() -> WgpuBackend {
    WgpuBackend::new(None).unwrap_or_else(|e| panic!("the wgpu tests need an adapter: {e}"))
}

/// The wgpu backend in each kernel style, so that both run here whatever the adapter.
pub fn both_styles() -> [WgpuBackend; 2] {
    [KernelStyle::Cooperative, KernelStyle::PerInvocation].map(|style| wgpu_backend().with_kernel_style(style))
}
