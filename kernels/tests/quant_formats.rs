//! Block formats against the ecosystem's reference and the fast kernels against the scalar
//! ones: dequantization matches gguf-py bit for bit, every SIMD dot product matches its
//! scalar version, and the int8 matmul stays within the activation-quantization bound of
//! the exact f32 product.

use std::borrow::Cow;
use std::path::PathBuf;

use brainstem_kernels::quant::{self, scalar};
use brainstem_kernels::{ActivationPrecision, DType, HostWeight, QMatrix};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use safetensors::SafeTensors;

use crate::common::{random_activations, random_weight, BLOCK_FORMATS};

fn reference_blocks() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/out/quant_blocks.safetensors");
    std::fs::read(path).expect("reference blocks (run tools/reference/llama_reference.py)")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn dequantization_matches_gguf_py() {
    let file = reference_blocks();
    let st = SafeTensors::deserialize(&file).unwrap();
    let formats = [
        ("Q4_0", DType::Q4_0),
        ("Q4_1", DType::Q4_1),
        ("Q8_0", DType::Q8_0),
        ("Q4_K", DType::Q4K),
        ("Q6_K", DType::Q6K),
        ("f16", DType::F16),
        ("bf16", DType::BF16),
    ];
    for (name, dtype) in formats {
        let bytes = st.tensor(&format!("{name}.bytes")).unwrap();
        let expected = f32s(st.tensor(&format!("{name}.values")).unwrap().data());
        let weight = HostWeight {
            dtype,
            shape: vec![expected.len()],
            bytes: Cow::Borrowed(bytes.data()),
        };
        let ours = weight.to_f32().unwrap();
        assert_eq!(ours.len(), expected.len(), "{name}");
        for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{name} element {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn fast_matmul_matches_scalar_reference_on_odd_shapes() {
    let mut rng = SmallRng::seed_from_u64(11);
    for dtype in BLOCK_FORMATS {
        let block = dtype.block_elems();
        for (rows, cols, n) in [
            (1, block, 1),
            (7, 3 * block, 1),
            (37, 5 * block, 3),
            (130, 2 * block, 9),
            // Eight-, four- and one-row strip kernels in one call.
            (40, 3 * block, 13),
            // Rows longer than one L1-sized chunk of a strip, for every format.
            (33, 70 * block, 10),
            (48, block, 2),
            // Many 16-row strips per parallel task.
            (640, 2 * block, 1),
        ] {
            let host = random_weight(dtype, rows, cols, &mut rng);
            let dense = host.to_f32().unwrap();
            let tiled = QMatrix::from_host(&host).unwrap();
            assert_eq!(tiled.is_tiled(), quant::vnni_tiles_available(), "{dtype}: tiled path");
            let xs = random_activations(n * cols, &mut rng);
            // The kernels differ from the reference in summation order only: bounded by f32
            // rounding of the terms, whatever cancels in the sum.
            let magnitude = |i: usize| -> f32 {
                let (t, r) = (i / rows, i % rows);
                let x = &xs[t * cols..(t + 1) * cols];
                dense[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(x)
                    .map(|(w, x)| (w * x).abs())
                    .sum()
            };
            for w in [tiled.without_tiles(), tiled] {
                for precision in [ActivationPrecision::Int8, ActivationPrecision::F32] {
                    let (mut fast, mut reference) = (vec![0f32; n * rows], vec![0f32; n * rows]);
                    w.matmul(&xs, n, &mut fast, precision).unwrap();
                    w.matmul_scalar(&xs, n, &mut reference, precision).unwrap();
                    let kernel = if w.is_tiled() { "tiled" } else { "row-wise" };
                    for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * magnitude(i) + 1e-6,
                            "{dtype} {kernel} {precision:?} {rows}x{cols} n={n} [{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn quantized_matmul_is_exact_in_f32_and_within_the_int8_bound() {
    let mut rng = SmallRng::seed_from_u64(12);
    for dtype in BLOCK_FORMATS {
        let (rows, cols, n) = (19, 2 * 256, 2);
        let host = random_weight(dtype, rows, cols, &mut rng);
        let dense = host.to_f32().unwrap();
        let w = QMatrix::from_host(&host).unwrap();
        let xs = random_activations(n * cols, &mut rng);
        let (mut out, mut exact_f32) = (vec![0f32; n * rows], vec![0f32; n * rows]);
        w.matmul(&xs, n, &mut out, ActivationPrecision::Int8).unwrap();
        w.matmul(&xs, n, &mut exact_f32, ActivationPrecision::F32).unwrap();
        for t in 0..n {
            let x = &xs[t * cols..(t + 1) * cols];
            for r in 0..rows {
                let wr = &dense[r * cols..(r + 1) * cols];
                let exact: f32 = wr.iter().zip(x).map(|(a, b)| a * b).sum();
                // Each activation moves by at most half a step (absmax / 254) of its block.
                let bound: f32 = x
                    .chunks(32)
                    .zip(wr.chunks(32))
                    .map(|(xb, wb)| {
                        let step = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 254.0;
                        step * wb.iter().map(|v| v.abs()).sum::<f32>()
                    })
                    .sum::<f32>()
                    * 2.0
                    + 1e-4;
                let got = out[t * rows + r];
                assert!(
                    (got - exact).abs() <= bound,
                    "{dtype} row {r}: {got} vs {exact} (bound {bound})"
                );
                // Only the summation order differs: bounded by f32 rounding of the terms.
                let magnitude: f32 = wr.iter().zip(x).map(|(a, b)| (a * b).abs()).sum();
                let f32_path = exact_f32[t * rows + r];
                assert!(
                    (f32_path - exact).abs() <= 1e-5 * magnitude + 1e-6,
                    "{dtype} f32 row {r}: {f32_path} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn legacy_quantizers_round_trip_within_their_step_bound() {
    let mut rng = SmallRng::seed_from_u64(13);
    let xs = random_activations(32 * 64, &mut rng);
    let mut out = vec![0f32; xs.len()];
    scalar::dequantize_q8_0(&scalar::quantize_q8_0(&xs), &mut out);
    check_round_trip("Q8_0", &xs, &out, 1.0 / 127.0, 0.5);
    scalar::dequantize_q4_0(&scalar::quantize_q4_0(&xs), &mut out);
    // ggml maps the extreme to -8, so the opposite extreme clamps at +7: one whole step.
    check_round_trip("Q4_0", &xs, &out, 1.0 / 8.0, 1.0);
    scalar::dequantize_q4_1(&scalar::quantize_q4_1(&xs), &mut out);
    check_round_trip("Q4_1", &xs, &out, 2.0 / 15.0, 0.5);
}

/// Every value within `steps` quantization steps, a step being `step` times the block's absmax.
fn check_round_trip(name: &str, xs: &[f32], out: &[f32], step: f32, steps: f32) {
    for (x, o) in xs.chunks(32).zip(out.chunks(32)) {
        let absmax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        // Plus the f16 rounding of the scale.
        let bound = absmax * step * steps + absmax * 2e-3 + 1e-6;
        for (a, b) in x.iter().zip(o) {
            assert!((a - b).abs() <= bound, "{name}: {a} -> {b}, bound {bound}");
        }
    }
}

/// The family `BRAINSTEM_KERNELS` names is the one the kernels run (tools/test.sh runs these
/// tests once per NEON family under qemu-user), and detection never picks one the CPU lacks.
#[test]
fn the_pinned_kernel_family_is_the_one_that_runs() {
    use brainstem_kernels::family::{self, KernelFamily};
    match family::from_env() {
        Ok(Some(pinned)) => assert_eq!(family::active(), pinned),
        Ok(None) => assert_eq!(family::active(), family::detected()),
        Err(e) => panic!("BRAINSTEM_KERNELS: {e}"),
    }
    for lacking in KernelFamily::ALL.into_iter().filter(|f| !f.supported()) {
        assert_ne!(family::detected(), lacking);
    }
}

/// The many-row path of the families without int8 tiles (strips dequantized to f32, then f32
/// GEMM) is the exact product with the dequantized weights, on every format and on strips
/// that do not divide the rows.
#[test]
fn the_dequantized_gemm_path_is_the_f32_product() {
    let mut rng = SmallRng::seed_from_u64(13);
    for dtype in BLOCK_FORMATS {
        let block = dtype.block_elems();
        for (rows, cols, n) in [(70, 3 * block, 33), (130, 2 * block, 40), (40, 2 * block, 200)] {
            let host = random_weight(dtype, rows, cols, &mut rng);
            let w = QMatrix::from_host(&host).unwrap();
            let xs = random_activations(n * cols, &mut rng);
            let (mut fast, mut reference) = (vec![0f32; n * rows], vec![0f32; n * rows]);
            w.matmul_dequantized(&xs, n, &mut fast).unwrap();
            w.matmul_scalar(&xs, n, &mut reference, ActivationPrecision::F32)
                .unwrap();
            let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{dtype} {rows}x{cols} n={n} [{i}]: {a} vs {b}"
                );
            }
        }
    }
}
