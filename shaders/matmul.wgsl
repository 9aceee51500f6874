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
//   matmul_tiled     workgroup (8, 4) → a 64×64 tile of c, each invocation a 16×8 register tile read straight
//                    from global memory with vec4 loads, k in steps of 4 (why: see the section below). Needs both
//                    operands 4-aligned (lowering checks); otherwise matmul_tiled_scalar: workgroup (8, 8), 8×8
//                    tiles of guarded scalar loads. grid (⌈n/64⌉, ⌈m/64⌉, batch).
//   matmul_baseline  workgroup (16, 16), each invocation a 4×4 tile read straight from global memory
//                    (the plain register-blocked kernel the benchmark compares against).
//                    grid (⌈n/64⌉, ⌈m/64⌉, batch).
//   gemv             m = 1 (decode): each weight element read once. TB: 4 output columns per workgroup of 256,
//                    64 invocations per column striding k; !TB: 64 columns per workgroup as 16 column-quads ×
//                    16 k-strides. Partial sums meet in workgroup memory and are added in a fixed order.
//                    grid (⌈n/4⌉ or ⌈n/64⌉ folded 2-D, 1, batch).
//   gemv_vec4        the same with vec4 loads when k_off, strides and ldb are 4-aligned, workgroups of 64 and 8
//                    columns per invocation so each load of a serves 8 weight loads. TB: 8 columns per workgroup;
//                    !TB: 64 (8 column-octets × 8 k-strides). grid (⌈n/8⌉ or ⌈n/64⌉ folded 2-D, 1, batch).
//   gemv_rows4       TB single-row products (the output head's GEMV on GPUs): each invocation owns 4 output
//                    columns and walks all of k, no cross-invocation reduction; workgroups of 64 (256 columns).
//                    grid (⌈n/256⌉ folded 2-D, 1, batch).
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
// Each invocation owns a 16×8 register tile of c: rows i0..i0+15, columns j0..j0+7. k advances 4 at a
// time; a step loads the 16×4 slice of opA and the 4×8 slice of opB as 16 + 8 vec4 loads and does
// 16·8·4 FMAs. llvmpipe (Mesa 22.x) turns every storage or workgroup load into a per-lane loop, so the
// figure of merit is FMAs per lane-load: a 4×4 scalar tile gives 2, this gives 21; staging through
// workgroup memory only adds loads there, so there is none. The tiles are unrolled (written out by
// kernels::wgsl::matmul_tiles at the `//#generate` lines) so they stay in registers (8×8: 2.3×, 16×8: 2.8×,
// 16×16: 3.2×, 32×8: 3–4× the baseline on lavapipe; 16×8 kept because the bigger ones took minutes of
// llvmpipe compile per pipeline).
// ak[c·4 + g] = opA rows i0+4g..i0+4g+3 at k+c; bk[c·2 + h] = opB columns j0+4h..j0+4h+3 at k+c.

fn k_mask(k: u32) -> vec4<bool> {
    return vec4<bool>(k < p.k, k + 1u < p.k, k + 2u < p.k, k + 3u < p.k);
}

//#generate matmul_tiles

@compute @workgroup_size(8, 4)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bi = wid.z;
    let i0 = wid.y * 64u + lid.y * 16u;
    let j0 = wid.x * 64u + lid.x * 8u;
    if (i0 >= p.m || j0 >= p.n) { return; } // a tile wholly outside c has nothing to store
    let abase = bi * p.stride_a;
    let bbase = bi * p.stride_b;
    var acc: array<vec4<f32>, 32>;
    for (var k = 0u; k < p.k; k += 4u) {
        fma_tile(&acc, a_tile_vec4(abase, i0, k), b_tile_vec4(bbase, j0, k));
    }
    store_tile(bi, i0, j0, acc);
}

// The fallback for operands whose layout breaks vec4 alignment: an 8×8 tile of guarded scalar loads (a
// smaller tile keeps llvmpipe's compile time of this rarely used variant down).
//#generate matmul_tiles_scalar

@compute @workgroup_size(8, 8)
fn matmul_tiled_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bi = wid.z;
    let i0 = wid.y * 64u + lid.y * 8u;
    let j0 = wid.x * 64u + lid.x * 8u;
    if (i0 >= p.m || j0 >= p.n) { return; } // a tile wholly outside c has nothing to store
    let abase = bi * p.stride_a;
    let bbase = bi * p.stride_b;
    var acc: array<vec4<f32>, 16>;
    for (var k = 0u; k < p.k; k += 4u) {
        fma_tile_s(&acc, a_tile_scalar_s(abase, i0, k), b_tile_scalar_s(bbase, j0, k));
    }
    store_tile_s(bi, i0, j0, acc);
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

// The same with vec4 loads, reading a once per 8 columns: needs k_off, stride_a, stride_b, ldb multiples of 4,
// and TB: k % 4 == 0, !TB: n % 4 == 0. Workgroups of 64. TB: 8 columns j per workgroup, each invocation
// strides k (as vec4) over all 8 rows of W; !TB: 64 columns per workgroup as 8 column-octets × 8 k-strides of
// 4 rows each. Out-of-range rows and columns are clamped to valid ones and weighted 0 or not stored.
fn k_mask4(k: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<bool>(k < p.k, k + 1u < p.k, k + 2u < p.k, k + 3u < p.k));
}

