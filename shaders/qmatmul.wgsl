// Int8 weight-only matmul family: y[i, j] = Σ_k x[i, k] · W[j, k] for x [m, k] float and the block-32 int8
// weight W [n, k] = int8(byte k mod 4 of wq[j, k/4]) · ws[j, k/32] (little-endian bytes; see src/quant.rs),
// dequantized in registers and accumulated in f32. k is a multiple of 32 (the lowering checks).
//
// Bindings: 0 params; 1 x (read) [m, k] as vec4<T>; 2 wq (read) [n, k/4] u32 as vec4<u32> (16 weights a
// load); 3 ws (read) [n, k/32] f32; 4 y (read_write) [m, n]; with the override ACC (QLinearAdd) y += the
// product instead of y = it (every entry).
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
//   gemv_glu_w8, gemv_glu_w8_fq  QGlu decode: silu(x·Wgᵀ) ⊙ x·Wuᵀ in one dispatch (see their section).
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

// The four int8 bytes of a word, sign-extended, as floats.
fn i8x4(w: u32) -> vec4<f32> {
    let v = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// Σ over 16 k of x (four vec4s) times one weight vec4 (16 int8).
fn dot16(x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, w: vec4<u32>) -> f32 {
    return dot(x0, i8x4(w.x)) + dot(x1, i8x4(w.y)) + dot(x2, i8x4(w.z)) + dot(x3, i8x4(w.w));
}

fn store_ij(i: u32, j: u32, v: f32) {
    if (i < p.m && j < p.n) {
        store_y(i * p.n + j, v);
    }
}

//#include gemv_cols

// A GEMV invocation's place: row i of x (its first vec4 xr), output columns j0..j0+3 (gemv_j0; their
// weight rows clamped by gemv_cols) whose packed words start at quads wr and scales at sr; kb blocks of 32 k.
struct GemvAt {
    i: u32,
    j0: u32,
    kb: u32,
    xr: u32,
    wr: vec4<u32>,
    sr: vec4<u32>,
}

fn gemv_at(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> GemvAt {
    let j0 = gemv_j0(wid, nwg, li);
    let r = gemv_cols(j0);
    let kb = p.k / 32u;
    return GemvAt(wid.z, j0, kb, wid.z * (p.k / 4u), r * (p.k / 16u), r * kb);
}

// The 16 values of k-step q (four vec4s) of the invocation's row.
fn gemv_x16(at: GemvAt, q: u32) -> array<vec4<f32>, 4> {
    let xa = gemv_x8((at.xr + q * 4u) / 2u);
    let xb = gemv_x8((at.xr + q * 4u) / 2u + 1u);
    return array<vec4<f32>, 4>(xa[0], xa[1], xb[0], xb[1]);
}

// The word quads of k-step q of the four columns: the (gate's) weights, and the fused Glu's up projection.
// (Two functions: a shared one would make every entry that calls it bind both weights.)
fn step_w(at: GemvAt, q: u32) -> array<vec4<u32>, 4> {
    return array<vec4<u32>, 4>(gemv_w(at.wr.x + q), gemv_w(at.wr.y + q), gemv_w(at.wr.z + q), gemv_w(at.wr.w + q));
}

fn step_wu(at: GemvAt, q: u32) -> array<vec4<u32>, 4> {
    return array<vec4<u32>, 4>(gemv_wu(at.wr.x + q), gemv_wu(at.wr.y + q), gemv_wu(at.wr.z + q), gemv_wu(at.wr.w + q));
}

// x (16 values) against the 16 weights of each of four columns.
fn cols16(x: array<vec4<f32>, 4>, w: array<vec4<u32>, 4>) -> vec4<f32> {
    return vec4<f32>(dot16(x[0], x[1], x[2], x[3], w[0]), dot16(x[0], x[1], x[2], x[3], w[1]),
                     dot16(x[0], x[1], x[2], x[3], w[2]), dot16(x[0], x[1], x[2], x[3], w[3]));
}

// Columns j0..j0+3 of row i (those past n are not stored).
fn store_cols4(at: GemvAt, v: vec4<f32>) {
    store_ij(at.i, at.j0, v.x);
    store_ij(at.i, at.j0 + 1u, v.y);
    store_ij(at.i, at.j0 + 2u, v.z);
    store_ij(at.i, at.j0 + 3u, v.w);
}

@compute @workgroup_size(16)
fn gemv_w8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let at = gemv_at(wid, nwg, li);
    if (at.j0 >= p.n) { return; }
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < at.kb; b++) {
        var s = vec4<f32>(0.0);
        for (var h = 0u; h < 2u; h++) {
            let q = b * 2u + h;
            let x = gemv_x16(at, q);
            s += cols16(x, step_w(at, q));
        }
        acc += s * scales4(at, b);
    }
    store_cols4(at, acc);
}

