// W8A8 GEMV with the weights read through texture twins (exec::twins) and the quantized activation row
// through uniform bindings: on the software adapter (llvmpipe) both are gathered in straight-line code where
// storage loads loop over the SIMD lanes (examples/texel_bench). Same arithmetic as qdot.wgsl's gemv_w8a8:
//   y[i, j] = Σ_b sx[i, b] · ws[j, b] · Σ_{k in b} qx[i, k] · qw[j, k]   (dot4I8Packed, i32 per block).
//
// Bindings: 0 params; 1 qx (uniform) [m, k/4] u32 as vec4<u32> (from quantize_dynamic/static); 2 sx
// (uniform) [m, k/32] f32 as vec4<f32>; 3 wq (texture_2d<u32>, rgba32uint) the [n, k/4] u32 weight, texel t
// = words 4t..4t+3; 4 ws (texture_2d<f32>, r32float) the [n, k/32] weight scales, texel t = scale t;
// 5 y (read_write) [m, n]. Texel t sits at (t % 4096, t / 4096).
// Limits (checked by the lowering): m·k bytes of qx and m·k/8 of sx fit the 64 KiB uniform arrays.
//   gemv_w8a8_tex  one row per z, 4 columns per invocation walking all of k; workgroups of 16.
//                  grid (⌈n/64⌉ folded 2-D, 1, m).
// CPU reference: reference::qmatmul::qmatmul_forward (act = Dynamic / Static).

struct Params {
    m: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> qx: array<vec4<u32>, 4096>;
@group(0) @binding(2) var<uniform> sx: array<vec4<f32>, 4096>;
@group(0) @binding(3) var wq: texture_2d<u32>;
@group(0) @binding(4) var ws: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<T>;

const W: u32 = 4096u;

fn wtexel(t: u32) -> vec4<u32> {
    return textureLoad(wq, vec2<u32>(t % W, t / W), 0);
}

fn wscale(t: u32) -> f32 {
    return textureLoad(ws, vec2<u32>(t % W, t / W), 0).x;
}

fn xscale(t: u32) -> f32 {
    return sx[t / 4u][t % 4u];
}

fn idot32(a0: vec4<u32>, a1: vec4<u32>, b0: vec4<u32>, b1: vec4<u32>) -> i32 {
    return dot4I8Packed(a0.x, b0.x) + dot4I8Packed(a0.y, b0.y) + dot4I8Packed(a0.z, b0.z)
        + dot4I8Packed(a0.w, b0.w) + dot4I8Packed(a1.x, b1.x) + dot4I8Packed(a1.y, b1.y)
        + dot4I8Packed(a1.z, b1.z) + dot4I8Packed(a1.w, b1.w);
}

fn store_y(i: u32, j: u32, v: f32) {
    if (i < p.m && j < p.n) {
        y[i * p.n + j] = T(v);
    }
}

@compute @workgroup_size(16)
fn gemv_w8a8_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = ((wid.x + wid.y * nwg.x) * 16u + li) * 4u;
    if (j0 >= p.n) { return; }
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    let last = p.n - 1u;
    let r = vec4<u32>(j0, min(j0 + 1u, last), min(j0 + 2u, last), min(j0 + 3u, last));
    let wr = r * k16;
    let sr = r * kb;
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < kb; b++) {
        let a0 = qx[i * k16 + 2u * b];
        let a1 = qx[i * k16 + 2u * b + 1u];
        let d = vec4<f32>(vec4<i32>(
            idot32(a0, a1, wtexel(wr.x + 2u * b), wtexel(wr.x + 2u * b + 1u)),
            idot32(a0, a1, wtexel(wr.y + 2u * b), wtexel(wr.y + 2u * b + 1u)),
            idot32(a0, a1, wtexel(wr.z + 2u * b), wtexel(wr.z + 2u * b + 1u)),
            idot32(a0, a1, wtexel(wr.w + 2u * b), wtexel(wr.w + 2u * b + 1u))));
        let s = vec4<f32>(wscale(sr.x + b), wscale(sr.y + b), wscale(sr.z + b), wscale(sr.w + b));
        acc += d * s * xscale(i * kb + b);
    }
    store_y(i, j0, acc.x);
    store_y(i, j0 + 1u, acc.y);
    store_y(i, j0 + 2u, acc.z);
    store_y(i, j0 + 3u, acc.w);
}
