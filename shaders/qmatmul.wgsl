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
//   gemv_w8 of the texture text (kernels::qmatmul::tex_source, family qmatmul_tex): the same kernel with
//             bindings 2 and 3 as texture twins (exec::twins): wq rgba32uint (texel t = words 4t..4t+3), ws
//             r32float (texel t = scale t), texel t at (t % 4096, t / 4096), and binding 1, the row, as a
//             64 KiB uniform array (xrow8: f32 words, or f16 eight to a vec4<u32> with override X_F16); chosen
//             for decode on CPU adapters (llvmpipe gathers texels and uniform loads in straight-line code,
//             storage loads lane by lane).
//   gemv_w8_fq  W8A8 decode with the activation quantizer folded in (one dispatch instead of two): per block
//             of 32 k each invocation loads the block's 8 x vec4s, rounds them to int8 with the block's scale
//             as qdot.wgsl's quantizers do (v · (1/s), round half to even, clamp ±127) — the calibrated
//             xs[b] (binding 5, static) or max|x|/127 of the block (kernels::qmatmul::fq_dynamic_source) —
//             and multiplies the integers by the unpacked int8 weights in f32, exact (|Σ| ≤ 32·127²):
//             y = Σ_b s_x · s_w · Σ_k qx · qw, as the integer kernels. Geometry as gemv_w8; the texture text
//             reads xs through its twin (sxt).
//   gemm_w8   prefill: workgroup (8, 8), each invocation an 8×8 register tile of y (a 64×64 tile per
//             workgroup); a step of 16 k loads 8 weight vec4s (128 weights) and 32 x vec4s for 1024 FMAs.
//             grid (⌈n/64⌉, ⌈m/64⌉, 1).
//   gemm_w8_tex  prefill on CPU adapters: binding 1 is x as a staged texture, 2 and 3 twins (see its
//             section); ROWS × 8 tiles per invocation (override ROWS = 16, or 8 for short prompts).
//             grid (⌈n/64⌉, ⌈m/(8·ROWS)⌉, 1).
//   gemm_w8a8_tex  the same for W8A8 (quantized x from qdot.wgsl's quantizers, bindings 1 and 5 staged;
//             see its section).
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
@group(0) @binding(1) var xt: texture_2d<f32>;
@group(0) @binding(1) var qxt: texture_2d<u32>;
@group(0) @binding(5) var sxt: texture_2d<f32>;
@group(0) @binding(5) var<storage, read> xs: array<f32>;

// Rows of the texture GEMMs' register tiles: 16, or 8 (the upper half is then neither computed nor stored).
override ROWS: u32 = 16u;

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

// gemv_w8's reads, storage here; kernels::qmatmul::tex_source swaps gemv_x8's, gemv_w's and gemv_s's bodies
// (and gemv_w8_fq's static scale, fq_scale) for the uniform row (xrow8) and the twins' texel fetches (wtex,
// stex, sxtex), which makes the GEMVs of that text the texture variants.
fn gemv_x(t: u32) -> vec4<f32> {
    return vec4<f32>(x4[t]);
}

// vec4s 2u and 2u + 1 of the rows (the texture text reads them with one uniform load when they are f16).
fn gemv_x8(u: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(gemv_x(2u * u), gemv_x(2u * u + 1u));
}

fn gemv_w(t: u32) -> vec4<u32> {
    return wq4[t];
}

fn gemv_s(t: u32) -> f32 {
    return ws[t];
}

