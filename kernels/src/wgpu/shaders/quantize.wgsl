// Activations to int8 blocks of 32 values, one invocation per block: scale = max |x| / 127,
// values rounded half away from zero (as the CPU backend rounds), four to a u32 word.

struct Params {
    blocks: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xd: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn quantize_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let blk = (wid.x + wid.y * nwg.x) * WG + lid;
    if (blk >= p.blocks) {
        return;
    }
    let base = blk * 32u;
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(x[base + i]));
    }
    let d = amax / 127.0;
    var inv = 0.0;
    if (d > 0.0) {
        inv = 1.0 / d;
    }
    for (var word = 0u; word < 8u; word++) {
        var packed = 0u;
        for (var i = 0u; i < 4u; i++) {
            let v = x[base + 4u * word + i] * inv;
            let q = i32(sign(v) * floor(abs(v) + 0.5));
            packed |= (bitcast<u32>(q) & 0xFFu) << (8u * i);
        }
        xq[blk * 8u + word] = packed;
    }
    xd[blk] = d;
}
