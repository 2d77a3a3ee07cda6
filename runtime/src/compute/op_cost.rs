//! What a decode step costs a backend beyond its arithmetic, measured the way a model issues
//! ops: tokens decoded one at a time through a stack of layers with Q8_0 weights, inside the
//! backend's pool. Two stacks give two unknowns: a narrow one whose weights stay in the
//! caches gives what each op costs beyond its arithmetic (allocation, the pool's fork and
//! join, the call), and one as wide and deep as SmolLM2-360M (SmolVLA's language model,
//! 188 MB of weights) gives the bandwidth a real decode streams its weights at, which is
//! below what one large product reaches. Tiny ops in a loop outside the pool would time the
//! hand-off to the pool instead.

use std::borrow::Cow;
use std::time::Instant;

use crate::compute::chip::ChipProfile;
use crate::error::Result;
use crate::kernels::quant::quantize::quantize;
use crate::kernels::{
    Activation, AttentionMask, AttentionParams, Backend, BinaryOp, Cost, DType, HostWeight, KvCacheSpec, LedgerSnapshot,
};

/// A stack of decoder layers to probe with.
#[derive(Clone, Copy)]
struct Stack {
    width: usize,
    hidden: usize,
    heads: usize,
    layers: usize,
    tokens: usize,
}

/// One layer's weights in L2: what an op costs beyond its arithmetic.
const NARROW: Stack = Stack {
    width: 256,
    hidden: 640,
    heads: 4,
    layers: 1,
    tokens: 160,
};

/// SmolLM2-360M's width and depth: 188 MB streamed per token.
const WIDE: Stack = Stack {
    width: 960,
    hidden: 2560,
    heads: 15,
    layers: 16,
    tokens: 12,
};

struct Layer<B: Backend> {
    /// q, k, v, o, gate, up, down.
    weights: Vec<B::Weight>,
    gamma: B::Tensor,
    cache: B::KvCache,
}

fn weight<B: Backend>(backend: &B, seed: usize, rows: usize, cols: usize) -> Result<B::Weight> {
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| (((i + seed) * 7919) % 255) as f32 / 127.0 - 1.0)
        .collect();
    Ok(backend.upload_weight(&HostWeight {
        dtype: DType::Q8_0,
        shape: vec![rows, cols],
        bytes: Cow::Owned(quantize(DType::Q8_0, &values)?),
    })?)
}

fn layers<B: Backend>(backend: &B, s: Stack) -> Result<Vec<Layer<B>>> {
    let (w, h) = (s.width, s.hidden);
    let shapes = [(w, w), (w, w), (w, w), (w, w), (h, w), (h, w), (w, h)];
    (0..s.layers)
        .map(|layer| {
            let weights = shapes
                .iter()
                .enumerate()
                .map(|(i, &(rows, cols))| weight(backend, 7 * layer + i, rows, cols))
                .collect::<Result<Vec<_>>>()?;
            let spec = KvCacheSpec {
                kv_heads: s.heads,
                head_dim: w / s.heads,
                max_positions: s.tokens,
            };
            Ok(Layer {
                weights,
                gamma: backend.upload(&vec![1.0; w], 1, w)?,
                cache: backend.kv_cache(spec)?,
            })
        })
        .collect()
}

/// One token through one layer: 13 ops (two norms, seven products, attention, the gated
/// activation, two residual adds).
fn decode_layer<B: Backend>(backend: &B, x: &B::Tensor, layer: &mut Layer<B>, heads: usize) -> Result<B::Tensor> {
    let w = &layer.weights;
    let normed = backend.rms_norm(x, &layer.gamma, 1e-5)?;
    let (q, k, v) = (
        backend.matmul(&normed, &w[0])?,
        backend.matmul(&normed, &w[1])?,
        backend.matmul(&normed, &w[2])?,
    );
    let (_, width) = backend.dims(x);
    let params = AttentionParams {
        heads,
        kv_heads: heads,
        head_dim: width / heads,
        scale: 0.125,
        mask: AttentionMask::Causal,
    };
    let attended = backend.attention(&q, &k, &v, &mut layer.cache, params)?;
    let x = backend.binary(x, &backend.matmul(&attended, &w[3])?, BinaryOp::Add)?;
    let normed = backend.rms_norm(&x, &layer.gamma, 1e-5)?;
    let (gate, up) = (backend.matmul(&normed, &w[4])?, backend.matmul(&normed, &w[5])?);
    let mlp = backend.matmul(&backend.gated(&gate, &up, Activation::Silu)?, &w[6])?;
    Ok(backend.binary(&x, &mlp, BinaryOp::Add)?)
}