// The GEMVs' column geometry (gemv_j0, gemv_cols) is shaders/gemv_cols.wgsl, appended to this text.
@compute @workgroup_size(16)
fn gemv_w8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = gemv_j0(wid, nwg, li);
    if (j0 >= p.n) { return; }
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    let r = gemv_cols(j0);
    let wr = r * k16;
    let sr = r * kb;
    let xr = i * (p.k / 4u);
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < kb; b++) {
        var s = vec4<f32>(0.0);
        for (var h = 0u; h < 2u; h++) {
            let q = b * 2u + h;
            let xa = gemv_x8((xr + q * 4u) / 2u);
            let xb = gemv_x8((xr + q * 4u) / 2u + 1u);
            let x0 = xa[0];
            let x1 = xa[1];
            let x2 = xb[0];
            let x3 = xb[1];
            s += vec4<f32>(dot16(x0, x1, x2, x3, gemv_w(wr.x + q)), dot16(x0, x1, x2, x3, gemv_w(wr.y + q)),
                           dot16(x0, x1, x2, x3, gemv_w(wr.z + q)), dot16(x0, x1, x2, x3, gemv_w(wr.w + q)));
        }
        acc += s * vec4<f32>(gemv_s(sr.x + b), gemv_s(sr.y + b), gemv_s(sr.z + b), gemv_s(sr.w + b));
    }
    store_y(i, j0, acc.x);
    store_y(i, j0 + 1u, acc.y);
    store_y(i, j0 + 2u, acc.z);
    store_y(i, j0 + 3u, acc.w);
}

// gemv_w8_fq's static activation scale of block b; kernels::qmatmul's variants swap this body (the
// texture text reads the twin, the dynamic text returns the block's max / 127).
fn fq_scale(b: u32, amax: f32) -> f32 {
    return xs[b];
}

@compute @workgroup_size(16)
fn gemv_w8_fq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = gemv_j0(wid, nwg, li);
    if (j0 >= p.n) { return; }
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    let r = gemv_cols(j0);
    let wr = r * k16;
    let sr = r * kb;
    let xr = i * (p.k / 4u);
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < kb; b++) {
        var xv: array<vec4<f32>, 8>;
        var amax = 0.0;
        for (var c = 0u; c < 4u; c++) {
            let pair = gemv_x8((xr + b * 8u) / 2u + c);
            xv[2u * c] = pair[0];
            xv[2u * c + 1u] = pair[1];
        }
        for (var c = 0u; c < 8u; c++) {
            let a = abs(xv[c]);
            amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
        }
        let s = fq_scale(b, amax);
        let inv = select(0.0, 1.0 / s, s > 0.0);
        for (var c = 0u; c < 8u; c++) {
            xv[c] = clamp(round(xv[c] * inv), vec4<f32>(-127.0), vec4<f32>(127.0));
        }
        let q0 = 2u * b;
        let q1 = q0 + 1u;
        let d = vec4<f32>(
            dot16(xv[0], xv[1], xv[2], xv[3], gemv_w(wr.x + q0)) + dot16(xv[4], xv[5], xv[6], xv[7], gemv_w(wr.x + q1)),
            dot16(xv[0], xv[1], xv[2], xv[3], gemv_w(wr.y + q0)) + dot16(xv[4], xv[5], xv[6], xv[7], gemv_w(wr.y + q1)),
            dot16(xv[0], xv[1], xv[2], xv[3], gemv_w(wr.z + q0)) + dot16(xv[4], xv[5], xv[6], xv[7], gemv_w(wr.z + q1)),
            dot16(xv[0], xv[1], xv[2], xv[3], gemv_w(wr.w + q0)) + dot16(xv[4], xv[5], xv[6], xv[7], gemv_w(wr.w + q1)));
        acc += d * s * vec4<f32>(gemv_s(sr.x + b), gemv_s(sr.y + b), gemv_s(sr.z + b), gemv_s(sr.w + b));
    }
    store_y(i, j0, acc.x);
    store_y(i, j0 + 1u, acc.y);
    store_y(i, j0 + 2u, acc.z);
    store_y(i, j0 + 3u, acc.w);
}

fn wtex(t: u32) -> vec4<u32> {
    return textureLoad(wqt, tex_at(t), 0);
}

