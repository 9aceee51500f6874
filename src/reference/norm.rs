//! CPU reference of the norm family: LayerNorm and RMSNorm over the last dim, forward, dx and dgamma.

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::Op;

/// (mean, rstd) of one row; mean = 0 for RMSNorm (rstd = 1/√(mean(x²) + eps)).
fn row_stats(x: &[f64], eps: f64, rms: bool) -> (f64, f64) {
    let c = x.len() as f64;
    if rms {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / c;
        return (0.0, 1.0 / (ms + eps).sqrt());
    }
    let mean = x.iter().sum::<f64>() / c;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / c;
    (mean, 1.0 / (var + eps).sqrt())
}

/// out = (x − mean)/√(var + eps)·gamma + beta per row. out, x: (rows, c); gamma, beta: (c).
pub fn layernorm_forward(out: &mut [f64], x: &[f64], gamma: &[f64], beta: &[f64], rows: usize, c: usize, eps: f64) {
    for r in 0..rows {
        let xr = &x[r * c..(r + 1) * c];
        let (mean, rstd) = row_stats(xr, eps, false);
        for j in 0..c {
            out[r * c + j] = (xr[j] - mean) * rstd * gamma[j] + beta[j];
        }
    }
}

/// dx of LayerNorm: g = dy·gamma, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)). dx, x, dy: (rows, c); gamma: (c).
pub fn layernorm_backward_x(dx: &mut [f64], x: &[f64], gamma: &[f64], dy: &[f64], rows: usize, c: usize, eps: f64) {
    norm_backward_x(dx, x, gamma, dy, rows, c, eps, false)
}

/// out = x/√(mean(x²) + eps)·gamma per row. out, x: (rows, c); gamma: (c).
pub fn rmsnorm_forward(out: &mut [f64], x: &[f64], gamma: &[f64], rows: usize, c: usize, eps: f64) {
    for r in 0..rows {
        let xr = &x[r * c..(r + 1) * c];
        let (_, rstd) = row_stats(xr, eps, true);
        for j in 0..c {
            out[r * c + j] = xr[j] * rstd * gamma[j];
        }
    }
}

/// dx of RMSNorm: g = dy·gamma, dx = rstd·(g − x̂·mean(g·x̂)). dx, x, dy: (rows, c); gamma: (c).
pub fn rmsnorm_backward_x(dx: &mut [f64], x: &[f64], gamma: &[f64], dy: &[f64], rows: usize, c: usize, eps: f64) {
    norm_backward_x(dx, x, gamma, dy, rows, c, eps, true)
}

#[allow(clippy::too_many_arguments)]
fn norm_backward_x(dx: &mut [f64], x: &[f64], gamma: &[f64], dy: &[f64], rows: usize, c: usize, eps: f64, rms: bool) {
    for r in 0..rows {
        let xr = &x[r * c..(r + 1) * c];
        let (mean, rstd) = row_stats(xr, eps, rms);
        let (mut sg, mut sgx) = (0.0, 0.0);
        for j in 0..c {
            let g = dy[r * c + j] * gamma[j];
            sg += g;
            sgx += g * (xr[j] - mean) * rstd;
        }
        let (mg, mgx) = (if rms { 0.0 } else { sg / c as f64 }, sgx / c as f64);
        for j in 0..c {
            let g = dy[r * c + j] * gamma[j];
            let xh = (xr[j] - mean) * rstd;
            dx[r * c + j] = rstd * (g - mg - xh * mgx);
        }
    }
}

/// dgamma[j] = Σ_r dy[r, j]·x̂[r, j], x̂ of LayerNorm (or RMSNorm if `rms`). dgamma: (c); x, dy: (rows, c).
pub fn norm_grad_gamma(dgamma: &mut [f64], x: &[f64], dy: &[f64], rows: usize, c: usize, eps: f64, rms: bool) {
    dgamma[..c].fill(0.0);
    for r in 0..rows {
        let xr = &x[r * c..(r + 1) * c];
        let (mean, rstd) = row_stats(xr, eps, rms);
        for j in 0..c {
            dgamma[j] += dy[r * c + j] * (xr[j] - mean) * rstd;
        }
    }
}

pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], _vars: &Vars) -> Result<Vec<f64>> {
    let x = ins[0];
    let c = *x.shape.last().unwrap_or(&1);
    let rows = x.data.len().checked_div(c).unwrap_or(0);
    let mut out = vec![0.0; out_shape.iter().product()];
    match *op {
        Op::LayerNorm { eps } => layernorm_forward(&mut out, &x.data, &ins[1].data, &ins[2].data, rows, c, eps as f64),
        Op::RmsNorm { eps } => rmsnorm_forward(&mut out, &x.data, &ins[1].data, rows, c, eps as f64),
        Op::LayerNormGradX { eps } => {
            layernorm_backward_x(&mut out, &x.data, &ins[1].data, &ins[2].data, rows, c, eps as f64)
        }
        Op::RmsNormGradX { eps } => {
            rmsnorm_backward_x(&mut out, &x.data, &ins[1].data, &ins[2].data, rows, c, eps as f64)
        }
        Op::NormGradGamma { eps, rms } => norm_grad_gamma(&mut out, &x.data, &ins[1].data, rows, c, eps as f64, rms),
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a norm op".into() }),
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny deterministic generator for test inputs in [-1, 1).
    pub(crate) fn rand_vec(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    /// Central differences of the scalar f at x.
    pub(crate) fn fd(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let h = 1e-5;
        (0..x.len())
            .map(|i| {
                let (mut a, mut b) = (x.to_vec(), x.to_vec());
                a[i] += h;
                b[i] -= h;
                (f(&a) - f(&b)) / (2.0 * h)
            })
            .collect()
    }

    pub(crate) fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for i in 0..got.len() {
            let e = (got[i] - want[i]).abs();
            assert!(e <= tol * (1.0 + want[i].abs()), "{what}[{i}]: analytic {} vs numeric {}", got[i], want[i]);
        }
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn grads_match_finite_differences() {
        let (rows, c, eps) = (3, 7, 1e-5);
        let x: Vec<f64> = rand_vec(1, rows * c).iter().map(|v| 2.0 * v + 0.3).collect();
        let gamma = rand_vec(2, c);
        let beta = rand_vec(3, c);
        let dy = rand_vec(4, rows * c);
        let n = rows * c;

        // LayerNorm dx and dgamma.
        let ln = |x: &[f64], g: &[f64]| {
            let mut o = vec![0.0; n];
            layernorm_forward(&mut o, x, g, &beta, rows, c, eps);
            dot(&o, &dy)
        };
        let mut dx = vec![0.0; n];
        layernorm_backward_x(&mut dx, &x, &gamma, &dy, rows, c, eps);
        assert_close("layernorm dx", &dx, &fd(&x, |x| ln(x, &gamma)), 1e-7);
        let mut dg = vec![0.0; c];
        norm_grad_gamma(&mut dg, &x, &dy, rows, c, eps, false);
        assert_close("layernorm dgamma", &dg, &fd(&gamma, |g| ln(&x, g)), 1e-7);

        // RMSNorm dx and dgamma.
        let rn = |x: &[f64], g: &[f64]| {
            let mut o = vec![0.0; n];
            rmsnorm_forward(&mut o, x, g, rows, c, eps);
            dot(&o, &dy)
        };
        rmsnorm_backward_x(&mut dx, &x, &gamma, &dy, rows, c, eps);
        assert_close("rmsnorm dx", &dx, &fd(&x, |x| rn(x, &gamma)), 1e-7);
        norm_grad_gamma(&mut dg, &x, &dy, rows, c, eps, true);
        assert_close("rmsnorm dgamma", &dg, &fd(&gamma, |g| rn(&x, g)), 1e-7);
    }

    #[test]
    fn forward_normalises() {
        let (rows, c) = (2, 5);
        let x = rand_vec(9, rows * c);
        let mut o = vec![0.0; rows * c];
        layernorm_forward(&mut o, &x, &[1.0; 5], &[0.0; 5], rows, c, 0.0);
        for r in 0..rows {
            let row = &o[r * c..(r + 1) * c];
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| v * v).sum::<f64>() / c as f64;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9);
        }
    }
}
