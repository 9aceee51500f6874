// softmax.wgsl — softmax over the last dim of x [..., T, S] (rows = numel / S), and its backward.
//
// Maths (row r, i = r mod T its query index):
//   softmax_forward:  n = S, or n = min(S, i + (S − T) + 1) if causal (row i sees columns j ≤ i + S − T);
//                     y[j] = exp(x[j] − m) / Σ_{j' < n} exp(x[j'] − m) for j < n, y[j] = 0 for j ≥ n,
//                     m = max_{j < n} x[j] (max subtraction keeps exp ≤ 1).
//   softmax_backward: dx = y ⊙ (dy − Σ_j y[j]·dy[j])  (masked entries have y = 0, hence dx = 0).
//
// Bindings (group 0):
//   0 p: Params (uniform)       rows, t, s, causal (0/1)
//   softmax_forward:   1 x [rows, S]   2 y [rows, S] (rw)
//   softmax_backward:  1 y_in [rows, S]   2 dy [rows, S]   3 dx [rows, S] (rw)
//
// Overrides: WG (workgroup size, a power of two ≤ 256, default 64).
// Dispatch: one workgroup per row, grid_1d(rows); row = wid.x + wid.y·nwg.x. Each invocation strides over
//   the row (j = lid, lid + WG, …), so any S from 1 up works.
// Numerics: f32 throughout. The forward makes one pass with a per-invocation online (max, sum) pair
//   (sum rescaled by exp(m_old − m_new) when the max grows), then combines the pairs in a fixed tree
//   (deterministic), then a second pass writes y. The empty max is −3e38 (finite, so no inf − inf NaN).
// CPU reference: reference::softmax::{softmax_forward, softmax_backward}.

struct Params {
    rows: u32,
    t: u32,
    s: u32,
    causal: u32,
}

override WG: u32 = 64u;

const NEG: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;
@group(0) @binding(1) var<storage, read> y_in: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> dx: array<T>;

var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_l: array<f32, 256>;

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.s;
    var n = p.s;
    if (p.causal != 0u) {
        // i + (S − T) + 1, computed without underflow (S ≥ T is checked when the op is built).
        let i = row % p.t;
        n = min(p.s, i + 1u + p.s - min(p.s, p.t));
    }
    var m = NEG;
    var l = 0.0;
    for (var j = lid; j < n; j += WG) {
        let v = f32(x[base + j]);
        if (v > m) {
            l = l * exp(m - v) + 1.0;
            m = v;
        } else {
            l += exp(v - m);
        }
    }
    red_m[lid] = m;
    red_l[lid] = l;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let m1 = red_m[lid];
            let m2 = red_m[lid + s];
            let mm = max(m1, m2);
            red_l[lid] = red_l[lid] * exp(m1 - mm) + red_l[lid + s] * exp(m2 - mm);
            red_m[lid] = mm;
        }
        workgroupBarrier();
    }
    let mx = red_m[0];
    let inv = 1.0 / red_l[0];
    for (var j = lid; j < p.s; j += WG) {
        var out = 0.0;
        if (j < n) {
            out = exp(f32(x[base + j]) - mx) * inv;
        }
        y[base + j] = T(out);
    }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.s;
    var acc = 0.0;
    for (var j = lid; j < p.s; j += WG) {
        acc += f32(y_in[base + j]) * f32(dy[base + j]);
    }
    red_m[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_m[lid] += red_m[lid + s];
        }
        workgroupBarrier();
    }
    let dot = red_m[0];
    for (var j = lid; j < p.s; j += WG) {
        let yv = f32(y_in[base + j]);
        dx[base + j] = T(yv * (f32(dy[base + j]) - dot));
    }
}
