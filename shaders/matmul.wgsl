// Matmul family: c[bi, i, j] (+)= Σ_kk opA(bi, i, kk) · opB(bi, kk, j), accumulated in f32.
//
//   opA(bi, i, kk) = a[bi·stride_a + i·lda + k_off + kk]      (TA = false; a: [batch, M, K_full])
//                  = a[bi·stride_a + (k_off + kk)·lda + i]    (TA = true;  a: [batch, K_full, M])
//   opB(bi, kk, j) = b[bi·stride_b + kk·ldb + j]              (TB = false; b: [batch, k, N] or one [k, N])
//                  = b[bi·stride_b + j·ldb + kk]              (TB = true;  b: [batch, n, K] or one [n, K])
//   c[bi·stride_c + i·ldc + n_off + j], i < m, j < n, kk < k; accumulate = 1 adds to what c holds.
//
// m, n, k are this dispatch's sub-problem: with a weight b split into shards by rows of its first dim, one
// dispatch runs per shard (TB: the shard's rows are output columns n_off..n_off+n; !TB: they are k_off..k_off+k
// of the reduction, and every shard after the first accumulates). stride_b = 0 shares one 2-D b over the
// batch; when !TA the lowering folds a's batch into m instead.
//
// Bindings: 0 params; 1 a (read) [batch, M, K]; 2 b (read, or one shard of it); 3 c (read_write) [batch, M, N].
// Overrides: TA, TB (bool, transposes; gemv supports TA = false only).
// Entries and geometry:
//   matmul_tiled     workgroup (8, 8) → a 64×64 tile of c, each invocation an 8×8 register tile; k in slabs
//                    of 16 staged through workgroup memory k-major, so the inner loop reads 2 + 2 vec4 and does
//                    64 FMAs (llvmpipe runs 8 invocations per SIMD op: loads cost per lane, FMAs per op).
//                    grid (⌈n/64⌉, ⌈m/64⌉, batch).
//   matmul_baseline  workgroup (16, 16), each invocation a 4×4 tile read straight from global memory
//                    (the plain register-blocked kernel the benchmark compares against). grid (⌈n/64⌉, ⌈m/64⌉, batch).
//   gemv             m = 1 (decode): each weight element read once. TB: 4 output columns per workgroup of 256,
//                    64 invocations per column striding k; !TB: 64 columns per workgroup as 16 column-quads ×
//                    16 k-strides. Partial sums meet in workgroup memory and are added in a fixed order.
//                    gemv_vec4 is the same with vec4 loads when k_off, strides and ldb are 4-aligned.
//                    grid (⌈n/4⌉ or ⌈n/64⌉ folded 2-D, 1, batch).
// Every index is guarded; out-of-range operands read as 0.
// CPU reference: reference::matmul::matmul_forward.

