// Optimizer family: AdamW over a group of N parameters in one dispatch, in place, one invocation per element
// (f32 only; names f32 explicitly), and the deterministic sum of squares of N tensors that gradient clipping's
// global norm is made of. Composed for each group size N (`kernels::optim::source`): N tensors' bindings and
// Params words, and the per-tensor branches, are `//#unroll`ed over k = 0..N-1.
//
//   adamw        m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²;  m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t)
//                param = param − lr·(m̂ / (√v̂ + eps) + weight_decay·param),   t = step (≥ 1, a runtime scalar)
//   adamw_clip   the same with g = grad · min(1, max_norm / (√norm2 + 1e-6)) (torch's clip_grad_norm_),
//                norm2 the squared global norm of every gradient of the step
//   sum_squares_partial  tensor k's groups{k} workgroups stride over it: part[base + w] = Σ x[i]² over
//                i ≡ (w − start{k})·256 + lid (mod groups{k}·256), each lane's sum in index order, then a
//                fixed tree over the workgroup (groups{k} a fixed count for each n)
//   sum_squares_total    y[0] = Σ part[w] for w < step, in order (one workgroup; lanes stride, then the tree)
//
// Workgroups: tensor k owns the workgroups start{k} .. start{k} + ⌈n{k}/256⌉ − 1 (adamw) or
// start{k} .. start{k} + groups{k} − 1 (sum_squares_partial) of the dispatch, in k order.
// Bindings (adamw): 0 params; 4k+1 param k [n{k}] (read_write); 4k+2 grad k (read); 4k+3 m k (read_write);
// 4k+4 v k (read_write); 4N+1 norm2 [1] (read, adamw_clip only).
// Bindings (sum_squares_partial): 0 params; k+1 x k (read); N+1 the partial sums (read_write).
// Bindings (sum_squares_total): 0 params; 1 the partial sums (read); 2 the output (read_write).
// Grid: adamw Σ⌈n{k}/256⌉ workgroups folded 2-D (flat = wid.x + wid.y · num_workgroups.x);
// sum_squares_partial Σ groups{k} (≤ 256 each); sum_squares_total one.
// The bias corrections are computed per invocation from step (pow in f32: 1 − β^t loses nothing that
// matters for t ≥ 1 at f32 precision).
// CPU reference: reference::optim::{adamw, clip_coef, sum_squares}.

struct Params {
    step: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,
    base: u32,
    //#unroll k 0..{N}
    n{k}: u32,
    start{k}: u32,
    groups{k}: u32,
    //#end
}

@group(0) @binding(0) var<uniform> p: Params;
//#unroll k 0..{N}
@group(0) @binding({4k+1}) var<storage, read_write> param{k}: array<f32>;
@group(0) @binding({4k+2}) var<storage, read> grad{k}: array<f32>;
@group(0) @binding({4k+3}) var<storage, read_write> m{k}: array<f32>;
@group(0) @binding({4k+4}) var<storage, read_write> v{k}: array<f32>;
//#end
@group(0) @binding({4N+1}) var<storage, read> norm2: array<f32>;

// (param, m, v) after one step from (param, g, m, v).
fn adamw_step(pi: f32, g: f32, mi: f32, vi: f32) -> vec3<f32> {
    let t = f32(max(p.step, 1u));
    let m1 = p.beta1 * mi + (1.0 - p.beta1) * g;
    let v1 = p.beta2 * vi + (1.0 - p.beta2) * g * g;
    let mh = m1 / (1.0 - pow(p.beta1, t));
    let vh = v1 / (1.0 - pow(p.beta2, t));
    return vec3<f32>(pi - p.lr * (mh / (sqrt(vh) + p.eps) + p.weight_decay * pi), m1, v1);
}

// Workgroup `w` of the dispatch updates its tensor's 256 elements, the gradient scaled by `coef`.
fn adamw_group(w: u32, lid: u32, coef: f32) {
    //#unroll k 0..{N}
    if (w >= p.start{k} && (w - p.start{k}) * 256u < p.n{k}) {
        let i = (w - p.start{k}) * 256u + lid;
        if (i < p.n{k}) {
            let r = adamw_step(param{k}[i], grad{k}[i] * coef, m{k}[i], v{k}[i]);
            param{k}[i] = r.x;
            m{k}[i] = r.y;
            v{k}[i] = r.z;
        }
        return;
    }
    //#end
}

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    adamw_group(wid.x + wid.y * nwg.x, lid.x, 1.0);
}

@compute @workgroup_size(256)
fn adamw_clip(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let coef = min(1.0, p.max_norm / (sqrt(norm2[0]) + 1e-6));
    adamw_group(wid.x + wid.y * nwg.x, lid.x, coef);
}

//#unroll k 0..{N}
@group(0) @binding({k+1}) var<storage, read> xs{k}: array<f32>;
//#end
@group(0) @binding({N+1}) var<storage, read_write> part: array<f32>;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
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
    let w = wid.x;
    var s = 0.0;
    //#unroll k 0..{N}
    if (w >= p.start{k} && w - p.start{k} < p.groups{k}) {
        let stride = p.groups{k} * 256u;
        for (var i = (w - p.start{k}) * 256u + lid.x; i < p.n{k}; i = i + stride) {
            let x = xs{k}[i];
            s = s + x * x;
        }
    }
    //#end
    acc[lid.x] = s;
    tree(lid.x);
    if (lid.x == 0u) { part[p.base + w] = acc[0]; }
}

@compute @workgroup_size(256)
fn sum_squares_total(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var w = lid.x; w < p.step; w = w + 256u) {
        s = s + parts[w];
    }
    acc[lid.x] = s;
    tree(lid.x);
    if (lid.x == 0u) { ys[0] = acc[0]; }
}
