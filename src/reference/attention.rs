//! CPU reference of the attention family: scaled dot-product attention with grouped-query heads, a causal
//! mask with a query offset, a key-padding mask and a runtime KV length; probabilities; dq, dk, dv.

use super::{scalar, Val, Vars};
use crate::error::{Error, Result};
use crate::graph::Op;

/// The dims and flags of one attention call (q [b, hq, t, d], k and v [b, hkv, s, d]).
#[derive(Clone, Copy, Debug)]
pub struct AttnDims {
    pub b: usize,
    pub hq: usize,
    pub hkv: usize,
    pub t: usize,
    pub s: usize,
    pub d: usize,
    pub scale: f64,
    pub causal: bool,
    pub q_offset: usize,
    pub kv_len: usize,
}

impl AttnDims {
    /// Whether query i of batch bb sees key j: j < kv_len, causal j ≤ q_offset + i, mask[bb, j] ≠ 0.
    fn visible(&self, mask: Option<&[f64]>, bb: usize, i: usize, j: usize) -> bool {
        j < self.kv_len.min(self.s)
            && (!self.causal || j <= self.q_offset + i)
            && mask.is_none_or(|m| m[bb * self.s + j] != 0.0)
    }
    fn q_at(&self, bb: usize, h: usize, i: usize) -> usize {
        ((bb * self.hq + h) * self.t + i) * self.d
    }
    fn kv_at(&self, bb: usize, h: usize, j: usize) -> usize {
        let kh = h / (self.hq / self.hkv);
        ((bb * self.hkv + kh) * self.s + j) * self.d
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// P (b, hq, t, s) = softmax over visible keys of scale·q·kᵀ; 0 for invisible keys (a row with no visible
/// key is all zeros). q: (b, hq, t, d); k: (b, hkv, s, d); mask: (b, s) or none.
pub fn attention_probs(q: &[f64], k: &[f64], mask: Option<&[f64]>, a: &AttnDims) -> Vec<f64> {
    let mut p = vec![0.0; a.b * a.hq * a.t * a.s];
    for bb in 0..a.b {
        for h in 0..a.hq {
            for i in 0..a.t {
                let qi = &q[a.q_at(bb, h, i)..][..a.d];
                let row = &mut p[((bb * a.hq + h) * a.t + i) * a.s..][..a.s];
                let mut m = f64::NEG_INFINITY;
                for (j, x) in row.iter_mut().enumerate() {
                    if a.visible(mask, bb, i, j) {
                        *x = a.scale * dot(qi, &k[a.kv_at(bb, h, j)..][..a.d]);
                        m = m.max(*x);
                    }
                }
                let mut sum = 0.0;
                for (j, x) in row.iter_mut().enumerate() {
                    *x = if a.visible(mask, bb, i, j) { (*x - m).exp() } else { 0.0 };
                    sum += *x;
                }
                if sum > 0.0 {
                    row.iter_mut().for_each(|x| *x /= sum);
                }
            }
        }
    }
    p
}

/// o (b, hq, t, d) = P·v with P from `attention_probs`; v: (b, hkv, s, d).
pub fn attention_forward(o: &mut [f64], q: &[f64], k: &[f64], v: &[f64], mask: Option<&[f64]>, a: &AttnDims) {
    let p = attention_probs(q, k, mask, a);
    o.fill(0.0);
    for bb in 0..a.b {
        for h in 0..a.hq {
            for i in 0..a.t {
                let prow = &p[((bb * a.hq + h) * a.t + i) * a.s..][..a.s];
                let oi = a.q_at(bb, h, i);
                for (j, &pj) in prow.iter().enumerate() {
                    if pj != 0.0 {
                        let vj = a.kv_at(bb, h, j);
                        for e in 0..a.d {
                            o[oi + e] += pj * v[vj + e];
                        }
                    }
                }
            }
        }
    }
}

/// dq (b, hq, t, d), dk and dv (b, hkv, s, d) from d_o (b, hq, t, d):
/// dP = d_o·vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dq = scale·dS·k, dk = scale·dSᵀ·q, dv = Pᵀ·d_o,
/// dk and dv summed over the query heads that share each kv head.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dq: &mut [f64],
    dk: &mut [f64],
    dv: &mut [f64],
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: Option<&[f64]>,
    d_o: &[f64],
    a: &AttnDims,
) {
    let p = attention_probs(q, k, mask, a);
    dq.fill(0.0);
    dk.fill(0.0);
    dv.fill(0.0);
    let d = a.d;
    for bb in 0..a.b {
        for h in 0..a.hq {
            for i in 0..a.t {
                let prow = &p[((bb * a.hq + h) * a.t + i) * a.s..][..a.s];
                let qi = a.q_at(bb, h, i);
                let doi = &d_o[qi..][..d];
                let dp: Vec<f64> = (0..a.s).map(|j| dot(doi, &v[a.kv_at(bb, h, j)..][..d])).collect();
                let dsum: f64 = prow.iter().zip(&dp).map(|(x, y)| x * y).sum();
                for j in 0..a.s {
                    if prow[j] == 0.0 {
                        continue;
                    }
                    let ds = prow[j] * (dp[j] - dsum);
                    let kj = a.kv_at(bb, h, j);
                    for e in 0..d {
                        dq[qi + e] += a.scale * ds * k[kj + e];
                        dk[kj + e] += a.scale * ds * q[qi + e];
                        dv[kj + e] += prow[j] * doi[e];
                    }
                }
            }
        }
    }
}

pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], vars: &Vars) -> Result<Vec<f64>> {
    let spec = match op {
        Op::Attention(a)
        | Op::AttentionWeights(a)
        | Op::AttentionGradQ(a)
        | Op::AttentionGradK(a)
        | Op::AttentionGradV(a) => a,
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not an attention op".into() }),
    };
    let (qs, ks) = (&ins[0].shape, &ins[1].shape);
    let a = AttnDims {
        b: qs[0],
        hq: qs[1],
        hkv: ks[1],
        t: qs[2],
        s: ks[2],
        d: qs[3],
        scale: spec.scale as f64,
        causal: spec.causal,
        q_offset: scalar(&spec.q_offset, vars, op)? as usize,
        kv_len: scalar(&spec.kv_len, vars, op)? as usize,
    };
    let (q, k, v) = (&ins[0].data, &ins[1].data, &ins[2].data);
    let mask = if spec.mask { Some(ins[3].data.as_slice()) } else { None };
    let n_out: usize = out_shape.iter().product();
    match op {
        Op::Attention(_) => {
            let mut o = vec![0.0; n_out];
            attention_forward(&mut o, q, k, v, mask, &a);
            Ok(o)
        }
        Op::AttentionWeights(_) => Ok(attention_probs(q, k, mask, &a)),
        _ => {
            let d_o = &ins[3 + spec.mask as usize].data;
            let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
            attention_backward(&mut dq, &mut dk, &mut dv, q, k, v, mask, d_o, &a);
            Ok(match op {
                Op::AttentionGradQ(_) => dq,
                Op::AttentionGradK(_) => dk,
                _ => dv,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::norm::tests::{assert_close, fd, rand_vec};

    fn check(a: AttnDims, with_mask: bool) {
        let nq = a.b * a.hq * a.t * a.d;
        let nk = a.b * a.hkv * a.s * a.d;
        let q = rand_vec(11, nq);
        let k = rand_vec(12, nk);
        let v = rand_vec(13, nk);
        let d_o = rand_vec(14, nq);
        let mut mask = vec![1.0; a.b * a.s];
        if with_mask {
            mask[1] = 0.0;
            mask[a.s + a.s - 1] = 0.0;
        }
        let m = with_mask.then_some(mask.as_slice());
        let loss = |q: &[f64], k: &[f64], v: &[f64]| {
            let mut o = vec![0.0; nq];
            attention_forward(&mut o, q, k, v, m, &a);
            o.iter().zip(&d_o).map(|(x, y)| x * y).sum::<f64>()
        };
        let (mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nk], vec![0.0; nk]);
        attention_backward(&mut dq, &mut dk, &mut dv, &q, &k, &v, m, &d_o, &a);
        let what = format!("{a:?} mask={with_mask}");
        assert_close(&format!("dq {what}"), &dq, &fd(&q, |q| loss(q, &k, &v)), 1e-7);
        assert_close(&format!("dk {what}"), &dk, &fd(&k, |k| loss(&q, k, &v)), 1e-7);
        assert_close(&format!("dv {what}"), &dv, &fd(&v, |v| loss(&q, &k, v)), 1e-7);
    }

    fn dims(hq: usize, hkv: usize, t: usize, s: usize, causal: bool, q_offset: usize, kv_len: usize) -> AttnDims {
        AttnDims { b: 2, hq, hkv, t, s, d: 3, scale: 0.7, causal, q_offset, kv_len }
    }

    #[test]
    fn grads_match_finite_differences() {
        check(dims(2, 2, 3, 3, false, 0, 3), false);
        check(dims(2, 2, 3, 3, true, 0, 3), false);
        check(dims(2, 2, 3, 4, true, 1, 4), true);
        check(dims(4, 2, 2, 5, true, 2, 4), true);
        check(dims(4, 2, 3, 5, false, 0, 5), true);
    }

    #[test]
    fn row_without_keys_is_zero() {
        // Causal with q_offset 0 and the only key padded: row 0 sees nothing.
        let a = AttnDims { b: 1, hq: 1, hkv: 1, t: 2, s: 2, d: 2, scale: 1.0, causal: true, q_offset: 0, kv_len: 2 };
        let (q, k, v) = (vec![1.0; 4], vec![1.0; 4], vec![2.0; 4]);
        let mut o = vec![9.0; 4];
        attention_forward(&mut o, &q, &k, &v, Some(&[0.0, 1.0]), &a);
        assert_eq!(o, vec![0.0, 0.0, 2.0, 2.0]);
    }
}
