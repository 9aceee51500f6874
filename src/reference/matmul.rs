//! CPU reference of the matmul family: batched c = op(a)·op(b), op = optional transpose of the last two dims.

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::{Act, Op};

/// c (batch, m, n) = op(a)·op(b).
/// a: (batch, m, k), or (batch, k, m) if `ta`; b: (batch, k, n), or (batch, n, k) if `tb`, with the batch
/// dim absent (one b for every batch) when `b_shared`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_forward(
    c: &mut [f64],
    a: &[f64],
    b: &[f64],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    b_shared: bool,
) {
    for bi in 0..batch {
        let a = &a[bi * m * k..(bi + 1) * m * k];
        let b = if b_shared { &b[..k * n] } else { &b[bi * k * n..(bi + 1) * k * n] };
        let c = &mut c[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
    }
}

/// The dims of a MatMul: (batch, m, k, n, b_shared).
pub fn matmul_dims(a: &[usize], b: &[usize], ta: bool, tb: bool) -> (usize, usize, usize, usize, bool) {
    let (ra, rb) = (a.len(), b.len());
    let (m, k) = if ta { (a[ra - 1], a[ra - 2]) } else { (a[ra - 2], a[ra - 1]) };
    let n = if tb { b[rb - 2] } else { b[rb - 1] };
    let batch: usize = a[..ra - 2].iter().product();
    (batch, m, k, n, rb == 2 && batch != 1)
}

/// y (rows, n) = act(x·Wgᵀ) ⊙ (x·Wuᵀ), x (rows, k), wg and wu (n, k).
pub fn glu_forward(x: &[f64], wg: &[f64], wu: &[f64], k: usize, act: Act) -> Vec<f64> {
    let (rows, n) = (x.len() / k, wg.len() / k);
    let (mut a, mut u) = (vec![0.0; rows * n], vec![0.0; rows * n]);
    matmul_forward(&mut a, x, wg, 1, rows, k, n, false, true, true);
    matmul_forward(&mut u, x, wu, 1, rows, k, n, false, true, true);
    a.iter().zip(&u).map(|(a, u)| super::elementwise::act_forward(act, *a) * u).collect()
}

/// Evaluate MatMul and Glu.
pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], _vars: &Vars) -> Result<Vec<f64>> {
    if let Op::Glu { act } = *op {
        let k = (*ins[0].shape.last().unwrap_or(&1)).max(1);
        return Ok(glu_forward(&ins[0].data, &ins[1].data, &ins[2].data, k, act));
    }
    let Op::MatMul { ta, tb } = *op else {
        return Err(Error::Run(format!("op {} is not a matmul", op.name())));
    };
    let (batch, m, k, n, shared) = matmul_dims(&ins[0].shape, &ins[1].shape, ta, tb);
    let mut c = vec![0.0; out_shape.iter().product()];
    matmul_forward(&mut c, &ins[0].data, &ins[1].data, batch, m, k, n, ta, tb, shared);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_vec(seed: &mut u64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    /// The backward of c = op(a)·op(b) is itself a matmul: with loss = Σ w ⊙ c,
    /// dA = w·op(b)ᵀ (stored transposed if ta), dB = op(a)ᵀ·w (stored transposed if tb), checked against
    /// central finite differences for every transpose combination.
    #[test]
    fn matmul_backward_via_matmul_matches_finite_differences() {
        let (batch, m, k, n) = (2, 3, 4, 5);
        let mut seed = 5u64;
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rand_vec(&mut seed, batch * m * k);
                let b = rand_vec(&mut seed, batch * k * n);
                let w = rand_vec(&mut seed, batch * m * n);
                let loss = |a: &[f64], b: &[f64]| {
                    let mut c = vec![0.0; batch * m * n];
                    matmul_forward(&mut c, a, b, batch, m, k, n, ta, tb, false);
                    c.iter().zip(&w).map(|(c, w)| c * w).sum::<f64>()
                };
                // dA: ta=false → dA (m,k) = w (m,n) · op(b)ᵀ; ta=true → dAᵀ (k,m) = op(b) · wᵀ.
                let mut da = vec![0.0; a.len()];
                if !ta {
                    matmul_forward(&mut da, &w, &b, batch, m, n, k, false, !tb, false);
                } else {
                    matmul_forward(&mut da, &b, &w, batch, k, n, m, tb, true, false);
                }
                // dB: tb=false → dB (k,n) = op(a)ᵀ · w; tb=true → dBᵀ (n,k) = wᵀ · op(a).
                let mut db = vec![0.0; b.len()];
                if !tb {
                    matmul_forward(&mut db, &a, &w, batch, k, m, n, !ta, false, false);
                } else {
                    matmul_forward(&mut db, &w, &a, batch, n, m, k, true, ta, false);
                }
                let h = 1e-5;
                for (x, grad, is_a) in [(&a, &da, true), (&b, &db, false)] {
                    for i in 0..x.len() {
                        let (mut xp, mut xm) = (x.clone(), x.clone());
                        xp[i] += h;
                        xm[i] -= h;
                        let fd = if is_a {
                            (loss(&xp, &b) - loss(&xm, &b)) / (2.0 * h)
                        } else {
                            (loss(&a, &xp) - loss(&a, &xm)) / (2.0 * h)
                        };
                        assert!(
                            (fd - grad[i]).abs() < 1e-8,
                            "ta={ta} tb={tb} d{}[{i}]: fd {fd} analytic {}",
                            if is_a { "a" } else { "b" },
                            grad[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn shared_b_equals_flattened_batch() {
        let (batch, m, k, n) = (3, 2, 4, 5);
        let mut seed = 9u64;
        let a = rand_vec(&mut seed, batch * m * k);
        let b = rand_vec(&mut seed, k * n);
        let (mut c1, mut c2) = (vec![0.0; batch * m * n], vec![0.0; batch * m * n]);
        matmul_forward(&mut c1, &a, &b, batch, m, k, n, false, false, true);
        matmul_forward(&mut c2, &a, &b, 1, batch * m, k, n, false, false, false);
        assert_eq!(c1, c2);
    }
}