struct Params {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    k_off: u32,
    n_off: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read_write> c: array<T>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<T>>;

override TA: bool = false;
override TB: bool = false;

fn load_a(base: u32, i: u32, kk: u32) -> f32 {
    if (i >= p.m || kk >= p.k) { return 0.0; }
    if (TA) { return f32(a[base + (p.k_off + kk) * p.lda + i]); }
    return f32(a[base + i * p.lda + p.k_off + kk]);
}

fn load_b(base: u32, kk: u32, j: u32) -> f32 {
    if (kk >= p.k || j >= p.n) { return 0.0; }
    if (TB) { return f32(b[base + j * p.ldb + kk]); }
    return f32(b[base + kk * p.ldb + j]);
}

fn store_c(bi: u32, i: u32, j: u32, v: f32) {
    if (i >= p.m || j >= p.n) { return; }
    let idx = bi * p.stride_c + i * p.ldc + p.n_off + j;
    var r = v;
    if (p.accumulate != 0u) { r += f32(c[idx]); }
    c[idx] = T(r);
}

// ---- matmul_tiled -------------------------------------------------------------------------------------
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// k-major slabs: as_[kk · BM/4 + i/4] holds opA rows i..i+3 at kk; bs_[kk · BN/4 + j/4] opB columns j..j+3.
var<workgroup> as_: array<vec4<f32>, 256>; // BK * BM / 4
var<workgroup> bs_: array<vec4<f32>, 256>; // BK * BN / 4

@compute @workgroup_size(8, 8)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let bi = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let abase = bi * p.stride_a;
    let bbase = bi * p.stride_b;
    var acc: array<vec4<f32>, 16>; // rows r = 0..7, column halves h: acc[r * 2 + h]
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // 256 vec4 per slab and operand, 4 per invocation.
        for (var s = 0u; s < 4u; s++) {
            let e = li + s * 64u;
            let kk = e / 16u;
            let q = (e % 16u) * 4u;
            as_[e] = vec4<f32>(load_a(abase, row0 + q, k0 + kk), load_a(abase, row0 + q + 1u, k0 + kk),
                               load_a(abase, row0 + q + 2u, k0 + kk), load_a(abase, row0 + q + 3u, k0 + kk));
            bs_[e] = vec4<f32>(load_b(bbase, k0 + kk, col0 + q), load_b(bbase, k0 + kk, col0 + q + 1u),
                               load_b(bbase, k0 + kk, col0 + q + 2u), load_b(bbase, k0 + kk, col0 + q + 3u));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = as_[kk * 16u + lid.y * 2u];
            let a1 = as_[kk * 16u + lid.y * 2u + 1u];
            let b0 = bs_[kk * 16u + lid.x * 2u];
            let b1 = bs_[kk * 16u + lid.x * 2u + 1u];
            acc[0] += a0.x * b0; acc[1] += a0.x * b1;
            acc[2] += a0.y * b0; acc[3] += a0.y * b1;
            acc[4] += a0.z * b0; acc[5] += a0.z * b1;
            acc[6] += a0.w * b0; acc[7] += a0.w * b1;
            acc[8] += a1.x * b0; acc[9] += a1.x * b1;
            acc[10] += a1.y * b0; acc[11] += a1.y * b1;
            acc[12] += a1.z * b0; acc[13] += a1.z * b1;
            acc[14] += a1.w * b0; acc[15] += a1.w * b1;
        }
        workgroupBarrier();
    }
    let i0 = row0 + lid.y * 8u;
    let j0 = col0 + lid.x * 8u;
    for (var r = 0u; r < 8u; r++) {
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            store_c(bi, i0 + r, j0 + h * 4u, v.x);
            store_c(bi, i0 + r, j0 + h * 4u + 1u, v.y);
            store_c(bi, i0 + r, j0 + h * 4u + 2u, v.z);
            store_c(bi, i0 + r, j0 + h * 4u + 3u, v.w);
        }
    }
}

// ---- matmul_baseline ----------------------------------------------------------------------------------
@compute @workgroup_size(16, 16)
fn matmul_baseline(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bi = wid.z;
    let i0 = wid.y * 64u + lid.y * 4u;
    let j0 = wid.x * 64u + lid.x * 4u;
    let abase = bi * p.stride_a;
    let bbase = bi * p.stride_b;
    var acc: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < p.k; kk++) {
        let av = vec4<f32>(load_a(abase, i0, kk), load_a(abase, i0 + 1u, kk), load_a(abase, i0 + 2u, kk),
                           load_a(abase, i0 + 3u, kk));
        let bv = vec4<f32>(load_b(bbase, kk, j0), load_b(bbase, kk, j0 + 1u), load_b(bbase, kk, j0 + 2u),
                           load_b(bbase, kk, j0 + 3u));
        acc[0] += av.x * bv;
        acc[1] += av.y * bv;
        acc[2] += av.z * bv;
        acc[3] += av.w * bv;
    }
    for (var r = 0u; r < 4u; r++) {
        store_c(bi, i0 + r, j0, acc[r].x);
        store_c(bi, i0 + r, j0 + 1u, acc[r].y);
        store_c(bi, i0 + r, j0 + 2u, acc[r].z);
        store_c(bi, i0 + r, j0 + 3u, acc[r].w);
    }
}

