//! CPU reference of the embedding family: row gather from a table by token id, and its scatter-add backward.

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::Op;

/// out (n, c) = table (v, c) rows at ids (n); ids ≥ v give zero rows.
pub fn embedding_forward(out: &mut [f64], table: &[f64], ids: &[u32], n: usize, v: usize, c: usize) {
    for i in 0..n {
        let row = &mut out[i * c..(i + 1) * c];
        let id = ids[i] as usize;
        if id < v {
            row.copy_from_slice(&table[id * c..(id + 1) * c]);
        } else {
            row.fill(0.0);
        }
    }
}

/// dtable (v, c) = Σ over positions i (in order) of dy (n, c) row i added at row ids[i]; ids ≥ v are dropped.
pub fn embedding_backward(dtable: &mut [f64], ids: &[u32], dy: &[f64], n: usize, v: usize, c: usize) {
    dtable.fill(0.0);
    for i in 0..n {
        let id = ids[i] as usize;
        if id < v {
            for j in 0..c {
                dtable[id * c + j] += dy[i * c + j];
            }
        }
    }
}

fn ids_of(v: &Val) -> Vec<u32> {
    v.data.iter().map(|&x| x as u32).collect()
}

/// Evaluate Embedding / EmbeddingBackward.
pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], _vars: &Vars) -> Result<Vec<f64>> {
    let mut out = vec![0.0; out_shape.iter().product()];
    match op {
        Op::Embedding => {
            let (v, c) = (ins[0].shape[0], ins[0].shape[1]);
            let ids = ids_of(ins[1]);
            embedding_forward(&mut out, &ins[0].data, &ids, ids.len(), v, c);
        }
        Op::EmbeddingBackward { vocab } => {
            let ids = ids_of(ins[0]);
            let c = out_shape[1];
            embedding_backward(&mut out, &ids, &ins[1].data, ids.len(), *vocab, c);
        }
        _ => return Err(Error::Run(format!("op {} is not in the embedding family", op.name()))),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_backward_matches_finite_differences() {
        let (n, v, c) = (7, 5, 3);
        let ids: Vec<u32> = vec![0, 3, 3, 9, 1, 0, 4]; // repeats and one id out of range
        let mut seed = 1u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let table: Vec<f64> = (0..v * c).map(|_| rnd()).collect();
        let w: Vec<f64> = (0..n * c).map(|_| rnd()).collect();
        let loss = |t: &[f64]| {
            let mut out = vec![0.0; n * c];
            embedding_forward(&mut out, t, &ids, n, v, c);
            out.iter().zip(&w).map(|(o, w)| o * w).sum::<f64>()
        };
        let mut dt = vec![0.0; v * c];
        embedding_backward(&mut dt, &ids, &w, n, v, c);
        let h = 1e-5;
        for i in 0..table.len() {
            let (mut tp, mut tm) = (table.clone(), table.clone());
            tp[i] += h;
            tm[i] -= h;
            let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
            assert!((fd - dt[i]).abs() < 1e-9, "dtable[{i}]: fd {fd} analytic {}", dt[i]);
        }
    }
}
