// Embedding gather: rows `ids` of a table in any weight format, dequantized to f32, one
// invocation per output element. Table layouts are those of `matmul.wgsl`.

struct Params {
    len: u32,
    cols: u32,
    // The table's format, for `value_of`.
    format: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> wf: array<f32>;

const WG: u32 = 256u;

fn byte_at(base: u32, i: u32) -> u32 {
    return (w[base + i / 4u] >> (8u * (i % 4u))) & 0xFFu;
}

fn f16_low(word: u32) -> f32 {
    return unpack2x16float(word).x;
}

fn value_q8_0(row: u32, col: u32) -> f32 {
    let base = (row * (p.cols / 32u) + col / 32u) * 9u;
    let q = bitcast<i32>(byte_at(base + 1u, col % 32u) << 24u) >> 24u;
    return f16_low(w[base]) * f32(q);
}

fn nibble(base: u32, j: u32) -> f32 {
    return f32((byte_at(base, j % 16u) >> (4u * (j / 16u))) & 0xFu);
}

fn value_q4_0(row: u32, col: u32) -> f32 {
    let base = (row * (p.cols / 32u) + col / 32u) * 5u;
    return f16_low(w[base]) * (nibble(base + 1u, col % 32u) - 8.0);
}

fn value_q4_1(row: u32, col: u32) -> f32 {
    let base = (row * (p.cols / 32u) + col / 32u) * 5u;
    let dm = unpack2x16float(w[base]);
    return dm.x * nibble(base + 1u, col % 32u) + dm.y;
}

fn q4k_scale_min(base: u32, s: u32) -> vec2<f32> {
    let scales = base + 1u;
    if (s < 4u) {
        return vec2(f32(byte_at(scales, s) & 63u), f32(byte_at(scales, s + 4u) & 63u));
    }
    let hi = byte_at(scales, s + 4u);
    let sc = (hi & 0xFu) | ((byte_at(scales, s - 4u) >> 6u) << 4u);
    let mn = (hi >> 4u) | ((byte_at(scales, s) >> 6u) << 4u);
    return vec2(f32(sc), f32(mn));
}

fn value_q4k(row: u32, col: u32) -> f32 {
    let base = (row * (p.cols / 256u) + col / 256u) * 36u;
    let e = col % 256u;
    let s = e / 32u;
    let q = (byte_at(base + 4u, 32u * (s / 2u) + e % 32u) >> (4u * (s % 2u))) & 0xFu;
    let dm = unpack2x16float(w[base]);
    let sm = q4k_scale_min(base, s);
    return dm.x * sm.x * f32(q) - dm.y * sm.y;
}

fn value_q6k(row: u32, col: u32) -> f32 {
    let base = (row * (p.cols / 256u) + col / 256u) * 53u;
    let e = col % 256u;
    let half = e / 128u;
    let which = (e % 128u) / 32u;
    let l = e % 32u;
    let low = (byte_at(base, half * 64u + (which % 2u) * 32u + l) >> (4u * (which / 2u))) & 0xFu;
    let high = (byte_at(base + 32u, half * 32u + l) >> (2u * which)) & 3u;
    let q = i32(low | (high << 4u)) - 32;
    let sc = bitcast<i32>(byte_at(base + 48u, l / 16u + 2u * which + 8u * half) << 24u) >> 24u;
    return f16_low(w[base + 52u]) * f32(sc) * f32(q);
}

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn embed_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = wf[ids[i / p.cols] * p.cols + i % p.cols];
    }
}

// One value of a block-format table, in the format `p.format` names.
fn value_of(row: u32, col: u32) -> f32 {
    switch p.format {
        case 0u: { return value_q8_0(row, col); }
        case 1u: { return value_q4_0(row, col); }
        case 2u: { return value_q4_1(row, col); }
        case 3u: { return value_q4k(row, col); }
        default: { return value_q6k(row, col); }
    }
}

@compute @workgroup_size(256)
fn embed_blocks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.len) {
        out[i] = value_of(ids[i / p.cols], i % p.cols);
    }
}