// ---- gemv ---------------------------------------------------------------------------------------------
var<workgroup> part: array<vec4<f32>, 256>;

// TB: 4 columns j per workgroup, 64 invocations each striding k, partials added in order by invocation t = 0.
fn gemv_tb_finish(bi: u32, li: u32, j: u32, s: f32) {
    part[li] = vec4<f32>(s, 0.0, 0.0, 0.0);
    workgroupBarrier();
    if (li % 64u == 0u && j < p.n) {
        var r = 0.0;
        for (var u = 0u; u < 64u; u++) { r += part[li + u].x; }
        store_c(bi, 0u, j, r);
    }
}

// !TB: 64 columns per workgroup as 16 column-quads jq × 16 k-strides ks, partials added in order of ks.
fn gemv_nt_finish(bi: u32, li: u32, j: u32, s: vec4<f32>) {
    part[li] = s;
    workgroupBarrier();
    if (li / 16u == 0u && j < p.n) {
        var r = vec4<f32>(0.0);
        for (var u = 0u; u < 16u; u++) { r += part[li + u * 16u]; }
        store_c(bi, 0u, j, r.x);
        store_c(bi, 0u, j + 1u, r.y);
        store_c(bi, 0u, j + 2u, r.z);
        store_c(bi, 0u, j + 3u, r.w);
    }
}

@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let bi = wid.z;
    let g = wid.x + wid.y * nwg.x;
    let abase = bi * p.stride_a + p.k_off;
    let bbase = bi * p.stride_b;
    if (TB) {
        let j = g * 4u + li / 64u;
        var s = 0.0;
        if (j < p.n) {
            for (var kk = li % 64u; kk < p.k; kk += 64u) {
                s += f32(a[abase + kk]) * f32(b[bbase + j * p.ldb + kk]);
            }
        }
        gemv_tb_finish(bi, li, j, s);
    } else {
        let j = g * 64u + (li % 16u) * 4u;
        var s = vec4<f32>(0.0);
        if (j < p.n) {
            let last = p.n - 1u;
            for (var kk = li / 16u; kk < p.k; kk += 16u) {
                let row = bbase + kk * p.ldb;
                s += f32(a[abase + kk]) * vec4<f32>(f32(b[row + j]), f32(b[row + min(j + 1u, last)]),
                                                    f32(b[row + min(j + 2u, last)]), f32(b[row + min(j + 3u, last)]));
            }
        }
        gemv_nt_finish(bi, li, j, s);
    }
}

// The same with vec4 loads: needs k_off, stride_a, stride_b, ldb multiples of 4, and TB: k % 4 == 0,
// !TB: n % 4 == 0.
@compute @workgroup_size(256)
fn gemv_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let bi = wid.z;
    let g = wid.x + wid.y * nwg.x;
    let abase4 = (bi * p.stride_a + p.k_off) / 4u;
    let bbase = bi * p.stride_b;
    if (TB) {
        let j = g * 4u + li / 64u;
        var s = 0.0;
        if (j < p.n) {
            let wrow = (bbase + j * p.ldb) / 4u;
            let k4n = p.k / 4u;
            for (var q = li % 64u; q < k4n; q += 64u) {
                s += dot(vec4<f32>(a4[abase4 + q]), vec4<f32>(b4[wrow + q]));
            }
        }
        gemv_tb_finish(bi, li, j, s);
    } else {
        let j = g * 64u + (li % 16u) * 4u;
        var s = vec4<f32>(0.0);
        if (j < p.n) {
            for (var kk = li / 16u; kk < p.k; kk += 16u) {
                let av = f32(a4[abase4 + kk / 4u][kk % 4u]);
                s += av * vec4<f32>(b4[(bbase + kk * p.ldb + j) / 4u]);
            }
        }
        gemv_nt_finish(bi, li, j, s);
    }
}