/// Seconds and ledger work of decoding `s.tokens - 1` tokens (after one to warm up).
fn decode<B: Backend>(backend: &B, s: Stack) -> Result<(f64, LedgerSnapshot)> {
    let mut layers = layers(backend, s)?;
    let x = backend.upload(&vec![0.1; s.width], 1, s.width)?;
    let step = |layers: &mut Vec<Layer<B>>| -> Result<()> {
        let mut h = x.clone();
        for layer in layers.iter_mut() {
            h = decode_layer(backend, &h, layer, s.heads)?;
        }
        backend.read(&h)?;
        Ok(())
    };
    backend.scope(|| step(&mut layers))?;
    let before = backend.ledger().snapshot();
    let started = Instant::now();
    backend.scope(|| (1..s.tokens).try_for_each(|_| step(&mut layers)))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok((seconds, backend.ledger().snapshot().since(&before)))
}

/// Seconds `chip`'s compute rates give `work`, its memory traffic and dispatch left out.
fn compute_seconds(chip: &ChipProfile, work: &LedgerSnapshot) -> f64 {
    let unbounded = ChipProfile {
        memory_gbps: f64::MAX / 1e12,
        dispatch_us: 0.0,
        ..chip.clone()
    };
    unbounded.time(work).as_secs_f64()
}

fn calls(work: &LedgerSnapshot) -> u64 {
    work.by_kind.iter().map(|(_, calls, _)| calls).sum::<u64>().max(1)
}

fn bytes(cost: Cost) -> f64 {
    (cost.bytes_read + cost.bytes_written) as f64
}

/// Microseconds an op costs beyond its arithmetic, and the GB/s a decode streams its weights
/// at, for a backend whose compute rates `rates` holds (its bandwidth and dispatch cost are
/// ignored).
pub fn decode_costs<B: Backend>(backend: &B, rates: &ChipProfile) -> Result<(f64, f64)> {
    let (seconds, work) = decode(backend, NARROW)?;
    let per_op = ((seconds - compute_seconds(rates, &work)) / calls(&work) as f64).max(0.0);
    let (seconds, work) = decode(backend, WIDE)?;
    let streaming = seconds - compute_seconds(rates, &work) - per_op * calls(&work) as f64;
    // Streaming 188 MB is most of a wide token's time; a noisy narrow run that leaves it less
    // than a quarter would make the bandwidth absurd, so it is never taken below that.
    let gbps = bytes(work.total()) / streaming.max(0.25 * seconds) / 1e9;
    Ok((per_op * 1e6, gbps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{ActivationPrecision, Device, OpKind};

    #[test]
    fn a_probe_token_runs_thirteen_ops_per_layer_seven_of_them_products() {
        let backend = Device::Cpu.open(1, ActivationPrecision::Int8).unwrap();
        let (seconds, work) = decode(&backend, NARROW).unwrap();
        let tokens = (NARROW.tokens - 1) as u64;
        assert!(seconds > 0.0);
        assert_eq!(calls(&work), 13 * NARROW.layers as u64 * tokens);
        let products = work.by_kind.iter().find(|(k, _, _)| *k == OpKind::QuantMatmul).unwrap();
        assert_eq!(products.1, 7 * NARROW.layers as u64 * tokens);
        let rates = ChipProfile::npu(1.0);
        assert!(compute_seconds(&rates, &work) > 0.0);
    }
}
