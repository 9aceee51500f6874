// Loss family: cross-entropy over rows of logits, mean over the counted rows (target ≠ ignore_index and
// within [0, v); other targets count as ignored rather than being read out of bounds).
//
//   cross_entropy_rows      one workgroup per row i: one online pass keeps (max, Σ exp(x − max)) per
//                           invocation, merged in a fixed tree; scratch[2i] = logsumexp − x[target],
//                           scratch[2i + 1] = 1 if counted (both 0 otherwise).
//   cross_entropy_mean      one workgroup: loss[0] = Σ scratch[2i] / Σ scratch[2i + 1], or 0 if nothing counts;
//                           sums in a fixed order (strided per invocation, then a fixed tree).
//   cross_entropy_count     one workgroup: scratch[0] = number of counted rows.
//   cross_entropy_backward  one workgroup per row: dlogits[i, j] = (softmax_j − [j = target])·dloss[0]/count,
//                           zero rows where the target does not count.
//
// Bindings: 0 params; 1 logits [n, v] (T); 2 targets [n] i32; forward: 3 scratch [2n] f32 (rows writes,
// mean reads), 4 loss [1] (T); backward: 3 dloss [1] (T), 4 scratch [1] f32, 5 dlogits [n, v] (T).
// ignore_index arrives as its u32 bit pattern (Params hold only u32/f32). Workgroups of 256; row grids folded
// 2-D (row = wid.x + wid.y · num_workgroups.x). exp/log in f32 after subtracting the row max: no overflow.
// CPU reference: reference::loss (crossentropy_forward, crossentropy_backward).

struct Params {
    n: u32,
    v: u32,
    ignore_index: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<T>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<T>;
@group(0) @binding(3) var<storage, read> dloss: array<T>;
@group(0) @binding(4) var<storage, read_write> count_buf: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<T>;

const WG: u32 = 256u;
var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;

fn counted(t: i32) -> bool {
    return t != bitcast<i32>(p.ignore_index) && t >= 0 && u32(t) < p.v;
}

// Row max and Σ exp(x − max) over row i, every invocation gets the merged pair.
fn row_stats(i: u32, li: u32) -> vec2<f32> {
    var m = -3.0e38;
    var s = 0.0;
    let base = i * p.v;
    for (var j = li; j < p.v; j += WG) {
        let x = f32(logits[base + j]);
        if (x > m) {
            s = s * exp(m - x) + 1.0;
            m = x;
        } else {
            s += exp(x - m);
        }
    }
    red_m[li] = m;
    red_s[li] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w /= 2u) {
        if (li < w) {
            let m2 = red_m[li + w];
            let s2 = red_s[li + w];
            let mm = max(m, m2);
            s = s * exp(m - mm) + s2 * exp(m2 - mm);
            m = mm;
            red_m[li] = m;
            red_s[li] = s;
        }
        workgroupBarrier();
    }
    let r = vec2<f32>(red_m[0], red_s[0]);
    workgroupBarrier();
    return r;
}

// Σ over the workgroup of x (fixed tree), returned to every invocation.
fn wg_sum(x: f32, li: u32) -> f32 {
    red_s[li] = x;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w /= 2u) {
        if (li < w) { red_s[li] = red_s[li] + red_s[li + w]; }
        workgroupBarrier();
    }
    let r = red_s[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn cross_entropy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let i = wid.x + wid.y * nwg.x;
    if (i >= p.n) { return; } // uniform per workgroup
    let t = targets[i];
    if (!counted(t)) {
        if (li == 0u) {
            scratch[2u * i] = 0.0;
            scratch[2u * i + 1u] = 0.0;
        }
        return;
    }
    let st = row_stats(i, li);
    if (li == 0u) {
        scratch[2u * i] = st.x + log(st.y) - f32(logits[i * p.v + u32(t)]);
        scratch[2u * i + 1u] = 1.0;
    }
}

@compute @workgroup_size(256)
fn cross_entropy_mean(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    var c = 0.0;
    for (var i = li; i < p.n; i += WG) {
        s += scratch[2u * i];
        c += scratch[2u * i + 1u];
    }
    let total = wg_sum(s, li);
    let count = wg_sum(c, li);
    if (li == 0u) {
        loss[0] = T(select(0.0, total / count, count > 0.0));
    }
}

@compute @workgroup_size(256)
fn cross_entropy_count(@builtin(local_invocation_index) li: u32) {
    var c = 0.0;
    for (var i = li; i < p.n; i += WG) {
        c += select(0.0, 1.0, counted(targets[i]));
    }
    let count = wg_sum(c, li);
    if (li == 0u) { count_buf[0] = count; }
}

@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) li: u32) {
    let i = wid.x + wid.y * nwg.x;
    if (i >= p.n) { return; } // uniform per workgroup
    let t = targets[i];
    let base = i * p.v;
    if (!counted(t)) {
        for (var j = li; j < p.v; j += WG) { dlogits[base + j] = T(0.0); }
        return;
    }
    let st = row_stats(i, li);
    let scale = f32(dloss[0]) / count_buf[0];
    let inv = 1.0 / st.y;
    for (var j = li; j < p.v; j += WG) {
        let prob = exp(f32(logits[base + j]) - st.x) * inv;
        dlogits[base + j] = T((prob - select(0.0, 1.0, j == u32(t))) * scale);
    }
}
