// Int8 weight-only matmul family: y[i, j] = Σ_k x[i, k] · W[j, k] for x [m, k] float and the block-32 int8
// weight W [n, k] = int8(byte k mod 4 of wq[j, k/4]) · ws[j, k/32] (little-endian bytes; see src/quant.rs),
// dequantized in registers and accumulated in f32. k is a multiple of 32 (the lowering checks).
//
// Bindings: 0 params; 1 x (read) [m, k] as vec4<T>; 2 wq (read) [n, k/4] u32 as vec4<u32> (16 weights a
// load); 3 ws (read) [n, k/32] f32; 4 y (read_write) [m, n].
// Entries and geometry:
//   gemv_w8   one x row per z (decode: m = 1): each invocation owns 4 output columns and walks all of k, so
//             every x load serves 4 rows of W and nothing is reduced across invocations (on llvmpipe a
//             storage load is a per-lane loop: loads, not FMAs, set the speed). Workgroups of 16 → 64
//             columns each. grid (⌈n/64⌉ folded 2-D, 1, m).
//   gemv_w8_tex  gemv_w8 with bindings 2 and 3 as texture twins (exec::twins): wq rgba32uint (texel t = words
//             4t..4t+3), ws r32float (texel t = scale t), texel t at (t % 4096, t / 4096); chosen for decode
//             on CPU adapters (llvmpipe fetches texels in straight-line code, storage loads lane by lane).
//   gemm_w8   prefill: workgroup (8, 8), each invocation an 8×8 register tile of y (a 64×64 tile per
//             workgroup); a step of 16 k loads 8 weight vec4s (128 weights) and 32 x vec4s for 1024 FMAs.
//             grid (⌈n/64⌉, ⌈m/64⌉, 1).
// Rows of W past n and rows of x past m are clamped to the last one and never stored.
// CPU reference: reference::qmatmul::qmatmul_forward (act = None).

struct Params {
    m: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> wq4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> ws: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(2) var wqt: texture_2d<u32>;
@group(0) @binding(3) var wst: texture_2d<f32>;

const TW: u32 = 4096u;

// The four int8 bytes of a word, sign-extended, as floats.
fn i8x4(w: u32) -> vec4<f32> {
    let v = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// Σ over 16 k of x (four vec4s) times one weight vec4 (16 int8).
fn dot16(x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, w: vec4<u32>) -> f32 {
    return dot(x0, i8x4(w.x)) + dot(x1, i8x4(w.y)) + dot(x2, i8x4(w.z)) + dot(x3, i8x4(w.w));
}

fn store_y(i: u32, j: u32, v: f32) {
    if (i < p.m && j < p.n) {
        y[i * p.n + j] = T(v);
    }
}

@compute @workgroup_size(16)
fn gemv_w8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
    let xr = i * (p.k / 4u);
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < kb; b++) {
        var s = vec4<f32>(0.0);
        for (var h = 0u; h < 2u; h++) {
            let q = b * 2u + h;
            let x0 = vec4<f32>(x4[xr + q * 4u]);
            let x1 = vec4<f32>(x4[xr + q * 4u + 1u]);
            let x2 = vec4<f32>(x4[xr + q * 4u + 2u]);
            let x3 = vec4<f32>(x4[xr + q * 4u + 3u]);
            s += vec4<f32>(dot16(x0, x1, x2, x3, wq4[wr.x + q]), dot16(x0, x1, x2, x3, wq4[wr.y + q]),
                           dot16(x0, x1, x2, x3, wq4[wr.z + q]), dot16(x0, x1, x2, x3, wq4[wr.w + q]));
        }
        acc += s * vec4<f32>(ws[sr.x + b], ws[sr.y + b], ws[sr.z + b], ws[sr.w + b]);
    }
    store_y(i, j0, acc.x);
    store_y(i, j0 + 1u, acc.y);
    store_y(i, j0 + 2u, acc.z);
    store_y(i, j0 + 3u, acc.w);
}

fn wtex(t: u32) -> vec4<u32> {
    return textureLoad(wqt, vec2<u32>(t % TW, t / TW), 0);
}

fn stex(t: u32) -> f32 {
    return textureLoad(wst, vec2<u32>(t % TW, t / TW), 0).x;
}

@compute @workgroup_size(16)
fn gemv_w8_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
    let xr = i * (p.k / 4u);
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < kb; b++) {
        var s = vec4<f32>(0.0);
        for (var h = 0u; h < 2u; h++) {
            let q = b * 2u + h;
            let x0 = vec4<f32>(x4[xr + q * 4u]);
            let x1 = vec4<f32>(x4[xr + q * 4u + 1u]);
            let x2 = vec4<f32>(x4[xr + q * 4u + 2u]);
            let x3 = vec4<f32>(x4[xr + q * 4u + 3u]);
            s += vec4<f32>(dot16(x0, x1, x2, x3, wtex(wr.x + q)), dot16(x0, x1, x2, x3, wtex(wr.y + q)),
                           dot16(x0, x1, x2, x3, wtex(wr.z + q)), dot16(x0, x1, x2, x3, wtex(wr.w + q)));
        }
        acc += s * vec4<f32>(stex(sr.x + b), stex(sr.y + b), stex(sr.z + b), stex(sr.w + b));
    }
    store_y(i, j0, acc.x);
    store_y(i, j0 + 1u, acc.y);
    store_y(i, j0 + 2u, acc.z);
    store_y(i, j0 + 3u, acc.w);
}

@compute @workgroup_size(8, 8)
fn gemm_w8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = wid.y * 64u + lid.y * 8u;
    let j0 = wid.x * 64u + lid.x * 8u;
    if (i0 >= p.m || j0 >= p.n) { return; }
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    var wrow: array<u32, 8>;
    var xrow: array<u32, 8>;
    for (var c = 0u; c < 8u; c++) {
        wrow[c] = min(j0 + c, p.n - 1u);
        xrow[c] = min(i0 + c, p.m - 1u) * (p.k / 4u);
    }
    var acc: array<f32, 64>;
    var wf: array<vec4<f32>, 32>;
    for (var b = 0u; b < kb; b++) {
        var sc: array<f32, 8>;
        for (var c = 0u; c < 8u; c++) {
            sc[c] = ws[wrow[c] * kb + b];
        }
        for (var h = 0u; h < 2u; h++) {
            let q = b * 2u + h;
            for (var c = 0u; c < 8u; c++) {
                let w = wq4[wrow[c] * k16 + q];
                wf[c * 4u] = i8x4(w.x) * sc[c];
                wf[c * 4u + 1u] = i8x4(w.y) * sc[c];
                wf[c * 4u + 2u] = i8x4(w.z) * sc[c];
                wf[c * 4u + 3u] = i8x4(w.w) * sc[c];
            }
            for (var r = 0u; r < 8u; r++) {
                let xb = xrow[r] + q * 4u;
                let x0 = vec4<f32>(x4[xb]);
                let x1 = vec4<f32>(x4[xb + 1u]);
                let x2 = vec4<f32>(x4[xb + 2u]);
                let x3 = vec4<f32>(x4[xb + 3u]);
                for (var c = 0u; c < 8u; c++) {
                    acc[r * 8u + c] += dot(x0, wf[c * 4u]) + dot(x1, wf[c * 4u + 1u]) + dot(x2, wf[c * 4u + 2u])
                        + dot(x3, wf[c * 4u + 3u]);
                }
            }
        }
    }
    for (var r = 0u; r < 8u; r++) {
        for (var c = 0u; c < 8u; c++) {
            store_y(i0 + r, j0 + c, acc[r * 8u + c]);
        }
    }
}
