// Optimizer family: one AdamW step, in place, one invocation per element (f32 only; names f32 explicitly),
// and the deterministic sum of squares that gradient clipping's global norm is made of.
//
//   adamw        m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²;  m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t)
//                param = param − lr·(m̂ / (√v̂ + eps) + weight_decay·param),   t = step (≥ 1, a runtime scalar)
//   adamw_clip   the same with g = grad · min(1, max_norm / (√norm2 + 1e-6)) (torch's clip_grad_norm_),
//                norm2 the squared global norm of every gradient of the step
//   sum_squares_partial  part[w] = Σ x[i]² over i ≡ w·256 + lid (mod groups·256), each lane's sum in index
//                order, then a fixed tree over the workgroup; groups = step (a fixed count for each n)
//   sum_squares_total    y[0] = Σ part[w], w in order (one workgroup; lanes stride, then the same tree)
//
// Bindings (adamw): 0 params; 1 param [n] (read_write); 2 grad [n] (read); 3 m [n] (read_write);
// 4 v [n] (read_write); 5 norm2 [1] (read, adamw_clip only).
// Bindings (sum_squares_*): 0 params; 1 x (read); 2 the output (read_write).
// Grid: adamw ⌈n/256⌉ workgroups folded 2-D (flat = wid.x + wid.y · num_workgroups.x), guarded by n;
// sum_squares_partial `groups` workgroups, sum_squares_total one.
// The bias corrections are computed per invocation from step (pow in f32: 1 − β^t loses nothing that
// matters for t ≥ 1 at f32 precision).
// CPU reference: reference::optim::{adamw, clip_coef, sum_squares}.

struct Params {
    n: u32,
    step: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> norm2: array<f32>;

fn adamw_update(i: u32, g: f32) {
    let t = f32(max(p.step, 1u));
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let mh = mi / (1.0 - pow(p.beta1, t));
    let vh = vi / (1.0 - pow(p.beta2, t));
    param[i] = param[i] - p.lr * (mh / (sqrt(vh) + p.eps) + p.weight_decay * param[i]);
}

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= p.n) { return; }
    adamw_update(i, grad[i]);
}

@compute @workgroup_size(256)
fn adamw_clip(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= p.n) { return; }
    let coef = min(1.0, p.max_norm / (sqrt(norm2[0]) + 1e-6));
    adamw_update(i, grad[i] * coef);
}

@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read_write> ys: array<f32>;

var<workgroup> acc: array<f32, 256>;

// The workgroup's 256 lane sums added by a fixed tree; the total lands in acc[0].
fn tree(l: u32) {
    for (var s = 128u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (l < s) { acc[l] = acc[l] + acc[l + s]; }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn sum_squares_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = p.step * 256u;
    var s = 0.0;
    for (var i = wid.x * 256u + lid.x; i < p.n; i = i + stride) {
        let x = xs[i];
        s = s + x * x;
    }
    acc[lid.x] = s;
    tree(lid.x);
    if (lid.x == 0u) { ys[wid.x] = acc[0]; }
}

@compute @workgroup_size(256)
fn sum_squares_total(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var w = lid.x; w < p.step; w = w + 256u) {
        s = s + xs[w];
    }
    acc[lid.x] = s;
    tree(lid.x);
    if (lid.x == 0u) { ys[0] = acc[0]; }
}
