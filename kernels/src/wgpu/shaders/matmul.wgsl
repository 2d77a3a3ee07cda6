// Matrix products `out [n, m] = x [n, k] * w [m, k]^T`. Block formats take int8 activations
// quantized by `quantize_rows` (32-value blocks, one f32 scale each) and multiply with
// `dot4I8Packed`, an int8 x int8 -> int32 dot product of four lanes (native where the
// adapter has packed integer dot products, unpacked by the shader compiler otherwise), or
// f32 activations against the weights dequantized in registers.
// One workgroup computes one output column for a tile of up to TILE activation rows; its
// invocations split the row's 32-value blocks and sum in workgroup memory.
//
// Weight layouts (u32 words, little-endian, every block word-aligned; see `layout.rs`):
//   Q8_0: 9 words per 32 values: the f16 scale, then 32 int8.
//   Q4_0: 5 words per 32 values: the f16 scale, then 16 bytes of nibbles (low nibbles are
//         values 0..16, high nibbles 16..32), each the value plus 8.
//   Q4_1: 5 words per 32 values: f16 scale and f16 minimum, then the nibbles as Q4_0.
//   Q4_K: 36 words per 256 values, GGUF's block unchanged.
//   Q6_K: 53 words per 256 values, GGUF's block with its f16 scale padded to a word.

