//! CPU reference of the elementwise family: add (with bias broadcast), mul, scale, activations and their
//! derivatives, sum over rows, casts, the [a,b,c,d] → [a,c,b,d] permute and the KV-cache write.

use super::{scalar, Val, Vars};
use crate::error::{Error, Result};
use crate::graph::{Act, Op};
use crate::tensor::DType;

/// erf(x) to ~1e-15: Taylor series for |x| < 2.5, Lentz continued fraction of erfc beyond.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let r = if z < 2.5 {
        // erf(z) = 2/√π Σ (−1)ⁿ z^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, z2) = (z, z, z * z);
        for n in 1..200 {
            term *= -z2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if z > 6.5 {
        1.0
    } else {
        // erfc(z) = exp(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated backwards.
        let mut f = z;
        for n in (1..80).rev() {
            f = z + (n as f64 / 2.0) / f;
        }
        1.0 - (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}

const GELU_C: f64 = 0.044715;

/// act(x).
pub fn act_forward(act: Act, x: f64) -> f64 {
    match act {
        Act::Relu => x.max(0.0),
        Act::GeluErf => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Act::GeluTanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + GELU_C * x * x * x)).tanh())
        }
        Act::Silu => x / (1.0 + (-x).exp()),
        Act::Tanh => x.tanh(),
    }
}

/// act'(x).
pub fn act_derivative(act: Act, x: f64) -> f64 {
    match act {
        Act::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Act::GeluErf => {
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2)) + x * pdf
        }
        Act::GeluTanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let t = (k * (x + GELU_C * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * GELU_C * x * x)
        }
        Act::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        Act::Tanh => 1.0 - x.tanh().powi(2),
    }
}

/// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32"); shaders/elementwise.wgsl has the
/// same function.
pub fn hash32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The random bits dropout compares with its threshold for element `i`: a hash of the element index keyed
/// by a hash of (seed, step), so every (seed, step) draws an independent mask and nothing is stored.
pub fn dropout_bits(seed: u32, step: u32, i: u32) -> u32 {
    hash32(i ^ hash32(seed ^ hash32(step.wrapping_add(0x9e37_79b9))))
}

/// The keep threshold of drop probability p: an element is kept when its bits are ≥ it.
pub fn dropout_threshold(p: f32) -> u32 {
    (p as f64 * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
}

/// out (N) = x (N) · keep / (1 − p), keep from `dropout_bits`.
pub fn dropout_forward(out: &mut [f64], x: &[f64], p: f32, seed: u32, step: u32) {
    let (th, scale) = (dropout_threshold(p), 1.0 / (1.0 - p as f64));
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        *o = if dropout_bits(seed, step, i as u32) >= th { v * scale } else { 0.0 };
    }
}

/// out (N) = a (N) + b, where b is (N) or a bias (n) broadcast over the rows of a (N/n, n).
pub fn add_forward(out: &mut [f64], a: &[f64], b: &[f64]) {
    let n = b.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = a[i] + b[i % n];
    }
}

/// out (N) = a (N) ⊙ b (N).
pub fn mul_forward(out: &mut [f64], a: &[f64], b: &[f64]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = a[i] * b[i];
    }
}

/// out (N) = act(x (N)).
pub fn unary_forward(out: &mut [f64], x: &[f64], act: Act) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = act_forward(act, v);
    }
}

/// dx (N) = dy (N) ⊙ act'(x (N)).
pub fn unary_backward(dx: &mut [f64], x: &[f64], dy: &[f64], act: Act) {
    for i in 0..dx.len() {
        dx[i] = dy[i] * act_derivative(act, x[i]);
    }
}

/// out (n) = Σ_rows x (rows, n).
pub fn sum_rows(out: &mut [f64], x: &[f64], rows: usize, n: usize) {
    out.fill(0.0);
    for r in 0..rows {
        for j in 0..n {
            out[j] += x[r * n + j];
        }
    }
}

/// out (a, c, b, d) = x (a, b, c, d) permuted.
pub fn permute0213(out: &mut [f64], x: &[f64], a: usize, b: usize, c: usize, d: usize) {
    for i0 in 0..a {
        for i1 in 0..b {
            for i2 in 0..c {
                for i3 in 0..d {
                    out[((i0 * c + i2) * b + i1) * d + i3] = x[((i0 * b + i1) * c + i2) * d + i3];
                }
            }
        }
    }
}

/// cache (bh, smax, d) rows offset..offset+t ← src (bh, t, d).
/// Rows offset..offset+t of every (sequence, head) of `cache` [bh, smax, d] from `src` [bh, t, d]: one
/// offset for all, or one per sequence of `heads` heads (CacheWriteAt: rows past smax are dropped).
#[allow(clippy::too_many_arguments)]
pub fn cache_write(
    cache: &mut [f64],
    src: &[f64],
    bh: usize,
    heads: usize,
    smax: usize,
    t: usize,
    d: usize,
    offsets: &[usize],
) {
    for h in 0..bh {
        let offset = offsets[(h / heads) % offsets.len()];
        for r in 0..t.min(smax.saturating_sub(offset)) {
            let dst = (h * smax + offset + r) * d;
            cache[dst..dst + d].copy_from_slice(&src[(h * t + r) * d..(h * t + r + 1) * d]);
        }
    }
}

