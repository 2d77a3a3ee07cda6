//! The backend suite: every backend's ops against plain reference computations and its cost
//! ledger against hand-counted costs. It is written against the `Backend` trait and run on
//! the CPU backend and on the wgpu backend (a software Vulkan device on machines without a
//! GPU).

use std::borrow::Cow;

use brainstem_kernels::*;

use crate::common::{assert_close, dense_weight, random, wgpu_backend};

fn suite_matmul_and_ledger<B: Backend>(b: &B) {
    let (n, k, m) = (3, 40, 7);
    let (xs, ws) = (random(n * k, 1), random(m * k, 2));
    let x = b.upload(&xs, n, k).unwrap();
    let w = b.upload_weight(&dense_weight(&ws, m, k)).unwrap();
    let before = b.ledger().snapshot();
    let out = b.read(&b.matmul(&x, &w).unwrap()).unwrap();
    let expected: Vec<f32> = (0..n)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| (0..k).map(|t| xs[i * k + t] * ws[j * k + t]).sum())
        .collect();
    assert_close(&out, &expected, 1e-5, "matmul");
    let cost = b.ledger().snapshot().since(&before).total();
    assert_eq!(cost.f32_macs, (n * k * m) as u64);
    assert_eq!(cost.bytes_read, 4 * (m * k + n * k) as u64);
    assert_eq!(cost.bytes_written, 4 * (n * m) as u64);
}

fn suite_norms<B: Backend>(b: &B) {
    let (rows, cols) = (4, 10);
    let (xs, g, beta) = (random(rows * cols, 3), random(cols, 4), random(cols, 5));
    let x = b.upload(&xs, rows, cols).unwrap();
    let gamma = b.upload(&g, 1, cols).unwrap();
    let rms = b.read(&b.rms_norm(&x, &gamma, 1e-5).unwrap()).unwrap();
    let ln = b
        .read(
            &b.layer_norm(&x, &gamma, &b.upload(&beta, 1, cols).unwrap(), 1e-5)
                .unwrap(),
        )
        .unwrap();
    for r in 0..rows {
        let row = &xs[r * cols..(r + 1) * cols];
        let ms = row.iter().map(|v| v * v).sum::<f32>() / cols as f32;
        let mean = row.iter().sum::<f32>() / cols as f32;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / cols as f32;
        for c in 0..cols {
            let want_rms = row[c] / (ms + 1e-5).sqrt() * g[c];
            let want_ln = (row[c] - mean) / (var + 1e-5).sqrt() * g[c] + beta[c];
            assert!((rms[r * cols + c] - want_rms).abs() < 1e-5);
            assert!((ln[r * cols + c] - want_ln).abs() < 1e-5);
        }
    }
    assert!(
        b.rms_norm(&x, &b.upload(&g[..5], 1, 5).unwrap(), 1e-5).is_err(),
        "gamma of the wrong width"
    );
}

/// Interleaved and half-split rope agree once the features are permuted as llama.cpp's
/// converter permutes Q and K.
fn suite_rope_styles<B: Backend>(b: &B) {
    let (rows, heads, hd) = (3, 2, 8);
    let xs = random(rows * heads * hd, 6);
    let permute = |v: &[f32]| -> Vec<f32> {
        v.chunks(hd)
            .flat_map(|h| (0..hd / 2).flat_map(move |i| [h[i], h[i + hd / 2]]))
            .collect()
    };
    let params = |style| RopeParams {
        heads,
        head_dim: hd,
        theta: 10_000.0,
        style,
        start_pos: 5,
    };
    let half = b
        .read(
            &b.rope(&b.upload(&xs, rows, heads * hd).unwrap(), params(RopeStyle::HalfSplit))
                .unwrap(),
        )
        .unwrap();
    let inter = b.upload(&permute(&xs), rows, heads * hd).unwrap();
    let inter = b
        .read(&b.rope(&inter, params(RopeStyle::Interleaved)).unwrap())
        .unwrap();
    assert_close(&inter, &permute(&half), 1e-6, "rope styles");
    // Position 0 is the identity.
    let p0 = RopeParams {
        start_pos: 0,
        ..params(RopeStyle::HalfSplit)
    };
    let first = b
        .read(
            &b.rope(&b.upload(&xs[..heads * hd], 1, heads * hd).unwrap(), p0)
                .unwrap(),
        )
        .unwrap();
    assert_close(&first, &xs[..heads * hd], 1e-7, "rope at position 0");
}

