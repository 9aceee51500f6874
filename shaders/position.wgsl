// position.wgsl — positional encodings: rotary (RoPE) and additive sinusoidal.
//
// Maths:
//   rope_forward (x [B, H, T, D], D even, half = D/2; one invocation per pair (x[i], x[i + half])):
//     t = row mod T, angle = (offset + t)·theta^(−2i/D)  (inverse: −angle), c = cos, s = sin,
//     y[i] = x[i]·c − x[i + half]·s,   y[i + half] = x[i + half]·c + x[i]·s      (HF Llama, half-split pairs).
//     The inverse rotation is the transpose, hence the backward of Rope is Rope{inverse: !inverse}.
//   rope_at, rope_at_table: rope_forward / rope_table with each sequence at its own position: token t of
//     sequence b (= row / (H·T)) is at pos[b] + t instead of offset + t (continuous batching).
//   rope_qkv_cache (qkv [B, T, Htot·D], Htot = hq + 2·hkv heads side by side; one invocation per pair of a
//     head): q heads (h < hq) rotated into q [B, hq, T, D]; k heads rotated and v heads as they are into rows
//     base + t of the caches [B, hkv, smax, D] (base = offset, or pos[b] with the override AT; rows ≥ smax
//     dropped); the frequencies theta^(−2i/D), or the table with the override TABLE. The rotation is
//     rope_forward's (or rope_table's), so its numbers equal Rope followed by CacheWrite.
//   add_sinusoidal (x [B, T, C]; one invocation per element):
//     pos = offset + t, k = column − column mod 2, angle = pos / 10000^(k/C),
//     y = x + sin(angle) on even columns, x + cos(angle) on odd ones (odd C: the last column is a sin).
//
// Bindings (group 0):
//   0 p: Params (uniform)  n (invocations: pairs B·H·T·D/2, or elements B·T·C), t (T), d (D or C),
//                          theta (rope base; 10000 for sinusoidal), offset (runtime position), inverse (0/1),
//                          h (H, rope_at only)
//   rope_forward, add_sinusoidal:  1 x (read)  2 y (rw), same shape as x.
//   rope_table:                    1 x (read)  2 inv_freq (read) [D/2] f32  3 y (rw): rope_forward with the
//                                  frequencies read from a table (scaled RoPE: Llama 3, linear).
//   rope_at:                       1 x (read)  2 pos (read) [B] u32  3 y (rw)
//   rope_at_table:                 1 x (read)  2 pos (read)  3 inv_freq (read)  4 y (rw)
//   rope_qkv_cache:                1 qkv (read)  2 kc (rw)  3 vc (rw)  4 q (rw)  5 pos (read) [B] u32  6 inv_freq
//                                  (read) [D/2] f32; 5 and 6 are stand-ins (never read) without AT / TABLE;
//                                  hq, hkv, smax in Params.
//
// Overrides: WG (workgroup size, default 256).
// Dispatch: grid_1d(ceil(n / WG)); index = (wid.x + wid.y·nwg.x)·WG + lid, guarded by n.
// Numerics: frequencies and angles are f32 as in HF (inv_freq = 1/theta^(2i/D), angle = pos·inv_freq), the
//   rotation in f32. Large positions lose angle precision exactly as the f32 reference implementations do.
// CPU reference: reference::position::{rope_forward (one offset, or one per sequence), add_sinusoidal}.

struct Params {
    n: u32,
    t: u32,
    d: u32,
    theta: f32,
    offset: u32,
    inverse: u32,
    h: u32,
    hq: u32,
    hkv: u32,
    smax: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;
@group(0) @binding(2) var<storage, read> tab_freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> tab_y: array<T>;
@group(0) @binding(2) var<storage, read> at_pos: array<u32>;
@group(0) @binding(3) var<storage, read_write> at_y: array<T>;
@group(0) @binding(3) var<storage, read> at_freq: array<f32>;
@group(0) @binding(4) var<storage, read_write> at_ty: array<T>;
@group(0) @binding(2) var<storage, read_write> kc: array<T>;
@group(0) @binding(3) var<storage, read_write> vc: array<T>;
@group(0) @binding(4) var<storage, read_write> qkv_q: array<T>;
@group(0) @binding(5) var<storage, read> qkv_pos: array<u32>;
@group(0) @binding(6) var<storage, read> qkv_freq: array<f32>;

// rope_qkv_cache: each sequence at its own position (pos, binding 5); frequencies from a table (binding 6).
override AT: bool = false;
override TABLE: bool = false;

@compute @workgroup_size(WG)
fn rope_forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    let i = idx % (p.d / 2u);
    let r = rotate(idx, 1.0 / pow(p.theta, f32(2u * i) / f32(p.d)), p.offset);
    let a = (idx / (p.d / 2u)) * p.d + i;
    y[a] = T(r.x);
    y[a + p.d / 2u] = T(r.y);
}

// The position of sequence b's first token, b = row / (H·T).
fn seq_pos(idx: u32) -> u32 {
    return at_pos[idx / (p.d / 2u) / (p.h * p.t)];
}