// Block b of row xr (32 values, 8 vec4s) rounded to int8 values (as floats) in xv; returns the block's
// activation scale (fq_scale: static or dynamic by the variant).
fn fq_block(xr: u32, b: u32, xv: ptr<function, array<vec4<f32>, 8>>) -> f32 {
    var amax = 0.0;
    for (var c = 0u; c < 4u; c++) {
        let pair = gemv_x8((xr + b * 8u) / 2u + c);
        (*xv)[2u * c] = pair[0];
        (*xv)[2u * c + 1u] = pair[1];
    }
    for (var c = 0u; c < 8u; c++) {
        let a = abs((*xv)[c]);
        amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    let s = fq_scale(b, amax);
    let inv = select(0.0, 1.0 / s, s > 0.0);
    for (var c = 0u; c < 8u; c++) {
        (*xv)[c] = clamp(round((*xv)[c] * inv), vec4<f32>(-127.0), vec4<f32>(127.0));
    }
    return s;
}

// Σ over block b's 32 k of the rounded row xv against four columns' words of its steps 2b (w0) and 2b + 1 (w1).
fn fq_cols(xv: ptr<function, array<vec4<f32>, 8>>, w0: array<vec4<u32>, 4>, w1: array<vec4<u32>, 4>) -> vec4<f32> {
    let x = *xv;
    let lo = array<vec4<f32>, 4>(x[0], x[1], x[2], x[3]);
    return cols16(lo, w0) + cols16(array<vec4<f32>, 4>(x[4], x[5], x[6], x[7]), w1);
}

// Four columns' scales of block b: the (gate's) weights', and the fused Glu's up projection's.
fn scales4(at: GemvAt, b: u32) -> vec4<f32> {
    return vec4<f32>(gemv_s(at.sr.x + b), gemv_s(at.sr.y + b), gemv_s(at.sr.z + b), gemv_s(at.sr.w + b));
}

fn scales4_up(at: GemvAt, b: u32) -> vec4<f32> {
    return vec4<f32>(gemv_su(at.sr.x + b), gemv_su(at.sr.y + b), gemv_su(at.sr.z + b), gemv_su(at.sr.w + b));
}

@compute @workgroup_size(16)
fn gemv_w8_fq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let at = gemv_at(wid, nwg, li);
    if (at.j0 >= p.n) { return; }
    var acc = vec4<f32>(0.0);
    for (var b = 0u; b < at.kb; b++) {
        var xv: array<vec4<f32>, 8>;
        let s = fq_block(at.xr, b, &xv);
        let d = fq_cols(&xv, step_w(at, 2u * b), step_w(at, 2u * b + 1u));
        acc += d * s * scales4(at, b);
    }
    store_cols4(at, acc);
}

// ---- gemv_glu_w8, gemv_glu_w8_fq --------------------------------------------------------------------------
// QGlu for decode: y[i, j] = silu(x·Wgᵀ)[i, j] · (x·Wuᵀ)[i, j], the gate's packed weights and scales at
// bindings 2 and 3 (as gemv_w8 reads them), the up projection's at 6 and 7 (gemv_wu, gemv_su: storage or
// twins as the variant's hooks say), binding 5 the static scales of _fq (else unused). Geometry as gemv_w8;
// each x load serves eight weight rows. _fq rounds each block of x once for both products, as gemv_w8_fq.
// One dispatch instead of two products, the activation and the product.
@group(0) @binding(6) var<storage, read> wuq4: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read> wus: array<f32>;
@group(0) @binding(6) var wuqt: texture_2d<u32>;
@group(0) @binding(7) var wust: texture_2d<f32>;

fn silu_mul(g: vec4<f32>, u: vec4<f32>) -> vec4<f32> {
    return g / (vec4<f32>(1.0) + exp(-g)) * u;
}

