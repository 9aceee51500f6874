// norm.wgsl — LayerNorm and RMSNorm over the last dim, forward and backward.
//
// Maths (per row r of x [rows, c]; x̂ the normalised row):
//   layernorm_forward:    mean = Σx/c, var = Σ(x − mean)²/c (biased), rstd = 1/√(var + eps),
//                         x̂ = (x − mean)·rstd,  y = x̂·gamma + beta
//   rmsnorm_forward:      rstd = 1/√(Σx²/c + eps), x̂ = x·rstd, y = x̂·gamma
//   layernorm_backward_x: g = dy·gamma, dx = rstd·(g − mean(g) − x̂·mean(g·x̂))
//   rmsnorm_backward_x:   g = dy·gamma, dx = rstd·(g − x̂·mean(g·x̂))
//   norm_row_stats:       stats[r] = (mean, rstd) (mean = 0 when RMS), for norm_grad_gamma
//   norm_grad_gamma:      dgamma[j] = Σ_r dy[r, j]·x̂[r, j]
//
// Bindings (group 0; each entry point uses its own subset, numbered in Dispatch::bindings order):
//   0 p: Params (uniform)                   rows, c, eps
//   layernorm_forward:    1 x [rows, c]  2 gamma [c]  3 beta [c]  4 y [rows, c] (rw)
//   rmsnorm_forward:      1 x [rows, c]  2 gamma [c]  3 y3 [rows, c] (rw)
//   *_backward_x:         1 x [rows, c]  2 gamma [c]  3 dy [rows, c]  4 dx [rows, c] (rw)
//   norm_row_stats:       1 x [rows, c]  2 stats_w [rows, 2] f32 (rw, scratch)
//   norm_grad_gamma:      1 x [rows, c]  2 dy2 [rows, c]  3 stats [rows, 2] f32  4 dgamma [c] (rw)
//   rmsnorm_rows, layernorm_rows (CPU adapters, c % 4 == 0): x, gamma and beta as textures (exec::twins
//                         layout, texel t = elements 4t..4t+3: x staged, gamma/beta twins or staged),
//                         y as vec4 stores; same slots as the forward entries above.
//   *_backward_rows, norm_row_stats_rows (CPU adapters, c % 4 == 0): the same with dy staged (slot 3) and
//                         dx as vec4 stores (slot 4); stats_w (slot 2).
//
// Overrides: WG (workgroup size, a power of two ≤ 256, default 64); RMS (norm_row_stats: RMSNorm stats).
// Dispatch: one workgroup per row (grid_1d(rows), row = wid.x + wid.y·nwg.x) for every entry except
//   norm_grad_gamma: one invocation per column, grid_1d(ceil(c / WG)); and the *_rows entries: one
//   invocation per row, walking it alone (no workgroup memory or barriers, which llvmpipe runs lane by lane),
//   workgroups of 16 rows, grid_1d(ceil(rows / 16)).
// Numerics: every sum is f32, in a fixed tree order (the *_rows entries: in row order, four lanes of a vec4
//   added at the end; deterministic), even for f16 storage; squares are
//   taken as f32(x)·f32(x) so activations near 22,500 do not overflow f16. LayerNorm variance is two-pass
//   (Σ(x − mean)²), not E[x²] − mean², to avoid cancellation. norm_grad_gamma sums rows in order 0..rows.
// CPU reference: reference::norm::{layernorm_forward, layernorm_backward_x, rmsnorm_forward,
//   rmsnorm_backward_x, norm_grad_gamma}.

struct Params {
    rows: u32,
    c: u32,
    eps: f32,
}

override WG: u32 = 64u;
override RMS: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> gamma: array<T>;
@group(0) @binding(3) var<storage, read> beta: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(3) var<storage, read_write> y3: array<T>;
@group(0) @binding(3) var<storage, read> dy: array<T>;
@group(0) @binding(4) var<storage, read_write> dx: array<T>;
@group(0) @binding(2) var<storage, read_write> stats_w: array<f32>;
@group(0) @binding(2) var<storage, read> dy2: array<T>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<T>;

var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;