@compute @workgroup_size(64)
fn gemv_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let bi = wid.z;
    let g = wid.x + wid.y * nwg.x;
    let abase4 = (bi * p.stride_a + p.k_off) / 4u;
    let bbase = bi * p.stride_b;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    if (TB) {
        let j0 = g * 8u;
        if (j0 < p.n) {
            let last = p.n - 1u;
            var w: array<u32, 8>;
            for (var q = 0u; q < 8u; q++) { w[q] = (bbase + min(j0 + q, last) * p.ldb) / 4u; }
            let w0 = w[0]; let w1 = w[1]; let w2 = w[2]; let w3 = w[3];
            let w4 = w[4]; let w5 = w[5]; let w6 = w[6]; let w7 = w[7];
            let k4n = p.k / 4u;
            for (var q = li; q < k4n; q += 64u) {
                let av = vec4<f32>(a4[abase4 + q]);
                s0 += vec4<f32>(dot(av, vec4<f32>(b4[w0 + q])), dot(av, vec4<f32>(b4[w1 + q])),
                                dot(av, vec4<f32>(b4[w2 + q])), dot(av, vec4<f32>(b4[w3 + q])));
                s1 += vec4<f32>(dot(av, vec4<f32>(b4[w4 + q])), dot(av, vec4<f32>(b4[w5 + q])),
                                dot(av, vec4<f32>(b4[w6 + q])), dot(av, vec4<f32>(b4[w7 + q])));
            }
        }
        part[li * 2u] = s0;
        part[li * 2u + 1u] = s1;
        workgroupBarrier();
        if (li < 8u && j0 + li < p.n) {
            var r = 0.0;
            for (var u = 0u; u < 64u; u++) { r += part[u * 2u + li / 4u][li % 4u]; }
            store_c(bi, 0u, j0 + li, r);
        }
    } else {
        let cg = li % 8u;
        let ks = li / 8u;
        let j = g * 64u + cg * 8u;
        if (j < p.n) {
            let j1 = min(j + 4u, p.n - 4u);
            let kb_n = (p.k + 3u) / 4u;
            let klast = p.k - 1u;
            for (var kb = ks; kb < kb_n; kb += 8u) {
                let k = kb * 4u;
                let av = vec4<f32>(a4[abase4 + kb]) * k_mask4(k);
                let row0 = bbase + min(k + 0u, klast) * p.ldb;
                s0 += av.x * vec4<f32>(b4[(row0 + j) / 4u]);
                s1 += av.x * vec4<f32>(b4[(row0 + j1) / 4u]);
                let row1 = bbase + min(k + 1u, klast) * p.ldb;
                s0 += av.y * vec4<f32>(b4[(row1 + j) / 4u]);
                s1 += av.y * vec4<f32>(b4[(row1 + j1) / 4u]);
                let row2 = bbase + min(k + 2u, klast) * p.ldb;
                s0 += av.z * vec4<f32>(b4[(row2 + j) / 4u]);
                s1 += av.z * vec4<f32>(b4[(row2 + j1) / 4u]);
                let row3 = bbase + min(k + 3u, klast) * p.ldb;
                s0 += av.w * vec4<f32>(b4[(row3 + j) / 4u]);
                s1 += av.w * vec4<f32>(b4[(row3 + j1) / 4u]);
            }
        }
        part[li * 2u] = s0;
        part[li * 2u + 1u] = s1;
        workgroupBarrier();
        if (ks == 0u && j < p.n) {
            var r0 = vec4<f32>(0.0);
            var r1 = vec4<f32>(0.0);
            for (var u = 0u; u < 8u; u++) {
                r0 += part[(u * 8u + cg) * 2u];
                r1 += part[(u * 8u + cg) * 2u + 1u];
            }
            store_c(bi, 0u, j, r0.x);
            store_c(bi, 0u, j + 1u, r0.y);
            store_c(bi, 0u, j + 2u, r0.z);
            store_c(bi, 0u, j + 3u, r0.w);
            store_c(bi, 0u, j + 4u, r1.x);
            store_c(bi, 0u, j + 5u, r1.y);
            store_c(bi, 0u, j + 6u, r1.z);
            store_c(bi, 0u, j + 7u, r1.w);
        }
    }
}

// ---- gemv_rows4 ---------------------------------------------------------------------------------------
// x·Wᵀ for one row of a (TB, vec4 layout as gemv_vec4): each invocation owns 4 output columns (4 rows of W)
// and walks all of k itself, so there is no cross-invocation reduction and no barrier; a's vec4 is loaded
// once per 4 weight loads. 64 invocations → 256 columns per workgroup. Rows past n are clamped to the last
// one and not stored. Chosen for TB single-row products, where the 64-way reduction of gemv_vec4 cost about
// as much as the loads themselves at k ≈ 576.
@compute @workgroup_size(64)
fn gemv_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let bi = wid.z;
    let g = wid.x + wid.y * nwg.x;
    let j0 = (g * 64u + li) * 4u;
    if (j0 >= p.n) { return; }
    let abase4 = (bi * p.stride_a + p.k_off) / 4u;
    let bbase = bi * p.stride_b;
    let last = p.n - 1u;
    let w0 = (bbase + j0 * p.ldb) / 4u;
    let w1 = (bbase + min(j0 + 1u, last) * p.ldb) / 4u;
    let w2 = (bbase + min(j0 + 2u, last) * p.ldb) / 4u;
    let w3 = (bbase + min(j0 + 3u, last) * p.ldb) / 4u;
    var s = vec4<f32>(0.0);
    let k4n = p.k / 4u;
    for (var q = 0u; q < k4n; q++) {
        let av = vec4<f32>(a4[abase4 + q]);
        s += vec4<f32>(dot(av, vec4<f32>(b4[w0 + q])), dot(av, vec4<f32>(b4[w1 + q])),
                       dot(av, vec4<f32>(b4[w2 + q])), dot(av, vec4<f32>(b4[w3 + q])));
    }
    store_c(bi, 0u, j0, s.x);
    store_c(bi, 0u, j0 + 1u, s.y);
    store_c(bi, 0u, j0 + 2u, s.z);
    store_c(bi, 0u, j0 + 3u, s.w);
}