fn stex(t: u32) -> f32 {
    return textureLoad(wst, tex_at(t), 0).x;
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

// ---- gemm_w8_tex --------------------------------------------------------------------------------------
// Prefill on CPU adapters: x as a staged texture (exec: rgba32float / rgba16float, texel t = x elements
// 4t..4t+3), the weights and scales as twins. Workgroup (8, 8), each invocation a ROWS × 8 register tile
// (rows i0..i0+ROWS-1, columns j0..j0+7) as in matmul_tex.wgsl: a step of 16 k fetches 8 weight texels
// (dequantized
// once, scale folded in) and 4 x texels per row for 2048 FMAs.

fn xtex(t: u32) -> vec4<f32> {
    return textureLoad(xt, tex_at(t), 0);
}

// wf[4c..4c+3] = the 16 weights of texel w of column c times the column's block scale.
fn dequant16(wf: ptr<function, array<vec4<f32>, 32>>, c: u32, w: vec4<u32>, s: f32) {
    (*wf)[4u * c] = i8x4(w.x) * s;
    (*wf)[4u * c + 1u] = i8x4(w.y) * s;
    (*wf)[4u * c + 2u] = i8x4(w.z) * s;
    (*wf)[4u * c + 3u] = i8x4(w.w) * s;
}

// The 16 weights of step q (block b) of columns j0..j0+7 (clamped to nl), dequantized into wf.
fn dequant_cols(wf: ptr<function, array<vec4<f32>, 32>>, j0: u32, nl: u32, q: u32, b: u32) {
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    dequant16(wf, 0u, wtex(min(j0, nl) * k16 + q), stex(min(j0, nl) * kb + b));
    dequant16(wf, 1u, wtex(min(j0 + 1u, nl) * k16 + q), stex(min(j0 + 1u, nl) * kb + b));
    dequant16(wf, 2u, wtex(min(j0 + 2u, nl) * k16 + q), stex(min(j0 + 2u, nl) * kb + b));
    dequant16(wf, 3u, wtex(min(j0 + 3u, nl) * k16 + q), stex(min(j0 + 3u, nl) * kb + b));
    dequant16(wf, 4u, wtex(min(j0 + 4u, nl) * k16 + q), stex(min(j0 + 4u, nl) * kb + b));
    dequant16(wf, 5u, wtex(min(j0 + 5u, nl) * k16 + q), stex(min(j0 + 5u, nl) * kb + b));
    dequant16(wf, 6u, wtex(min(j0 + 6u, nl) * k16 + q), stex(min(j0 + 6u, nl) * kb + b));
    dequant16(wf, 7u, wtex(min(j0 + 7u, nl) * k16 + q), stex(min(j0 + 7u, nl) * kb + b));
}

fn xw(x: ptr<function, array<vec4<f32>, 4>>, wf: ptr<function, array<vec4<f32>, 32>>, c: u32) -> f32 {
    return dot((*x)[0], (*wf)[4u * c]) + dot((*x)[1], (*wf)[4u * c + 1u]) + dot((*x)[2], (*wf)[4u * c + 2u])
        + dot((*x)[3], (*wf)[4u * c + 3u]);
}

// Row r of the tile over one step of 16 k: x texels t..t+3.
fn w8_row(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, t: u32, wf: ptr<function, array<vec4<f32>, 32>>) {
    var x = array<vec4<f32>, 4>(xtex(t), xtex(t + 1u), xtex(t + 2u), xtex(t + 3u));
    (*acc)[2u * r] += vec4<f32>(xw(&x, wf, 0u), xw(&x, wf, 1u), xw(&x, wf, 2u), xw(&x, wf, 3u));
    (*acc)[2u * r + 1u] += vec4<f32>(xw(&x, wf, 4u), xw(&x, wf, 5u), xw(&x, wf, 6u), xw(&x, wf, 7u));
}

fn store_row8(i: u32, j0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.m) { return; }
    let v = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var c = 0u; c < 8u; c++) {
        if (j0 + c < p.n) { y[i * p.n + j0 + c] = T(v[c]); }
    }
}

