//! CPU reference of the optimizer family: one AdamW step (decoupled weight decay, bias-corrected moments).

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::{AdamWSpec, Op};

/// The factor clipping scales gradients by: min(1, max_norm / (√norm² + 1e-6)) (torch's clip_grad_norm_).
pub fn clip_coef(max_norm: f32, norm2: f64) -> f64 {
    (max_norm as f64 / (norm2.sqrt() + 1e-6)).min(1.0)
}

/// Σ x².
pub fn sum_squares(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

/// One AdamW step at `step` (≥ 1) on p, g, m, v (all (n)); returns the new (p, m, v).
pub fn adamw(
    spec: &AdamWSpec,
    step: u32,
    p: &[f64],
    g: &[f64],
    m: &[f64],
    v: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (b1, b2) = (spec.beta1 as f64, spec.beta2 as f64);
    let (lr, eps, wd) = (spec.lr as f64, spec.eps as f64, spec.weight_decay as f64);
    let t = step.max(1) as i32;
    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let n = p.len();
    let (mut po, mut mo, mut vo) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        mo[i] = b1 * m[i] + (1.0 - b1) * g[i];
        vo[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        let mh = mo[i] / c1;
        let vh = vo[i] / c2;
        po[i] = p[i] - lr * (mh / (vh.sqrt() + eps) + wd * p[i]);
    }
    (po, mo, vo)
}

/// Each parameter's (param, clipped grad, m, v) of an AdamW op's inputs: the gradients scaled when the spec
/// clips by the squared norm of the last input.
pub fn groups<'a>(spec: &AdamWSpec, ins: &[&'a Val]) -> Vec<[std::borrow::Cow<'a, [f64]>; 4]> {
    use std::borrow::Cow;
    let (params, norm) = crate::graph::adamw_parts(spec, ins);
    let coef = spec.max_grad_norm.zip(norm).map(|(max, n2)| clip_coef(max, n2.data[0]));
    params
        .map(|q| {
            let g: Cow<[f64]> = match coef {
                Some(c) => Cow::Owned(q[1].data.iter().map(|g| g * c).collect()),
                None => Cow::Borrowed(&q[1].data),
            };
            [Cow::Borrowed(&q[0].data[..]), g, Cow::Borrowed(&q[2].data[..]), Cow::Borrowed(&q[3].data[..])]
        })
        .collect()
}

/// AdamW is evaluated by the interpreter (`run_graph`), which writes params, m and v back; this only computes
/// the first param.
pub fn eval(op: &Op, ins: &[&Val], _out_shape: &[usize], vars: &Vars) -> Result<Vec<f64>> {
    match op {
        Op::SumSquares => Ok(vec![ins.iter().map(|x| sum_squares(&x.data)).sum()]),
        Op::AdamW(spec) => {
            let step = super::scalar(&spec.step, vars, op)?;
            let spec = &spec
                .resolved(&|n| vars.get(n).copied())
                .ok_or_else(|| Error::Run(format!("adamw needs the runtime learning rate {:?}", spec.lr_var)))?;
            let [p, g, m, v] = &groups(spec, ins)[0];
            Ok(adamw(spec, step, p, g, m, v).0)
        }
        _ => Err(Error::Run(format!("op {} is not in the optim family", op.name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Scalar;

    #[test]
    fn first_step_moves_by_lr_times_sign() {
        // At t = 1 with zero moments, m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps) ≈ lr·sign(g).
        let spec = AdamWSpec { lr: 0.1, weight_decay: 0.0, step: Scalar::Const(1), ..AdamWSpec::default() };
        let (p, m, v) = adamw(&spec, 1, &[1.0, -2.0], &[0.5, -3.0], &[0.0, 0.0], &[0.0, 0.0]);
        assert!((p[0] - 0.9).abs() < 1e-7 && (p[1] + 1.9).abs() < 1e-7, "{p:?}");
        assert!((m[0] - 0.05).abs() < 1e-6 && (v[1] - 0.009).abs() < 1e-6, "{m:?} {v:?}");
    }
}
