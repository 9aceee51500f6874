// Elementwise family: one invocation per output element (copy: four), flat index folded into a 2-D grid
// (i = (wid.x + wid.y · num_workgroups.x) · 256 + lid.x), every index guarded by p.n.
//
//   add          y[i] = a[i] + b[i]                            a, b, y: (n)
//   add_bias     y[i] = a[i] + b[i % cols]                      a, y: (rows, cols), b: (cols)
//   mul          y[i] = a[i] · b[i]
//   scale        y[i] = s · a[i]
//   unary        y[i] = act(a[i])                               override ACT: 0 relu, 1 gelu_erf, 2 gelu_tanh, 3 silu, 4 tanh
//   unary_backward y[i] = b[i] · act'(a[i])                     a = x, b = dy
//   dropout      y[i] = a[i] · s if dropout_bits(d0, offset, i) ≥ d1 else 0    s = 1/(1 − p), d0 = seed,
//                d1 = the keep threshold round(p·2³²), offset = the step (runtime); the same op is its own
//                backward (same mask).
//   glu          y[i] = act(a[i]) · b[i]                       Glu's two products from scratch (ACT as unary)
//   sum_rows     y[j] = Σ_r a[r · cols + j], r in order         a: (rows, cols), y: (cols); one invocation per column
//   cast_to_half   yh[i] = T(xf[i])                             xf: array<f32>, yh: array<T> (T = f16 prelude)
//   cast_to_float  yf[i] = f32(a[i])                            a: array<T> (f16), yf: array<f32>
//   dequant_half  yf[i] = f32(a[r, c])                          a: (d0 = rows, cols) f16; y: (rows, cols), or
//                (cols, rows) when d1 = 1 (Dequantize's transpose)
//   dequant_i8   yq[i] = int8 q[r, c] · qs[r, c / 32]            q: packed four to a u32 (little-endian), qs: the
//                block scales; bindings 1 q, 2 qs, 3 yq (f32); layout as dequant_half
//   permute0213  y[i0, i2, i1, i3] = a[i0, i1, i2, i3]          a: (d0, d1, d2, d3), y: (d0, d2, d1, d3); n = numel
//   cache_write  cache[h, offset + r, :] = a[h, r, :]            a: (bh, d1 = t, d3), cache: (bh, d2 = smax, d3),
//                                                              in place (cache bound read_write); n = numel(a)
//   cache_write_at  cache_write with sequence b (= h / cols, cols = heads) at its own offset pos[b] (binding 3,
//                u32 [B]); rows past d2 are dropped (continuous batching).
//   copy / copy_vec4  y = a (vec4 when n % 4 == 0; n counts vec4s there) — the benchmark's bandwidth ceiling.
//   add_tex, mul_tex, unary_tex, glu_tex  add, mul, unary, glu with n % 4 == 0 (n counts vec4s), the inputs as staged textures
//                (exec::twins layout, texel t = elements 4t..4t+3) and vec4 stores: large tensors on CPU
//                adapters, where texel fetches are gathered in straight-line code and storage loads lane by lane.
//
// Bindings: 0 params; 1 a (read); 2 b (read) or the output; 3 the output when there are two inputs.
// Casts use the f16 prelude (T = f16) and name the f32 side explicitly, so the file validates under both
// preludes (under the f32 prelude the casts are copies). Maths in f32 whatever T is.
// erf: Numerical Recipes' Chebyshev fit of erfc (erfcc, fractional error < 1.2e-7 for all x), and GELU for
// x < 0 uses erfc directly so the left tail keeps its relative accuracy. tanh's argument is clamped to ±15
// (tanh = ±1 in f32 there) because some drivers compute tanh via exp and overflow to NaN.
// CPU reference: reference::elementwise (add_forward, mul_forward, unary_forward, unary_backward, sum_rows,
// permute0213, cache_write).

struct Params {
    n: u32,
    cols: u32,
    s: f32,
    d0: u32,
    d1: u32,
    d2: u32,
    d3: u32,
    offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(2) var<storage, read_write> y2: array<T>;
@group(0) @binding(3) var<storage, read_write> y3: array<T>;
@group(0) @binding(1) var<storage, read_write> cache: array<T>;
@group(0) @binding(2) var<storage, read> src: array<T>;
@group(0) @binding(3) var<storage, read> at_pos: array<u32>;
@group(0) @binding(1) var<storage, read> xf: array<f32>;
@group(0) @binding(2) var<storage, read_write> yh: array<T>;
@group(0) @binding(2) var<storage, read_write> yf: array<f32>;
@group(0) @binding(1) var<storage, read> qw: array<u32>;
@group(0) @binding(2) var<storage, read> qs: array<f32>;
@group(0) @binding(3) var<storage, read_write> yq: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<T>>;

override ACT: u32 = 0u;

const WG: u32 = 256u;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// erfc(z) for z ≥ 0, fractional error < 1.2e-7 (Numerical Recipes, erfcc).
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(r);
}

// Φ(x)·2 = 1 + erf(x/√2), accurate in both tails.
fn one_plus_erf(x: f32) -> f32 {
    let c = erfc_pos(abs(x) * 0.70710678118654752);
    return select(c, 2.0 - c, x >= 0.0);
}

const SQRT_2_OVER_PI: f32 = 0.79788456080286536;
const GELU_C: f32 = 0.044715;