/// Causal grouped-query attention, prefill then one decode step, against a naive loop.
fn suite_attention<B: Backend>(b: &B) {
    let (heads, kv_heads, hd, seq) = (4, 2, 8, 5);
    let (q, k, v) = (
        random(seq * heads * hd, 7),
        random(seq * kv_heads * hd, 8),
        random(seq * kv_heads * hd, 9),
    );
    let params = AttentionParams {
        heads,
        kv_heads,
        head_dim: hd,
        scale: 0.3,
        mask: AttentionMask::Causal,
    };
    let mut cache = b
        .kv_cache(KvCacheSpec {
            kv_heads,
            head_dim: hd,
            max_positions: seq,
        })
        .unwrap();
    let up = |x: &[f32], rows, cols| b.upload(x, rows, cols).unwrap();
    let split = 3;
    let (qd, kd) = (heads * hd, kv_heads * hd);
    let first = b
        .attention(
            &up(&q[..split * qd], split, qd),
            &up(&k[..split * kd], split, kd),
            &up(&v[..split * kd], split, kd),
            &mut cache,
            params,
        )
        .unwrap();
    let mut ours = b.read(&first).unwrap();
    let rest = b
        .attention(
            &up(&q[split * qd..], seq - split, qd),
            &up(&k[split * kd..], seq - split, kd),
            &up(&v[split * kd..], seq - split, kd),
            &mut cache,
            params,
        )
        .unwrap();
    ours.extend(b.read(&rest).unwrap());
    let mut expected = vec![0f32; seq * qd];
    for t in 0..seq {
        for h in 0..heads {
            let kvh = h / (heads / kv_heads);
            let qv = &q[t * qd + h * hd..][..hd];
            let scores: Vec<f32> = (0..=t)
                .map(|j| 0.3 * (0..hd).map(|d| qv[d] * k[j * kd + kvh * hd + d]).sum::<f32>())
                .collect();
            let max = scores.iter().copied().fold(f32::MIN, f32::max);
            let total: f32 = scores.iter().map(|s| (s - max).exp()).sum();
            for (j, s) in scores.iter().enumerate() {
                for d in 0..hd {
                    expected[t * qd + h * hd + d] += (s - max).exp() / total * v[j * kd + kvh * hd + d];
                }
            }
        }
    }
    assert_close(&ours, &expected, 1e-5, "attention");
    assert_eq!(b.kv_len(&cache), seq);
    let full = b.attention(
        &up(&q[..qd], 1, qd),
        &up(&k[..kd], 1, kd),
        &up(&v[..kd], 1, kd),
        &mut cache,
        params,
    );
    assert!(
        matches!(full, Err(KernelError::KvCacheFull { .. })),
        "a full cache must refuse more positions"
    );
}

fn suite_elementwise<B: Backend>(b: &B) {
    let xs = random(12, 10);
    let x = b.upload(&xs, 3, 4).unwrap();
    let row = b.upload(&xs[..4], 1, 4).unwrap();
    let sum = b.read(&b.binary(&x, &row, BinaryOp::Add).unwrap()).unwrap();
    assert_close(
        &sum,
        &xs.iter().enumerate().map(|(i, v)| v + xs[i % 4]).collect::<Vec<_>>(),
        1e-7,
        "broadcast add",
    );
    let silu = b.read(&b.gated(&x, &x, Activation::Silu).unwrap()).unwrap();
    assert_close(
        &silu,
        &xs.iter().map(|v| v / (1.0 + (-v).exp()) * v).collect::<Vec<_>>(),
        1e-6,
        "silu gate",
    );
    let gelu = b.read(&b.activation(&x, Activation::GeluTanh).unwrap()).unwrap();
    let want: Vec<f32> = xs
        .iter()
        .map(|&v| 0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044_715 * v * v * v)).tanh()))
        .collect();
    assert_close(&gelu, &want, 1e-6, "gelu");
    let tail = b.read(&b.rows(&x, 1, 2).unwrap()).unwrap();
    assert_close(&tail, &xs[4..], 0.0, "rows");
    assert!(b.rows(&x, 2, 2).is_err(), "rows past the end");
    let middle = b.read(&b.columns(&x, 1, 2).unwrap()).unwrap();
    assert_close(&middle, &[xs[1], xs[2], xs[5], xs[6], xs[9], xs[10]], 0.0, "columns");
    assert!(b.columns(&x, 3, 2).is_err(), "columns past the end");
    let table = b.upload_weight(&dense_weight(&xs, 3, 4)).unwrap();
    assert_close(
        &b.read(&b.embedding(&table, &[2, 0]).unwrap()).unwrap(),
        &[&xs[8..], &xs[..4]].concat(),
        0.0,
        "embedding",
    );
    assert!(matches!(
        b.embedding(&table, &[3]),
        Err(KernelError::TokenOutOfRange { id: 3, rows: 3 })
    ));
}

/// One test per suite for a backend; `$make` builds a fresh backend for each, so that ledger
/// deltas see only that suite's ops.
macro_rules! backend_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn matmul_and_ledger() {
                suite_matmul_and_ledger(&$make);
            }

            #[test]
            fn quantized_ledger() {
                suite_quantized_ledger(&$make);
            }

            #[test]
            fn norms() {
                suite_norms(&$make);
            }

            #[test]
            fn rope_styles() {
                suite_rope_styles(&$make);
            }

            #[test]
            fn attention() {
                suite_attention(&$make);
            }

            #[test]
            fn elementwise() {
                suite_elementwise(&$make);
            }
        }
    };
}

backend_suite!(cpu, CpuBackend::new(2).unwrap());
backend_suite!(wgpu, wgpu_backend().with_kernel_style(KernelStyle::Cooperative));
backend_suite!(
    wgpu_per_invocation,
    wgpu_backend().with_kernel_style(KernelStyle::PerInvocation)
);

fn suite_quantized_ledger<B: Backend>(b: &B) {
    let blocks = scalar_q8(64 * 5);
    let w = HostWeight {
        dtype: DType::Q8_0,
        shape: vec![5, 64],
        bytes: Cow::Owned(blocks),
    };
    let weight = b.upload_weight(&w).unwrap();
    let x = b.upload(&random(2 * 64, 11), 2, 64).unwrap();
    let before = b.ledger().snapshot();
    b.matmul(&x, &weight).unwrap();
    let cost = b.ledger().snapshot().since(&before).total();
    assert_eq!(cost.int8_macs, 2 * 5 * 64);
    assert_eq!(cost.bytes_read, (5 * 2 * 34 + 2 * 64 * 4) as u64);
    assert_eq!(cost.bytes_written, 2 * 5 * 4);
}

fn scalar_q8(n: usize) -> Vec<u8> {
    bytemuck::cast_slice(&quant::scalar::quantize_q8_0(&random(n, 12))).to_vec()
}
