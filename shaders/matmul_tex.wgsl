// Matmul through textures, for CPU adapters: y[i, j] = Σ_k a[i, k] · b[j, k] (x·Wᵀ) with both operands read
// as staged textures (exec: the value's buffer is copied into a texture laid out like exec::twins before the
// dispatch; texel t holds elements 4t..4t+3 and sits at tex_at(t), the prelude's; rgba32float for f32 values,
// rgba16float for f16 ones, read as vec4<f32>). llvmpipe (Mesa 22.x) turns every storage load into a loop
// over the SIMD lanes with a branch per lane, but gathers texels in straight-line code:
// examples/gemm_tex_bench measured 7–9× the storage kernel's GFLOP/s at SmolLM2's prefill shapes.
// Accumulation is in f32.
//
// Bindings: 0 params; 1 a (texture) [m, k] ([k, m] for gemm_tex_tn); 2 b (texture) [n, k] ([k, n] for
// gemm_tex_tn and gemm_tex_nn); 3 y (read_write) [m, n]; with the override
// ACC (LinearAdd) y += the product instead of y = it.
// Needs k % 4 == 0 (whole texels per row; the lowering checks).
//   gemv_tex  decode (m ≤ 8, one row per z): b is a leaf's texture twin (exec::twins, same layout), a the
//             staged row; each invocation 4 columns walking all of k, workgroups of 16.
//             grid (⌈n/64⌉ folded 2-D, 1, m).
//   gemm_tex  workgroup (8, 8), each invocation a ROWS × 8 register tile (rows i0..i0+ROWS-1, columns
//             j0..j0+7): a step of 4 k fetches ROWS + 8 texels for ROWS·32 FMAs. 16 × 8 was the fastest of
//             4×4 … 32×8 in the experiment; ROWS = 8 (override) wastes less of the tile on short prompts.
//             Rows past m and columns past n are clamped to the last one and never stored.
//             grid (⌈n/64⌉, ⌈m/(8·ROWS)⌉, batch): a batched product (b with a's batch; f32) takes its
//             batch from z (gemm_tex, gemm_tex_tn and gemm_tex_nn alike), otherwise z = 0.
//   gemm_tex_h8, gemv_tex_h8  the same for f16 operands with k % 8 == 0, read eight to a texel: the f16
//             bytes copied into rgba32uint textures (staged, or the weight's twin; bindings 1 and 2 as
//             texture_2d<u32>) and unpacked with unpack2x16float. llvmpipe spends ~90 cycles on a texel fetch
//             for 8 lanes whatever the format, so twice the values a fetch is what pays (measured:
//             README, "Measurements behind the design").
//   Decode GEMVs on CPU adapters read the row through a uniform array instead where it fits (the texts of
//   kernels::matmul::uniform_row_source): llvmpipe gathers a uniform load (7–8 cycles a lane against a
//   texel's 10–12) and the row needs no copy into a texture first (a copy and a split compute pass; its
//   cost: README, "Measurements behind the design").
// CPU reference: reference::matmul::matmul_forward (ta = false, tb = true).

struct Params {
    m: u32,
    n: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var ta: texture_2d<f32>;
@group(0) @binding(2) var tb: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<T>;
@group(0) @binding(1) var tau: texture_2d<u32>;
@group(0) @binding(2) var tbu: texture_2d<u32>;
@group(0) @binding(4) var tc: texture_2d<f32>;
@group(0) @binding(4) var tcu: texture_2d<u32>;

fn texel_a(t: u32) -> vec4<f32> {
    return texel4(ta, t);
}

fn texel_b(t: u32) -> vec4<f32> {
    return texel4(tb, t);
}

// Row r of the tile: acc[2r] += a · b[0..4], acc[2r + 1] += a · b[4..8] (r is a constant after inlining,
// so the tile stays in registers).
fn row_step(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, a: vec4<f32>, b: ptr<function, array<vec4<f32>, 8>>) {
    (*acc)[2u * r] += vec4<f32>(dot(a, (*b)[0]), dot(a, (*b)[1]), dot(a, (*b)[2]), dot(a, (*b)[3]));
    (*acc)[2u * r + 1u] += vec4<f32>(dot(a, (*b)[4]), dot(a, (*b)[5]), dot(a, (*b)[6]), dot(a, (*b)[7]));
}

//#include tex_tile

// Columns j0..j0+3 of row i of a GEMV.
fn store_cols(i: u32, j0: u32, acc: vec4<f32>) {
    let v = array<f32, 4>(acc.x, acc.y, acc.z, acc.w);
    for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.n) { store_y(i * p.n + j0 + c, v[c]); }
    }
}