// Tree sum of one value per invocation; every invocation gets the total. Call in uniform control flow.
fn wg_sum(lid: u32, a: f32) -> f32 {
    red[lid] = a;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// Two tree sums at once.
fn wg_sum2(lid: u32, a: f32, b: f32) -> vec2<f32> {
    red[lid] = a;
    red2[lid] = b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
            red2[lid] += red2[lid + s];
        }
        workgroupBarrier();
    }
    let r = vec2<f32>(red[0], red2[0]);
    workgroupBarrier();
    return r;
}

// (mean, rstd) of the row starting at `base`; mean = 0 for RMSNorm.
fn row_stats(lid: u32, base: u32, rms: bool) -> vec2<f32> {
    let c = p.c;
    let cf = f32(c);
    if (rms) {
        var ss = 0.0;
        for (var j = lid; j < c; j += WG) {
            let v = f32(x[base + j]);
            ss += v * v;
        }
        let tot = wg_sum(lid, ss);
        return vec2<f32>(0.0, inverseSqrt(tot / cf + p.eps));
    }
    var s = 0.0;
    for (var j = lid; j < c; j += WG) {
        s += f32(x[base + j]);
    }
    let mean = wg_sum(lid, s) / cf;
    var sq = 0.0;
    for (var j = lid; j < c; j += WG) {
        let d = f32(x[base + j]) - mean;
        sq += d * d;
    }
    let var_ = wg_sum(lid, sq) / cf;
    return vec2<f32>(mean, inverseSqrt(var_ + p.eps));
}

@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.c;
    let st = row_stats(lid, base, false);
    for (var j = lid; j < p.c; j += WG) {
        let xh = (f32(x[base + j]) - st.x) * st.y;
        y[base + j] = T(xh * f32(gamma[j]) + f32(beta[j]));
    }
}

@compute @workgroup_size(WG)
fn rmsnorm_forward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.c;
    let st = row_stats(lid, base, true);
    for (var j = lid; j < p.c; j += WG) {
        y3[base + j] = T(f32(x[base + j]) * st.y * f32(gamma[j]));
    }
}

@compute @workgroup_size(WG)
fn layernorm_backward_x(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.c;
    let st = row_stats(lid, base, false);
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = lid; j < p.c; j += WG) {
        let g = f32(dy[base + j]) * f32(gamma[j]);
        let xh = (f32(x[base + j]) - st.x) * st.y;
        sg += g;
        sgx += g * xh;
    }
    let sums = wg_sum2(lid, sg, sgx) / f32(p.c);
    for (var j = lid; j < p.c; j += WG) {
        let g = f32(dy[base + j]) * f32(gamma[j]);
        let xh = (f32(x[base + j]) - st.x) * st.y;
        dx[base + j] = T(st.y * (g - sums.x - xh * sums.y));
    }
}

@compute @workgroup_size(WG)
fn rmsnorm_backward_x(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.c;
    let st = row_stats(lid, base, true);
    var sgx = 0.0;
    for (var j = lid; j < p.c; j += WG) {
        let g = f32(dy[base + j]) * f32(gamma[j]);
        sgx += g * f32(x[base + j]) * st.y;
    }
    let mgx = wg_sum(lid, sgx) / f32(p.c);
    for (var j = lid; j < p.c; j += WG) {
        let g = f32(dy[base + j]) * f32(gamma[j]);
        let xh = f32(x[base + j]) * st.y;
        dx[base + j] = T(st.y * (g - xh * mgx));
    }
}

@compute @workgroup_size(WG)
fn norm_row_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let st = row_stats(lid, row * p.c, RMS);
    if (lid == 0u) {
        stats_w[2u * row] = st.x;
        stats_w[2u * row + 1u] = st.y;
    }
}

@compute @workgroup_size(WG)
fn norm_grad_gamma(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = (wid.x + wid.y * nwg.x) * WG + lid;
    if (j >= p.c) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let i = r * p.c + j;
        acc += f32(dy2[i]) * (f32(x[i]) - stats[2u * r]) * stats[2u * r + 1u];
    }
    dgamma[j] = T(acc);
}

// ---- rmsnorm_rows, layernorm_rows ---------------------------------------------------------------------
@group(0) @binding(1) var xt: texture_2d<f32>;
@group(0) @binding(2) var gt: texture_2d<f32>;
@group(0) @binding(3) var bt: texture_2d<f32>;
@group(0) @binding(3) var dyt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> y34: array<vec4<T>>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4<T>>;

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

