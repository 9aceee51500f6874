// W8A8 matmul family: activations rounded to int8 per row and block of 32, then integer dot products
// (dot4I8Packed, i32 accumulation over a block) rescaled by the activation and weight block scales:
//   y[i, j] = Σ_b sx[i, b] · ws[j, b] · Σ_{k in b} qx[i, k] · qw[j, k].
// qx = clamp(round_half_even(x · (1/s)), −127, 127) with s = max|x|/127 of the row block (quantize_dynamic)
// or the calibrated scale xs[b] of every row (quantize_static). The weight format is src/quant.rs's.
//
// Bindings of the quantizers: 0 params; 1 x (read) [m, k] as vec4<T>;
//   quantize_dynamic: 2 qx (read_write) [m, k/4] u32, 3 sx (read_write) [m, k/32] f32;
//   quantize_static:  2 xs (read) [k/32] f32, 3 qx, 4 sx (as above).
//   One invocation per (row, block), workgroups of 64: grid (⌈m·k/32 / 64⌉ folded 2-D).
// Bindings of the products: 0 params; 1 qx (read) as vec4<u32>; 2 sx (read); 3 wq (read) [n, k/4] as
// vec4<u32>; 4 ws (read) [n, k/32]; 5 y (read_write) [m, n]; with the override ACC (QLinearAdd) y += the
// product instead of y = it.
//   gemm_w8a8  workgroup (8, 8), an 8×8 tile per invocation: a block loads 16 + 16 vec4<u32> and 16 scales
//              for 512 dot4I8Packed. grid (⌈n/64⌉, ⌈m/64⌉, 1).
// Decode (up to 8 rows) does not come here: qmatmul.wgsl's gemv_w8_fq folds the quantizer into the GEMV.
// CPU reference: reference::qmatmul::qmatmul_forward (act = Dynamic / Static).

struct Params {
    m: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> dyn_qx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dyn_sx: array<f32>;
@group(0) @binding(2) var<storage, read> st_xs: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_qx: array<u32>;
@group(0) @binding(4) var<storage, read_write> st_sx: array<f32>;

@group(0) @binding(1) var<storage, read> qx4: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> sx: array<f32>;
@group(0) @binding(3) var<storage, read> wq4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> ws: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<T>;

fn pack_i8(v: vec4<f32>) -> u32 {
    let q = bitcast<vec4<u32>>(vec4<i32>(clamp(round(v), vec4<f32>(-127.0), vec4<f32>(127.0))));
    return (q.x & 0xffu) | ((q.y & 0xffu) << 8u) | ((q.z & 0xffu) << 16u) | ((q.w & 0xffu) << 24u);
}

// The 32 values of block `g` (flat over rows) and its index.
fn load_block(g: u32) -> array<vec4<f32>, 8> {
    var v: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) {
        v[c] = vec4<f32>(x4[g * 8u + c]);
    }
    return v;
}

@compute @workgroup_size(64)
fn quantize_dynamic(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + li;
    if (g >= p.m * (p.k / 32u)) { return; }
    let v = load_block(g);
    var amax = 0.0;
    for (var c = 0u; c < 8u; c++) {
        let a = abs(v[c]);
        amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    let s = amax / 127.0;
    let inv = select(0.0, 1.0 / s, s > 0.0);
    for (var c = 0u; c < 8u; c++) {
        dyn_qx[g * 8u + c] = pack_i8(v[c] * inv);
    }
    dyn_sx[g] = s;
}

@compute @workgroup_size(64)
fn quantize_static(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + li;
    if (g >= p.m * (p.k / 32u)) { return; }
    let v = load_block(g);
    let s = st_xs[g % (p.k / 32u)];
    let inv = select(0.0, 1.0 / s, s > 0.0);
    for (var c = 0u; c < 8u; c++) {
        st_qx[g * 8u + c] = pack_i8(v[c] * inv);
    }
    st_sx[g] = s;
}

fn idot32(a0: vec4<u32>, a1: vec4<u32>, b0: vec4<u32>, b1: vec4<u32>) -> i32 {
    return dot4I8Packed(a0.x, b0.x) + dot4I8Packed(a0.y, b0.y) + dot4I8Packed(a0.z, b0.z)
        + dot4I8Packed(a0.w, b0.w) + dot4I8Packed(a1.x, b1.x) + dot4I8Packed(a1.y, b1.y)
        + dot4I8Packed(a1.z, b1.z) + dot4I8Packed(a1.w, b1.w);
}

// QLinearAdd: add each result to what y holds (y is the residual stream, updated in place).
override ACC: bool = false;

fn store_y(i: u32, j: u32, v: f32) {
    if (i < p.m && j < p.n) {
        var r = v;
        if (ACC) { r += f32(y[i * p.n + j]); }
        y[i * p.n + j] = T(r);
    }
}

@compute @workgroup_size(8, 8)
fn gemm_w8a8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = wid.y * 64u + lid.y * 8u;
    let j0 = wid.x * 64u + lid.x * 8u;
    if (i0 >= p.m || j0 >= p.n) { return; }
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    var wrow: array<u32, 8>;
    var xrow: array<u32, 8>;
    for (var c = 0u; c < 8u; c++) {
        wrow[c] = min(j0 + c, p.n - 1u);
        xrow[c] = min(i0 + c, p.m - 1u);
    }
    var acc: array<f32, 64>;
    for (var b = 0u; b < kb; b++) {
        var w0: array<vec4<u32>, 8>;
        var w1: array<vec4<u32>, 8>;
        var sw: array<f32, 8>;
        for (var c = 0u; c < 8u; c++) {
            w0[c] = wq4[wrow[c] * k16 + 2u * b];
            w1[c] = wq4[wrow[c] * k16 + 2u * b + 1u];
            sw[c] = ws[wrow[c] * kb + b];
        }
        for (var r = 0u; r < 8u; r++) {
            let a0 = qx4[xrow[r] * k16 + 2u * b];
            let a1 = qx4[xrow[r] * k16 + 2u * b + 1u];
            let s = sx[xrow[r] * kb + b];
            for (var c = 0u; c < 8u; c++) {
                acc[r * 8u + c] += f32(idot32(a0, a1, w0[c], w1[c])) * (sw[c] * s);
            }
        }
    }
    for (var r = 0u; r < 8u; r++) {
        for (var c = 0u; c < 8u; c++) {
            store_y(i0 + r, j0 + c, acc[r * 8u + c]);
        }
    }
}