@compute @workgroup_size(8, 8)
fn gemm_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k4 = p.k / 4u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    // Lanes whose rows all lie past m have nothing to store: on a CPU adapter a short prompt would otherwise
    // compute a whole workgroup's rows (8·ROWS) of clamped duplicates.
    if (i0 >= p.m) { return; }
    let ml = p.m - 1u;
    let nl = p.n - 1u;
    // A batched product's batch (grid z): its a, b (texels) and y (elements) start here.
    let a0 = wid.z * p.m * k4;
    let b0 = wid.z * p.n * k4;
    var acc: array<vec4<f32>, 32>;
    for (var kk = 0u; kk < k4; kk++) {
        var b = array<vec4<f32>, 8>(
            texel_b(b0 + min(j0, nl) * k4 + kk), texel_b(b0 + min(j0 + 1u, nl) * k4 + kk),
            texel_b(b0 + min(j0 + 2u, nl) * k4 + kk), texel_b(b0 + min(j0 + 3u, nl) * k4 + kk),
            texel_b(b0 + min(j0 + 4u, nl) * k4 + kk), texel_b(b0 + min(j0 + 5u, nl) * k4 + kk),
            texel_b(b0 + min(j0 + 6u, nl) * k4 + kk), texel_b(b0 + min(j0 + 7u, nl) * k4 + kk));
        //#rows row_step(&acc, {r}u, texel_a(a0 + min(i0 + {r}u, ml) * k4 + kk), &b);
    }
    store_tile_at(wid.z * p.m * p.n, i0, j0, &acc);
}

// ---- gemm_tex_tn: y[i, j] = Σ_k a[k, i] · b[k, j] (aᵀ·b) ----------------------------------------------------
// A weight's gradient from a layer's output gradient and input (dW = dYᵀ·X, Conv1D's Xᵀ·dY), which the
// storage kernel runs at a third of gemm_tex's rate on llvmpipe. a [k, m] and b [k, n] staged, m % 4 == 0
// and n % 4 == 0: a step of one k fetches the tile's ROWS values of a (ROWS/4 texels) and its 8 of b (2
// texels) and adds their outer product, ROWS·8 FMAs for ROWS/4 + 2 texels (gemm_tex's ratio). Geometry,
// clamping and store as gemm_tex.

// Row r of the tile: acc[2r] += a[r]·b[0..4], acc[2r + 1] += a[r]·b[4..8] (r constant after inlining).
fn tn_row(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, a: ptr<function, array<vec4<f32>, 4>>, b0: vec4<f32>,
          b1: vec4<f32>) {
    let s = (*a)[r / 4u][r % 4u];
    (*acc)[2u * r] += s * b0;
    (*acc)[2u * r + 1u] += s * b1;
}

@compute @workgroup_size(8, 8)
fn gemm_tex_tn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    if (i0 >= p.m) { return; } // as gemm_tex
    let q0 = i0 / 4u;
    let ql = m4 - 1u;
    let c0 = min(j0 / 4u, n4 - 1u);
    let c1 = min(j0 / 4u + 1u, n4 - 1u);
    let a0 = wid.z * p.k * m4; // a batched product's batch (grid z), as gemm_tex
    let bz = wid.z * p.k * n4;
    var acc: array<vec4<f32>, 32>;
    for (var kk = 0u; kk < p.k; kk++) {
        let ra = a0 + kk * m4;
        let b0 = texel_b(bz + kk * n4 + c0);
        let b1 = texel_b(bz + kk * n4 + c1);
        var a = array<vec4<f32>, 4>(texel_a(ra + min(q0, ql)), texel_a(ra + min(q0 + 1u, ql)), vec4<f32>(0.0),
                                    vec4<f32>(0.0));
        if (ROWS > 8u) {
            a[2] = texel_a(ra + min(q0 + 2u, ql));
            a[3] = texel_a(ra + min(q0 + 3u, ql));
        }
        //#rows tn_row(&acc, {r}u, &a, b0, b1);
    }
    store_tile_at(wid.z * p.m * p.n, i0, j0, &acc);
}

// ---- gemm_tex_nn: y[i, j] = Σ_k a[i, k] · b[k, j] (a·b, b [k, n] not transposed: GPT-2's Conv1D x·W) ------
// a [m, k] and b [k, n] textures, k % 4 == 0 and n % 4 == 0: a step of 4 k fetches the tile's ROWS texels of a
// (4 values of a row each) and 8 of b (4 rows of b × the tile's 8 columns), ROWS·32 FMAs for ROWS + 8 texels
// (gemm_tex's ratio). Geometry, clamping and store as gemm_tex.

