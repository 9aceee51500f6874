// Optimizer family: one AdamW step, in place, one invocation per element (f32 only; names f32 explicitly).
//
//   m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²;  m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t)
//   param = param − lr·(m̂ / (√v̂ + eps) + weight_decay·param),   t = step (≥ 1, a runtime scalar)
//
// Bindings: 0 params; 1 param [n] (read_write); 2 grad [n] (read); 3 m [n] (read_write); 4 v [n] (read_write).
// Grid: ⌈n/256⌉ workgroups folded 2-D (flat = wid.x + wid.y · num_workgroups.x), guarded by n.
// The bias corrections are computed per invocation from step (pow in f32: 1 − β^t loses nothing that
// matters for t ≥ 1 at f32 precision).
// CPU reference: reference::optim::adamw.

struct Params {
    n: u32,
    step: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= p.n) { return; }
    let t = f32(max(p.step, 1u));
    let g = grad[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let mh = mi / (1.0 - pow(p.beta1, t));
    let vh = vi / (1.0 - pow(p.beta2, t));
    param[i] = param[i] - p.lr * (mh / (sqrt(vh) + p.eps) + p.weight_decay * param[i]);
}
