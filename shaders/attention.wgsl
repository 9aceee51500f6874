// attention.wgsl — scaled dot-product attention, forward, probabilities and backward (grouped-query heads,
// causal with a query offset, key-padding mask, runtime KV length).
//
// Maths (query row (b, h, i), kv head kh = h / (Hq / Hkv), keys j):
//   visible(i, j) = j < min(kv_len, S) ∧ (¬causal ∨ j ≤ q_offset + i) ∧ (¬mask ∨ mask[b, j] ≠ 0)
//   s_ij = scale·q_i·k_j,  P_ij = exp(s_ij − lse_i) over visible j (0 elsewhere), lse_i = log Σ_vis exp(s_ij)
//   attention_forward:   o_i = Σ_j P_ij v_j            (zeros for a row that sees no key)
//   attention_weights:   P [B, Hq, T, S]
//   attention_row_stats: stats_i = (lse_i, Dsum_i), Dsum_i = Σ_j P_ij·(do_i·v_j)  (= do_i·o_i)
//   attention_grad_q:    dq_i = scale·Σ_j dS_ij k_j,  dS_ij = P_ij·(do_i·v_j − Dsum_i)
//   attention_grad_kv:   dk_j = scale·Σ_{h in group, i} dS_ij q_i   (GRAD_V = false)
//                        dv_j = Σ_{h in group, i} P_ij do_i         (GRAD_V = true)
//
// Bindings (group 0), shapes: q, o, do, dq [B, Hq, T, D]; k, v, dk, dv [B, Hkv, S, D]; stats [B·Hq·T, 2] f32.
//   0 p: Params (uniform)  b, hq, hkv, t, s, d, scale, causal (0/1), mask_kind (0 none, 1 f32, 2 f16),
//                          q_offset, kv_len (runtime scalars: a decode step changes them without recompiling)
//   1 q   2 k   3 v   4 mk [B, S] as u32 words (the mask, f32 or packed f16; when there is no mask the
//   dispatch binds k here and the kernel never reads it)
//   attention_forward:          5 o (rw)
//   attention_weights:          5 o = P [B, Hq, T, S] (rw)   (v is bound but unused)
//   attention_row_stats:        5 d_o (read)  6 stats_w (rw, scratch)
//   attention_grad_q / _kv:     5 d_o (read)  6 stats (read)  7 grad (rw: dq, or dk / dv)
//
// Overrides: WG (workgroup size, power of two ≤ 256, default 64); GRAD_V (attention_grad_kv: dv instead of dk);
//   D4 (attention_forward_rows: D / 4). Each invocation of the other entries owns output dims d = lid + c·WG,
//   c < MAXC, so D ≤ MAXC·WG (checked by the lowering).
// Entries for the forward: attention_forward_rows when D is a multiple of 4 and ≤ 64 (prefill and decode),
//   attention_forward otherwise.
// Dispatch: attention_forward_rows: one invocation per RQ query rows (8; 4 when a kv head has at most 4 rows,
//   decode) of one kv head (the g·T rows of its
//   g = Hq/Hkv query heads, in q's order), B·Hkv·⌈g·T/RQ⌉ invocations in workgroups of WG = 16 (grid_1d);
//   see its section for why. The others: one workgroup per query row (B·Hq·T rows, grid_1d) for forward,
//   weights, row_stats and grad_q;
//   one workgroup per key row (B·Hkv·S rows) for grad_kv. Grids never depend on q_offset or kv_len: the
//   kernels loop up to kv_len inside. Within a workgroup the keys (or the (head, query) pairs of grad_kv)
//   are spread over the invocations in blocks of WG, so decode (T = 1, one row per head) still uses the
//   whole workgroup.
// Numerics: f32 throughout. attention_forward is a one-pass online softmax (flash style): per block of WG keys the
//   scores go to workgroup memory, every invocation takes the block max (same order, same value everywhere),
//   rescales its accumulators by exp(m_old − m_new) and adds p_j·v_j for its dims. The backward recomputes P
//   from (lse, Dsum) of attention_row_stats (one scratch buffer per op) rather than storing P, and sums
//   dk/dv over the query heads of the group and the query rows in a fixed order: deterministic, no atomics.
//   Invisible scores are −3e38 (finite), so masked keys give exactly 0.
// CPU reference: reference::attention::{attention_forward, attention_probs, attention_backward}.

struct Params {
    b: u32,
    hq: u32,
    hkv: u32,
    t: u32,
    s: u32,
    d: u32,
    scale: f32,
    causal: u32,
    mask_kind: u32,
    q_offset: u32,
    kv_len: u32,
}

override WG: u32 = 64u;
override GRAD_V: bool = false;
// attention_forward_rows: head_dim / 4 (1..=16); the unrolled steps past it fold away per pipeline.
override D4: u32 = 16u;

const MAXC: u32 = 8u;
const NEG: f32 = -3.0e38;
// attention_forward_rows: query rows per invocation, 8 or 4 (decode, where a kv head serves few rows: the
// text of rows 4..7 then folds away, and the pipeline compiles in about a third of the time).
override RQ: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<T>;
@group(0) @binding(2) var<storage, read> k: array<T>;
@group(0) @binding(3) var<storage, read> v: array<T>;
@group(0) @binding(4) var<storage, read> mk: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<T>;
@group(0) @binding(5) var<storage, read> d_o: array<T>;
@group(0) @binding(6) var<storage, read_write> stats_w: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<T>;
@group(0) @binding(1) var<storage, read> q4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> k4: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> v4: array<vec4<T>>;
@group(0) @binding(5) var<storage, read_write> o4: array<vec4<T>>;

var<workgroup> sh_a: array<f32, 256>;
var<workgroup> sh_b: array<f32, 256>;
var<workgroup> sh_row: array<u32, 256>;
var<workgroup> sh_n: u32;

// Keys j < n_visible(i) pass the length and causal tests (the mask is checked per key).
fn n_visible(i: u32) -> u32 {
    var n = min(p.kv_len, p.s);
    if (p.causal != 0u) {
        n = min(n, p.q_offset + i + 1u);
    }
    return n;
}

fn key_kept(bb: u32, j: u32) -> bool {
    if (p.mask_kind == 0u) {
        return true;
    }
    let idx = bb * p.s + j;
    if (p.mask_kind == 1u) {
        return bitcast<f32>(mk[idx]) != 0.0;
    }
    let h = unpack2x16float(mk[idx >> 1u]);
    return select(h.x, h.y, (idx & 1u) == 1u) != 0.0;
}

