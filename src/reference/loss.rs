//! CPU reference of the loss family: mean cross-entropy over non-ignored rows, and its gradient.
//! A target outside [0, V) that is not the ignore index is treated as ignored (the GPU kernels do the same
//! rather than read out of bounds).

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::Op;

fn counted(t: i32, v: usize, ignore_index: i32) -> bool {
    t != ignore_index && t >= 0 && (t as usize) < v
}

/// Mean over counted rows of −log softmax(logits (n, v))[targets (n)]; 0 if no row counts.
pub fn crossentropy_forward(logits: &[f64], targets: &[i32], n: usize, v: usize, ignore_index: i32) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for i in 0..n {
        if !counted(targets[i], v, ignore_index) {
            continue;
        }
        let row = &logits[i * v..(i + 1) * v];
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + row.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
        sum += lse - row[targets[i] as usize];
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// dlogits (n, v) = (softmax − onehot(target))·dloss/count per counted row, 0 in other rows.
pub fn crossentropy_backward(
    dlogits: &mut [f64],
    logits: &[f64],
    targets: &[i32],
    dloss: f64,
    n: usize,
    v: usize,
    ignore_index: i32,
) {
    let count = (0..n).filter(|&i| counted(targets[i], v, ignore_index)).count();
    dlogits.fill(0.0);
    if count == 0 {
        return;
    }
    let s = dloss / count as f64;
    for i in 0..n {
        if !counted(targets[i], v, ignore_index) {
            continue;
        }
        let row = &logits[i * v..(i + 1) * v];
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|x| (x - mx).exp()).sum();
        for j in 0..v {
            let p = (row[j] - mx).exp() / z;
            let onehot = if j as i32 == targets[i] { 1.0 } else { 0.0 };
            dlogits[i * v + j] = (p - onehot) * s;
        }
    }
}

/// Evaluate CrossEntropy / CrossEntropyBackward.
pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], _vars: &Vars) -> Result<Vec<f64>> {
    let (n, v) = (ins[0].shape[0], ins[0].shape[1]);
    let targets: Vec<i32> = ins[1].data.iter().map(|&x| x as i32).collect();
    match op {
        Op::CrossEntropy { ignore_index } => {
            Ok(vec![crossentropy_forward(&ins[0].data, &targets, n, v, *ignore_index)])
        }
        Op::CrossEntropyBackward { ignore_index } => {
            let mut d = vec![0.0; out_shape.iter().product()];
            crossentropy_backward(&mut d, &ins[0].data, &targets, ins[2].data[0], n, v, *ignore_index);
            Ok(d)
        }
        _ => Err(Error::Run(format!("op {} is not in the loss family", op.name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossentropy_backward_matches_finite_differences() {
        let (n, v) = (5, 7);
        let targets = vec![3, -100, 0, 6, 11]; // one ignored row, one out-of-range target
        let mut seed = 2u64;
        let logits: Vec<f64> = (0..n * v)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 6.0
            })
            .collect();
        let dloss = 0.7;
        let mut d = vec![0.0; n * v];
        crossentropy_backward(&mut d, &logits, &targets, dloss, n, v, -100);
        let h = 1e-5;
        for i in 0..logits.len() {
            let (mut lp, mut lm) = (logits.clone(), logits.clone());
            lp[i] += h;
            lm[i] -= h;
            let fd = dloss
                * (crossentropy_forward(&lp, &targets, n, v, -100) - crossentropy_forward(&lm, &targets, n, v, -100))
                / (2.0 * h);
            assert!((fd - d[i]).abs() < 1e-8, "dlogits[{i}]: fd {fd} analytic {}", d[i]);
        }
    }

    #[test]
    fn all_ignored_is_zero() {
        let logits = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(crossentropy_forward(&logits, &[-100, -100], 2, 2, -100), 0.0);
        let mut d = vec![1.0; 4];
        crossentropy_backward(&mut d, &logits, &[-100, -100], 1.0, 2, 2, -100);
        assert_eq!(d, vec![0.0; 4]);
    }
}
