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
//   attention_probs_rows:       1 the scores q·k [B, Hq, T, S] (scratch), 5 o = P (k, v bound but unused)
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

// attention_probs_rows: AttentionWeights on CPU adapters, after a batched matmul wrote the raw scores
// q_i·k_j [B, Hq, T, S] into scratch (bound as q; k stands in for the mask when there is none): one
// invocation per query row, P_ij = exp(scale·s_ij − m_i) / l_i over the visible keys (max, sum, write: three
// passes over the row's S scores), 0 elsewhere. attention_weights recomputes each q·k from D loads of q and
// of k, twice, in a workgroup per row; on llvmpipe, where a storage load costs ~85 cycles a lane, that was
// 1.8 s of MiniLM's 14 s training step (bench train). Grid: grid_1d(⌈B·Hq·T / WG⌉).
@compute @workgroup_size(WG)
fn attention_probs_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = (wid.x + wid.y * nwg.x) * WG + lid;
    if (r >= p.b * p.hq * p.t) {
        return;
    }
    let bb = r / (p.t * p.hq);
    let nv = n_visible(r % p.t);
    let base = r * p.s;
    var m = NEG;
    for (var j = 0u; j < nv; j++) {
        if (key_kept(bb, j)) {
            m = max(m, p.scale * f32(q[base + j]));
        }
    }
    var l = 0.0;
    for (var j = 0u; j < nv; j++) {
        if (key_kept(bb, j)) {
            l += exp(p.scale * f32(q[base + j]) - m);
        }
    }
    var inv = 0.0;
    if (l > 0.0) {
        inv = 1.0 / l;
    }
    for (var j = 0u; j < p.s; j++) {
        var pr = 0.0;
        if (j < nv && key_kept(bb, j)) {
            pr = exp(p.scale * f32(q[base + j]) - m) * inv;
        }
        o[base + j] = T(pr);
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
// every access below has a constant index: the code is unrolled over the 16 vec4 of a D ≤ 64 row (the
// `//#unroll d 0..16` blocks, expanded by kernels::wgsl), and the steps past D4 fold away per pipeline.
// Row state (max m, sum l, scores s, weights pr) is a vec4 over four rows. The online softmax rescales per
// key (an exp pair per key and row, cheap next to the loads). Each invocation stops at the longest visible
// prefix of its own rows; neighbours in a SIMD batch hold neighbouring rows, so causal prefill wastes
// little. Rows past the last are computed as copies of it.
// A key invisible to one row (causal, or padded) gets weight exactly 0 there (a row that sees none
// writes zeros); only keys below min(kv_len, S) are ever read.
// Its speed against attention_forward, and why RQ is 8: README, "Measurements behind the design".

fn ldq(i: u32) -> vec4<f32> {
    return p.scale * vec4<f32>(q4[i]);
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
    //#unroll d 0..16
    if (D4 > {d}u) { qa[{d}] = ldq(r0 + {d}u); qa[{d+16}] = ldq(r1 + {d}u); qa[{d+32}] = ldq(r2 + {d}u); qa[{d+48}] = ldq(r3 + {d}u); }
    if (D4 > {d}u && RQ > 4u) { qa[{d+64}] = ldq(r4 + {d}u); qa[{d+80}] = ldq(r5 + {d}u); qa[{d+96}] = ldq(r6 + {d}u); qa[{d+112}] = ldq(r7 + {d}u); }
    //#end
    var m0 = vec4<f32>(NEG);
    var l0 = vec4<f32>(0.0);
    var m1 = vec4<f32>(NEG);
    var l1 = vec4<f32>(0.0);
    for (var j = 0u; j < n_keys; j++) {
        let kj = kb + j * D4;
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        //#unroll d 0..16
        if (D4 > {d}u) {
            let kc = ldk(kj + {d}u);
            s0 += dots(qa[{d}], qa[{d+16}], qa[{d+32}], qa[{d+48}], kc);
            if (RQ > 4u) { s1 += dots(qa[{d+64}], qa[{d+80}], qa[{d+96}], qa[{d+112}], kc); }
        }
        //#end
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
        //#unroll d 0..16
        if (D4 > {d}u) {
            let vc = ldv(kj + {d}u);
            acc[{d}] = acc[{d}] * al0.x + pr0.x * vc; acc[{d+16}] = acc[{d+16}] * al0.y + pr0.y * vc;
            acc[{d+32}] = acc[{d+32}] * al0.z + pr0.z * vc; acc[{d+48}] = acc[{d+48}] * al0.w + pr0.w * vc;
            if (RQ > 4u) { acc[{d+64}] = acc[{d+64}] * al1.x + pr1.x * vc; acc[{d+80}] = acc[{d+80}] * al1.y + pr1.y * vc; }
            if (RQ > 4u) { acc[{d+96}] = acc[{d+96}] * al1.z + pr1.z * vc; acc[{d+112}] = acc[{d+112}] * al1.w + pr1.w * vc; }
        }
        //#end
    }
    let inv0 = select(vec4<f32>(0.0), 1.0 / l0, l0 > vec4<f32>(0.0));
    let inv1 = select(vec4<f32>(0.0), 1.0 / l1, l1 > vec4<f32>(0.0));
    //#unroll d 0..16
    if (D4 > {d}u) {
        o4[r0 + {d}u] = vec4<T>(acc[{d}] * inv0.x); o4[r1 + {d}u] = vec4<T>(acc[{d+16}] * inv0.y);
        o4[r2 + {d}u] = vec4<T>(acc[{d+32}] * inv0.z); o4[r3 + {d}u] = vec4<T>(acc[{d+48}] * inv0.w);
        if (RQ > 4u) { o4[r4 + {d}u] = vec4<T>(acc[{d+64}] * inv1.x); o4[r5 + {d}u] = vec4<T>(acc[{d+80}] * inv1.y); }
        if (RQ > 4u) { o4[r6 + {d}u] = vec4<T>(acc[{d+96}] * inv1.z); o4[r7 + {d}u] = vec4<T>(acc[{d+112}] * inv1.w); }
    }
    //#end
}

// ---- attention_forward_rows' key and value loads (ldk, ldv: vec4 i of K, V) -------------------------------
// The storage variant reads the bindings; the texture variant (kernels::attention::tex_source: prefill on
// CPU adapters, where texel fetches are gathered in straight-line code and storage loads lane by lane)
// reads K and V through staged textures laid out as exec::twins (texel i = vec4 i of the row-major tensor).

//#hooks storage_kv
fn ldk(i: u32) -> vec4<f32> {
    return vec4<f32>(k4[i]);
}

fn ldv(i: u32) -> vec4<f32> {
    return vec4<f32>(v4[i]);
}

//#hooks texture_kv
@group(0) @binding(2) var kt: texture_2d<f32>;
@group(0) @binding(3) var vt: texture_2d<f32>;

fn ldk(i: u32) -> vec4<f32> {
    return texel4(kt, i);
}

fn ldv(i: u32) -> vec4<f32> {
    return texel4(vt, i);
}