// Σ_d a[ab + d]·b[bb + d] for the q·k and do·v products.
fn dot_qk(qb: u32, kb: u32) -> f32 {
    var acc = 0.0;
    for (var d = 0u; d < p.d; d++) {
        acc += f32(q[qb + d]) * f32(k[kb + d]);
    }
    return acc;
}

fn dot_ov(ob: u32, vb: u32) -> f32 {
    var acc = 0.0;
    for (var d = 0u; d < p.d; d++) {
        acc += f32(d_o[ob + d]) * f32(v[vb + d]);
    }
    return acc;
}

// Base offset of key row j of the kv head serving query head h of batch bb.
fn kv_base(bb: u32, h: u32, j: u32) -> u32 {
    let kh = h / (p.hq / p.hkv);
    return ((bb * p.hkv + kh) * p.s + j) * p.d;
}

@compute @workgroup_size(WG)
fn attention_forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.b * p.hq * p.t) {
        return;
    }
    let i = r % p.t;
    let h = (r / p.t) % p.hq;
    let bb = r / (p.t * p.hq);
    let qb = r * p.d;
    let nv = n_visible(i);
    var m = NEG;
    var l = 0.0;
    var acc: array<f32, MAXC>;
    for (var start = 0u; start < nv; start += WG) {
        let j = start + lid;
        var sc = NEG;
        if (j < nv && key_kept(bb, j)) {
            sc = p.scale * dot_qk(qb, kv_base(bb, h, j));
        }
        sh_a[lid] = sc;
        workgroupBarrier();
        let nb = min(WG, nv - start);
        var mb = NEG;
        for (var jj = 0u; jj < nb; jj++) {
            mb = max(mb, sh_a[jj]);
        }
        let m_new = max(m, mb);
        var pe = 0.0;
        if (sc > -1.0e38) {
            pe = exp(sc - m_new);
        }
        sh_b[lid] = pe;
        workgroupBarrier();
        let alpha = exp(m - m_new);
        for (var c = 0u; c < MAXC; c++) {
            acc[c] *= alpha;
        }
        var lb = 0.0;
        for (var jj = 0u; jj < nb; jj++) {
            let pj = sh_b[jj];
            lb += pj;
            if (pj != 0.0) {
                let vb = kv_base(bb, h, start + jj);
                for (var c = 0u; c < MAXC; c++) {
                    let d = lid + c * WG;
                    if (d < p.d) {
                        acc[c] += pj * f32(v[vb + d]);
                    }
                }
            }
        }
        l = l * alpha + lb;
        m = m_new;
        workgroupBarrier();
    }
    var inv = 0.0;
    if (l > 0.0) {
        inv = 1.0 / l;
    }
    for (var c = 0u; c < MAXC; c++) {
        let d = lid + c * WG;
        if (d < p.d) {
            o[qb + d] = T(acc[c] * inv);
        }
    }
}

// Per-invocation online (max, sum) over the visible keys of row r, combined in a fixed tree:
// returns lse (0 when the row sees no key, which is then never used). Call in uniform control flow.
fn row_lse(lid: u32, r: u32) -> f32 {
    let i = r % p.t;
    let h = (r / p.t) % p.hq;
    let bb = r / (p.t * p.hq);
    let qb = r * p.d;
    let nv = n_visible(i);
    var m = NEG;
    var l = 0.0;
    for (var j = lid; j < nv; j += WG) {
        if (key_kept(bb, j)) {
            let sc = p.scale * dot_qk(qb, kv_base(bb, h, j));
            if (sc > m) {
                l = l * exp(m - sc) + 1.0;
                m = sc;
            } else {
                l += exp(sc - m);
            }
        }
    }
    sh_a[lid] = m;
    sh_b[lid] = l;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let m1 = sh_a[lid];
            let m2 = sh_a[lid + s];
            let mm = max(m1, m2);
            sh_b[lid] = sh_b[lid] * exp(m1 - mm) + sh_b[lid + s] * exp(m2 - mm);
            sh_a[lid] = mm;
        }
        workgroupBarrier();
    }
    let mx = sh_a[0];
    let tot = sh_b[0];
    workgroupBarrier();
    if (tot > 0.0) {
        return mx + log(tot);
    }
    return 0.0;
}

@compute @workgroup_size(WG)
fn attention_weights(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.b * p.hq * p.t) {
        return;
    }
    let lse = row_lse(lid, r);
    let i = r % p.t;
    let h = (r / p.t) % p.hq;
    let bb = r / (p.t * p.hq);
    let nv = n_visible(i);
    for (var j = lid; j < p.s; j += WG) {
        var pr = 0.0;
        if (j < nv && key_kept(bb, j)) {
            pr = exp(p.scale * dot_qk(r * p.d, kv_base(bb, h, j)) - lse);
        }
        o[r * p.s + j] = T(pr);
    }
}

@compute @workgroup_size(WG)
fn attention_row_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.b * p.hq * p.t) {
        return;
    }
    let lse = row_lse(lid, r);
    let i = r % p.t;
    let h = (r / p.t) % p.hq;
    let bb = r / (p.t * p.hq);
    let nv = n_visible(i);
    var ds = 0.0;
    for (var j = lid; j < nv; j += WG) {
        if (key_kept(bb, j)) {
            let kb = kv_base(bb, h, j);
            let pr = exp(p.scale * dot_qk(r * p.d, kb) - lse);
            ds += pr * dot_ov(r * p.d, kb);
        }
    }
    sh_a[lid] = ds;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh_a[lid] += sh_a[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        stats_w[2u * r] = lse;
        stats_w[2u * r + 1u] = sh_a[0];
    }
}

@compute @workgroup_size(WG)
fn attention_grad_q(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.b * p.hq * p.t) {
        return;
    }
    let i = r % p.t;
    let h = (r / p.t) % p.hq;
    let bb = r / (p.t * p.hq);
    let qb = r * p.d;
    let lse = stats[2u * r];
    let dsum = stats[2u * r + 1u];
    let nv = n_visible(i);
    var acc: array<f32, MAXC>;
    for (var start = 0u; start < nv; start += WG) {
        let j = start + lid;
        var dsc = 0.0;
        if (j < nv && key_kept(bb, j)) {
            let kb = kv_base(bb, h, j);
            let pr = exp(p.scale * dot_qk(qb, kb) - lse);
            dsc = pr * (dot_ov(qb, kb) - dsum);
        }
        sh_a[lid] = dsc;
        workgroupBarrier();
        let nb = min(WG, nv - start);
        for (var jj = 0u; jj < nb; jj++) {
            let w = sh_a[jj];
            if (w != 0.0) {
                let kb = kv_base(bb, h, start + jj);
                for (var c = 0u; c < MAXC; c++) {
                    let d = lid + c * WG;
                    if (d < p.d) {
                        acc[c] += w * f32(k[kb + d]);
                    }
                }
            }
        }
        workgroupBarrier();
    }
    for (var c = 0u; c < MAXC; c++) {
        let d = lid + c * WG;
        if (d < p.d) {
            grad[qb + d] = T(p.scale * acc[c]);
        }
    }
}

