//! Argument checks and op costs that every backend shares, so that each refuses the same
//! shapes with the same error and reports the same cost to its ledger.

use crate::backend::{AttentionParams, KvCacheSpec, RopeParams};
use crate::error::{shape_err, KernelError, Result};
use crate::ledger::Cost;

/// `(rows, cols)` of an activation matrix.
pub type Dims = (usize, usize);

/// The end of `start..start + len`, which must lie within `0..bound` of what `op` slices.
pub fn range_end(op: &'static str, start: usize, len: usize, bound: usize) -> Result<usize> {
    start.checked_add(len).filter(|&end| end <= bound).ok_or_else(|| {
        shape_err(
            op,
            format!("a range within {bound} {op}"),
            format!("{start}..{start}+{len}"),
        )
    })
}

/// `v` must be one row as wide as `x`.
pub fn row_vector(op: &'static str, x: Dims, v: Dims) -> Result<()> {
    if v != (1, x.1) {
        return Err(shape_err(op, format!("1 x {}", x.1), format!("{} x {}", v.0, v.1)));
    }
    Ok(())
}

/// `b` must have `a`'s shape or be one row of its width; returns whether it broadcasts.
pub fn binary_operands(a: Dims, b: Dims) -> Result<bool> {
    let broadcast = b == (1, a.1);
    if !broadcast && a != b {
        return Err(shape_err(
            "binary",
            format!("{} x {} or 1 x {}", a.0, a.1, a.1),
            format!("{} x {}", b.0, b.1),
        ));
    }
    Ok(broadcast)
}

pub fn same_shape(op: &'static str, a: Dims, b: Dims) -> Result<()> {
    if a != b {
        return Err(shape_err(
            op,
            format!("{} x {}", a.0, a.1),
            format!("{} x {}", b.0, b.1),
        ));
    }
    Ok(())
}

pub fn matmul_operands(x: Dims, weight: Dims) -> Result<()> {
    if x.1 != weight.1 {
        return Err(shape_err(
            "matmul",
            format!("x with {} columns", weight.1),
            format!("{} x {}", x.0, x.1),
        ));
    }
    Ok(())
}

pub fn rope_operand(x: Dims, p: &RopeParams) -> Result<()> {
    if p.heads * p.head_dim != x.1 || !p.head_dim.is_multiple_of(2) {
        return Err(shape_err(
            "rope",
            format!("{} heads of even size {}", p.heads, p.head_dim),
            x.1,
        ));
    }
    Ok(())
}

/// Checks `q`, `k` and `v` against the heads and a cache holding `cached` positions.
pub fn attention_operands(
    q: Dims,
    k: Dims,
    v: Dims,
    spec: &KvCacheSpec,
    cached: usize,
    p: &AttentionParams,
) -> Result<()> {
    let kv_dim = p.kv_heads * p.head_dim;
    if p.kv_heads == 0 || !p.heads.is_multiple_of(p.kv_heads) {
        return Err(shape_err(
            "attention",
            "heads a multiple of kv_heads",
            format!("{} and {}", p.heads, p.kv_heads),
        ));
    }
    let rows_differ = k.0 != v.0 || (p.positional() && k.0 != q.0);
    if q.1 != p.heads * p.head_dim || k.1 != kv_dim || v.1 != kv_dim || rows_differ {
        return Err(shape_err(
            "attention",
            format!(
                "q [n, {}], k and v [{}, {kv_dim}]",
                p.heads * p.head_dim,
                if p.positional() { "n" } else { "m" }
            ),
            format!("q {}x{}, k {}x{}, v {}x{}", q.0, q.1, k.0, k.1, v.0, v.1),
        ));
    }
    if (spec.kv_heads, spec.head_dim) != (p.kv_heads, p.head_dim) {
        return Err(shape_err(
            "attention",
            format!("a cache of {kv_dim} features"),
            spec.kv_heads * spec.head_dim,
        ));
    }
    let needed = cached + k.0;
    if needed > spec.max_positions {
        return Err(KernelError::KvCacheFull {
            needed,
            capacity: spec.max_positions,
        });
    }
    Ok(())
}

fn bytes_f32(elems: usize) -> u64 {
    4 * elems as u64
}

/// Attention of `rows` queries after `appended` keys joined `start` cached positions.
pub fn attention_cost(rows: usize, start: usize, appended: usize, p: &AttentionParams) -> Cost {
    let total = start + appended;
    let (hd, kv_dim) = (p.head_dim, p.kv_heads * p.head_dim);
    let contexts: u64 = (0..rows).map(|r| p.visible(start, r, total) as u64).sum();
    Cost {
        f32_macs: 2 * contexts * (p.heads * hd) as u64,
        float_ops: 4 * contexts * p.heads as u64,
        bytes_read: bytes_f32(rows * p.heads * hd) + 2 * bytes_f32(total * kv_dim),
        bytes_written: bytes_f32(rows * p.heads * hd + 2 * appended * kv_dim),
        ..Cost::default()
    }
}

/// `x [n, cols] * w^T` for `w [rows, cols]` stored in `weight_bytes`; int8 MACs when the
/// activations are quantized, f32 otherwise.
pub fn matmul_cost(n: usize, rows: usize, cols: usize, weight_bytes: usize, int8: bool) -> Cost {
    let macs = (n * rows * cols) as u64;
    Cost {
        int8_macs: if int8 { macs } else { 0 },
        f32_macs: if int8 { 0 } else { macs },
        bytes_read: weight_bytes as u64 + bytes_f32(n * cols),
        bytes_written: bytes_f32(n * rows),
        ..Cost::default()
    }
}

/// Gathering `ids` rows of `row_bytes` each into `cols` f32 columns.
pub fn embedding_cost(ids: usize, cols: usize, row_bytes: usize) -> Cost {
    Cost {
        bytes_read: (ids * row_bytes) as u64,
        bytes_written: bytes_f32(ids * cols),
        ..Cost::default()
    }
}

/// An op reading and writing `rows x cols` f32 values with `ops_per_elem` operations each.
pub fn row_op_cost(rows: usize, cols: usize, ops_per_elem: u64) -> Cost {
    let elems = (rows * cols) as u64;
    Cost {
        float_ops: ops_per_elem * elems,
        bytes_read: 4 * elems,
        bytes_written: 4 * elems,
        ..Cost::default()
    }
}

/// Elementwise `a op b` of `out` values.
pub fn binary_cost(a: usize, b: usize, out: usize) -> Cost {
    Cost {
        float_ops: out as u64,
        bytes_read: bytes_f32(a + b),
        bytes_written: bytes_f32(out),
        ..Cost::default()
    }
}

/// A copy of `elems` f32 values.
pub fn copy_cost(elems: usize) -> Cost {
    Cost {
        bytes_read: bytes_f32(elems),
        bytes_written: bytes_f32(elems),
        ..Cost::default()
    }
}
