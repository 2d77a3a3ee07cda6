// Elementwise ops, one invocation per output element: binary ops with an optional
// broadcast row, activations, the gated MLP's middle, and strided copies of rows and columns.

struct Params {
    len: u32,
    cols: u32,
    // 1 when `b` is a single row broadcast over `a`'s rows.
    b_is_row: u32,
    // Columns of the source and the top-left corner copied from it.
    src_cols: u32,
    row0: u32,
    col0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn b_at(i: u32) -> f32 {
    if (p.b_is_row == 1u) {
        return b[i % p.cols];
    }
    return b[i];
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

fn gelu_tanh(x: f32) -> f32 {
    // tanh saturates to 1 in f32 well before 10; clamping keeps exp-based tanh finite.
    let t = clamp(0.7978846 * (x + 0.044715 * x * x * x), -10.0, 10.0);
    return 0.5 * x * (1.0 + tanh(t));
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = a[i] + b_at(i);
    }
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = a[i] * b_at(i);
    }
}

@compute @workgroup_size(256)
fn silu_op(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = silu(a[i]);
    }
}

@compute @workgroup_size(256)
fn gelu_op(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = gelu_tanh(a[i]);
    }
}

@compute @workgroup_size(256)
fn gated_silu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = silu(a[i]) * b[i];
    }
}

@compute @workgroup_size(256)
fn gated_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = gelu_tanh(a[i]) * b[i];
    }
}

@compute @workgroup_size(256)
fn copy_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        let r = i / p.cols;
        let c = i % p.cols;
        out[i] = a[(r + p.row0) * p.src_cols + p.col0 + c];
    }
}