@compute @workgroup_size(16)
fn gemv_glu_w8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let at = gemv_at(wid, nwg, li);
    if (at.j0 >= p.n) { return; }
    var g = vec4<f32>(0.0);
    var u = vec4<f32>(0.0);
    for (var b = 0u; b < at.kb; b++) {
        var sg = vec4<f32>(0.0);
        var su = vec4<f32>(0.0);
        for (var h = 0u; h < 2u; h++) {
            let q = b * 2u + h;
            let x = gemv_x16(at, q);
            sg += cols16(x, step_w(at, q));
            su += cols16(x, step_wu(at, q));
        }
        g += sg * scales4(at, b);
        u += su * scales4_up(at, b);
    }
    store_cols4(at, silu_mul(g, u));
}

@compute @workgroup_size(16)
fn gemv_glu_w8_fq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let at = gemv_at(wid, nwg, li);
    if (at.j0 >= p.n) { return; }
    var g = vec4<f32>(0.0);
    var u = vec4<f32>(0.0);
    for (var b = 0u; b < at.kb; b++) {
        var xv: array<vec4<f32>, 8>;
        let s = fq_block(at.xr, b, &xv);
        g += fq_cols(&xv, step_w(at, 2u * b), step_w(at, 2u * b + 1u)) * s * scales4(at, b);
        u += fq_cols(&xv, step_wu(at, 2u * b), step_wu(at, 2u * b + 1u)) * s * scales4_up(at, b);
    }
    store_cols4(at, silu_mul(g, u));
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
            store_ij(i0 + r, j0 + c, acc[r * 8u + c]);
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
    //#unroll c 0..8
    dequant16(wf, {c}u, wtex(min(j0 + {c}u, nl) * k16 + q), stex(min(j0 + {c}u, nl) * kb + b));
    //#end
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

//#include tex_tile

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
        //#rows w8_row(&acc, {r}u, min(i0 + {r}u, ml) * k4 + xq, &wf);
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
        //#rows w8a8_row(&acc, {r}u, min(i0 + {r}u, ml) * k16 + q, sxtex(min(i0 + {r}u, ml) * kb + b), &wf);
    }
    store_tile(i0, j0, &acc);
}

// ---- gemv_w8's and gemv_w8_fq's reads ---------------------------------------------------------------------
// gemv_x8(u): vec4s 2u and 2u + 1 of the rows; gemv_w(t): word quad t of wq; gemv_s(t): scale t of ws;
// gemv_wu, gemv_su: the same of the fused Glu's up projection (bindings 6, 7). The
// storage variant reads the bindings; the texture variant (kernels::qmatmul::tex_source) the uniform row
// (f32 words, or f16 eight to a vec4<u32> with override X_F16: one load for eight values) and the twins.

//#hooks storage
fn gemv_x8(u: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(vec4<f32>(x4[2u * u]), vec4<f32>(x4[2u * u + 1u]));
}

fn gemv_w(t: u32) -> vec4<u32> {
    return wq4[t];
}

fn gemv_s(t: u32) -> f32 {
    return ws[t];
}

fn gemv_wu(t: u32) -> vec4<u32> {
    return wuq4[t];
}

fn gemv_su(t: u32) -> f32 {
    return wus[t];
}

//#hooks texture
override X_F16: bool = false;
@group(0) @binding(1) var<uniform> xuu: array<vec4<u32>, 4096>;

fn gemv_x8(u: u32) -> array<vec4<f32>, 2> {
    if (X_F16) {
        let v = xuu[u];
        return array<vec4<f32>, 2>(vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)),
                                   vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)));
    }
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(xuu[2u * u]), bitcast<vec4<f32>>(xuu[2u * u + 1u]));
}

fn gemv_w(t: u32) -> vec4<u32> {
    return wtex(t);
}

fn gemv_s(t: u32) -> f32 {
    return stex(t);
}

fn gemv_wu(t: u32) -> vec4<u32> {
    return textureLoad(wuqt, tex_at(t), 0);
}

fn gemv_su(t: u32) -> f32 {
    return textureLoad(wust, tex_at(t), 0).x;
}

// ---- gemv_w8_fq's activation scale of block b (amax: the block's max |x|) ---------------------------------

//#hooks fq_static
fn fq_scale(b: u32, amax: f32) -> f32 {
    return xs[b];
}

//#hooks fq_static_texture
fn fq_scale(b: u32, amax: f32) -> f32 {
    return sxtex(b);
}

//#hooks fq_dynamic
fn fq_scale(b: u32, amax: f32) -> f32 {
    return amax / 127.0;
}