@compute @workgroup_size(WG)
fn attention_grad_kv(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.b * p.hkv * p.s) {
        return;
    }
    let j = r % p.s;
    let kh = (r / p.s) % p.hkv;
    let bb = r / (p.s * p.hkv);
    let g = p.hq / p.hkv;
    let kb = r * p.d;
    // Query rows that can see key j: i ≥ i0 (causal), in each of the g heads of the group; none if the key
    // is past kv_len or padded. The count goes through workgroup memory so that the block loop (which holds
    // barriers) is provably uniform: the mask read comes from a storage buffer.
    if (lid == 0u) {
        var i0 = 0u;
        if (p.causal != 0u && j > p.q_offset) {
            i0 = j - p.q_offset;
        }
        var n = 0u;
        if (j < min(p.kv_len, p.s) && key_kept(bb, j) && i0 < p.t) {
            n = g * (p.t - i0);
        }
        sh_n = n;
    }
    let npairs = workgroupUniformLoad(&sh_n);
    var i0 = 0u;
    if (p.causal != 0u && j > p.q_offset) {
        i0 = j - p.q_offset;
    }
    let nt = max(p.t - min(i0, p.t), 1u);
    var acc: array<f32, MAXC>;
    for (var start = 0u; start < npairs; start += WG) {
        let pi = start + lid;
        var w = 0.0;
        var qrow = 0u;
        if (pi < npairs) {
            let h = kh * g + pi / nt;
            let i = i0 + pi % nt;
            qrow = (bb * p.hq + h) * p.t + i;
            let pr = exp(p.scale * dot_qk(qrow * p.d, kb) - stats[2u * qrow]);
            if (GRAD_V) {
                w = pr;
            } else {
                w = pr * (dot_ov(qrow * p.d, kb) - stats[2u * qrow + 1u]);
            }
        }
        sh_a[lid] = w;
        sh_row[lid] = qrow;
        workgroupBarrier();
        let nb = min(WG, npairs - start);
        for (var pp = 0u; pp < nb; pp++) {
            let wp = sh_a[pp];
            if (wp != 0.0) {
                let src = sh_row[pp] * p.d;
                for (var c = 0u; c < MAXC; c++) {
                    let d = lid + c * WG;
                    if (d < p.d) {
                        if (GRAD_V) {
                            acc[c] += wp * f32(d_o[src + d]);
                        } else {
                            acc[c] += wp * f32(q[src + d]);
                        }
                    }
                }
            }
        }
        workgroupBarrier();
    }
    var sc = p.scale;
    if (GRAD_V) {
        sc = 1.0;
    }
    for (var c = 0u; c < MAXC; c++) {
        let d = lid + c * WG;
        if (d < p.d) {
            grad[kb + d] = T(sc * acc[c]);
        }
    }
}

// ---- attention_forward_rows ---------------------------------------------------------------------------
// Each invocation owns RQ (≤ 8) consecutive query rows ρ0..ρ0+RQ−1 of one kv head's g·T rows (row ρ is query
// head kh·g + ρ / T, position i = ρ % T; consecutive positions in prefill, the g GQA heads in decode) and
// walks that kv head's keys alone: no barriers, no workgroup memory, no cross-invocation reduction. Every
// k or v vec4 it loads serves 8 rows, so a key costs 2·D/4 vec4 loads for 16·D FMAs, where
// attention_forward loads a q and a k element per score FMA (llvmpipe makes each load a per-lane loop:
// see matmul.wgsl). The rows' scaled q and output accumulators (2 × 8 × 16 vec4) stay in registers, so
// every access below has a constant index: the text is unrolled over the 16 vec4 of a D ≤ 64 row, and the
// steps past D4 fold away per pipeline. Row state (max m, sum l, scores s, weights pr) is a vec4 over four
// rows. The online softmax rescales per key (an exp pair per key and row, cheap next to the loads). Each
// invocation stops at the longest visible prefix of its own rows; neighbours in a SIMD batch hold
// neighbouring rows, so causal prefill wastes little. Rows past the last are computed as copies of it.
// A key invisible to one row (causal, or padded) gets weight exactly 0 there (a row that sees none
// writes zeros); only keys below min(kv_len, S) are ever read.
// Its speed against attention_forward, and why RQ is 8: README, "Measurements behind the design".

fn ldq(i: u32) -> vec4<f32> {
    return p.scale * vec4<f32>(q4[i]);
}

fn ldk(i: u32) -> vec4<f32> {
    return vec4<f32>(k4[i]);
}

fn ldv(i: u32) -> vec4<f32> {
    return vec4<f32>(v4[i]);
}

// (a·kc, b·kc, c·kc, d·kc): one vec4 of a key against the same vec4 of four query rows.
fn dots(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>, kc: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(a, kc), dot(b, kc), dot(c, kc), dot(d, kc));
}