fn act(x: f32) -> f32 {
    switch ACT {
        case 0u: { return max(x, 0.0); }
        case 1u: { return 0.5 * x * one_plus_erf(x); }
        case 2u: {
            let u = clamp(SQRT_2_OVER_PI * (x + GELU_C * x * x * x), -15.0, 15.0);
            return 0.5 * x * (1.0 + tanh(u));
        }
        case 4u: { return tanh(clamp(x, -15.0, 15.0)); }
        default: { return x / (1.0 + exp(-x)); }
    }
}

fn act_grad(x: f32) -> f32 {
    switch ACT {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: {
            let pdf = exp(-0.5 * x * x) * 0.39894228040143268;
            return 0.5 * one_plus_erf(x) + x * pdf;
        }
        case 2u: {
            let u = clamp(SQRT_2_OVER_PI * (x + GELU_C * x * x * x), -15.0, 15.0);
            let t = tanh(u);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
        }
        case 4u: {
            let t = tanh(clamp(x, -15.0, 15.0));
            return 1.0 - t * t;
        }
        default: {
            let s = 1.0 / (1.0 + exp(-x));
            return s * (1.0 + x * (1.0 - s));
        }
    }
}

// "lowbias32" (Chris Wellons): the same as reference::elementwise::hash32.
fn hash32(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn dropout_bits(seed: u32, step: u32, i: u32) -> u32 {
    return hash32(i ^ hash32(seed ^ hash32(step + 0x9e3779b9u)));
}

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y2[i] = select(T(0.0), T(p.s * f32(a[i])), dropout_bits(p.d0, p.offset, i) >= p.d1);
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y3[i] = T(f32(a[i]) + f32(b[i]));
}

@compute @workgroup_size(256)
fn add_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y3[i] = T(f32(a[i]) + f32(b[i % p.cols]));
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y3[i] = T(f32(a[i]) * f32(b[i]));
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y2[i] = T(p.s * f32(a[i]));
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y2[i] = T(act(f32(a[i])));
}

@compute @workgroup_size(256)
fn glu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y3[i] = T(act(f32(a[i])) * f32(b[i]));
}

@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y3[i] = T(f32(b[i]) * act_grad(f32(a[i])));
}

// One invocation per column, rows summed in order (deterministic); n = rows.
@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat(wid, nwg, lid);
    if (j >= p.cols) { return; }
    var acc = 0.0;
    for (var r = 0u; r < p.n; r++) {
        acc += f32(a[r * p.cols + j]);
    }
    y2[j] = T(acc);
}

@compute @workgroup_size(256)
fn cast_to_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    yh[i] = T(xf[i]);
}

@compute @workgroup_size(256)
fn cast_to_float(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    yf[i] = f32(a[i]);
}

// The stored element (row-major index) that output element i of a dequant entry reads.
fn dequant_src(i: u32) -> u32 {
    if (p.d1 == 0u) { return i; }
    let rows = p.d0;
    return (i % rows) * p.cols + i / rows;
}

@compute @workgroup_size(256)
fn dequant_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    yf[i] = f32(a[dequant_src(i)]);
}

@compute @workgroup_size(256)
fn dequant_i8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    let e = dequant_src(i);
    let q = extractBits(bitcast<i32>(qw[e / 4u]), 8u * (e % 4u), 8u);
    yq[i] = f32(q) * qs[e / 32u];
}

// One invocation per output element y (d0, d2, d1, d3).
@compute @workgroup_size(256)
fn permute0213(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    let i3 = i % p.d3;
    var r = i / p.d3;
    let i1 = r % p.d1;
    r = r / p.d1;
    let i2 = r % p.d2;
    let i0 = r / p.d2;
    y2[i] = a[((i0 * p.d1 + i1) * p.d2 + i2) * p.d3 + i3];
}

// One invocation per src element; rows that would land past smax are dropped.
@compute @workgroup_size(256)
fn cache_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    cache_store(i, p.offset);
}

@compute @workgroup_size(256)
fn cache_write_at(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    cache_store(i, at_pos[i / (p.d3 * p.d1) / p.cols]);
}

// src element i (head h, row r, column c) to the cache's row base + r of head h.
fn cache_store(i: u32, base: u32) {
    let c = i % p.d3;
    let r = (i / p.d3) % p.d1;
    let h = i / (p.d3 * p.d1);
    let row = base + r;
    if (row >= p.d2) { return; }
    cache[(h * p.d2 + row) * p.d3 + c] = src[i];
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y2[i] = a[i];
}

@compute @workgroup_size(256)
fn copy_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y4[i] = a4[i];
}

// ---- add_tex, mul_tex, unary_tex -----------------------------------------------------------------------
@group(0) @binding(1) var at: texture_2d<f32>;
@group(0) @binding(2) var bt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> y34: array<vec4<T>>;

@compute @workgroup_size(256)
fn add_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y34[i] = vec4<T>(texel4(at, i) + texel4(bt, i));
}

@compute @workgroup_size(256)
fn mul_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    y34[i] = vec4<T>(texel4(at, i) * texel4(bt, i));
}

@compute @workgroup_size(256)
fn glu_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    let x = texel4(at, i);
    y34[i] = vec4<T>(vec4<f32>(act(x.x), act(x.y), act(x.z), act(x.w)) * texel4(bt, i));
}

@compute @workgroup_size(256)
fn unary_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg, lid);
    if (i >= p.n) { return; }
    let x = texel4(at, i);
    y4[i] = vec4<T>(vec4<f32>(act(x.x), act(x.y), act(x.z), act(x.w)));
}