struct Params {
    n: u32,
    m: u32,
    k: u32,
    // The weight format, for `weight_block`.
    format: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> xq: array<u32>;
@group(0) @binding(3) var<storage, read> xd: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> wf: array<f32>;
@group(0) @binding(6) var<storage, read> xf: array<f32>;

const WG: u32 = 64u;
const TILE: u32 = 8u;
const ONES: u32 = 0x01010101u;
const NIBBLES: u32 = 0x0F0F0F0Fu;

var<workgroup> partial: array<f32, 512>;

// One 32-value block of a weight row, as four-lane int8 words and the factors that turn
// their dot products with an activation block into a sum: words 0..4 carry `scale.x` and
// `offset.x`, words 4..8 `scale.y` and `offset.y`; the result is
// `scale . (q . xq) + offset . (sum of xq)` per half.
struct Block {
    q: array<u32, 8>,
    scale: vec2<f32>,
    offset: vec2<f32>,
}

fn byte_of(word: u32, i: u32) -> u32 {
    return (word >> (8u * i)) & 0xFFu;
}

fn f16_low(word: u32) -> f32 {
    return unpack2x16float(word).x;
}

fn nibble_block(base: u32) -> array<u32, 8> {
    var q: array<u32, 8>;
    for (var i = 0u; i < 4u; i++) {
        q[i] = w[base + i] & NIBBLES;
        q[i + 4u] = (w[base + i] >> 4u) & NIBBLES;
    }
    return q;
}

fn block_q8_0(row: u32, sb: u32) -> Block {
    let base = (row * (p.k / 32u) + sb) * 9u;
    var b: Block;
    for (var i = 0u; i < 8u; i++) {
        b.q[i] = w[base + 1u + i];
    }
    let d = f16_low(w[base]);
    b.scale = vec2(d, d);
    b.offset = vec2(0.0, 0.0);
    return b;
}

fn block_q4_0(row: u32, sb: u32) -> Block {
    let base = (row * (p.k / 32u) + sb) * 5u;
    var b: Block;
    b.q = nibble_block(base + 1u);
    let d = f16_low(w[base]);
    b.scale = vec2(d, d);
    b.offset = vec2(-8.0 * d, -8.0 * d);
    return b;
}

fn block_q4_1(row: u32, sb: u32) -> Block {
    let base = (row * (p.k / 32u) + sb) * 5u;
    var b: Block;
    b.q = nibble_block(base + 1u);
    let dm = unpack2x16float(w[base]);
    b.scale = vec2(dm.x, dm.x);
    b.offset = vec2(dm.y, dm.y);
    return b;
}

// Byte `j` of a Q4_K block's 12 bytes of 6-bit scales and minimums.
fn q4k_scale_byte(base: u32, j: u32) -> u32 {
    return byte_of(w[base + 1u + j / 4u], j % 4u);
}

// Scale and minimum of sub-block `s` (GGUF's get_scale_min_k4).
fn q4k_scale_min(base: u32, s: u32) -> vec2<f32> {
    if (s < 4u) {
        return vec2(f32(q4k_scale_byte(base, s) & 63u), f32(q4k_scale_byte(base, s + 4u) & 63u));
    }
    let hi = q4k_scale_byte(base, s + 4u);
    let sc = (hi & 0xFu) | ((q4k_scale_byte(base, s - 4u) >> 6u) << 4u);
    let mn = (hi >> 4u) | ((q4k_scale_byte(base, s) >> 6u) << 4u);
    return vec2(f32(sc), f32(mn));
}

fn block_q4k(row: u32, sb: u32) -> Block {
    let base = (row * (p.k / 256u) + sb / 8u) * 36u;
    let s = sb % 8u;
    let dm = unpack2x16float(w[base]);
    let sm = q4k_scale_min(base, s);
    let qs = base + 4u + 8u * (s / 2u);
    let shift = 4u * (s % 2u);
    var b: Block;
    for (var i = 0u; i < 8u; i++) {
        b.q[i] = (w[qs + i] >> shift) & NIBBLES;
    }
    let scale = dm.x * sm.x;
    let offset = -dm.y * sm.y;
    b.scale = vec2(scale, scale);
    b.offset = vec2(offset, offset);
    return b;
}

fn signed_byte(word: u32, i: u32) -> f32 {
    return f32((bitcast<i32>(word << (24u - 8u * i))) >> 24u);
}

fn block_q6k(row: u32, sb: u32) -> Block {
    let base = (row * (p.k / 256u) + sb / 8u) * 53u;
    let s = sb % 8u;
    let half = s / 4u;
    let which = s % 4u;
    let ql = base + half * 16u + (which % 2u) * 8u;
    let qh = base + 32u + half * 8u;
    let low_shift = 4u * (which / 2u);
    let high_shift = 2u * which;
    var b: Block;
    for (var i = 0u; i < 8u; i++) {
        let low = (w[ql + i] >> low_shift) & NIBBLES;
        let high = ((w[qh + i] >> high_shift) & 0x03030303u) << 4u;
        b.q[i] = low | high;
    }
    let d = f16_low(w[base + 52u]);
    let sc = 2u * which + 8u * half;
    let scales = w[base + 48u + sc / 4u];
    let s0 = d * signed_byte(scales, sc % 4u);
    let s1 = d * signed_byte(scales, sc % 4u + 1u);
    b.scale = vec2(s0, s1);
    b.offset = vec2(-32.0 * s0, -32.0 * s1);
    return b;
}

fn block_dot(b: Block, xrow: u32, sb: u32) -> f32 {
    let x = (xrow * p.k) / 4u + sb * 8u;
    var d0 = 0;
    var d1 = 0;
    var s0 = 0;
    var s1 = 0;
    for (var i = 0u; i < 4u; i++) {
        d0 += dot4I8Packed(b.q[i], xq[x + i]);
        d1 += dot4I8Packed(b.q[i + 4u], xq[x + 4u + i]);
        s0 += dot4I8Packed(ONES, xq[x + i]);
        s1 += dot4I8Packed(ONES, xq[x + 4u + i]);
    }
    let sums = b.scale * vec2(f32(d0), f32(d1)) + b.offset * vec2(f32(s0), f32(s1));
    return xd[(xrow * p.k) / 32u + sb] * (sums.x + sums.y);
}

// Sums each invocation's TILE partial results over the workgroup and writes the column.
fn finish(lid: u32, acc: array<f32, TILE>, col: u32, row0: u32) {
    for (var r = 0u; r < TILE; r++) {
        partial[r * WG + lid] = acc[r];
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            for (var r = 0u; r < TILE; r++) {
                partial[r * WG + lid] += partial[r * WG + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if (lid < TILE && row0 + lid < p.n) {
        out[(row0 + lid) * p.m + col] = partial[lid * WG];
    }
}

// (output column, first activation row) of this workgroup, or col == m when it has none.
fn tile_of(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    let t = wid.x + wid.y * nwg.x;
    let col = t % p.m;
    let tile = t / p.m;
    if (tile * TILE >= p.n) {
        return vec2(p.m, 0u);
    }
    return vec2(col, tile * TILE);
}

fn rows_in(row0: u32) -> u32 {
    return min(TILE, p.n - row0);
}

// The block of weight row `row` holding 32-value block `sb`, in the format `p.format`
// names (the values of `FORMAT_*` in `pipelines.rs`).
fn weight_block(row: u32, sb: u32) -> Block {
    switch p.format {
        case 0u: { return block_q8_0(row, sb); }
        case 1u: { return block_q4_0(row, sb); }
        case 2u: { return block_q4_1(row, sb); }
        case 3u: { return block_q4k(row, sb); }
        default: { return block_q6k(row, sb); }
    }
}

// Block-format weights with int8 activations (`xq`, `xd` from `quantize_rows`).
@compute @workgroup_size(64)
fn mm_int8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let at = tile_of(wid, nwg);
    if (at.x >= p.m) {
        return;
    }
    var acc: array<f32, TILE>;
    let rows = rows_in(at.y);
    for (var sb = lid; sb < p.k / 32u; sb += WG) {
        let b = weight_block(at.x, sb);
        for (var r = 0u; r < rows; r++) {
            acc[r] += block_dot(b, at.y + r, sb);
        }
    }
    finish(lid, acc, at.x, at.y);
}

fn x4(at: u32) -> vec4<f32> {
    return vec4(xf[at], xf[at + 1u], xf[at + 2u], xf[at + 3u]);
}

// A weight block times 32 f32 activations, the weights dequantized in registers.
fn block_dot_f32(b: Block, xrow: u32, sb: u32) -> f32 {
    let x = xrow * p.k + sb * 32u;
    var d = vec2(0.0, 0.0);
    var s = vec2(0.0, 0.0);
    let one = vec4(1.0, 1.0, 1.0, 1.0);
    for (var i = 0u; i < 4u; i++) {
        let x0 = x4(x + 4u * i);
        let x1 = x4(x + 16u + 4u * i);
        d += vec2(dot(vec4<f32>(unpack4xI8(b.q[i])), x0), dot(vec4<f32>(unpack4xI8(b.q[i + 4u])), x1));
        s += vec2(dot(one, x0), dot(one, x1));
    }
    let sums = b.scale * d + b.offset * s;
    return sums.x + sums.y;
}

// Block-format weights with f32 activations: the exact product with the dequantized weights.
@compute @workgroup_size(64)
fn mm_f32_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let at = tile_of(wid, nwg);
    if (at.x >= p.m) {
        return;
    }
    var acc: array<f32, TILE>;
    let rows = rows_in(at.y);
    for (var sb = lid; sb < p.k / 32u; sb += WG) {
        let b = weight_block(at.x, sb);
        for (var r = 0u; r < rows; r++) {
            acc[r] += block_dot_f32(b, at.y + r, sb);
        }
    }
    finish(lid, acc, at.x, at.y);
}

// Dense f32 weights with f32 activations.
@compute @workgroup_size(64)
fn mm_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let at = tile_of(wid, nwg);
    if (at.x >= p.m) {
        return;
    }
    var acc: array<f32, TILE>;
    let rows = rows_in(at.y);
    for (var c = lid; c < p.k; c += WG) {
        let wv = wf[at.x * p.k + c];
        for (var r = 0u; r < rows; r++) {
            acc[r] += wv * xf[(at.y + r) * p.k + c];
        }
    }
    finish(lid, acc, at.x, at.y);
}

// The same products with one invocation per output column and up to ROW_TILE activation
// rows, and no workgroup memory or barriers: the kernels for adapters that run shaders on a
// CPU (lavapipe, SwiftShader), where a barrier makes every invocation a coroutine.
const ROW_TILE: u32 = 4u;

// (output column, first activation row) of this invocation, or col == m when it has none.
fn column_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> vec2<u32> {
    let t = (wid.x + wid.y * nwg.x) * WG + lid;
    let col = t % p.m;
    let tile = t / p.m;
    if (tile * ROW_TILE >= p.n) {
        return vec2(p.m, 0u);
    }
    return vec2(col, tile * ROW_TILE);
}

fn write_column(acc: vec4<f32>, col: u32, row0: u32) {
    for (var r = 0u; r < ROW_TILE; r++) {
        if (row0 + r < p.n) {
            out[(row0 + r) * p.m + col] = acc[r];
        }
    }
}

@compute @workgroup_size(64)
fn mm_int8_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let at = column_of(wid, nwg, lid);
    if (at.x >= p.m) {
        return;
    }
    // Rows past the end read the last row again and are not written.
    let last = p.n - 1u;
    var acc = vec4(0.0, 0.0, 0.0, 0.0);
    for (var sb = 0u; sb < p.k / 32u; sb++) {
        let b = weight_block(at.x, sb);
        acc += vec4(
            block_dot(b, min(at.y, last), sb),
            block_dot(b, min(at.y + 1u, last), sb),
            block_dot(b, min(at.y + 2u, last), sb),
            block_dot(b, min(at.y + 3u, last), sb),
        );
    }
    write_column(acc, at.x, at.y);
}