// Row r of the tile: a's 4 values of the step against b's 4 rows (b[2c], b[2c + 1]: row c, columns j0..j0+7).
fn nn_row(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, a: vec4<f32>, b: ptr<function, array<vec4<f32>, 8>>) {
    (*acc)[2u * r] += a.x * (*b)[0] + a.y * (*b)[2] + a.z * (*b)[4] + a.w * (*b)[6];
    (*acc)[2u * r + 1u] += a.x * (*b)[1] + a.y * (*b)[3] + a.z * (*b)[5] + a.w * (*b)[7];
}

@compute @workgroup_size(8, 8)
fn gemm_tex_nn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    if (i0 >= p.m) { return; } // as gemm_tex
    let ml = p.m - 1u;
    let c0 = min(j0 / 4u, n4 - 1u);
    let c1 = min(j0 / 4u + 1u, n4 - 1u);
    let a0 = wid.z * p.m * k4; // a batched product's batch (grid z), as gemm_tex
    let bz = wid.z * p.k * n4;
    var acc: array<vec4<f32>, 32>;
    for (var kk = 0u; kk < k4; kk++) {
        let t = bz + kk * 4u * n4;
        var b = array<vec4<f32>, 8>(
            texel_b(t + c0), texel_b(t + c1), texel_b(t + n4 + c0), texel_b(t + n4 + c1),
            texel_b(t + 2u * n4 + c0), texel_b(t + 2u * n4 + c1), texel_b(t + 3u * n4 + c0), texel_b(t + 3u * n4 + c1));
        //#rows nn_row(&acc, {r}u, texel_a(a0 + min(i0 + {r}u, ml) * k4 + kk), &b);
    }
    store_tile_at(wid.z * p.m * p.n, i0, j0, &acc);
}

//#include gemv_cols

// x against step kk of the four rows of weight w starting at texels r: four vec4 dots.
fn cols4(w: texture_2d<f32>, x: vec4<f32>, r: vec4<u32>, kk: u32) -> vec4<f32> {
    let t = r + vec4<u32>(kk);
    return vec4<f32>(dot(x, textureLoad(w, tex_at(t.x), 0)),
                     dot(x, textureLoad(w, tex_at(t.y), 0)),
                     dot(x, textureLoad(w, tex_at(t.z), 0)),
                     dot(x, textureLoad(w, tex_at(t.w), 0)));
}

// x (eight values) against one texel of a weight row, f16 eight to a texel.
fn dot8(x: array<vec4<f32>, 2>, w: array<vec4<f32>, 2>) -> f32 {
    return dot(x[0], w[0]) + dot(x[1], w[1]);
}

fn cols8(w: texture_2d<u32>, x: array<vec4<f32>, 2>, r: vec4<u32>, kk: u32) -> vec4<f32> {
    let t = r + vec4<u32>(kk);
    return vec4<f32>(dot8(x, h8(textureLoad(w, tex_at(t.x), 0))),
                     dot8(x, h8(textureLoad(w, tex_at(t.y), 0))),
                     dot8(x, h8(textureLoad(w, tex_at(t.z), 0))),
                     dot8(x, h8(textureLoad(w, tex_at(t.w), 0))));
}

@compute @workgroup_size(16)
fn gemv_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = gemv_j0(wid, nwg, li);
    if (j0 >= p.n) { return; }
    let k4 = p.k / 4u;
    let r = gemv_cols(j0) * k4;
    let xr = i * k4;
    var acc = vec4<f32>(0.0);
    for (var kk = 0u; kk < k4; kk++) {
        acc += cols4(tb, gemv_x(xr + kk), r, kk);
    }
    store_cols(i, j0, acc);
}

// ---- f16 packed eight to a texel ------------------------------------------------------------------------

// Elements 8t..8t+3 and 8t+4..8t+7 of an f16 operand from its rgba32uint texel t.
fn h8(v: vec4<u32>) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)),
                               vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)));
}

fn texel_ah(t: u32) -> array<vec4<f32>, 2> {
    return h8(textureLoad(tau, tex_at(t), 0));
}

fn texel_bh(t: u32) -> array<vec4<f32>, 2> {
    return h8(textureLoad(tbu, tex_at(t), 0));
}