@compute @workgroup_size(WG)
fn attention_forward_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    // The g·T query rows served by kv head (bb, kh) are contiguous in q: row ρ is head kh·g + ρ / T, i = ρ % T.
    let rows = (p.hq / p.hkv) * p.t;
    let groups = (rows + RQ - 1u) / RQ;
    let gi = (wid.x + wid.y * nwg.x) * WG + lid;
    if (gi >= p.b * p.hkv * groups) {
        return;
    }
    let bk = gi / groups;
    let rho0 = (gi % groups) * RQ;
    let last = rows - 1u - rho0;
    let kb = bk * p.s * D4;
    // Rows past the last are computed as copies of it (same q, same visible keys, same stores).
    let r0 = (bk * rows + rho0 + min(0u, last)) * D4;
    let r1 = (bk * rows + rho0 + min(1u, last)) * D4;
    let r2 = (bk * rows + rho0 + min(2u, last)) * D4;
    let r3 = (bk * rows + rho0 + min(3u, last)) * D4;
    let r4 = (bk * rows + rho0 + min(4u, last)) * D4;
    let r5 = (bk * rows + rho0 + min(5u, last)) * D4;
    let r6 = (bk * rows + rho0 + min(6u, last)) * D4;
    let r7 = (bk * rows + rho0 + min(7u, last)) * D4;
    let nv0 = vec4<u32>(
        n_visible((rho0 + min(0u, last)) % p.t), n_visible((rho0 + min(1u, last)) % p.t),
        n_visible((rho0 + min(2u, last)) % p.t), n_visible((rho0 + min(3u, last)) % p.t),
    );
    let nv1 = vec4<u32>(
        n_visible((rho0 + min(4u, last)) % p.t), n_visible((rho0 + min(5u, last)) % p.t),
        n_visible((rho0 + min(6u, last)) % p.t), n_visible((rho0 + min(7u, last)) % p.t),
    );
    var n_keys = 0u;
    n_keys = max(n_keys, max(max(nv0.x, nv0.y), max(nv0.z, nv0.w)));
    n_keys = max(n_keys, max(max(nv1.x, nv1.y), max(nv1.z, nv1.w)));
    var qa: array<vec4<f32>, 128>;
    var acc: array<vec4<f32>, 128>;
    if (D4 > 0u) { qa[0] = ldq(r0 + 0u); qa[16] = ldq(r1 + 0u); qa[32] = ldq(r2 + 0u); qa[48] = ldq(r3 + 0u); }
    if (D4 > 0u && RQ > 4u) { qa[64] = ldq(r4 + 0u); qa[80] = ldq(r5 + 0u); qa[96] = ldq(r6 + 0u); qa[112] = ldq(r7 + 0u); }
    if (D4 > 1u) { qa[1] = ldq(r0 + 1u); qa[17] = ldq(r1 + 1u); qa[33] = ldq(r2 + 1u); qa[49] = ldq(r3 + 1u); }
    if (D4 > 1u && RQ > 4u) { qa[65] = ldq(r4 + 1u); qa[81] = ldq(r5 + 1u); qa[97] = ldq(r6 + 1u); qa[113] = ldq(r7 + 1u); }
    if (D4 > 2u) { qa[2] = ldq(r0 + 2u); qa[18] = ldq(r1 + 2u); qa[34] = ldq(r2 + 2u); qa[50] = ldq(r3 + 2u); }
    if (D4 > 2u && RQ > 4u) { qa[66] = ldq(r4 + 2u); qa[82] = ldq(r5 + 2u); qa[98] = ldq(r6 + 2u); qa[114] = ldq(r7 + 2u); }
    if (D4 > 3u) { qa[3] = ldq(r0 + 3u); qa[19] = ldq(r1 + 3u); qa[35] = ldq(r2 + 3u); qa[51] = ldq(r3 + 3u); }
    if (D4 > 3u && RQ > 4u) { qa[67] = ldq(r4 + 3u); qa[83] = ldq(r5 + 3u); qa[99] = ldq(r6 + 3u); qa[115] = ldq(r7 + 3u); }
    if (D4 > 4u) { qa[4] = ldq(r0 + 4u); qa[20] = ldq(r1 + 4u); qa[36] = ldq(r2 + 4u); qa[52] = ldq(r3 + 4u); }
    if (D4 > 4u && RQ > 4u) { qa[68] = ldq(r4 + 4u); qa[84] = ldq(r5 + 4u); qa[100] = ldq(r6 + 4u); qa[116] = ldq(r7 + 4u); }
    if (D4 > 5u) { qa[5] = ldq(r0 + 5u); qa[21] = ldq(r1 + 5u); qa[37] = ldq(r2 + 5u); qa[53] = ldq(r3 + 5u); }
    if (D4 > 5u && RQ > 4u) { qa[69] = ldq(r4 + 5u); qa[85] = ldq(r5 + 5u); qa[101] = ldq(r6 + 5u); qa[117] = ldq(r7 + 5u); }
    if (D4 > 6u) { qa[6] = ldq(r0 + 6u); qa[22] = ldq(r1 + 6u); qa[38] = ldq(r2 + 6u); qa[54] = ldq(r3 + 6u); }
    if (D4 > 6u && RQ > 4u) { qa[70] = ldq(r4 + 6u); qa[86] = ldq(r5 + 6u); qa[102] = ldq(r6 + 6u); qa[118] = ldq(r7 + 6u); }
    if (D4 > 7u) { qa[7] = ldq(r0 + 7u); qa[23] = ldq(r1 + 7u); qa[39] = ldq(r2 + 7u); qa[55] = ldq(r3 + 7u); }
    if (D4 > 7u && RQ > 4u) { qa[71] = ldq(r4 + 7u); qa[87] = ldq(r5 + 7u); qa[103] = ldq(r6 + 7u); qa[119] = ldq(r7 + 7u); }
    if (D4 > 8u) { qa[8] = ldq(r0 + 8u); qa[24] = ldq(r1 + 8u); qa[40] = ldq(r2 + 8u); qa[56] = ldq(r3 + 8u); }
    if (D4 > 8u && RQ > 4u) { qa[72] = ldq(r4 + 8u); qa[88] = ldq(r5 + 8u); qa[104] = ldq(r6 + 8u); qa[120] = ldq(r7 + 8u); }
    if (D4 > 9u) { qa[9] = ldq(r0 + 9u); qa[25] = ldq(r1 + 9u); qa[41] = ldq(r2 + 9u); qa[57] = ldq(r3 + 9u); }
    if (D4 > 9u && RQ > 4u) { qa[73] = ldq(r4 + 9u); qa[89] = ldq(r5 + 9u); qa[105] = ldq(r6 + 9u); qa[121] = ldq(r7 + 9u); }
    if (D4 > 10u) { qa[10] = ldq(r0 + 10u); qa[26] = ldq(r1 + 10u); qa[42] = ldq(r2 + 10u); qa[58] = ldq(r3 + 10u); }
    if (D4 > 10u && RQ > 4u) { qa[74] = ldq(r4 + 10u); qa[90] = ldq(r5 + 10u); qa[106] = ldq(r6 + 10u); qa[122] = ldq(r7 + 10u); }
    if (D4 > 11u) { qa[11] = ldq(r0 + 11u); qa[27] = ldq(r1 + 11u); qa[43] = ldq(r2 + 11u); qa[59] = ldq(r3 + 11u); }
    if (D4 > 11u && RQ > 4u) { qa[75] = ldq(r4 + 11u); qa[91] = ldq(r5 + 11u); qa[107] = ldq(r6 + 11u); qa[123] = ldq(r7 + 11u); }
    if (D4 > 12u) { qa[12] = ldq(r0 + 12u); qa[28] = ldq(r1 + 12u); qa[44] = ldq(r2 + 12u); qa[60] = ldq(r3 + 12u); }
    if (D4 > 12u && RQ > 4u) { qa[76] = ldq(r4 + 12u); qa[92] = ldq(r5 + 12u); qa[108] = ldq(r6 + 12u); qa[124] = ldq(r7 + 12u); }
    if (D4 > 13u) { qa[13] = ldq(r0 + 13u); qa[29] = ldq(r1 + 13u); qa[45] = ldq(r2 + 13u); qa[61] = ldq(r3 + 13u); }
    if (D4 > 13u && RQ > 4u) { qa[77] = ldq(r4 + 13u); qa[93] = ldq(r5 + 13u); qa[109] = ldq(r6 + 13u); qa[125] = ldq(r7 + 13u); }
    if (D4 > 14u) { qa[14] = ldq(r0 + 14u); qa[30] = ldq(r1 + 14u); qa[46] = ldq(r2 + 14u); qa[62] = ldq(r3 + 14u); }
    if (D4 > 14u && RQ > 4u) { qa[78] = ldq(r4 + 14u); qa[94] = ldq(r5 + 14u); qa[110] = ldq(r6 + 14u); qa[126] = ldq(r7 + 14u); }
    if (D4 > 15u) { qa[15] = ldq(r0 + 15u); qa[31] = ldq(r1 + 15u); qa[47] = ldq(r2 + 15u); qa[63] = ldq(r3 + 15u); }
    if (D4 > 15u && RQ > 4u) { qa[79] = ldq(r4 + 15u); qa[95] = ldq(r5 + 15u); qa[111] = ldq(r6 + 15u); qa[127] = ldq(r7 + 15u); }
    var m0 = vec4<f32>(NEG);
    var l0 = vec4<f32>(0.0);
    var m1 = vec4<f32>(NEG);
    var l1 = vec4<f32>(0.0);
    for (var j = 0u; j < n_keys; j++) {
        let kj = kb + j * D4;
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        if (D4 > 0u) {
            let kc = ldk(kj + 0u);
            s0 += dots(qa[0], qa[16], qa[32], qa[48], kc);
            if (RQ > 4u) { s1 += dots(qa[64], qa[80], qa[96], qa[112], kc); }
        }
        if (D4 > 1u) {
            let kc = ldk(kj + 1u);
            s0 += dots(qa[1], qa[17], qa[33], qa[49], kc);
            if (RQ > 4u) { s1 += dots(qa[65], qa[81], qa[97], qa[113], kc); }
        }
        if (D4 > 2u) {
            let kc = ldk(kj + 2u);
            s0 += dots(qa[2], qa[18], qa[34], qa[50], kc);
            if (RQ > 4u) { s1 += dots(qa[66], qa[82], qa[98], qa[114], kc); }
        }
        if (D4 > 3u) {
            let kc = ldk(kj + 3u);
            s0 += dots(qa[3], qa[19], qa[35], qa[51], kc);
            if (RQ > 4u) { s1 += dots(qa[67], qa[83], qa[99], qa[115], kc); }
        }
        if (D4 > 4u) {
            let kc = ldk(kj + 4u);
            s0 += dots(qa[4], qa[20], qa[36], qa[52], kc);
            if (RQ > 4u) { s1 += dots(qa[68], qa[84], qa[100], qa[116], kc); }
        }
        if (D4 > 5u) {
            let kc = ldk(kj + 5u);
            s0 += dots(qa[5], qa[21], qa[37], qa[53], kc);
            if (RQ > 4u) { s1 += dots(qa[69], qa[85], qa[101], qa[117], kc); }
        }
        if (D4 > 6u) {
            let kc = ldk(kj + 6u);
            s0 += dots(qa[6], qa[22], qa[38], qa[54], kc);
            if (RQ > 4u) { s1 += dots(qa[70], qa[86], qa[102], qa[118], kc); }
        }
        if (D4 > 7u) {
            let kc = ldk(kj + 7u);
            s0 += dots(qa[7], qa[23], qa[39], qa[55], kc);
            if (RQ > 4u) { s1 += dots(qa[71], qa[87], qa[103], qa[119], kc); }
        }
        if (D4 > 8u) {
            let kc = ldk(kj + 8u);
            s0 += dots(qa[8], qa[24], qa[40], qa[56], kc);
            if (RQ > 4u) { s1 += dots(qa[72], qa[88], qa[104], qa[120], kc); }
        }
        if (D4 > 9u) {
            let kc = ldk(kj + 9u);
            s0 += dots(qa[9], qa[25], qa[41], qa[57], kc);
            if (RQ > 4u) { s1 += dots(qa[73], qa[89], qa[105], qa[121], kc); }
        }
        if (D4 > 10u) {
            let kc = ldk(kj + 10u);
            s0 += dots(qa[10], qa[26], qa[42], qa[58], kc);
            if (RQ > 4u) { s1 += dots(qa[74], qa[90], qa[106], qa[122], kc); }
        }
        if (D4 > 11u) {
            let kc = ldk(kj + 11u);
            s0 += dots(qa[11], qa[27], qa[43], qa[59], kc);
            if (RQ > 4u) { s1 += dots(qa[75], qa[91], qa[107], qa[123], kc); }
        }
        if (D4 > 12u) {
            let kc = ldk(kj + 12u);
            s0 += dots(qa[12], qa[28], qa[44], qa[60], kc);
            if (RQ > 4u) { s1 += dots(qa[76], qa[92], qa[108], qa[124], kc); }
        }
        if (D4 > 13u) {
            let kc = ldk(kj + 13u);
            s0 += dots(qa[13], qa[29], qa[45], qa[61], kc);
            if (RQ > 4u) { s1 += dots(qa[77], qa[93], qa[109], qa[125], kc); }
        }
        if (D4 > 14u) {
            let kc = ldk(kj + 14u);
            s0 += dots(qa[14], qa[30], qa[46], qa[62], kc);
            if (RQ > 4u) { s1 += dots(qa[78], qa[94], qa[110], qa[126], kc); }
        }
        if (D4 > 15u) {
            let kc = ldk(kj + 15u);
            s0 += dots(qa[15], qa[31], qa[47], qa[63], kc);
            if (RQ > 4u) { s1 += dots(qa[79], qa[95], qa[111], qa[127], kc); }
        }
        let kept = vec4<bool>(key_kept(bk / p.hkv, j));
        let vis0 = vec4<u32>(j) < nv0 & kept;
        let sm0 = select(vec4<f32>(NEG), s0, vis0);
        let mn0 = max(m0, sm0);
        let al0 = exp(m0 - mn0);
        let pr0 = select(vec4<f32>(0.0), exp(sm0 - mn0), vis0);
        l0 = l0 * al0 + pr0;
        m0 = mn0;
        let vis1 = vec4<u32>(j) < nv1 & kept;
        let sm1 = select(vec4<f32>(NEG), s1, vis1);
        let mn1 = max(m1, sm1);
        let al1 = exp(m1 - mn1);
        let pr1 = select(vec4<f32>(0.0), exp(sm1 - mn1), vis1);
        l1 = l1 * al1 + pr1;
        m1 = mn1;
        if (D4 > 0u) {
            let vc = ldv(kj + 0u);
            acc[0] = acc[0] * al0.x + pr0.x * vc; acc[16] = acc[16] * al0.y + pr0.y * vc;
            acc[32] = acc[32] * al0.z + pr0.z * vc; acc[48] = acc[48] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[64] = acc[64] * al1.x + pr1.x * vc; acc[80] = acc[80] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[96] = acc[96] * al1.z + pr1.z * vc; acc[112] = acc[112] * al1.w + pr1.w * vc; }
        }
        if (D4 > 1u) {
            let vc = ldv(kj + 1u);
            acc[1] = acc[1] * al0.x + pr0.x * vc; acc[17] = acc[17] * al0.y + pr0.y * vc;
            acc[33] = acc[33] * al0.z + pr0.z * vc; acc[49] = acc[49] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[65] = acc[65] * al1.x + pr1.x * vc; acc[81] = acc[81] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[97] = acc[97] * al1.z + pr1.z * vc; acc[113] = acc[113] * al1.w + pr1.w * vc; }
        }
        if (D4 > 2u) {
            let vc = ldv(kj + 2u);
            acc[2] = acc[2] * al0.x + pr0.x * vc; acc[18] = acc[18] * al0.y + pr0.y * vc;
            acc[34] = acc[34] * al0.z + pr0.z * vc; acc[50] = acc[50] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[66] = acc[66] * al1.x + pr1.x * vc; acc[82] = acc[82] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[98] = acc[98] * al1.z + pr1.z * vc; acc[114] = acc[114] * al1.w + pr1.w * vc; }
        }
        if (D4 > 3u) {
            let vc = ldv(kj + 3u);
            acc[3] = acc[3] * al0.x + pr0.x * vc; acc[19] = acc[19] * al0.y + pr0.y * vc;
            acc[35] = acc[35] * al0.z + pr0.z * vc; acc[51] = acc[51] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[67] = acc[67] * al1.x + pr1.x * vc; acc[83] = acc[83] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[99] = acc[99] * al1.z + pr1.z * vc; acc[115] = acc[115] * al1.w + pr1.w * vc; }
        }
        if (D4 > 4u) {
            let vc = ldv(kj + 4u);
            acc[4] = acc[4] * al0.x + pr0.x * vc; acc[20] = acc[20] * al0.y + pr0.y * vc;
            acc[36] = acc[36] * al0.z + pr0.z * vc; acc[52] = acc[52] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[68] = acc[68] * al1.x + pr1.x * vc; acc[84] = acc[84] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[100] = acc[100] * al1.z + pr1.z * vc; acc[116] = acc[116] * al1.w + pr1.w * vc; }
        }
        if (D4 > 5u) {
            let vc = ldv(kj + 5u);
            acc[5] = acc[5] * al0.x + pr0.x * vc; acc[21] = acc[21] * al0.y + pr0.y * vc;
            acc[37] = acc[37] * al0.z + pr0.z * vc; acc[53] = acc[53] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[69] = acc[69] * al1.x + pr1.x * vc; acc[85] = acc[85] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[101] = acc[101] * al1.z + pr1.z * vc; acc[117] = acc[117] * al1.w + pr1.w * vc; }
        }
        if (D4 > 6u) {
            let vc = ldv(kj + 6u);
            acc[6] = acc[6] * al0.x + pr0.x * vc; acc[22] = acc[22] * al0.y + pr0.y * vc;
            acc[38] = acc[38] * al0.z + pr0.z * vc; acc[54] = acc[54] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[70] = acc[70] * al1.x + pr1.x * vc; acc[86] = acc[86] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[102] = acc[102] * al1.z + pr1.z * vc; acc[118] = acc[118] * al1.w + pr1.w * vc; }
        }
        if (D4 > 7u) {
            let vc = ldv(kj + 7u);
            acc[7] = acc[7] * al0.x + pr0.x * vc; acc[23] = acc[23] * al0.y + pr0.y * vc;
            acc[39] = acc[39] * al0.z + pr0.z * vc; acc[55] = acc[55] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[71] = acc[71] * al1.x + pr1.x * vc; acc[87] = acc[87] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[103] = acc[103] * al1.z + pr1.z * vc; acc[119] = acc[119] * al1.w + pr1.w * vc; }
        }
        if (D4 > 8u) {
            let vc = ldv(kj + 8u);
            acc[8] = acc[8] * al0.x + pr0.x * vc; acc[24] = acc[24] * al0.y + pr0.y * vc;
            acc[40] = acc[40] * al0.z + pr0.z * vc; acc[56] = acc[56] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[72] = acc[72] * al1.x + pr1.x * vc; acc[88] = acc[88] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[104] = acc[104] * al1.z + pr1.z * vc; acc[120] = acc[120] * al1.w + pr1.w * vc; }
        }
        if (D4 > 9u) {
            let vc = ldv(kj + 9u);
            acc[9] = acc[9] * al0.x + pr0.x * vc; acc[25] = acc[25] * al0.y + pr0.y * vc;
            acc[41] = acc[41] * al0.z + pr0.z * vc; acc[57] = acc[57] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[73] = acc[73] * al1.x + pr1.x * vc; acc[89] = acc[89] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[105] = acc[105] * al1.z + pr1.z * vc; acc[121] = acc[121] * al1.w + pr1.w * vc; }
        }
        if (D4 > 10u) {
            let vc = ldv(kj + 10u);
            acc[10] = acc[10] * al0.x + pr0.x * vc; acc[26] = acc[26] * al0.y + pr0.y * vc;
            acc[42] = acc[42] * al0.z + pr0.z * vc; acc[58] = acc[58] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[74] = acc[74] * al1.x + pr1.x * vc; acc[90] = acc[90] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[106] = acc[106] * al1.z + pr1.z * vc; acc[122] = acc[122] * al1.w + pr1.w * vc; }
        }
        if (D4 > 11u) {
            let vc = ldv(kj + 11u);
            acc[11] = acc[11] * al0.x + pr0.x * vc; acc[27] = acc[27] * al0.y + pr0.y * vc;
            acc[43] = acc[43] * al0.z + pr0.z * vc; acc[59] = acc[59] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[75] = acc[75] * al1.x + pr1.x * vc; acc[91] = acc[91] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[107] = acc[107] * al1.z + pr1.z * vc; acc[123] = acc[123] * al1.w + pr1.w * vc; }
        }
        if (D4 > 12u) {
            let vc = ldv(kj + 12u);
            acc[12] = acc[12] * al0.x + pr0.x * vc; acc[28] = acc[28] * al0.y + pr0.y * vc;
            acc[44] = acc[44] * al0.z + pr0.z * vc; acc[60] = acc[60] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[76] = acc[76] * al1.x + pr1.x * vc; acc[92] = acc[92] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[108] = acc[108] * al1.z + pr1.z * vc; acc[124] = acc[124] * al1.w + pr1.w * vc; }
        }
        if (D4 > 13u) {
            let vc = ldv(kj + 13u);
            acc[13] = acc[13] * al0.x + pr0.x * vc; acc[29] = acc[29] * al0.y + pr0.y * vc;
            acc[45] = acc[45] * al0.z + pr0.z * vc; acc[61] = acc[61] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[77] = acc[77] * al1.x + pr1.x * vc; acc[93] = acc[93] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[109] = acc[109] * al1.z + pr1.z * vc; acc[125] = acc[125] * al1.w + pr1.w * vc; }
        }
        if (D4 > 14u) {
            let vc = ldv(kj + 14u);
            acc[14] = acc[14] * al0.x + pr0.x * vc; acc[30] = acc[30] * al0.y + pr0.y * vc;
            acc[46] = acc[46] * al0.z + pr0.z * vc; acc[62] = acc[62] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[78] = acc[78] * al1.x + pr1.x * vc; acc[94] = acc[94] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[110] = acc[110] * al1.z + pr1.z * vc; acc[126] = acc[126] * al1.w + pr1.w * vc; }
        }
        if (D4 > 15u) {
            let vc = ldv(kj + 15u);
            acc[15] = acc[15] * al0.x + pr0.x * vc; acc[31] = acc[31] * al0.y + pr0.y * vc;
            acc[47] = acc[47] * al0.z + pr0.z * vc; acc[63] = acc[63] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[79] = acc[79] * al1.x + pr1.x * vc; acc[95] = acc[95] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[111] = acc[111] * al1.z + pr1.z * vc; acc[127] = acc[127] * al1.w + pr1.w * vc; }
        }
    }
    let inv0 = select(vec4<f32>(0.0), 1.0 / l0, l0 > vec4<f32>(0.0));
    let inv1 = select(vec4<f32>(0.0), 1.0 / l1, l1 > vec4<f32>(0.0));
    if (D4 > 0u) {
        o4[r0 + 0u] = vec4<T>(acc[0] * inv0.x); o4[r1 + 0u] = vec4<T>(acc[16] * inv0.y);
        o4[r2 + 0u] = vec4<T>(acc[32] * inv0.z); o4[r3 + 0u] = vec4<T>(acc[48] * inv0.w);
        if (RQ > 4u) { o4[r4 + 0u] = vec4<T>(acc[64] * inv1.x); o4[r5 + 0u] = vec4<T>(acc[80] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 0u] = vec4<T>(acc[96] * inv1.z); o4[r7 + 0u] = vec4<T>(acc[112] * inv1.w); }
    }
    if (D4 > 1u) {
        o4[r0 + 1u] = vec4<T>(acc[1] * inv0.x); o4[r1 + 1u] = vec4<T>(acc[17] * inv0.y);
        o4[r2 + 1u] = vec4<T>(acc[33] * inv0.z); o4[r3 + 1u] = vec4<T>(acc[49] * inv0.w);
        if (RQ > 4u) { o4[r4 + 1u] = vec4<T>(acc[65] * inv1.x); o4[r5 + 1u] = vec4<T>(acc[81] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 1u] = vec4<T>(acc[97] * inv1.z); o4[r7 + 1u] = vec4<T>(acc[113] * inv1.w); }
    }
    if (D4 > 2u) {
        o4[r0 + 2u] = vec4<T>(acc[2] * inv0.x); o4[r1 + 2u] = vec4<T>(acc[18] * inv0.y);
        o4[r2 + 2u] = vec4<T>(acc[34] * inv0.z); o4[r3 + 2u] = vec4<T>(acc[50] * inv0.w);
        if (RQ > 4u) { o4[r4 + 2u] = vec4<T>(acc[66] * inv1.x); o4[r5 + 2u] = vec4<T>(acc[82] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 2u] = vec4<T>(acc[98] * inv1.z); o4[r7 + 2u] = vec4<T>(acc[114] * inv1.w); }
    }
    if (D4 > 3u) {
        o4[r0 + 3u] = vec4<T>(acc[3] * inv0.x); o4[r1 + 3u] = vec4<T>(acc[19] * inv0.y);
        o4[r2 + 3u] = vec4<T>(acc[35] * inv0.z); o4[r3 + 3u] = vec4<T>(acc[51] * inv0.w);
        if (RQ > 4u) { o4[r4 + 3u] = vec4<T>(acc[67] * inv1.x); o4[r5 + 3u] = vec4<T>(acc[83] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 3u] = vec4<T>(acc[99] * inv1.z); o4[r7 + 3u] = vec4<T>(acc[115] * inv1.w); }
    }
    if (D4 > 4u) {
        o4[r0 + 4u] = vec4<T>(acc[4] * inv0.x); o4[r1 + 4u] = vec4<T>(acc[20] * inv0.y);
        o4[r2 + 4u] = vec4<T>(acc[36] * inv0.z); o4[r3 + 4u] = vec4<T>(acc[52] * inv0.w);
        if (RQ > 4u) { o4[r4 + 4u] = vec4<T>(acc[68] * inv1.x); o4[r5 + 4u] = vec4<T>(acc[84] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 4u] = vec4<T>(acc[100] * inv1.z); o4[r7 + 4u] = vec4<T>(acc[116] * inv1.w); }
    }
    if (D4 > 5u) {
        o4[r0 + 5u] = vec4<T>(acc[5] * inv0.x); o4[r1 + 5u] = vec4<T>(acc[21] * inv0.y);
        o4[r2 + 5u] = vec4<T>(acc[37] * inv0.z); o4[r3 + 5u] = vec4<T>(acc[53] * inv0.w);
        if (RQ > 4u) { o4[r4 + 5u] = vec4<T>(acc[69] * inv1.x); o4[r5 + 5u] = vec4<T>(acc[85] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 5u] = vec4<T>(acc[101] * inv1.z); o4[r7 + 5u] = vec4<T>(acc[117] * inv1.w); }
    }
    if (D4 > 6u) {
        o4[r0 + 6u] = vec4<T>(acc[6] * inv0.x); o4[r1 + 6u] = vec4<T>(acc[22] * inv0.y);
        o4[r2 + 6u] = vec4<T>(acc[38] * inv0.z); o4[r3 + 6u] = vec4<T>(acc[54] * inv0.w);
        if (RQ > 4u) { o4[r4 + 6u] = vec4<T>(acc[70] * inv1.x); o4[r5 + 6u] = vec4<T>(acc[86] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 6u] = vec4<T>(acc[102] * inv1.z); o4[r7 + 6u] = vec4<T>(acc[118] * inv1.w); }
    }
    if (D4 > 7u) {
        o4[r0 + 7u] = vec4<T>(acc[7] * inv0.x); o4[r1 + 7u] = vec4<T>(acc[23] * inv0.y);
        o4[r2 + 7u] = vec4<T>(acc[39] * inv0.z); o4[r3 + 7u] = vec4<T>(acc[55] * inv0.w);
        if (RQ > 4u) { o4[r4 + 7u] = vec4<T>(acc[71] * inv1.x); o4[r5 + 7u] = vec4<T>(acc[87] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 7u] = vec4<T>(acc[103] * inv1.z); o4[r7 + 7u] = vec4<T>(acc[119] * inv1.w); }
    }
    if (D4 > 8u) {
        o4[r0 + 8u] = vec4<T>(acc[8] * inv0.x); o4[r1 + 8u] = vec4<T>(acc[24] * inv0.y);
        o4[r2 + 8u] = vec4<T>(acc[40] * inv0.z); o4[r3 + 8u] = vec4<T>(acc[56] * inv0.w);
        if (RQ > 4u) { o4[r4 + 8u] = vec4<T>(acc[72] * inv1.x); o4[r5 + 8u] = vec4<T>(acc[88] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 8u] = vec4<T>(acc[104] * inv1.z); o4[r7 + 8u] = vec4<T>(acc[120] * inv1.w); }
    }
    if (D4 > 9u) {
        o4[r0 + 9u] = vec4<T>(acc[9] * inv0.x); o4[r1 + 9u] = vec4<T>(acc[25] * inv0.y);
        o4[r2 + 9u] = vec4<T>(acc[41] * inv0.z); o4[r3 + 9u] = vec4<T>(acc[57] * inv0.w);
        if (RQ > 4u) { o4[r4 + 9u] = vec4<T>(acc[73] * inv1.x); o4[r5 + 9u] = vec4<T>(acc[89] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 9u] = vec4<T>(acc[105] * inv1.z); o4[r7 + 9u] = vec4<T>(acc[121] * inv1.w); }
    }
    if (D4 > 10u) {
        o4[r0 + 10u] = vec4<T>(acc[10] * inv0.x); o4[r1 + 10u] = vec4<T>(acc[26] * inv0.y);
        o4[r2 + 10u] = vec4<T>(acc[42] * inv0.z); o4[r3 + 10u] = vec4<T>(acc[58] * inv0.w);
        if (RQ > 4u) { o4[r4 + 10u] = vec4<T>(acc[74] * inv1.x); o4[r5 + 10u] = vec4<T>(acc[90] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 10u] = vec4<T>(acc[106] * inv1.z); o4[r7 + 10u] = vec4<T>(acc[122] * inv1.w); }
    }
    if (D4 > 11u) {
        o4[r0 + 11u] = vec4<T>(acc[11] * inv0.x); o4[r1 + 11u] = vec4<T>(acc[27] * inv0.y);
        o4[r2 + 11u] = vec4<T>(acc[43] * inv0.z); o4[r3 + 11u] = vec4<T>(acc[59] * inv0.w);
        if (RQ > 4u) { o4[r4 + 11u] = vec4<T>(acc[75] * inv1.x); o4[r5 + 11u] = vec4<T>(acc[91] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 11u] = vec4<T>(acc[107] * inv1.z); o4[r7 + 11u] = vec4<T>(acc[123] * inv1.w); }
    }
    if (D4 > 12u) {
        o4[r0 + 12u] = vec4<T>(acc[12] * inv0.x); o4[r1 + 12u] = vec4<T>(acc[28] * inv0.y);
        o4[r2 + 12u] = vec4<T>(acc[44] * inv0.z); o4[r3 + 12u] = vec4<T>(acc[60] * inv0.w);
        if (RQ > 4u) { o4[r4 + 12u] = vec4<T>(acc[76] * inv1.x); o4[r5 + 12u] = vec4<T>(acc[92] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 12u] = vec4<T>(acc[108] * inv1.z); o4[r7 + 12u] = vec4<T>(acc[124] * inv1.w); }
    }
    if (D4 > 13u) {
        o4[r0 + 13u] = vec4<T>(acc[13] * inv0.x); o4[r1 + 13u] = vec4<T>(acc[29] * inv0.y);
        o4[r2 + 13u] = vec4<T>(acc[45] * inv0.z); o4[r3 + 13u] = vec4<T>(acc[61] * inv0.w);
        if (RQ > 4u) { o4[r4 + 13u] = vec4<T>(acc[77] * inv1.x); o4[r5 + 13u] = vec4<T>(acc[93] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 13u] = vec4<T>(acc[109] * inv1.z); o4[r7 + 13u] = vec4<T>(acc[125] * inv1.w); }
    }
    if (D4 > 14u) {
        o4[r0 + 14u] = vec4<T>(acc[14] * inv0.x); o4[r1 + 14u] = vec4<T>(acc[30] * inv0.y);
        o4[r2 + 14u] = vec4<T>(acc[46] * inv0.z); o4[r3 + 14u] = vec4<T>(acc[62] * inv0.w);
        if (RQ > 4u) { o4[r4 + 14u] = vec4<T>(acc[78] * inv1.x); o4[r5 + 14u] = vec4<T>(acc[94] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 14u] = vec4<T>(acc[110] * inv1.z); o4[r7 + 14u] = vec4<T>(acc[126] * inv1.w); }
    }
    if (D4 > 15u) {
        o4[r0 + 15u] = vec4<T>(acc[15] * inv0.x); o4[r1 + 15u] = vec4<T>(acc[31] * inv0.y);
        o4[r2 + 15u] = vec4<T>(acc[47] * inv0.z); o4[r3 + 15u] = vec4<T>(acc[63] * inv0.w);
        if (RQ > 4u) { o4[r4 + 15u] = vec4<T>(acc[79] * inv1.x); o4[r5 + 15u] = vec4<T>(acc[95] * inv1.y); }
        if (RQ > 4u) { o4[r6 + 15u] = vec4<T>(acc[111] * inv1.z); o4[r7 + 15u] = vec4<T>(acc[127] * inv1.w); }
    }
}

