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
// 16·8·4 FMAs. llvmpipe (Mesa 22.x) turns every storage or workgroup
// load into a per-lane loop, so the figure of merit is FMAs per lane-load: a 4×4 scalar tile gives 2, this
// gives 21; staging through workgroup memory only adds loads there, so there is none. Loops are
// unrolled in the text so the tiles stay in registers (8×8: 2.3×, 16×8: 2.8×, 16×16: 3.2×, 32×8: 3–4× the
// baseline on lavapipe; 16×8 kept because the bigger ones took minutes of llvmpipe compile per pipeline).
// ak[c·4 + g] = opA rows i0+4g..i0+4g+3 at k+c; bk[c·2 + h] = opB columns j0+4h..j0+4h+3 at k+c.

fn k_mask(k: u32) -> vec4<bool> {
    return vec4<bool>(k < p.k, k + 1u < p.k, k + 2u < p.k, k + 3u < p.k);
}

// vec4 loads: TA needs m, lda, stride_a multiples of 4; !TA needs lda, k_off, stride_a multiples of 4.
fn a_tile_vec4(abase: u32, i0: u32, k: u32) -> array<vec4<f32>, 16> {
    var t: array<vec4<f32>, 16>;
    let z = vec4<f32>(0.0);
    if (TA) {
        t[0] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 0u) * p.lda + i0 + 0u) / 4u]),
            k + 0u < p.k && i0 + 0u < p.m);
        t[1] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 0u) * p.lda + i0 + 4u) / 4u]),
            k + 0u < p.k && i0 + 4u < p.m);
        t[2] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 0u) * p.lda + i0 + 8u) / 4u]),
            k + 0u < p.k && i0 + 8u < p.m);
        t[3] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 0u) * p.lda + i0 + 12u) / 4u]),
            k + 0u < p.k && i0 + 12u < p.m);
        t[4] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 1u) * p.lda + i0 + 0u) / 4u]),
            k + 1u < p.k && i0 + 0u < p.m);
        t[5] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 1u) * p.lda + i0 + 4u) / 4u]),
            k + 1u < p.k && i0 + 4u < p.m);
        t[6] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 1u) * p.lda + i0 + 8u) / 4u]),
            k + 1u < p.k && i0 + 8u < p.m);
        t[7] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 1u) * p.lda + i0 + 12u) / 4u]),
            k + 1u < p.k && i0 + 12u < p.m);
        t[8] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 2u) * p.lda + i0 + 0u) / 4u]),
            k + 2u < p.k && i0 + 0u < p.m);
        t[9] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 2u) * p.lda + i0 + 4u) / 4u]),
            k + 2u < p.k && i0 + 4u < p.m);
        t[10] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 2u) * p.lda + i0 + 8u) / 4u]),
            k + 2u < p.k && i0 + 8u < p.m);
        t[11] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 2u) * p.lda + i0 + 12u) / 4u]),
            k + 2u < p.k && i0 + 12u < p.m);
        t[12] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 3u) * p.lda + i0 + 0u) / 4u]),
            k + 3u < p.k && i0 + 0u < p.m);
        t[13] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 3u) * p.lda + i0 + 4u) / 4u]),
            k + 3u < p.k && i0 + 4u < p.m);
        t[14] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 3u) * p.lda + i0 + 8u) / 4u]),
            k + 3u < p.k && i0 + 8u < p.m);
        t[15] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + 3u) * p.lda + i0 + 12u) / 4u]),
            k + 3u < p.k && i0 + 12u < p.m);
    } else {
        let km = k_mask(k);
        let r0 = select(z, vec4<f32>(a4[(abase + (i0 + 0u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 0u < p.m));
        let r1 = select(z, vec4<f32>(a4[(abase + (i0 + 1u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 1u < p.m));
        let r2 = select(z, vec4<f32>(a4[(abase + (i0 + 2u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 2u < p.m));
        let r3 = select(z, vec4<f32>(a4[(abase + (i0 + 3u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 3u < p.m));
        let r4 = select(z, vec4<f32>(a4[(abase + (i0 + 4u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 4u < p.m));
        let r5 = select(z, vec4<f32>(a4[(abase + (i0 + 5u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 5u < p.m));
        let r6 = select(z, vec4<f32>(a4[(abase + (i0 + 6u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 6u < p.m));
        let r7 = select(z, vec4<f32>(a4[(abase + (i0 + 7u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 7u < p.m));
        let r8 = select(z, vec4<f32>(a4[(abase + (i0 + 8u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 8u < p.m));
        let r9 = select(z, vec4<f32>(a4[(abase + (i0 + 9u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 9u < p.m));
        let r10 = select(z, vec4<f32>(a4[(abase + (i0 + 10u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 10u < p.m));
        let r11 = select(z, vec4<f32>(a4[(abase + (i0 + 11u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 11u < p.m));
        let r12 = select(z, vec4<f32>(a4[(abase + (i0 + 12u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 12u < p.m));
        let r13 = select(z, vec4<f32>(a4[(abase + (i0 + 13u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 13u < p.m));
        let r14 = select(z, vec4<f32>(a4[(abase + (i0 + 14u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 14u < p.m));
        let r15 = select(z, vec4<f32>(a4[(abase + (i0 + 15u) * p.lda + p.k_off + k) / 4u]),
            km & vec4<bool>(i0 + 15u < p.m));
        t[0] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
        t[1] = vec4<f32>(r4.x, r5.x, r6.x, r7.x);
        t[2] = vec4<f32>(r8.x, r9.x, r10.x, r11.x);
        t[3] = vec4<f32>(r12.x, r13.x, r14.x, r15.x);
        t[4] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
        t[5] = vec4<f32>(r4.y, r5.y, r6.y, r7.y);
        t[6] = vec4<f32>(r8.y, r9.y, r10.y, r11.y);
        t[7] = vec4<f32>(r12.y, r13.y, r14.y, r15.y);
        t[8] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
        t[9] = vec4<f32>(r4.z, r5.z, r6.z, r7.z);
        t[10] = vec4<f32>(r8.z, r9.z, r10.z, r11.z);
        t[11] = vec4<f32>(r12.z, r13.z, r14.z, r15.z);
        t[12] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
        t[13] = vec4<f32>(r4.w, r5.w, r6.w, r7.w);
        t[14] = vec4<f32>(r8.w, r9.w, r10.w, r11.w);
        t[15] = vec4<f32>(r12.w, r13.w, r14.w, r15.w);
    }
    return t;
}

// vec4 loads: TB needs ldb (= k), stride_b multiples of 4; !TB needs n, ldb, stride_b multiples of 4.
fn b_tile_vec4(bbase: u32, j0: u32, k: u32) -> array<vec4<f32>, 8> {
    var t: array<vec4<f32>, 8>;
    let z = vec4<f32>(0.0);
    if (TB) {
        let km = k_mask(k);
        let q0 = select(z, vec4<f32>(b4[(bbase + (j0 + 0u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 0u < p.n));
        let q1 = select(z, vec4<f32>(b4[(bbase + (j0 + 1u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 1u < p.n));
        let q2 = select(z, vec4<f32>(b4[(bbase + (j0 + 2u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 2u < p.n));
        let q3 = select(z, vec4<f32>(b4[(bbase + (j0 + 3u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 3u < p.n));
        let q4 = select(z, vec4<f32>(b4[(bbase + (j0 + 4u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 4u < p.n));
        let q5 = select(z, vec4<f32>(b4[(bbase + (j0 + 5u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 5u < p.n));
        let q6 = select(z, vec4<f32>(b4[(bbase + (j0 + 6u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 6u < p.n));
        let q7 = select(z, vec4<f32>(b4[(bbase + (j0 + 7u) * p.ldb + k) / 4u]),
            km & vec4<bool>(j0 + 7u < p.n));
        t[0] = vec4<f32>(q0.x, q1.x, q2.x, q3.x);
        t[1] = vec4<f32>(q4.x, q5.x, q6.x, q7.x);
        t[2] = vec4<f32>(q0.y, q1.y, q2.y, q3.y);
        t[3] = vec4<f32>(q4.y, q5.y, q6.y, q7.y);
        t[4] = vec4<f32>(q0.z, q1.z, q2.z, q3.z);
        t[5] = vec4<f32>(q4.z, q5.z, q6.z, q7.z);
        t[6] = vec4<f32>(q0.w, q1.w, q2.w, q3.w);
        t[7] = vec4<f32>(q4.w, q5.w, q6.w, q7.w);
    } else {
        t[0] = select(z, vec4<f32>(b4[(bbase + (k + 0u) * p.ldb + j0 + 0u) / 4u]),
            k + 0u < p.k && j0 + 0u < p.n);
        t[1] = select(z, vec4<f32>(b4[(bbase + (k + 0u) * p.ldb + j0 + 4u) / 4u]),
            k + 0u < p.k && j0 + 4u < p.n);
        t[2] = select(z, vec4<f32>(b4[(bbase + (k + 1u) * p.ldb + j0 + 0u) / 4u]),
            k + 1u < p.k && j0 + 0u < p.n);
        t[3] = select(z, vec4<f32>(b4[(bbase + (k + 1u) * p.ldb + j0 + 4u) / 4u]),
            k + 1u < p.k && j0 + 4u < p.n);
        t[4] = select(z, vec4<f32>(b4[(bbase + (k + 2u) * p.ldb + j0 + 0u) / 4u]),
            k + 2u < p.k && j0 + 0u < p.n);
        t[5] = select(z, vec4<f32>(b4[(bbase + (k + 2u) * p.ldb + j0 + 4u) / 4u]),
            k + 2u < p.k && j0 + 4u < p.n);
        t[6] = select(z, vec4<f32>(b4[(bbase + (k + 3u) * p.ldb + j0 + 0u) / 4u]),
            k + 3u < p.k && j0 + 0u < p.n);
        t[7] = select(z, vec4<f32>(b4[(bbase + (k + 3u) * p.ldb + j0 + 4u) / 4u]),
            k + 3u < p.k && j0 + 4u < p.n);
    }
    return t;
}

fn fma_tile(acc: ptr<function, array<vec4<f32>, 32>>, ak: array<vec4<f32>, 16>, bk: array<vec4<f32>, 8>) {
    (*acc)[0] += ak[0].x * bk[0]; (*acc)[1] += ak[0].x * bk[1];
    (*acc)[2] += ak[0].y * bk[0]; (*acc)[3] += ak[0].y * bk[1];
    (*acc)[4] += ak[0].z * bk[0]; (*acc)[5] += ak[0].z * bk[1];
    (*acc)[6] += ak[0].w * bk[0]; (*acc)[7] += ak[0].w * bk[1];
    (*acc)[8] += ak[1].x * bk[0]; (*acc)[9] += ak[1].x * bk[1];
    (*acc)[10] += ak[1].y * bk[0]; (*acc)[11] += ak[1].y * bk[1];
    (*acc)[12] += ak[1].z * bk[0]; (*acc)[13] += ak[1].z * bk[1];
    (*acc)[14] += ak[1].w * bk[0]; (*acc)[15] += ak[1].w * bk[1];
    (*acc)[16] += ak[2].x * bk[0]; (*acc)[17] += ak[2].x * bk[1];
    (*acc)[18] += ak[2].y * bk[0]; (*acc)[19] += ak[2].y * bk[1];
    (*acc)[20] += ak[2].z * bk[0]; (*acc)[21] += ak[2].z * bk[1];
    (*acc)[22] += ak[2].w * bk[0]; (*acc)[23] += ak[2].w * bk[1];
    (*acc)[24] += ak[3].x * bk[0]; (*acc)[25] += ak[3].x * bk[1];
    (*acc)[26] += ak[3].y * bk[0]; (*acc)[27] += ak[3].y * bk[1];
    (*acc)[28] += ak[3].z * bk[0]; (*acc)[29] += ak[3].z * bk[1];
    (*acc)[30] += ak[3].w * bk[0]; (*acc)[31] += ak[3].w * bk[1];
    (*acc)[0] += ak[4].x * bk[2]; (*acc)[1] += ak[4].x * bk[3];
    (*acc)[2] += ak[4].y * bk[2]; (*acc)[3] += ak[4].y * bk[3];
    (*acc)[4] += ak[4].z * bk[2]; (*acc)[5] += ak[4].z * bk[3];
    (*acc)[6] += ak[4].w * bk[2]; (*acc)[7] += ak[4].w * bk[3];
    (*acc)[8] += ak[5].x * bk[2]; (*acc)[9] += ak[5].x * bk[3];
    (*acc)[10] += ak[5].y * bk[2]; (*acc)[11] += ak[5].y * bk[3];
    (*acc)[12] += ak[5].z * bk[2]; (*acc)[13] += ak[5].z * bk[3];
    (*acc)[14] += ak[5].w * bk[2]; (*acc)[15] += ak[5].w * bk[3];
    (*acc)[16] += ak[6].x * bk[2]; (*acc)[17] += ak[6].x * bk[3];
    (*acc)[18] += ak[6].y * bk[2]; (*acc)[19] += ak[6].y * bk[3];
    (*acc)[20] += ak[6].z * bk[2]; (*acc)[21] += ak[6].z * bk[3];
    (*acc)[22] += ak[6].w * bk[2]; (*acc)[23] += ak[6].w * bk[3];
    (*acc)[24] += ak[7].x * bk[2]; (*acc)[25] += ak[7].x * bk[3];
    (*acc)[26] += ak[7].y * bk[2]; (*acc)[27] += ak[7].y * bk[3];
    (*acc)[28] += ak[7].z * bk[2]; (*acc)[29] += ak[7].z * bk[3];
    (*acc)[30] += ak[7].w * bk[2]; (*acc)[31] += ak[7].w * bk[3];
    (*acc)[0] += ak[8].x * bk[4]; (*acc)[1] += ak[8].x * bk[5];
    (*acc)[2] += ak[8].y * bk[4]; (*acc)[3] += ak[8].y * bk[5];
    (*acc)[4] += ak[8].z * bk[4]; (*acc)[5] += ak[8].z * bk[5];
    (*acc)[6] += ak[8].w * bk[4]; (*acc)[7] += ak[8].w * bk[5];
    (*acc)[8] += ak[9].x * bk[4]; (*acc)[9] += ak[9].x * bk[5];
    (*acc)[10] += ak[9].y * bk[4]; (*acc)[11] += ak[9].y * bk[5];
    (*acc)[12] += ak[9].z * bk[4]; (*acc)[13] += ak[9].z * bk[5];
    (*acc)[14] += ak[9].w * bk[4]; (*acc)[15] += ak[9].w * bk[5];
    (*acc)[16] += ak[10].x * bk[4]; (*acc)[17] += ak[10].x * bk[5];
    (*acc)[18] += ak[10].y * bk[4]; (*acc)[19] += ak[10].y * bk[5];
    (*acc)[20] += ak[10].z * bk[4]; (*acc)[21] += ak[10].z * bk[5];
    (*acc)[22] += ak[10].w * bk[4]; (*acc)[23] += ak[10].w * bk[5];
    (*acc)[24] += ak[11].x * bk[4]; (*acc)[25] += ak[11].x * bk[5];
    (*acc)[26] += ak[11].y * bk[4]; (*acc)[27] += ak[11].y * bk[5];
    (*acc)[28] += ak[11].z * bk[4]; (*acc)[29] += ak[11].z * bk[5];
    (*acc)[30] += ak[11].w * bk[4]; (*acc)[31] += ak[11].w * bk[5];
    (*acc)[0] += ak[12].x * bk[6]; (*acc)[1] += ak[12].x * bk[7];
    (*acc)[2] += ak[12].y * bk[6]; (*acc)[3] += ak[12].y * bk[7];
    (*acc)[4] += ak[12].z * bk[6]; (*acc)[5] += ak[12].z * bk[7];
    (*acc)[6] += ak[12].w * bk[6]; (*acc)[7] += ak[12].w * bk[7];
    (*acc)[8] += ak[13].x * bk[6]; (*acc)[9] += ak[13].x * bk[7];
    (*acc)[10] += ak[13].y * bk[6]; (*acc)[11] += ak[13].y * bk[7];
    (*acc)[12] += ak[13].z * bk[6]; (*acc)[13] += ak[13].z * bk[7];
    (*acc)[14] += ak[13].w * bk[6]; (*acc)[15] += ak[13].w * bk[7];
    (*acc)[16] += ak[14].x * bk[6]; (*acc)[17] += ak[14].x * bk[7];
    (*acc)[18] += ak[14].y * bk[6]; (*acc)[19] += ak[14].y * bk[7];
    (*acc)[20] += ak[14].z * bk[6]; (*acc)[21] += ak[14].z * bk[7];
    (*acc)[22] += ak[14].w * bk[6]; (*acc)[23] += ak[14].w * bk[7];
    (*acc)[24] += ak[15].x * bk[6]; (*acc)[25] += ak[15].x * bk[7];
    (*acc)[26] += ak[15].y * bk[6]; (*acc)[27] += ak[15].y * bk[7];
    (*acc)[28] += ak[15].z * bk[6]; (*acc)[29] += ak[15].z * bk[7];
    (*acc)[30] += ak[15].w * bk[6]; (*acc)[31] += ak[15].w * bk[7];
}

fn store_tile(bi: u32, i0: u32, j0: u32, acc: array<vec4<f32>, 32>) {
    store_c(bi, i0 + 0u, j0 + 0u, acc[0].x);
    store_c(bi, i0 + 0u, j0 + 1u, acc[0].y);
    store_c(bi, i0 + 0u, j0 + 2u, acc[0].z);
    store_c(bi, i0 + 0u, j0 + 3u, acc[0].w);
    store_c(bi, i0 + 0u, j0 + 4u, acc[1].x);
    store_c(bi, i0 + 0u, j0 + 5u, acc[1].y);
    store_c(bi, i0 + 0u, j0 + 6u, acc[1].z);
    store_c(bi, i0 + 0u, j0 + 7u, acc[1].w);
    store_c(bi, i0 + 1u, j0 + 0u, acc[2].x);
    store_c(bi, i0 + 1u, j0 + 1u, acc[2].y);
    store_c(bi, i0 + 1u, j0 + 2u, acc[2].z);
    store_c(bi, i0 + 1u, j0 + 3u, acc[2].w);
    store_c(bi, i0 + 1u, j0 + 4u, acc[3].x);
    store_c(bi, i0 + 1u, j0 + 5u, acc[3].y);
    store_c(bi, i0 + 1u, j0 + 6u, acc[3].z);
    store_c(bi, i0 + 1u, j0 + 7u, acc[3].w);
    store_c(bi, i0 + 2u, j0 + 0u, acc[4].x);
    store_c(bi, i0 + 2u, j0 + 1u, acc[4].y);
    store_c(bi, i0 + 2u, j0 + 2u, acc[4].z);
    store_c(bi, i0 + 2u, j0 + 3u, acc[4].w);
    store_c(bi, i0 + 2u, j0 + 4u, acc[5].x);
    store_c(bi, i0 + 2u, j0 + 5u, acc[5].y);
    store_c(bi, i0 + 2u, j0 + 6u, acc[5].z);
    store_c(bi, i0 + 2u, j0 + 7u, acc[5].w);
    store_c(bi, i0 + 3u, j0 + 0u, acc[6].x);
    store_c(bi, i0 + 3u, j0 + 1u, acc[6].y);
    store_c(bi, i0 + 3u, j0 + 2u, acc[6].z);
    store_c(bi, i0 + 3u, j0 + 3u, acc[6].w);
    store_c(bi, i0 + 3u, j0 + 4u, acc[7].x);
    store_c(bi, i0 + 3u, j0 + 5u, acc[7].y);
    store_c(bi, i0 + 3u, j0 + 6u, acc[7].z);
    store_c(bi, i0 + 3u, j0 + 7u, acc[7].w);
    store_c(bi, i0 + 4u, j0 + 0u, acc[8].x);
    store_c(bi, i0 + 4u, j0 + 1u, acc[8].y);
    store_c(bi, i0 + 4u, j0 + 2u, acc[8].z);
    store_c(bi, i0 + 4u, j0 + 3u, acc[8].w);
    store_c(bi, i0 + 4u, j0 + 4u, acc[9].x);
    store_c(bi, i0 + 4u, j0 + 5u, acc[9].y);
    store_c(bi, i0 + 4u, j0 + 6u, acc[9].z);
    store_c(bi, i0 + 4u, j0 + 7u, acc[9].w);
    store_c(bi, i0 + 5u, j0 + 0u, acc[10].x);
    store_c(bi, i0 + 5u, j0 + 1u, acc[10].y);
    store_c(bi, i0 + 5u, j0 + 2u, acc[10].z);
    store_c(bi, i0 + 5u, j0 + 3u, acc[10].w);
    store_c(bi, i0 + 5u, j0 + 4u, acc[11].x);
    store_c(bi, i0 + 5u, j0 + 5u, acc[11].y);
    store_c(bi, i0 + 5u, j0 + 6u, acc[11].z);
    store_c(bi, i0 + 5u, j0 + 7u, acc[11].w);
    store_c(bi, i0 + 6u, j0 + 0u, acc[12].x);
    store_c(bi, i0 + 6u, j0 + 1u, acc[12].y);
    store_c(bi, i0 + 6u, j0 + 2u, acc[12].z);
    store_c(bi, i0 + 6u, j0 + 3u, acc[12].w);
    store_c(bi, i0 + 6u, j0 + 4u, acc[13].x);
    store_c(bi, i0 + 6u, j0 + 5u, acc[13].y);
    store_c(bi, i0 + 6u, j0 + 6u, acc[13].z);
    store_c(bi, i0 + 6u, j0 + 7u, acc[13].w);
    store_c(bi, i0 + 7u, j0 + 0u, acc[14].x);
    store_c(bi, i0 + 7u, j0 + 1u, acc[14].y);
    store_c(bi, i0 + 7u, j0 + 2u, acc[14].z);
    store_c(bi, i0 + 7u, j0 + 3u, acc[14].w);
    store_c(bi, i0 + 7u, j0 + 4u, acc[15].x);
    store_c(bi, i0 + 7u, j0 + 5u, acc[15].y);
    store_c(bi, i0 + 7u, j0 + 6u, acc[15].z);
    store_c(bi, i0 + 7u, j0 + 7u, acc[15].w);
    store_c(bi, i0 + 8u, j0 + 0u, acc[16].x);
    store_c(bi, i0 + 8u, j0 + 1u, acc[16].y);
    store_c(bi, i0 + 8u, j0 + 2u, acc[16].z);
    store_c(bi, i0 + 8u, j0 + 3u, acc[16].w);
    store_c(bi, i0 + 8u, j0 + 4u, acc[17].x);
    store_c(bi, i0 + 8u, j0 + 5u, acc[17].y);
    store_c(bi, i0 + 8u, j0 + 6u, acc[17].z);
    store_c(bi, i0 + 8u, j0 + 7u, acc[17].w);
    store_c(bi, i0 + 9u, j0 + 0u, acc[18].x);
    store_c(bi, i0 + 9u, j0 + 1u, acc[18].y);
    store_c(bi, i0 + 9u, j0 + 2u, acc[18].z);
    store_c(bi, i0 + 9u, j0 + 3u, acc[18].w);
    store_c(bi, i0 + 9u, j0 + 4u, acc[19].x);
    store_c(bi, i0 + 9u, j0 + 5u, acc[19].y);
    store_c(bi, i0 + 9u, j0 + 6u, acc[19].z);
    store_c(bi, i0 + 9u, j0 + 7u, acc[19].w);
    store_c(bi, i0 + 10u, j0 + 0u, acc[20].x);
    store_c(bi, i0 + 10u, j0 + 1u, acc[20].y);
    store_c(bi, i0 + 10u, j0 + 2u, acc[20].z);
    store_c(bi, i0 + 10u, j0 + 3u, acc[20].w);
    store_c(bi, i0 + 10u, j0 + 4u, acc[21].x);
    store_c(bi, i0 + 10u, j0 + 5u, acc[21].y);
    store_c(bi, i0 + 10u, j0 + 6u, acc[21].z);
    store_c(bi, i0 + 10u, j0 + 7u, acc[21].w);
    store_c(bi, i0 + 11u, j0 + 0u, acc[22].x);
    store_c(bi, i0 + 11u, j0 + 1u, acc[22].y);
    store_c(bi, i0 + 11u, j0 + 2u, acc[22].z);
    store_c(bi, i0 + 11u, j0 + 3u, acc[22].w);
    store_c(bi, i0 + 11u, j0 + 4u, acc[23].x);
    store_c(bi, i0 + 11u, j0 + 5u, acc[23].y);
    store_c(bi, i0 + 11u, j0 + 6u, acc[23].z);
    store_c(bi, i0 + 11u, j0 + 7u, acc[23].w);
    store_c(bi, i0 + 12u, j0 + 0u, acc[24].x);
    store_c(bi, i0 + 12u, j0 + 1u, acc[24].y);
    store_c(bi, i0 + 12u, j0 + 2u, acc[24].z);
    store_c(bi, i0 + 12u, j0 + 3u, acc[24].w);
    store_c(bi, i0 + 12u, j0 + 4u, acc[25].x);
    store_c(bi, i0 + 12u, j0 + 5u, acc[25].y);
    store_c(bi, i0 + 12u, j0 + 6u, acc[25].z);
    store_c(bi, i0 + 12u, j0 + 7u, acc[25].w);
    store_c(bi, i0 + 13u, j0 + 0u, acc[26].x);
    store_c(bi, i0 + 13u, j0 + 1u, acc[26].y);
    store_c(bi, i0 + 13u, j0 + 2u, acc[26].z);
    store_c(bi, i0 + 13u, j0 + 3u, acc[26].w);
    store_c(bi, i0 + 13u, j0 + 4u, acc[27].x);
    store_c(bi, i0 + 13u, j0 + 5u, acc[27].y);
    store_c(bi, i0 + 13u, j0 + 6u, acc[27].z);
    store_c(bi, i0 + 13u, j0 + 7u, acc[27].w);
    store_c(bi, i0 + 14u, j0 + 0u, acc[28].x);
    store_c(bi, i0 + 14u, j0 + 1u, acc[28].y);
    store_c(bi, i0 + 14u, j0 + 2u, acc[28].z);
    store_c(bi, i0 + 14u, j0 + 3u, acc[28].w);
    store_c(bi, i0 + 14u, j0 + 4u, acc[29].x);
    store_c(bi, i0 + 14u, j0 + 5u, acc[29].y);
    store_c(bi, i0 + 14u, j0 + 6u, acc[29].z);
    store_c(bi, i0 + 14u, j0 + 7u, acc[29].w);
    store_c(bi, i0 + 15u, j0 + 0u, acc[30].x);
    store_c(bi, i0 + 15u, j0 + 1u, acc[30].y);
    store_c(bi, i0 + 15u, j0 + 2u, acc[30].z);
    store_c(bi, i0 + 15u, j0 + 3u, acc[30].w);
    store_c(bi, i0 + 15u, j0 + 4u, acc[31].x);
    store_c(bi, i0 + 15u, j0 + 5u, acc[31].y);
    store_c(bi, i0 + 15u, j0 + 6u, acc[31].z);
    store_c(bi, i0 + 15u, j0 + 7u, acc[31].w);
}

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
fn a_tile_scalar_s(abase: u32, i0: u32, k: u32) -> array<vec4<f32>, 8> {
    var t: array<vec4<f32>, 8>;
    t[0] = vec4<f32>(load_a(abase, i0 + 0u, k + 0u),
        load_a(abase, i0 + 1u, k + 0u),
        load_a(abase, i0 + 2u, k + 0u),
        load_a(abase, i0 + 3u, k + 0u));
    t[1] = vec4<f32>(load_a(abase, i0 + 4u, k + 0u),
        load_a(abase, i0 + 5u, k + 0u),
        load_a(abase, i0 + 6u, k + 0u),
        load_a(abase, i0 + 7u, k + 0u));
    t[2] = vec4<f32>(load_a(abase, i0 + 0u, k + 1u),
        load_a(abase, i0 + 1u, k + 1u),
        load_a(abase, i0 + 2u, k + 1u),
        load_a(abase, i0 + 3u, k + 1u));
    t[3] = vec4<f32>(load_a(abase, i0 + 4u, k + 1u),
        load_a(abase, i0 + 5u, k + 1u),
        load_a(abase, i0 + 6u, k + 1u),
        load_a(abase, i0 + 7u, k + 1u));
    t[4] = vec4<f32>(load_a(abase, i0 + 0u, k + 2u),
        load_a(abase, i0 + 1u, k + 2u),
        load_a(abase, i0 + 2u, k + 2u),
        load_a(abase, i0 + 3u, k + 2u));
    t[5] = vec4<f32>(load_a(abase, i0 + 4u, k + 2u),
        load_a(abase, i0 + 5u, k + 2u),
        load_a(abase, i0 + 6u, k + 2u),
        load_a(abase, i0 + 7u, k + 2u));
    t[6] = vec4<f32>(load_a(abase, i0 + 0u, k + 3u),
        load_a(abase, i0 + 1u, k + 3u),
        load_a(abase, i0 + 2u, k + 3u),
        load_a(abase, i0 + 3u, k + 3u));
    t[7] = vec4<f32>(load_a(abase, i0 + 4u, k + 3u),
        load_a(abase, i0 + 5u, k + 3u),
        load_a(abase, i0 + 6u, k + 3u),
        load_a(abase, i0 + 7u, k + 3u));
    return t;
}

fn b_tile_scalar_s(bbase: u32, j0: u32, k: u32) -> array<vec4<f32>, 8> {
    var t: array<vec4<f32>, 8>;
    t[0] = vec4<f32>(load_b(bbase, k + 0u, j0 + 0u),
        load_b(bbase, k + 0u, j0 + 1u),
        load_b(bbase, k + 0u, j0 + 2u),
        load_b(bbase, k + 0u, j0 + 3u));
    t[1] = vec4<f32>(load_b(bbase, k + 0u, j0 + 4u),
        load_b(bbase, k + 0u, j0 + 5u),
        load_b(bbase, k + 0u, j0 + 6u),
        load_b(bbase, k + 0u, j0 + 7u));
    t[2] = vec4<f32>(load_b(bbase, k + 1u, j0 + 0u),
        load_b(bbase, k + 1u, j0 + 1u),
        load_b(bbase, k + 1u, j0 + 2u),
        load_b(bbase, k + 1u, j0 + 3u));
    t[3] = vec4<f32>(load_b(bbase, k + 1u, j0 + 4u),
        load_b(bbase, k + 1u, j0 + 5u),
        load_b(bbase, k + 1u, j0 + 6u),
        load_b(bbase, k + 1u, j0 + 7u));
    t[4] = vec4<f32>(load_b(bbase, k + 2u, j0 + 0u),
        load_b(bbase, k + 2u, j0 + 1u),
        load_b(bbase, k + 2u, j0 + 2u),
        load_b(bbase, k + 2u, j0 + 3u));
    t[5] = vec4<f32>(load_b(bbase, k + 2u, j0 + 4u),
        load_b(bbase, k + 2u, j0 + 5u),
        load_b(bbase, k + 2u, j0 + 6u),
        load_b(bbase, k + 2u, j0 + 7u));
    t[6] = vec4<f32>(load_b(bbase, k + 3u, j0 + 0u),
        load_b(bbase, k + 3u, j0 + 1u),
        load_b(bbase, k + 3u, j0 + 2u),
        load_b(bbase, k + 3u, j0 + 3u));
    t[7] = vec4<f32>(load_b(bbase, k + 3u, j0 + 4u),
        load_b(bbase, k + 3u, j0 + 5u),
        load_b(bbase, k + 3u, j0 + 6u),
        load_b(bbase, k + 3u, j0 + 7u));
    return t;
}

fn fma_tile_s(acc: ptr<function, array<vec4<f32>, 16>>, ak: array<vec4<f32>, 8>, bk: array<vec4<f32>, 8>) {
    (*acc)[0] += ak[0].x * bk[0]; (*acc)[1] += ak[0].x * bk[1];
    (*acc)[2] += ak[0].y * bk[0]; (*acc)[3] += ak[0].y * bk[1];
    (*acc)[4] += ak[0].z * bk[0]; (*acc)[5] += ak[0].z * bk[1];
    (*acc)[6] += ak[0].w * bk[0]; (*acc)[7] += ak[0].w * bk[1];
    (*acc)[8] += ak[1].x * bk[0]; (*acc)[9] += ak[1].x * bk[1];
    (*acc)[10] += ak[1].y * bk[0]; (*acc)[11] += ak[1].y * bk[1];
    (*acc)[12] += ak[1].z * bk[0]; (*acc)[13] += ak[1].z * bk[1];
    (*acc)[14] += ak[1].w * bk[0]; (*acc)[15] += ak[1].w * bk[1];
    (*acc)[0] += ak[2].x * bk[2]; (*acc)[1] += ak[2].x * bk[3];
    (*acc)[2] += ak[2].y * bk[2]; (*acc)[3] += ak[2].y * bk[3];
    (*acc)[4] += ak[2].z * bk[2]; (*acc)[5] += ak[2].z * bk[3];
    (*acc)[6] += ak[2].w * bk[2]; (*acc)[7] += ak[2].w * bk[3];
    (*acc)[8] += ak[3].x * bk[2]; (*acc)[9] += ak[3].x * bk[3];
    (*acc)[10] += ak[3].y * bk[2]; (*acc)[11] += ak[3].y * bk[3];
    (*acc)[12] += ak[3].z * bk[2]; (*acc)[13] += ak[3].z * bk[3];
    (*acc)[14] += ak[3].w * bk[2]; (*acc)[15] += ak[3].w * bk[3];
    (*acc)[0] += ak[4].x * bk[4]; (*acc)[1] += ak[4].x * bk[5];
    (*acc)[2] += ak[4].y * bk[4]; (*acc)[3] += ak[4].y * bk[5];
    (*acc)[4] += ak[4].z * bk[4]; (*acc)[5] += ak[4].z * bk[5];
    (*acc)[6] += ak[4].w * bk[4]; (*acc)[7] += ak[4].w * bk[5];
    (*acc)[8] += ak[5].x * bk[4]; (*acc)[9] += ak[5].x * bk[5];
    (*acc)[10] += ak[5].y * bk[4]; (*acc)[11] += ak[5].y * bk[5];
    (*acc)[12] += ak[5].z * bk[4]; (*acc)[13] += ak[5].z * bk[5];
    (*acc)[14] += ak[5].w * bk[4]; (*acc)[15] += ak[5].w * bk[5];
    (*acc)[0] += ak[6].x * bk[6]; (*acc)[1] += ak[6].x * bk[7];
    (*acc)[2] += ak[6].y * bk[6]; (*acc)[3] += ak[6].y * bk[7];
    (*acc)[4] += ak[6].z * bk[6]; (*acc)[5] += ak[6].z * bk[7];
    (*acc)[6] += ak[6].w * bk[6]; (*acc)[7] += ak[6].w * bk[7];
    (*acc)[8] += ak[7].x * bk[6]; (*acc)[9] += ak[7].x * bk[7];
    (*acc)[10] += ak[7].y * bk[6]; (*acc)[11] += ak[7].y * bk[7];
    (*acc)[12] += ak[7].z * bk[6]; (*acc)[13] += ak[7].z * bk[7];
    (*acc)[14] += ak[7].w * bk[6]; (*acc)[15] += ak[7].w * bk[7];
}

fn store_tile_s(bi: u32, i0: u32, j0: u32, acc: array<vec4<f32>, 16>) {
    store_c(bi, i0 + 0u, j0 + 0u, acc[0].x);
    store_c(bi, i0 + 0u, j0 + 1u, acc[0].y);
    store_c(bi, i0 + 0u, j0 + 2u, acc[0].z);
    store_c(bi, i0 + 0u, j0 + 3u, acc[0].w);
    store_c(bi, i0 + 0u, j0 + 4u, acc[1].x);
    store_c(bi, i0 + 0u, j0 + 5u, acc[1].y);
    store_c(bi, i0 + 0u, j0 + 6u, acc[1].z);
    store_c(bi, i0 + 0u, j0 + 7u, acc[1].w);
    store_c(bi, i0 + 1u, j0 + 0u, acc[2].x);
    store_c(bi, i0 + 1u, j0 + 1u, acc[2].y);
    store_c(bi, i0 + 1u, j0 + 2u, acc[2].z);
    store_c(bi, i0 + 1u, j0 + 3u, acc[2].w);
    store_c(bi, i0 + 1u, j0 + 4u, acc[3].x);
    store_c(bi, i0 + 1u, j0 + 5u, acc[3].y);
    store_c(bi, i0 + 1u, j0 + 6u, acc[3].z);
    store_c(bi, i0 + 1u, j0 + 7u, acc[3].w);
    store_c(bi, i0 + 2u, j0 + 0u, acc[4].x);
    store_c(bi, i0 + 2u, j0 + 1u, acc[4].y);
    store_c(bi, i0 + 2u, j0 + 2u, acc[4].z);
    store_c(bi, i0 + 2u, j0 + 3u, acc[4].w);
    store_c(bi, i0 + 2u, j0 + 4u, acc[5].x);
    store_c(bi, i0 + 2u, j0 + 5u, acc[5].y);
    store_c(bi, i0 + 2u, j0 + 6u, acc[5].z);
    store_c(bi, i0 + 2u, j0 + 7u, acc[5].w);
    store_c(bi, i0 + 3u, j0 + 0u, acc[6].x);
    store_c(bi, i0 + 3u, j0 + 1u, acc[6].y);
    store_c(bi, i0 + 3u, j0 + 2u, acc[6].z);
    store_c(bi, i0 + 3u, j0 + 3u, acc[6].w);
    store_c(bi, i0 + 3u, j0 + 4u, acc[7].x);
    store_c(bi, i0 + 3u, j0 + 5u, acc[7].y);
    store_c(bi, i0 + 3u, j0 + 6u, acc[7].z);
    store_c(bi, i0 + 3u, j0 + 7u, acc[7].w);
    store_c(bi, i0 + 4u, j0 + 0u, acc[8].x);
    store_c(bi, i0 + 4u, j0 + 1u, acc[8].y);
    store_c(bi, i0 + 4u, j0 + 2u, acc[8].z);
    store_c(bi, i0 + 4u, j0 + 3u, acc[8].w);
    store_c(bi, i0 + 4u, j0 + 4u, acc[9].x);
    store_c(bi, i0 + 4u, j0 + 5u, acc[9].y);
    store_c(bi, i0 + 4u, j0 + 6u, acc[9].z);
    store_c(bi, i0 + 4u, j0 + 7u, acc[9].w);
    store_c(bi, i0 + 5u, j0 + 0u, acc[10].x);
    store_c(bi, i0 + 5u, j0 + 1u, acc[10].y);
    store_c(bi, i0 + 5u, j0 + 2u, acc[10].z);
    store_c(bi, i0 + 5u, j0 + 3u, acc[10].w);
    store_c(bi, i0 + 5u, j0 + 4u, acc[11].x);
    store_c(bi, i0 + 5u, j0 + 5u, acc[11].y);
    store_c(bi, i0 + 5u, j0 + 6u, acc[11].z);
    store_c(bi, i0 + 5u, j0 + 7u, acc[11].w);
    store_c(bi, i0 + 6u, j0 + 0u, acc[12].x);
    store_c(bi, i0 + 6u, j0 + 1u, acc[12].y);
    store_c(bi, i0 + 6u, j0 + 2u, acc[12].z);
    store_c(bi, i0 + 6u, j0 + 3u, acc[12].w);
    store_c(bi, i0 + 6u, j0 + 4u, acc[13].x);
    store_c(bi, i0 + 6u, j0 + 5u, acc[13].y);
    store_c(bi, i0 + 6u, j0 + 6u, acc[13].z);
    store_c(bi, i0 + 6u, j0 + 7u, acc[13].w);
    store_c(bi, i0 + 7u, j0 + 0u, acc[14].x);
    store_c(bi, i0 + 7u, j0 + 1u, acc[14].y);
    store_c(bi, i0 + 7u, j0 + 2u, acc[14].z);
    store_c(bi, i0 + 7u, j0 + 3u, acc[14].w);
    store_c(bi, i0 + 7u, j0 + 4u, acc[15].x);
    store_c(bi, i0 + 7u, j0 + 5u, acc[15].y);
    store_c(bi, i0 + 7u, j0 + 6u, acc[15].z);
    store_c(bi, i0 + 7u, j0 + 7u, acc[15].w);
}

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
