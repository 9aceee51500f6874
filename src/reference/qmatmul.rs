//! CPU reference of the int8 matmul family (`Op::QMatMul`): the weights are dequantized exactly; with W8A8
//! the activations are rounded per row block as the kernels round them (`quant::quantize_value`), and each
//! block's integer dot product is rescaled by both scales.

use super::{Val, Vars};
use crate::error::{Error, Result};
use crate::graph::{ActQuant, Op};
use crate::quant::{block_scale, quantize_value, unpack, BLOCK};

/// y [m, n] = x [m, k] · Wᵀ, W = int8 wq [n, k] (unpacked) · ws [n, k/32]. `xs`: static activation scales
/// [k/32]; with `act` = None x is used as it is.
#[allow(clippy::too_many_arguments)]
pub fn qmatmul_forward(
    y: &mut [f64],
    x: &[f64],
    wq: &[i8],
    ws: &[f64],
    xs: Option<&[f64]>,
    act: ActQuant,
    m: usize,
    k: usize,
    n: usize,
) {
    let kb = k / BLOCK;
    for i in 0..m {
        let row = &x[i * k..(i + 1) * k];
        // The row as the kernel sees it: float, or (int8 value, block scale) pairs.
        let (xq, sx): (Vec<f64>, Vec<f64>) = match act {
            ActQuant::None => (row.to_vec(), vec![1.0; kb]),
            _ => {
                let mut q = vec![0.0; k];
                let mut s = vec![0.0; kb];
                for b in 0..kb {
                    let blk = &row[b * BLOCK..(b + 1) * BLOCK];
                    let sc = match xs {
                        Some(xs) => xs[b] as f32,
                        None => block_scale(blk.iter().fold(0f32, |a, v| a.max(v.abs() as f32))),
                    };
                    for (o, &v) in q[b * BLOCK..(b + 1) * BLOCK].iter_mut().zip(blk) {
                        *o = quantize_value(v as f32, sc) as f64;
                    }
                    s[b] = sc as f64;
                }
                (q, s)
            }
        };
        for j in 0..n {
            let mut acc = 0.0;
            for b in 0..kb {
                let d: f64 = (b * BLOCK..(b + 1) * BLOCK).map(|p| xq[p] * wq[j * k + p] as f64).sum();
                acc += d * ws[j * kb + b] * sx[b];
            }
            y[i * n + j] = acc;
        }
    }
}

pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], _vars: &Vars) -> Result<Vec<f64>> {
    let Op::QMatMul { act } = *op else {
        return Err(Error::Run(format!("op {} is not a qmatmul", op.name())));
    };
    let k = *ins[0].shape.last().expect("checked by shape inference");
    let n = ins[1].shape[0];
    let m = ins[0].data.len() / k;
    let words: Vec<u32> = ins[1].data.iter().map(|&w| w as u32).collect();
    let wq = unpack(&words);
    let xs = (act == ActQuant::Static).then(|| ins[3].data.as_slice());
    let mut y = vec![0.0; out_shape.iter().product()];
    qmatmul_forward(&mut y, &ins[0].data, &wq, &ins[2].data, xs, act, m, k, n);
    Ok(y)
}
