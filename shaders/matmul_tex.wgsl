// Matmul through textures, for CPU adapters: y[i, j] = Σ_k a[i, k] · b[j, k] (x·Wᵀ) with both operands read
// as staged textures (exec: the value's buffer is copied into a texture laid out like exec::twins before the
// dispatch; texel t holds elements 4t..4t+3 and sits at (t % 4096, t / 4096); rgba32float for f32 values,
// rgba16float for f16 ones, read as vec4<f32>). llvmpipe (Mesa 22.x) turns every storage load into a loop
// over the SIMD lanes with a branch per lane, but gathers texels in straight-line code:
// examples/gemm_tex_bench measured 7–9× the storage kernel's GFLOP/s at SmolLM2's prefill shapes.
// Accumulation is in f32.
//
// Bindings: 0 params; 1 a (texture) [m, k]; 2 b (texture) [n, k]; 3 y (read_write) [m, n].
// Needs k % 4 == 0 (whole texels per row; the lowering checks).
//   gemv_tex  decode (m ≤ 8, one row per z): b is a leaf's texture twin (exec::twins, same layout), a the
//             staged row; each invocation 4 columns walking all of k, workgroups of 16.
//             grid (⌈n/64⌉ folded 2-D, 1, m).
//   gemm_tex  workgroup (8, 8), each invocation a ROWS × 8 register tile (rows i0..i0+ROWS-1, columns
//             j0..j0+7): a step of 4 k fetches ROWS + 8 texels for ROWS·32 FMAs. 16 × 8 was the fastest of
//             4×4 … 32×8 in the experiment; ROWS = 8 (override) wastes less of the tile on short prompts.
//             Rows past m and columns past n are clamped to the last one and never stored.
//             grid (⌈n/64⌉, ⌈m/(8·ROWS)⌉, 1).
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

const W: u32 = 4096u;
// Rows of gemm_tex's register tile: 16, or 8 (the upper half of the tile is then neither computed nor stored).
override ROWS: u32 = 16u;

fn texel_a(t: u32) -> vec4<f32> {
    return textureLoad(ta, vec2<u32>(t % W, t / W), 0);
}

fn texel_b(t: u32) -> vec4<f32> {
    return textureLoad(tb, vec2<u32>(t % W, t / W), 0);
}

// Row r of the tile: acc[2r] += a · b[0..4], acc[2r + 1] += a · b[4..8] (r is a constant after inlining,
// so the tile stays in registers).
fn row_step(acc: ptr<function, array<vec4<f32>, 32>>, r: u32, a: vec4<f32>, b: ptr<function, array<vec4<f32>, 8>>) {
    (*acc)[2u * r] += vec4<f32>(dot(a, (*b)[0]), dot(a, (*b)[1]), dot(a, (*b)[2]), dot(a, (*b)[3]));
    (*acc)[2u * r + 1u] += vec4<f32>(dot(a, (*b)[4]), dot(a, (*b)[5]), dot(a, (*b)[6]), dot(a, (*b)[7]));
}

fn store_row(i: u32, j0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.m) { return; }
    let v = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var c = 0u; c < 8u; c++) {
        if (j0 + c < p.n) { y[i * p.n + j0 + c] = T(v[c]); }
    }
}