// Row r of the tile over 8 k: a's two halves against the columns' low and high halves.
fn row_h8(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, a: array<vec4<f32>, 2>,
          lo: ptr<function, array<vec4<f32>, 8>>, hi: ptr<function, array<vec4<f32>, 8>>) {
    row_step(acc, r, a[0], lo);
    row_step(acc, r, a[1], hi);
}

@compute @workgroup_size(8, 8)
fn gemm_tex_h8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k8 = p.k / 8u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    if (i0 >= p.m) { return; } // as gemm_tex
    let ml = p.m - 1u;
    let nl = p.n - 1u;
    var acc: array<vec4<f32>, 32>;
    for (var kk = 0u; kk < k8; kk++) {
        //#unroll c 0..8
        let b{c} = texel_bh(min(j0 + {c}u, nl) * k8 + kk);
        //#end
        var lo = array<vec4<f32>, 8>(b0[0], b1[0], b2[0], b3[0], b4[0], b5[0], b6[0], b7[0]);
        var hi = array<vec4<f32>, 8>(b0[1], b1[1], b2[1], b3[1], b4[1], b5[1], b6[1], b7[1]);
        //#rows row_h8(&acc, {r}u, texel_ah(min(i0 + {r}u, ml) * k8 + kk), &lo, &hi);
    }
    store_tile(i0, j0, &acc);
}

@compute @workgroup_size(16)
fn gemv_tex_h8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = gemv_j0(wid, nwg, li);
    if (j0 >= p.n) { return; }
    let k8 = p.k / 8u;
    let r = gemv_cols(j0) * k8;
    let xr = i * k8;
    var acc = vec4<f32>(0.0);
    for (var kk = 0u; kk < k8; kk++) {
        acc += cols8(tbu, gemv_xh(xr + kk), r, kk);
    }
    store_cols(i, j0, acc);
}

// ---- gemv_glu_tex, gemv_glu_tex_h8 ----------------------------------------------------------------------
// Glu for decode: y[i, j] = silu(Σ_k x[i, k]·wg[j, k]) · Σ_k x[i, k]·wu[j, k], both weights through their
// twins (binding 2 wg, binding 4 wu, f32 or f16 eight to a texel), the row as the GEMVs read it; geometry
// as gemv_tex. One dispatch instead of gate, up, silu and mul.

fn silu4(g: vec4<f32>) -> vec4<f32> {
    return g / (vec4<f32>(1.0) + exp(-g));
}

@compute @workgroup_size(16)
fn gemv_glu_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = gemv_j0(wid, nwg, li);
    if (j0 >= p.n) { return; }
    let k4 = p.k / 4u;
    let r = gemv_cols(j0) * k4;
    let xr = i * k4;
    var g = vec4<f32>(0.0);
    var u = vec4<f32>(0.0);
    for (var kk = 0u; kk < k4; kk++) {
        let x = gemv_x(xr + kk);
        g += cols4(tb, x, r, kk);
        u += cols4(tc, x, r, kk);
    }
    store_cols(i, j0, silu4(g) * u);
}

@compute @workgroup_size(16)
fn gemv_glu_tex_h8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = gemv_j0(wid, nwg, li);
    if (j0 >= p.n) { return; }
    let k8 = p.k / 8u;
    let r = gemv_cols(j0) * k8;
    let xr = i * k8;
    var g = vec4<f32>(0.0);
    var u = vec4<f32>(0.0);
    for (var kk = 0u; kk < k8; kk++) {
        let x = gemv_xh(xr + kk);
        g += cols8(tbu, x, r, kk);
        u += cols8(tcu, x, r, kk);
    }
    store_cols(i, j0, silu4(g) * u);
}

// ---- the GEMVs' row (gemv_x: vec4 t of the rows; gemv_xh: f16 texel t, eight values) ---------------------
// Two variants of this text: the staged row's texel fetches (family matmul_tex), or a 64 KiB uniform array
// bound on the row's own buffer (matmul_tex_ux: no copy, no split pass; kernels::matmul::uniform_row_source).

//#hooks staged_row
fn gemv_x(t: u32) -> vec4<f32> {
    return texel_a(t);
}

fn gemv_xh(t: u32) -> array<vec4<f32>, 2> {
    return texel_ah(t);
}

//#hooks uniform_row
@group(0) @binding(1) var<uniform> xu: array<vec4<f32>, 4096>;
@group(0) @binding(1) var<uniform> xuh: array<vec4<u32>, 4096>;

fn gemv_x(t: u32) -> vec4<f32> {
    return xu[t];
}

fn gemv_xh(t: u32) -> array<vec4<f32>, 2> {
    return h8(xuh[t]);
}
