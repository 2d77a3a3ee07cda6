// Grouped-query attention for one (query row, head) per workgroup over the cached keys and
// values: scores into a scratch buffer, a max-subtracted softmax, then the weighted sum of
// values. Keys and values for this call were copied into the cache before the dispatch.

struct Params {
    rows: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    // Positions cached before this call's rows, and in all after it.
    start: u32,
    total: u32,
    // 1 when query row r is position start + r and sees the positions up to its own and
    // the first `bidirectional` of the cache; 0 when every query sees every position.
    causal: u32,
    scale: f32,
    bidirectional: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<f32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
var<workgroup> partial: array<f32, WG>;
var<workgroup> query: array<f32, MAX_HEAD_DIM>;

fn reduce(lid: u32, value: f32, take_max: bool) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            if (take_max) {
                partial[lid] = max(partial[lid], partial[lid + stride]);
            } else {
                partial[lid] = partial[lid] + partial[lid + stride];
            }
        }
        workgroupBarrier();
    }
    let result = partial[0];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn attend(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let task = wid.x + wid.y * nwg.x;
    if (task >= p.rows * p.heads) {
        return;
    }
    let row = task / p.heads;
    let head = task % p.heads;
    let hd = p.head_dim;
    let kv_dim = p.kv_heads * hd;
    let kv_off = (head / (p.heads / p.kv_heads)) * hd;
    let q_off = row * p.heads * hd + head * hd;
    var visible = p.total;
    if (p.causal == 1u) {
        visible = min(max(p.start + row + 1u, p.bidirectional), p.total);
    }
    for (var d = lid; d < hd; d += WG) {
        query[d] = q[q_off + d];
    }
    workgroupBarrier();
    let s_off = task * p.total;
    var local_max = -3.0e38;
    for (var j = lid; j < visible; j += WG) {
        var s = 0.0;
        for (var d = 0u; d < hd; d++) {
            s += query[d] * keys[j * kv_dim + kv_off + d];
        }
        s *= p.scale;
        scores[s_off + j] = s;
        local_max = max(local_max, s);
    }
    let top = reduce(lid, local_max, true);
    var local_sum = 0.0;
    for (var j = lid; j < visible; j += WG) {
        let e = exp(scores[s_off + j] - top);
        scores[s_off + j] = e;
        local_sum += e;
    }
    let total = reduce(lid, local_sum, false);
    storageBarrier();
    workgroupBarrier();
    for (var d = lid; d < hd; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < visible; j++) {
            acc += scores[s_off + j] * values[j * kv_dim + kv_off + d];
        }
        out[q_off + d] = acc / total;
    }
}

// One invocation per (query row, head) and no barriers: attention for adapters that run
// shaders on a CPU.
@compute @workgroup_size(64)
fn attend_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let task = (wid.x + wid.y * nwg.x) * WG + lid;
    if (task >= p.rows * p.heads) {
        return;
    }
    let row = task / p.heads;
    let head = task % p.heads;
    let hd = p.head_dim;
    let kv_dim = p.kv_heads * hd;
    let kv_off = (head / (p.heads / p.kv_heads)) * hd;
    let q_off = row * p.heads * hd + head * hd;
    var visible = p.total;
    if (p.causal == 1u) {
        visible = min(max(p.start + row + 1u, p.bidirectional), p.total);
    }
    let s_off = task * p.total;
    var top = -3.0e38;
    for (var j = 0u; j < visible; j++) {
        var s = 0.0;
        for (var d = 0u; d < hd; d++) {
            s += q[q_off + d] * keys[j * kv_dim + kv_off + d];
        }
        s *= p.scale;
        scores[s_off + j] = s;
        top = max(top, s);
    }
    var total = 0.0;
    for (var j = 0u; j < visible; j++) {
        let e = exp(scores[s_off + j] - top);
        scores[s_off + j] = e;
        total += e;
    }
    for (var d = 0u; d < hd; d++) {
        var acc = 0.0;
        for (var j = 0u; j < visible; j++) {
            acc += scores[s_off + j] * values[j * kv_dim + kv_off + d];
        }
        out[q_off + d] = acc / total;
    }
}
