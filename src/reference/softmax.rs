//! CPU reference of the softmax family: softmax over the last dim (optionally causal) and its backward.

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::Op;

/// Softmax over each row of x (rows, s), rows grouped as (..., t, s): row r is query i = r mod t and, if
/// `causal`, sees columns j ≤ i + (s − t); the other entries of out are 0.
pub fn softmax_forward(out: &mut [f64], x: &[f64], rows: usize, t: usize, s: usize, causal: bool) {
    for r in 0..rows {
        let n = if causal { (r % t + 1 + s).saturating_sub(t).min(s) } else { s };
        let xr = &x[r * s..(r + 1) * s];
        let m = xr[..n].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = xr[..n].iter().map(|v| (v - m).exp()).sum();
        for j in 0..s {
            out[r * s + j] = if j < n { (xr[j] - m).exp() / sum } else { 0.0 };
        }
    }
}

/// dx = y ⊙ (dy − Σ_j y·dy) per row. dx, y, dy: (rows, s).
pub fn softmax_backward(dx: &mut [f64], y: &[f64], dy: &[f64], rows: usize, s: usize) {
    for r in 0..rows {
        let span = r * s..(r + 1) * s;
        let dot: f64 = y[span.clone()].iter().zip(&dy[span.clone()]).map(|(a, b)| a * b).sum();
        for j in span {
            dx[j] = y[j] * (dy[j] - dot);
        }
    }
}

pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], _vars: &Vars) -> Result<Vec<f64>> {
    let shape = &ins[0].shape;
    let s = *shape.last().unwrap_or(&1);
    let t = if shape.len() >= 2 { shape[shape.len() - 2] } else { 1 };
    let rows = ins[0].data.len().checked_div(s).unwrap_or(0);
    let mut out = vec![0.0; out_shape.iter().product()];
    match *op {
        Op::Softmax { causal } => softmax_forward(&mut out, &ins[0].data, rows, t, s, causal),
        Op::SoftmaxBackward => softmax_backward(&mut out, &ins[0].data, &ins[1].data, rows, s),
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a softmax op".into() }),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::norm::tests::{assert_close, fd, rand_vec};

    #[test]
    fn backward_matches_finite_differences() {
        for causal in [false, true] {
            let (b, t, s) = (2, 3, 5);
            let (rows, n) = (b * t, b * t * s);
            let x: Vec<f64> = rand_vec(5, n).iter().map(|v| 3.0 * v).collect();
            let dy = rand_vec(6, n);
            let f = |x: &[f64]| {
                let mut y = vec![0.0; n];
                softmax_forward(&mut y, x, rows, t, s, causal);
                y.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>()
            };
            let mut y = vec![0.0; n];
            softmax_forward(&mut y, &x, rows, t, s, causal);
            let mut dx = vec![0.0; n];
            softmax_backward(&mut dx, &y, &dy, rows, s);
            assert_close(&format!("softmax dx causal={causal}"), &dx, &fd(&x, f), 1e-7);
            if causal {
                // Row 0 of each batch sees s − t + 1 = 3 columns.
                assert_eq!(y[3], 0.0);
                assert!((y[..3].iter().sum::<f64>() - 1.0).abs() < 1e-12);
            }
        }
    }
}