@compute @workgroup_size(WG)
fn rope_at(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    let i = idx % (p.d / 2u);
    let r = rotate(idx, 1.0 / pow(p.theta, f32(2u * i) / f32(p.d)), seq_pos(idx));
    let a = (idx / (p.d / 2u)) * p.d + i;
    at_y[a] = T(r.x);
    at_y[a + p.d / 2u] = T(r.y);
}

@compute @workgroup_size(WG)
fn rope_at_table(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    let i = idx % (p.d / 2u);
    let r = rotate(idx, at_freq[i], seq_pos(idx));
    let a = (idx / (p.d / 2u)) * p.d + i;
    at_ty[a] = T(r.x);
    at_ty[a + p.d / 2u] = T(r.y);
}

@compute @workgroup_size(WG)
fn rope_table(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    let i = idx % (p.d / 2u);
    let r = rotate(idx, tab_freq[i], p.offset);
    let a = (idx / (p.d / 2u)) * p.d + i;
    tab_y[a] = T(r.x);
    tab_y[a + p.d / 2u] = T(r.y);
}

// The rotated pair (y[i], y[i + D/2]) of pair index `idx` at frequency `inv_freq`, its sequence's first token
// at position `base`.
fn rotate(idx: u32, inv_freq: f32, base: u32) -> vec2<f32> {
    let half_d = p.d / 2u;
    let row = idx / half_d;
    let i = idx % half_d;
    let t = row % p.t;
    var angle = f32(base + t) * inv_freq;
    if (p.inverse != 0u) {
        angle = -angle;
    }
    let c = cos(angle);
    let s = sin(angle);
    let a = row * p.d + i;
    let x0 = f32(x[a]);
    let x1 = f32(x[a + half_d]);
    return vec2<f32>(x0 * c - x1 * s, x1 * c + x0 * s);
}

// Pair idx of rope_qkv_cache: where it goes. (kind 0: q, 1: k cache, 2: v cache; the index of its first
// element; the pair's rotated values or, for v, the pair as it is.) `base` is the sequence's first position,
// `inv_freq` the pair's frequency.
struct QkvPair {
    kind: u32,
    at: u32,
    v: vec2<f32>,
}

fn qkv_pair(idx: u32, base: u32, inv_freq: f32) -> QkvPair {
    let half_d = p.d / 2u;
    let i = idx % half_d;
    let row = idx / half_d; // (b, t, head)
    let htot = p.hq + 2u * p.hkv;
    let hh = row % htot;
    let t = (row / htot) % p.t;
    let b = row / htot / p.t;
    let a = row * p.d + i;
    let x0 = f32(x[a]);
    let x1 = f32(x[a + half_d]);
    let angle = f32(base + t) * inv_freq;
    let c = cos(angle);
    let s = sin(angle);
    let r = vec2<f32>(x0 * c - x1 * s, x1 * c + x0 * s);
    if (hh < p.hq) {
        return QkvPair(0u, ((b * p.hq + hh) * p.t + t) * p.d + i, r);
    }
    let row_at = base + t;
    if (row_at >= p.smax) {
        return QkvPair(3u, 0u, r); // past the cache: dropped
    }
    if (hh < p.hq + p.hkv) {
        return QkvPair(1u, ((b * p.hkv + hh - p.hq) * p.smax + row_at) * p.d + i, r);
    }
    return QkvPair(2u, ((b * p.hkv + hh - p.hq - p.hkv) * p.smax + row_at) * p.d + i, vec2<f32>(x0, x1));
}

@compute @workgroup_size(WG)
fn rope_qkv_cache(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) { return; }
    let half_d = p.d / 2u;
    let i = idx % half_d;
    var base = p.offset;
    if (AT) { base = qkv_pos[idx / half_d / (p.hq + 2u * p.hkv) / p.t]; }
    var inv_freq = 1.0 / pow(p.theta, f32(2u * i) / f32(p.d));
    if (TABLE) { inv_freq = qkv_freq[i]; }
    let e = qkv_pair(idx, base, inv_freq);
    if (e.kind == 0u) {
        qkv_q[e.at] = T(e.v.x);
        qkv_q[e.at + half_d] = T(e.v.y);
    } else if (e.kind == 1u) {
        kc[e.at] = T(e.v.x);
        kc[e.at + half_d] = T(e.v.y);
    } else if (e.kind == 2u) {
        vc[e.at] = T(e.v.x);
        vc[e.at + half_d] = T(e.v.y);
    }
}

@compute @workgroup_size(WG)
fn add_sinusoidal(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = (wid.x + wid.y * nwg.x) * WG + lid;
    if (idx >= p.n) {
        return;
    }
    let col = idx % p.d;
    let t = (idx / p.d) % p.t;
    let k = col - col % 2u;
    let inv_freq = 1.0 / pow(p.theta, f32(k) / f32(p.d));
    let angle = f32(p.offset + t) * inv_freq;
    var pe = sin(angle);
    if (col % 2u == 1u) {
        pe = cos(angle);
    }
    y[idx] = T(f32(x[idx]) + pe);
}