fn rows_row(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 16u + lid;
}

@compute @workgroup_size(16)
fn rmsnorm_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = rows_row(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let c4 = p.c / 4u;
    let base = row * c4;
    var ss = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        let v = texel4(xt, base + j);
        ss += v * v;
    }
    let rstd = inverseSqrt(hsum(ss) / f32(p.c) + p.eps);
    for (var j = 0u; j < c4; j++) {
        y34[base + j] = vec4<T>(texel4(xt, base + j) * rstd * texel4(gt, j));
    }
}

@compute @workgroup_size(16)
fn layernorm_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = rows_row(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let c4 = p.c / 4u;
    let base = row * c4;
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        s += texel4(xt, base + j);
    }
    let mean = hsum(s) / f32(p.c);
    var sq = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        let d = texel4(xt, base + j) - mean;
        sq += d * d;
    }
    let rstd = inverseSqrt(hsum(sq) / f32(p.c) + p.eps);
    for (var j = 0u; j < c4; j++) {
        y4[base + j] = vec4<T>((texel4(xt, base + j) - mean) * rstd * texel4(gt, j) + texel4(bt, j));
    }
}

// ---- layernorm_backward_rows, rmsnorm_backward_rows, norm_row_stats_rows ----------------------------------
// The backward entries the same way (CPU adapters, c % 4 == 0): x (binding 1) and dy (binding 3) staged,
// gamma (binding 2) its twin, dx (binding 4) as vec4 stores; norm_row_stats_rows: x staged, stats_w
// (binding 2). A row an invocation, as the forward *_rows: the workgroup-per-row entries spend most of their
// time on per-lane storage loads and barriers under llvmpipe (MiniLM's training step: 1.0 s in
// layernorm_backward_x and 0.5 s in norm_row_stats for 13 norms, bench train).

// (mean, rstd) of row `base` (texels base..base + c/4) of the staged x; mean 0 for RMSNorm.
fn rows_stats(base: u32, rms: bool) -> vec2<f32> {
    let c4 = p.c / 4u;
    let cf = f32(p.c);
    if (rms) {
        var ss = vec4<f32>(0.0);
        for (var j = 0u; j < c4; j++) {
            let v = texel4(xt, base + j);
            ss += v * v;
        }
        return vec2<f32>(0.0, inverseSqrt(hsum(ss) / cf + p.eps));
    }
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        s += texel4(xt, base + j);
    }
    let mean = hsum(s) / cf;
    var sq = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        let d = texel4(xt, base + j) - mean;
        sq += d * d;
    }
    return vec2<f32>(mean, inverseSqrt(hsum(sq) / cf + p.eps));
}

// dx of one row: g = dy·gamma, x̂ = (x − mean)·rstd, dx = rstd·(g − mean(g)·[layernorm] − x̂·mean(g·x̂)).
fn backward_row(row: u32, rms: bool) {
    let c4 = p.c / 4u;
    let base = row * c4;
    let st = rows_stats(base, rms);
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var j = 0u; j < c4; j++) {
        let g = texel4(dyt, base + j) * texel4(gt, j);
        sg += g;
        sgx += g * (texel4(xt, base + j) - st.x) * st.y;
    }
    var mg = hsum(sg) / f32(p.c);
    if (rms) {
        mg = 0.0;
    }
    let mgx = hsum(sgx) / f32(p.c);
    for (var j = 0u; j < c4; j++) {
        let g = texel4(dyt, base + j) * texel4(gt, j);
        let xh = (texel4(xt, base + j) - st.x) * st.y;
        y4[base + j] = vec4<T>(st.y * (g - mg - xh * mgx));
    }
}

@compute @workgroup_size(16)
fn layernorm_backward_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = rows_row(wid, nwg, lid);
    if (row < p.rows) {
        backward_row(row, false);
    }
}

@compute @workgroup_size(16)
fn rmsnorm_backward_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = rows_row(wid, nwg, lid);
    if (row < p.rows) {
        backward_row(row, true);
    }
}

@compute @workgroup_size(16)
fn norm_row_stats_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = rows_row(wid, nwg, lid);
    if (row >= p.rows) {
        return;
    }
    let st = rows_stats(row * (p.c / 4u), RMS);
    stats_w[2u * row] = st.x;
    stats_w[2u * row + 1u] = st.y;
}
