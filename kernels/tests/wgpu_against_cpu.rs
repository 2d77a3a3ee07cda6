//! The wgpu backend against the CPU backend, op by op, on odd shapes and every weight
//! format; its steady state allocates nothing new on the device; and its faults are typed.

use crate::common;
use crate::common::{assert_close, both_styles, random, random_activations, random_weight, wgpu_backend};
use brainstem_kernels::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn cpu() -> CpuBackend {
    CpuBackend::new(2).unwrap()
}

/// Runs one op, written once as `|b| expr` over a backend `b`, on the wgpu backend `$gpu`
/// and on a CPU backend with the same host inputs; returns (wgpu, cpu) results.
macro_rules! both {
    ($gpu:expr, |$b:ident| $op:expr) => {{
        let (gpu, cpu) = ($gpu, cpu());
        let ours = {
            let $b = gpu;
            gpu.read(&$op).unwrap()
        };
        let theirs = {
            let $b = &cpu;
            cpu.read(&$op).unwrap()
        };
        (ours, theirs)
    }};
}

#[test]
fn matmul_in_every_format_on_odd_shapes_is_within_the_int8_bound_of_the_exact_product() {
    for gpu in both_styles() {
        let mut rng = SmallRng::seed_from_u64(21);
        for dtype in DType::ALL {
            let block = dtype.block_elems().max(32);
            for (rows, cols, n) in [
                (1, block, 1),
                (7, 3 * block, 1),
                (37, 2 * block, 3),
                (65, block, 9),
                (5, 2 * block, 17),
            ] {
                let host = random_weight(dtype, rows, cols, &mut rng);
                let dense = host.to_f32().unwrap();
                let xs = random_activations(n * cols, &mut rng);
                let w = gpu.upload_weight(&host).unwrap();
                let x = gpu.upload(&xs, n, cols).unwrap();
                let out = gpu.read(&gpu.matmul(&x, &w).unwrap()).unwrap();
                for t in 0..n {
                    let xr = &xs[t * cols..(t + 1) * cols];
                    for r in 0..rows {
                        let wr = &dense[r * cols..(r + 1) * cols];
                        let exact: f32 = wr.iter().zip(xr).map(|(a, b)| a * b).sum();
                        let magnitude: f32 = wr.iter().zip(xr).map(|(a, b)| (a * b).abs()).sum();
                        // Dense formats multiply in f32; block formats quantize each 32-value block
                        // of activations, moving each value by at most half a step (absmax / 254).
                        let int8_bound: f32 = if dtype.is_quantized() {
                            xr.chunks(32)
                                .zip(wr.chunks(32))
                                .map(|(xb, wb)| {
                                    let step = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 254.0;
                                    step * wb.iter().map(|v| v.abs()).sum::<f32>()
                                })
                                .sum()
                        } else {
                            0.0
                        };
                        let got = out[t * rows + r];
                        let bound = 1.01 * int8_bound + 1e-5 * magnitude + 1e-6;
                        assert!(
                            (got - exact).abs() <= bound,
                            "{dtype} {rows}x{cols} n={n} [{t}, {r}]: {got} vs {exact} (bound {bound})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn f32_activations_match_the_cpu_f32_path_in_every_format() {
    for gpu in both_styles() {
        let gpu = gpu.with_activation_precision(ActivationPrecision::F32);
        let cpu = CpuBackend::new(2)
            .unwrap()
            .with_activation_precision(ActivationPrecision::F32);
        let mut rng = SmallRng::seed_from_u64(25);
        for dtype in DType::ALL {
            let block = dtype.block_elems().max(32);
            for (rows, cols, n) in [(3, block, 1), (37, 2 * block, 3), (9, 3 * block, 11)] {
                let host = random_weight(dtype, rows, cols, &mut rng);
                let xs = random_activations(n * cols, &mut rng);
                let ours = gpu
                    .read(
                        &gpu.matmul(&gpu.upload(&xs, n, cols).unwrap(), &gpu.upload_weight(&host).unwrap())
                            .unwrap(),
                    )
                    .unwrap();
                let theirs = cpu
                    .read(
                        &cpu.matmul(&cpu.upload(&xs, n, cols).unwrap(), &cpu.upload_weight(&host).unwrap())
                            .unwrap(),
                    )
                    .unwrap();
                assert_close(
                    &ours,
                    &theirs,
                    1e-4,
                    &format!("{dtype} {rows}x{cols} n={n}, f32 activations"),
                );
            }
        }
    }
}

#[test]
fn legacy_formats_match_the_cpu_int8_path() {
    for gpu in both_styles() {
        let mut rng = SmallRng::seed_from_u64(22);
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
            let (rows, cols, n) = (33, 96, 5);
            let host = random_weight(dtype, rows, cols, &mut rng);
            let xs = random_activations(n * cols, &mut rng);
            let (ours, theirs) = both!(&gpu, |b| {
                b.matmul(&b.upload(&xs, n, cols).unwrap(), &b.upload_weight(&host).unwrap())
                    .unwrap()
            });
            assert_close(&ours, &theirs, 1e-4, &format!("{dtype} against the cpu's int8 path"));
        }
    }
}

#[test]
fn embedding_gathers_every_format_as_the_cpu_dequantizes_it() {
    for gpu in both_styles() {
        let mut rng = SmallRng::seed_from_u64(23);
        let ids = [4u32, 0, 9, 4, 10];
        for dtype in DType::ALL {
            let cols = 2 * dtype.block_elems().max(32);
            let host = random_weight(dtype, 11, cols, &mut rng);
            let (ours, theirs) = both!(&gpu, |b| b.embedding(&b.upload_weight(&host).unwrap(), &ids).unwrap());
            assert_close(&ours, &theirs, 1e-6, &format!("{dtype} embedding"));
        }
    }
}

#[test]
fn row_ops_match_the_cpu_on_odd_shapes() {
    for gpu in both_styles() {
        for (rows, cols) in [(1, 1), (5, 7), (3, 100), (33, 577)] {
            let xs = random(rows * cols, rows as u64);
            let (g, beta) = (random(cols, 1), random(cols, 2));
            let (ours, theirs) = both!(&gpu, |b| {
                b.rms_norm(
                    &b.upload(&xs, rows, cols).unwrap(),
                    &b.upload(&g, 1, cols).unwrap(),
                    1e-6,
                )
                .unwrap()
            });
            assert_close(&ours, &theirs, 1e-5, &format!("rms_norm {rows}x{cols}"));
            let (ours, theirs) = both!(&gpu, |b| {
                let (x, g, beta) = (
                    b.upload(&xs, rows, cols).unwrap(),
                    b.upload(&g, 1, cols).unwrap(),
                    b.upload(&beta, 1, cols).unwrap(),
                );
                b.layer_norm(&x, &g, &beta, 1e-5).unwrap()
            });
            assert_close(&ours, &theirs, 1e-4, &format!("layer_norm {rows}x{cols}"));
            for act in [Activation::Silu, Activation::GeluTanh] {
                let (ours, theirs) = both!(&gpu, |b| b
                    .activation(&b.upload(&xs, rows, cols).unwrap(), act)
                    .unwrap());
                assert_close(&ours, &theirs, 1e-5, &format!("{act:?} {rows}x{cols}"));
                let (ours, theirs) = both!(&gpu, |b| {
                    b.gated(
                        &b.upload(&xs, rows, cols).unwrap(),
                        &b.upload(&xs, rows, cols).unwrap(),
                        act,
                    )
                    .unwrap()
                });
                assert_close(&ours, &theirs, 1e-5, &format!("gated {act:?} {rows}x{cols}"));
            }
            for op in [BinaryOp::Add, BinaryOp::Mul] {
                for b_rows in [1, rows] {
                    let ys = random(b_rows * cols, 9);
                    let (ours, theirs) = both!(&gpu, |b| {
                        b.binary(
                            &b.upload(&xs, rows, cols).unwrap(),
                            &b.upload(&ys, b_rows, cols).unwrap(),
                            op,
                        )
                        .unwrap()
                    });
                    assert_close(
                        &ours,
                        &theirs,
                        0.0,
                        &format!("{op:?} with {b_rows} rows, {rows}x{cols}"),
                    );
                }
            }
            let (start, len) = (cols / 3, cols - cols / 3);
            let (ours, theirs) = both!(&gpu, |b| b
                .columns(&b.upload(&xs, rows, cols).unwrap(), start, len)
                .unwrap());
            assert_close(&ours, &theirs, 0.0, &format!("columns {rows}x{cols}"));
            let (ours, theirs) = both!(&gpu, |b| {
                b.rows(&b.upload(&xs, rows, cols).unwrap(), rows / 2, rows - rows / 2)
                    .unwrap()
            });
            assert_close(&ours, &theirs, 0.0, &format!("rows {rows}x{cols}"));
        }
    }
}

#[test]
fn rope_matches_the_cpu_far_into_the_sequence() {
    for gpu in both_styles() {
        for style in [RopeStyle::HalfSplit, RopeStyle::Interleaved] {
            for start_pos in [0, 7, 1500] {
                let (rows, heads, head_dim) = (5, 3, 64);
                let xs = random(rows * heads * head_dim, start_pos as u64);
                let p = RopeParams {
                    heads,
                    head_dim,
                    theta: 100_000.0,
                    style,
                    start_pos,
                };
                let (ours, theirs) = both!(&gpu, |b| b
                    .rope(&b.upload(&xs, rows, heads * head_dim).unwrap(), p)
                    .unwrap());
                assert_close(&ours, &theirs, 1e-6, &format!("{style:?} rope from {start_pos}"));
            }
        }
    }
}

/// Prefill of `prompt` rows then single-row decode steps, on one backend.
fn attention_run<B: Backend>(b: &B, p: AttentionParams, prompt: usize, steps: usize) -> Vec<f32> {
    let (qd, kd) = (p.heads * p.head_dim, p.kv_heads * p.head_dim);
    let spec = KvCacheSpec {
        kv_heads: p.kv_heads,
        head_dim: p.head_dim,
        max_positions: prompt + steps,
    };
    let mut cache = b.kv_cache(spec).unwrap();
    let mut out = Vec::new();
    let mut seed = 100;
    for rows in std::iter::once(prompt).chain(std::iter::repeat_n(1, steps)) {
        seed += 3;
        let q = b.upload(&random(rows * qd, seed), rows, qd).unwrap();
        let k = b.upload(&random(rows * kd, seed + 1), rows, kd).unwrap();
        let v = b.upload(&random(rows * kd, seed + 2), rows, kd).unwrap();
        out.extend(b.read(&b.attention(&q, &k, &v, &mut cache, p).unwrap()).unwrap());
    }
    out
}

#[test]
fn attention_matches_the_cpu_through_prefill_and_decode() {
    for gpu in both_styles() {
        for mask in [
            AttentionMask::Causal,
            AttentionMask::Full,
            AttentionMask::PrefixLm { bidirectional: 50 },
        ] {
            for (heads, kv_heads, head_dim) in [(9, 3, 64), (4, 4, 32), (2, 1, 80)] {
                let p = AttentionParams {
                    heads,
                    kv_heads,
                    head_dim,
                    scale: 1.0 / (head_dim as f32).sqrt(),
                    mask,
                };
                let ours = attention_run(&gpu, p, 70, 4);
                let theirs = attention_run(&cpu(), p, 70, 4);
                assert_close(&ours, &theirs, 1e-5, &format!("attention {p:?}"));
            }
        }
    }
}

/// A prefix's cache, a chunk of queries that self-attends over it and is cut back off, then
/// the same chunk cross-attending to keys of another length: what a flow-matching expert does
/// each denoising step.
fn denoising_run<B: Backend>(b: &B, p: AttentionParams) -> Vec<f32> {
    let (qd, kd, prefix, chunk) = (p.heads * p.head_dim, p.kv_heads * p.head_dim, 23, 7);
    let spec = KvCacheSpec {
        kv_heads: p.kv_heads,
        head_dim: p.head_dim,
        max_positions: prefix + chunk,
    };
    let tensor = |rows, cols, seed| b.upload(&random(rows * cols, seed), rows, cols).unwrap();
    let mut cache = b.kv_cache(spec).unwrap();
    let prefix_lm = AttentionParams {
        mask: AttentionMask::PrefixLm {
            bidirectional: prefix - 1,
        },
        ..p
    };
    let mut out = b
        .read(
            &b.attention(
                &tensor(prefix, qd, 1),
                &tensor(prefix, kd, 2),
                &tensor(prefix, kd, 3),
                &mut cache,
                prefix_lm,
            )
            .unwrap(),
        )
        .unwrap();
    for step in 0..2 {
        let q = tensor(chunk, qd, 10 + step);
        let (k, v) = (tensor(chunk, kd, 20 + step), tensor(chunk, kd, 30 + step));
        out.extend(b.read(&b.attention(&q, &k, &v, &mut cache, p).unwrap()).unwrap());
        b.kv_truncate(&mut cache, prefix);
        assert_eq!(b.kv_len(&cache), prefix);
        let mut cross = b.kv_cache(spec).unwrap();
        let (k, v) = (tensor(prefix + 2, kd, 40 + step), tensor(prefix + 2, kd, 50 + step));
        out.extend(b.read(&b.attention(&q, &k, &v, &mut cross, p).unwrap()).unwrap());
    }
    out
}

#[test]
fn denoising_attention_matches_the_cpu() {
    let p = AttentionParams {
        heads: 4,
        kv_heads: 2,
        head_dim: 32,
        scale: 0.18,
        mask: AttentionMask::Full,
    };
    for gpu in both_styles() {
        assert_close(
            &denoising_run(&gpu, p),
            &denoising_run(&cpu(), p),
            1e-5,
            "denoising attention",
        );
    }
}

/// One decode step of a toy layer: gather, norm, projection, rope, attention, gated MLP.
fn decode_step(
    b: &WgpuBackend,
    w: &WgpuWeight,
    gamma: &WgpuTensor,
    cache: &mut <WgpuBackend as Backend>::KvCache,
    token: u32,
) {
    let p = AttentionParams {
        heads: 2,
        kv_heads: 1,
        head_dim: 32,
        scale: 0.2,
        mask: AttentionMask::Causal,
    };
    let x = b.embedding(w, &[token]).unwrap();
    let h = b.rms_norm(&x, gamma, 1e-5).unwrap();
    let qkv = b.matmul(&h, w).unwrap();
    let rope = |t: &WgpuTensor, heads| {
        let params = RopeParams {
            heads,
            head_dim: 32,
            theta: 10_000.0,
            style: RopeStyle::HalfSplit,
            start_pos: b.kv_len(cache),
        };
        b.rope(t, params).unwrap()
    };
    let q = rope(&b.columns(&qkv, 0, 64).unwrap(), 2);
    let k = rope(&b.columns(&qkv, 64, 32).unwrap(), 1);
    let v = b.columns(&qkv, 96, 32).unwrap();
    let a = b.attention(&q, &k, &v, cache, p).unwrap();
    let g = b.gated(&a, &a, Activation::Silu).unwrap();
    b.read(&b.binary(&g, &q, BinaryOp::Add).unwrap()).unwrap();
}

#[test]
fn decoding_in_steady_state_creates_no_buffers_or_bind_groups() {
    let b = wgpu_backend();
    let mut rng = SmallRng::seed_from_u64(24);
    let w = b.upload_weight(&random_weight(DType::Q8_0, 128, 64, &mut rng)).unwrap();
    let gamma = b.upload(&random(64, 3), 1, 64).unwrap();
    let spec = KvCacheSpec {
        kv_heads: 1,
        head_dim: 32,
        max_positions: 64,
    };
    let mut cache = b.kv_cache(spec).unwrap();
    for token in 0..3 {
        decode_step(&b, &w, &gamma, &mut cache, token);
    }
    let warm = b.stats();
    for token in 3..20 {
        decode_step(&b, &w, &gamma, &mut cache, token);
    }
    let after = b.stats();
    assert_eq!(after.buffers_created, warm.buffers_created, "{warm:?} then {after:?}");
    assert_eq!(
        after.bind_groups_created, warm.bind_groups_created,
        "{warm:?} then {after:?}"
    );
    assert_eq!(after.submissions - warm.submissions, 17, "one submission per step");
}

#[test]
fn faults_are_typed_errors_that_name_what_was_asked() {
    match WgpuBackend::new(Some("no adapter has this name")) {
        Err(KernelError::NoAdapter(message)) => assert!(message.contains("no adapter has this name"), "{message}"),
        Err(other) => panic!("expected NoAdapter, got {other}"),
        Ok(_) => panic!("an adapter matched a name no adapter has"),
    }
    let b = wgpu_backend();
    let table = b.upload_weight(&common::dense_weight(&random(12, 1), 3, 4)).unwrap();
    assert!(matches!(
        b.embedding(&table, &[3]),
        Err(KernelError::TokenOutOfRange { id: 3, rows: 3 })
    ));
    let x = b.upload(&random(10, 2), 2, 5).unwrap();
    assert!(matches!(
        b.matmul(&x, &table),
        Err(KernelError::Shape { op: "matmul", .. })
    ));
    let spec = KvCacheSpec {
        kv_heads: 1,
        head_dim: 512,
        max_positions: 2,
    };
    let p = AttentionParams {
        heads: 1,
        kv_heads: 1,
        head_dim: 512,
        scale: 1.0,
        mask: AttentionMask::Causal,
    };
    let huge = KvCacheSpec {
        max_positions: usize::MAX,
        ..spec
    };
    match b.kv_cache(huge) {
        Err(KernelError::Device {
            adapter,
            fault: DeviceFault::Limit,
            ..
        }) => assert_eq!(adapter, b.adapter_name()),
        other => panic!("a cache past the adapter's limits: {other:?}"),
    }
    let mut cache = b.kv_cache(spec).unwrap();
    let q = b.upload(&random(512, 3), 1, 512).unwrap();
    assert!(matches!(
        b.attention(&q, &q, &q, &mut cache, p),
        Err(KernelError::InvalidArgument { op: "attention", .. })
    ));
}