// The 16 × 8 tile acc (acc[2r], acc[2r + 1] = row i0 + r, columns j0..j0+3, j0+4..j0+7).
fn store_tile(i0: u32, j0: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    store_row8(i0, j0, (*acc)[0], (*acc)[1]);
    store_row8(i0 + 1u, j0, (*acc)[2], (*acc)[3]);
    store_row8(i0 + 2u, j0, (*acc)[4], (*acc)[5]);
    store_row8(i0 + 3u, j0, (*acc)[6], (*acc)[7]);
    store_row8(i0 + 4u, j0, (*acc)[8], (*acc)[9]);
    store_row8(i0 + 5u, j0, (*acc)[10], (*acc)[11]);
    store_row8(i0 + 6u, j0, (*acc)[12], (*acc)[13]);
    store_row8(i0 + 7u, j0, (*acc)[14], (*acc)[15]);
    if (ROWS > 8u) {
        store_row8(i0 + 8u, j0, (*acc)[16], (*acc)[17]);
        store_row8(i0 + 9u, j0, (*acc)[18], (*acc)[19]);
        store_row8(i0 + 10u, j0, (*acc)[20], (*acc)[21]);
        store_row8(i0 + 11u, j0, (*acc)[22], (*acc)[23]);
        store_row8(i0 + 12u, j0, (*acc)[24], (*acc)[25]);
        store_row8(i0 + 13u, j0, (*acc)[26], (*acc)[27]);
        store_row8(i0 + 14u, j0, (*acc)[28], (*acc)[29]);
        store_row8(i0 + 15u, j0, (*acc)[30], (*acc)[31]);
    }
}

@compute @workgroup_size(8, 8)
fn gemm_w8_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k4 = p.k / 4u;
    let k16 = p.k / 16u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    if (i0 >= p.m) { return; } // rows past m: nothing to store (see gemm_tex)
    let ml = p.m - 1u;
    let nl = p.n - 1u;
    var acc: array<vec4<f32>, 32>;
    var wf: array<vec4<f32>, 32>;
    for (var q = 0u; q < k16; q++) {
        dequant_cols(&wf, j0, nl, q, q / 2u);
        let xq = q * 4u;
        w8_row(&acc, 0u, min(i0, ml) * k4 + xq, &wf);
        w8_row(&acc, 1u, min(i0 + 1u, ml) * k4 + xq, &wf);
        w8_row(&acc, 2u, min(i0 + 2u, ml) * k4 + xq, &wf);
        w8_row(&acc, 3u, min(i0 + 3u, ml) * k4 + xq, &wf);
        w8_row(&acc, 4u, min(i0 + 4u, ml) * k4 + xq, &wf);
        w8_row(&acc, 5u, min(i0 + 5u, ml) * k4 + xq, &wf);
        w8_row(&acc, 6u, min(i0 + 6u, ml) * k4 + xq, &wf);
        w8_row(&acc, 7u, min(i0 + 7u, ml) * k4 + xq, &wf);
        if (ROWS > 8u) {
            w8_row(&acc, 8u, min(i0 + 8u, ml) * k4 + xq, &wf);
            w8_row(&acc, 9u, min(i0 + 9u, ml) * k4 + xq, &wf);
            w8_row(&acc, 10u, min(i0 + 10u, ml) * k4 + xq, &wf);
            w8_row(&acc, 11u, min(i0 + 11u, ml) * k4 + xq, &wf);
            w8_row(&acc, 12u, min(i0 + 12u, ml) * k4 + xq, &wf);
            w8_row(&acc, 13u, min(i0 + 13u, ml) * k4 + xq, &wf);
            w8_row(&acc, 14u, min(i0 + 14u, ml) * k4 + xq, &wf);
            w8_row(&acc, 15u, min(i0 + 15u, ml) * k4 + xq, &wf);
        }
    }
    store_tile(i0, j0, &acc);
}

// ---- gemm_w8a8_tex ------------------------------------------------------------------------------------
// W8A8 prefill on CPU adapters: gemm_w8_tex with the activations already quantized (qdot.wgsl's quantizers):
// binding 1 qx [m, k/4] u32 as a staged rgba32uint texture (texel t = words 4t..4t+3, 16 int8), 5 sx
// [m, k/32] f32 as a staged r32float texture. Each product is (qx · sx)(qw · sw) in f32: the same int8
// values and scales as the integer kernel, rounded in a different order (llvmpipe emulates dot4I8Packed
// with several instructions per product, so float FMAs on unpacked int8 are faster there).

fn qxtex(t: u32) -> vec4<u32> {
    return textureLoad(qxt, tex_at(t), 0);
}