@compute @workgroup_size(8, 8)
fn gemm_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k4 = p.k / 4u;
    let j0 = (wid.x * 8u + lid.x) * 8u;
    let i0 = (wid.y * 8u + lid.y) * ROWS;
    let ml = p.m - 1u;
    let nl = p.n - 1u;
    var acc: array<vec4<f32>, 32>;
    for (var kk = 0u; kk < k4; kk++) {
        var b = array<vec4<f32>, 8>(
            texel_b(min(j0, nl) * k4 + kk), texel_b(min(j0 + 1u, nl) * k4 + kk),
            texel_b(min(j0 + 2u, nl) * k4 + kk), texel_b(min(j0 + 3u, nl) * k4 + kk),
            texel_b(min(j0 + 4u, nl) * k4 + kk), texel_b(min(j0 + 5u, nl) * k4 + kk),
            texel_b(min(j0 + 6u, nl) * k4 + kk), texel_b(min(j0 + 7u, nl) * k4 + kk));
        row_step(&acc, 0u, texel_a(min(i0, ml) * k4 + kk), &b);
        row_step(&acc, 1u, texel_a(min(i0 + 1u, ml) * k4 + kk), &b);
        row_step(&acc, 2u, texel_a(min(i0 + 2u, ml) * k4 + kk), &b);
        row_step(&acc, 3u, texel_a(min(i0 + 3u, ml) * k4 + kk), &b);
        row_step(&acc, 4u, texel_a(min(i0 + 4u, ml) * k4 + kk), &b);
        row_step(&acc, 5u, texel_a(min(i0 + 5u, ml) * k4 + kk), &b);
        row_step(&acc, 6u, texel_a(min(i0 + 6u, ml) * k4 + kk), &b);
        row_step(&acc, 7u, texel_a(min(i0 + 7u, ml) * k4 + kk), &b);
        if (ROWS > 8u) {
            row_step(&acc, 8u, texel_a(min(i0 + 8u, ml) * k4 + kk), &b);
            row_step(&acc, 9u, texel_a(min(i0 + 9u, ml) * k4 + kk), &b);
            row_step(&acc, 10u, texel_a(min(i0 + 10u, ml) * k4 + kk), &b);
            row_step(&acc, 11u, texel_a(min(i0 + 11u, ml) * k4 + kk), &b);
            row_step(&acc, 12u, texel_a(min(i0 + 12u, ml) * k4 + kk), &b);
            row_step(&acc, 13u, texel_a(min(i0 + 13u, ml) * k4 + kk), &b);
            row_step(&acc, 14u, texel_a(min(i0 + 14u, ml) * k4 + kk), &b);
            row_step(&acc, 15u, texel_a(min(i0 + 15u, ml) * k4 + kk), &b);
        }
    }
    store_row(i0, j0, acc[0], acc[1]);
    store_row(i0 + 1u, j0, acc[2], acc[3]);
    store_row(i0 + 2u, j0, acc[4], acc[5]);
    store_row(i0 + 3u, j0, acc[6], acc[7]);
    store_row(i0 + 4u, j0, acc[8], acc[9]);
    store_row(i0 + 5u, j0, acc[10], acc[11]);
    store_row(i0 + 6u, j0, acc[12], acc[13]);
    store_row(i0 + 7u, j0, acc[14], acc[15]);
    if (ROWS > 8u) {
        store_row(i0 + 8u, j0, acc[16], acc[17]);
        store_row(i0 + 9u, j0, acc[18], acc[19]);
        store_row(i0 + 10u, j0, acc[20], acc[21]);
        store_row(i0 + 11u, j0, acc[22], acc[23]);
        store_row(i0 + 12u, j0, acc[24], acc[25]);
        store_row(i0 + 13u, j0, acc[26], acc[27]);
        store_row(i0 + 14u, j0, acc[28], acc[29]);
        store_row(i0 + 15u, j0, acc[30], acc[31]);
    }
}

@compute @workgroup_size(16)
fn gemv_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = wid.z;
    let j0 = ((wid.x + wid.y * nwg.x) * 16u + li) * 4u;
    if (j0 >= p.n) { return; }
    let k4 = p.k / 4u;
    let nl = p.n - 1u;
    let r = vec4<u32>(j0, min(j0 + 1u, nl), min(j0 + 2u, nl), min(j0 + 3u, nl)) * k4;
    let xr = i * k4;
    var acc = vec4<f32>(0.0);
    for (var kk = 0u; kk < k4; kk++) {
        let x = texel_a(xr + kk);
        acc += vec4<f32>(dot(x, texel_b(r.x + kk)), dot(x, texel_b(r.y + kk)), dot(x, texel_b(r.z + kk)),
                         dot(x, texel_b(r.w + kk)));
    }
    let v = array<f32, 4>(acc.x, acc.y, acc.z, acc.w);
    for (var c = 0u; c < 4u; c++) {
        if (j0 + c < p.n) { y[i * p.n + j0 + c] = T(v[c]); }
    }
}