@compute @workgroup_size(64)
fn mm_f32_act_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let at = column_of(wid, nwg, lid);
    if (at.x >= p.m) {
        return;
    }
    let last = p.n - 1u;
    var acc = vec4(0.0, 0.0, 0.0, 0.0);
    for (var sb = 0u; sb < p.k / 32u; sb++) {
        let b = weight_block(at.x, sb);
        acc += vec4(
            block_dot_f32(b, min(at.y, last), sb),
            block_dot_f32(b, min(at.y + 1u, last), sb),
            block_dot_f32(b, min(at.y + 2u, last), sb),
            block_dot_f32(b, min(at.y + 3u, last), sb),
        );
    }
    write_column(acc, at.x, at.y);
}

@compute @workgroup_size(64)
fn mm_f32_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let at = column_of(wid, nwg, lid);
    if (at.x >= p.m) {
        return;
    }
    let last = p.n - 1u;
    let rows = vec4(min(at.y, last), min(at.y + 1u, last), min(at.y + 2u, last), min(at.y + 3u, last)) * p.k;
    var acc = vec4(0.0, 0.0, 0.0, 0.0);
    for (var c = 0u; c < p.k; c++) {
        let wv = wf[at.x * p.k + c];
        acc += wv * vec4(xf[rows.x + c], xf[rows.y + c], xf[rows.z + c], xf[rows.w + c]);
    }
    write_column(acc, at.x, at.y);
}
