//! Grouped-query causal attention over a growing key/value cache on the CPU: one task per
//! (query row, head), scores in f32 with a max-subtracted softmax.

use rayon::prelude::*;

use super::ops::dot;
use super::{CpuKvCache, CpuTensor};
use crate::backend::AttentionParams;
use crate::error::{shape_err, KernelError, Result};
use crate::ledger::Cost;

fn check(q: &CpuTensor, k: &CpuTensor, v: &CpuTensor, cache: &CpuKvCache, p: &AttentionParams) -> Result<()> {
    let kv_dim = p.kv_heads * p.head_dim;
    if p.kv_heads == 0 || !p.heads.is_multiple_of(p.kv_heads) {
        return Err(shape_err(
            "attention",
            "heads a multiple of kv_heads",
            format!("{} and {}", p.heads, p.kv_heads),
        ));
    }
    if q.cols != p.heads * p.head_dim || k.cols != kv_dim || v.cols != kv_dim || k.rows != q.rows || v.rows != q.rows {
        return Err(shape_err(
            "attention",
            format!("q [n, {}], k and v [n, {kv_dim}]", p.heads * p.head_dim),
            format!(
                "q {}x{}, k {}x{}, v {}x{}",
                q.rows, q.cols, k.rows, k.cols, v.rows, v.cols
            ),
        ));
    }
    if (cache.spec.kv_heads, cache.spec.head_dim) != (p.kv_heads, p.head_dim) {
        return Err(shape_err(
            "attention",
            format!("a cache of {kv_dim} features"),
            cache.spec.kv_heads * cache.spec.head_dim,
        ));
    }
    let needed = cache.len + q.rows;
    if needed > cache.spec.max_positions {
        return Err(KernelError::KvCacheFull {
            needed,
            capacity: cache.spec.max_positions,
        });
    }
    Ok(())
}

/// Appends `k`, `v` to the cache and attends from every row of `q`.
pub fn attend(
    q: &CpuTensor,
    k: &CpuTensor,
    v: &CpuTensor,
    cache: &mut CpuKvCache,
    p: AttentionParams,
) -> Result<(CpuTensor, Cost)> {
    check(q, k, v, cache, &p)?;
    let start = cache.len;
    cache.keys.extend_from_slice(&k.data);
    cache.values.extend_from_slice(&v.data);
    cache.len += q.rows;
    let total = cache.len;
    let (hd, kv_dim, group) = (p.head_dim, p.kv_heads * p.head_dim, p.heads / p.kv_heads);
    let (keys, values) = (&cache.keys, &cache.values);
    let visible = |row: usize| if p.causal { start + row + 1 } else { total };
    let mut out = vec![0f32; q.rows * q.cols];
    out.par_chunks_mut(hd).enumerate().for_each(|(task, out)| {
        let (row, head) = (task / p.heads, task % p.heads);
        let kv_off = (head / group) * hd;
        let query = &q.data[row * q.cols + head * hd..][..hd];
        let n = visible(row);
        let mut scores: Vec<f32> = (0..n)
            .map(|j| p.scale * dot(query, &keys[j * kv_dim + kv_off..][..hd]))
            .collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        for (j, &s) in scores.iter().enumerate() {
            let weight = s / sum;
            for (o, &x) in out.iter_mut().zip(&values[j * kv_dim + kv_off..][..hd]) {
                *o += weight * x;
            }
        }
    });
    let contexts: u64 = (0..q.rows).map(|r| visible(r) as u64).sum();
    let cost = Cost {
        f32_macs: 2 * contexts * (p.heads * hd) as u64,
        float_ops: 4 * contexts * p.heads as u64,
        bytes_read: 4 * (q.data.len() as u64 + 2 * total as u64 * kv_dim as u64),
        bytes_written: 4 * (out.len() + k.data.len() + v.data.len()) as u64,
        ..Cost::default()
    };
    Ok((CpuTensor::new(out, q.rows, q.cols), cost))
}
