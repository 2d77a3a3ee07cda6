// Row-wise ops: RMSNorm and LayerNorm (one workgroup per row, reductions in workgroup
// memory) and rotary embedding from a table of cosines and sines computed on the host in f64.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    // Rotary embedding: heads per row, features per head, first position, 1 for interleaved
    // pairs (2i, 2i + 1), 0 for half-split pairs (i, i + head_dim / 2).
    heads: u32,
    head_dim: u32,
    start_pos: u32,
    interleaved: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// Rope: (cos, sin) of position `pos` and pair `i` at `2 * (pos * head_dim / 2 + i)`.
@group(0) @binding(5) var<storage, read> cos_sin: array<f32>;

const WG: u32 = 64u;
var<workgroup> partial: array<f32, WG>;

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] = partial[lid] + partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var sq = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        sq += x[base + c] * x[base + c];
    }
    let inv = 1.0 / sqrt(workgroup_sum(lid, sq) / f32(p.cols) + p.eps);
    for (var c = lid; c < p.cols; c += WG) {
        out[base + c] = x[base + c] * inv * gamma[c];
    }
}

@compute @workgroup_size(64)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += x[base + c];
    }
    let mean = workgroup_sum(lid, s) / f32(p.cols);
    var sq = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        let d = x[base + c] - mean;
        sq += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(lid, sq) / f32(p.cols) + p.eps);
    for (var c = lid; c < p.cols; c += WG) {
        out[base + c] = (x[base + c] - mean) * inv * gamma[c] + beta[c];
    }
}

// One invocation per rotated pair.
@compute @workgroup_size(64)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let half = p.head_dim / 2u;
    let i = row_of(wid, nwg) * WG + lid;
    if (i >= p.rows * p.heads * half) {
        return;
    }
    let pair = i % half;
    let head = (i / half) % p.heads;
    let row = i / (half * p.heads);
    let base = row * p.cols + head * p.head_dim;
    var a = base + pair;
    var b = base + pair + half;
    if (p.interleaved == 1u) {
        a = base + 2u * pair;
        b = a + 1u;
    }
    let t = 2u * ((p.start_pos + row) * half + pair);
    let c = cos_sin[t];
    let s = cos_sin[t + 1u];
    let x0 = x[a];
    let x1 = x[b];
    out[a] = x0 * c - x1 * s;
    out[b] = x1 * c + x0 * s;
}

// One invocation per row and no barriers: the norms for adapters that run shaders on a CPU.
@compute @workgroup_size(64)
fn rms_norm_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wid, nwg) * WG + lid;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var sq = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        sq += x[base + c] * x[base + c];
    }
    let inv = 1.0 / sqrt(sq / f32(p.cols) + p.eps);
    for (var c = 0u; c < p.cols; c++) {
        out[base + c] = x[base + c] * inv * gamma[c];
    }
}

@compute @workgroup_size(64)
fn layer_norm_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wid, nwg) * WG + lid;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += x[base + c];
    }
    let mean = s / f32(p.cols);
    var sq = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let d = x[base + c] - mean;
        sq += d * d;
    }
    let inv = 1.0 / sqrt(sq / f32(p.cols) + p.eps);
    for (var c = 0u; c < p.cols; c++) {
        out[base + c] = (x[base + c] - mean) * inv * gamma[c] + beta[c];
    }
}
