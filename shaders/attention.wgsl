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
// Overrides: WG (workgroup size, power of two ≤ 256, default 64); GRAD_V (attention_grad_kv: dv instead of dk).
//   Each invocation owns output dims d = lid + c·WG, c < MAXC, so D ≤ MAXC·WG (checked by the lowering).
// Dispatch: one workgroup per query row (B·Hq·T rows, grid_1d) for forward, weights, row_stats and grad_q;
//   one workgroup per key row (B·Hkv·S rows) for grad_kv. Grids never depend on q_offset or kv_len: the
//   kernels loop up to kv_len inside. Within a workgroup the keys (or the (head, query) pairs of grad_kv)
//   are spread over the invocations in blocks of WG, so decode (T = 1, one row per head) still uses the
//   whole workgroup.
// Numerics: f32 throughout. The forward is a one-pass online softmax (flash style): per block of WG keys the
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

const MAXC: u32 = 8u;
const NEG: f32 = -3.0e38;

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