fn sxtex(t: u32) -> f32 {
    return textureLoad(sxt, tex_at(t), 0).x;
}

// Row r of the tile over one step of 16 k: quantized texel t of x, block scale s.
fn w8a8_row(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, t: u32, s: f32,
            wf: ptr<function, array<vec4<f32>, 32>>) {
    let q = qxtex(t);
    var x = array<vec4<f32>, 4>(i8x4(q.x) * s, i8x4(q.y) * s, i8x4(q.z) * s, i8x4(q.w) * s);
    (*acc)[2u * r] += vec4<f32>(xw(&x, wf, 0u), xw(&x, wf, 1u), xw(&x, wf, 2u), xw(&x, wf, 3u));
    (*acc)[2u * r + 1u] += vec4<f32>(xw(&x, wf, 4u), xw(&x, wf, 5u), xw(&x, wf, 6u), xw(&x, wf, 7u));
}

@compute @workgroup_size(8, 8)
fn gemm_w8a8_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k16 = p.k / 16u;
    let kb = p.k / 32u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    if (i0 >= p.m) { return; } // rows past m: nothing to store (see gemm_tex)
    let ml = p.m - 1u;
    let nl = p.n - 1u;
    var acc: array<vec4<f32>, 32>;
    var wf: array<vec4<f32>, 32>;
    for (var q = 0u; q < k16; q++) {
        let b = q / 2u;
        dequant_cols(&wf, j0, nl, q, b);
        w8a8_row(&acc, 0u, min(i0, ml) * k16 + q, sxtex(min(i0, ml) * kb + b), &wf);
        w8a8_row(&acc, 1u, min(i0 + 1u, ml) * k16 + q, sxtex(min(i0 + 1u, ml) * kb + b), &wf);
        w8a8_row(&acc, 2u, min(i0 + 2u, ml) * k16 + q, sxtex(min(i0 + 2u, ml) * kb + b), &wf);
        w8a8_row(&acc, 3u, min(i0 + 3u, ml) * k16 + q, sxtex(min(i0 + 3u, ml) * kb + b), &wf);
        w8a8_row(&acc, 4u, min(i0 + 4u, ml) * k16 + q, sxtex(min(i0 + 4u, ml) * kb + b), &wf);
        w8a8_row(&acc, 5u, min(i0 + 5u, ml) * k16 + q, sxtex(min(i0 + 5u, ml) * kb + b), &wf);
        w8a8_row(&acc, 6u, min(i0 + 6u, ml) * k16 + q, sxtex(min(i0 + 6u, ml) * kb + b), &wf);
        w8a8_row(&acc, 7u, min(i0 + 7u, ml) * k16 + q, sxtex(min(i0 + 7u, ml) * kb + b), &wf);
        if (ROWS > 8u) {
            w8a8_row(&acc, 8u, min(i0 + 8u, ml) * k16 + q, sxtex(min(i0 + 8u, ml) * kb + b), &wf);
            w8a8_row(&acc, 9u, min(i0 + 9u, ml) * k16 + q, sxtex(min(i0 + 9u, ml) * kb + b), &wf);
            w8a8_row(&acc, 10u, min(i0 + 10u, ml) * k16 + q, sxtex(min(i0 + 10u, ml) * kb + b), &wf);
            w8a8_row(&acc, 11u, min(i0 + 11u, ml) * k16 + q, sxtex(min(i0 + 11u, ml) * kb + b), &wf);
            w8a8_row(&acc, 12u, min(i0 + 12u, ml) * k16 + q, sxtex(min(i0 + 12u, ml) * kb + b), &wf);
            w8a8_row(&acc, 13u, min(i0 + 13u, ml) * k16 + q, sxtex(min(i0 + 13u, ml) * kb + b), &wf);
            w8a8_row(&acc, 14u, min(i0 + 14u, ml) * k16 + q, sxtex(min(i0 + 14u, ml) * kb + b), &wf);
            w8a8_row(&acc, 15u, min(i0 + 15u, ml) * k16 + q, sxtex(min(i0 + 15u, ml) * kb + b), &wf);
        }
    }
    store_tile(i0, j0, &acc);
}