/// Evaluate one elementwise-family op.
pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], vars: &Vars) -> Result<Vec<f64>> {
    let n_out: usize = out_shape.iter().product();
    let mut out = vec![0.0; n_out];
    match op {
        Op::Add => add_forward(&mut out, &ins[0].data, &ins[1].data),
        Op::Mul => mul_forward(&mut out, &ins[0].data, &ins[1].data),
        Op::Scale { s } => {
            for (o, &x) in out.iter_mut().zip(&ins[0].data) {
                *o = *s as f64 * x;
            }
        }
        Op::Unary { act } => unary_forward(&mut out, &ins[0].data, *act),
        Op::Dropout { p, seed, step } => {
            dropout_forward(&mut out, &ins[0].data, *p, *seed, scalar(step, vars, op)?);
        }
        Op::UnaryBackward { act } => unary_backward(&mut out, &ins[0].data, &ins[1].data, *act),
        Op::SumRows => {
            let n = n_out;
            sum_rows(&mut out, &ins[0].data, ins[0].data.len() / n.max(1), n)
        }
        Op::Cast { to } => {
            out.copy_from_slice(&ins[0].data);
            if *to == DType::F16 {
                for o in out.iter_mut() {
                    *o = half::f16::from_f64(*o).to_f64();
                }
            }
        }
        Op::Dequantize { transpose } => dequantize(&mut out, ins, *transpose),
        Op::Permute0213 => {
            let s = &ins[0].shape;
            permute0213(&mut out, &ins[0].data, s[0], s[1], s[2], s[3])
        }
        Op::CacheWrite { offset } => {
            let off = scalar(offset, vars, op)? as usize;
            let (c, s) = (&ins[0].shape, &ins[1].shape);
            if off + s[2] > c[2] {
                return Err(Error::Run(format!(
                    "op cache_write: rows {off}..{} do not fit a cache of {} positions",
                    off + s[2],
                    c[2]
                )));
            }
            out.copy_from_slice(&ins[0].data);
            cache_write(&mut out, &ins[1].data, c[0] * c[1], c[1], c[2], s[2], c[3], &[off]);
        }
        Op::CacheWriteAt => {
            let (c, s) = (&ins[0].shape, &ins[1].shape);
            let offs: Vec<usize> = ins[2].data.iter().map(|&p| p as usize).collect();
            out.copy_from_slice(&ins[0].data);
            cache_write(&mut out, &ins[1].data, c[0] * c[1], c[1], c[2], s[2], c[3], &offs);
        }
        _ => return Err(Error::Run(format!("op {} is not in the elementwise family", op.name()))),
    }
    Ok(out)
}

/// `Op::Dequantize`: f16 values as they are (already exact in f64), or packed int8 words times their block
/// scales; [out, in] or transposed.
fn dequantize(out: &mut [f64], ins: &[&Val], transpose: bool) {
    let rows = ins[0].shape[0];
    let w: Vec<f64> = if ins.len() == 2 {
        let words: Vec<u32> = ins[0].data.iter().map(|&w| w as u32).collect();
        let q = crate::quant::unpack(&words);
        q.iter().enumerate().map(|(i, &v)| v as f64 * ins[1].data[i / crate::quant::BLOCK]).collect()
    } else {
        ins[0].data.clone()
    };
    let cols = w.len() / rows.max(1);
    for (i, &v) in w.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        out[if transpose { c * rows + r } else { i }] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_vec(seed: &mut u64, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                ((*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn erf_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {} want {want}", erf(x));
        }
    }

    #[test]
    fn unary_backward_matches_finite_differences() {
        let mut seed = 7u64;
        let x = rand_vec(&mut seed, 64, 4.0);
        let dy = rand_vec(&mut seed, 64, 1.0);
        let h = 1e-5;
        for act in [Act::Relu, Act::GeluErf, Act::GeluTanh, Act::Silu, Act::Tanh] {
            let mut dx = vec![0.0; x.len()];
            unary_backward(&mut dx, &x, &dy, act);
            for i in 0..x.len() {
                if act == Act::Relu && x[i].abs() < 1e-3 {
                    continue; // the kink
                }
                let fd = (act_forward(act, x[i] + h) - act_forward(act, x[i] - h)) / (2.0 * h) * dy[i];
                assert!((fd - dx[i]).abs() < 1e-8, "{act:?} x={} fd {fd} analytic {}", x[i], dx[i]);
            }
        }
    }

    #[test]
    fn sum_rows_is_the_bias_gradient_of_add() {
        let mut seed = 11u64;
        let (rows, n) = (5, 7);
        let a = rand_vec(&mut seed, rows * n, 1.0);
        let bias = rand_vec(&mut seed, n, 1.0);
        let w = rand_vec(&mut seed, rows * n, 1.0); // loss = Σ w ⊙ (a + bias)
        let loss = |bias: &[f64]| {
            let mut out = vec![0.0; rows * n];
            add_forward(&mut out, &a, bias);
            out.iter().zip(&w).map(|(o, w)| o * w).sum::<f64>()
        };
        let mut db = vec![0.0; n];
        sum_rows(&mut db, &w, rows, n);
        let h = 1e-5;
        for j in 0..n {
            let (mut bp, mut bm) = (bias.clone(), bias.clone());
            bp[j] += h;
            bm[j] -= h;
            let fd = (loss(&bp) - loss(&bm)) / (2.0 * h);
            assert!((fd - db[j]).abs() < 1e-8, "bias {j}: fd {fd} analytic {}", db[j]);
        }
    }

    #[test]
    fn permute0213_is_its_own_inverse() {
        let mut seed = 3u64;
        let x = rand_vec(&mut seed, 2 * 3 * 5 * 4, 1.0);
        let (mut y, mut z) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        permute0213(&mut y, &x, 2, 3, 5, 4);
        permute0213(&mut z, &y, 2, 5, 3, 4);
        assert_eq!(x, z);
    }
}
