//! Reverse-mode autodiff inside the graph: `backward` walks the ops from the loss back to the leaves and
//! appends each op's backward rule as ordinary ops, so a training step (forward, backward, optimizer) is one
//! Plan run by the same executor and memory planner. One table of rules, one arm per op.
//!
//! Convention: a value used several times receives the sum of its gradient contributions (`Add`), in the
//! order the uses were visited (reverse op order), so results are deterministic.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::graph::{GraphBuilder, Op, ValueId};

/// Append the gradient of the scalar `loss` ([1] or []) with respect to each of `wrt`. A value that does not
/// influence the loss gets a zero gradient.
pub fn backward(b: &mut GraphBuilder, loss: ValueId, wrt: &[ValueId]) -> Result<Vec<ValueId>> {
    if b.graph.node(loss).shape.iter().product::<usize>() != 1 {
        return Err(Error::Graph(format!("backward needs a scalar loss, got shape {:?}", b.shape(loss))));
    }
    // Only ops on a path from a `wrt` value to the loss need a rule.
    let n = loss.0 + 1;
    let mut from_wrt = vec![false; n];
    for w in wrt {
        if w.0 < n {
            from_wrt[w.0] = true;
        }
    }
    for i in 0..n {
        if b.graph.nodes[i].inputs.iter().any(|v| from_wrt[v.0]) {
            from_wrt[i] = true;
        }
    }
    let mut grads: HashMap<ValueId, ValueId> = HashMap::new();
    let loss_shape = b.shape(loss).to_vec();
    let seed = b.fill(&loss_shape, b.dtype(loss), 1.0)?;
    grads.insert(loss, seed);
    for i in (0..n).rev() {
        let v = ValueId(i);
        let Some(&dy) = grads.get(&v) else { continue };
        if !from_wrt[i] || b.graph.nodes[i].op.is_leaf() {
            continue;
        }
        let node = b.graph.nodes[i].clone();
        for (k, g) in rule(b, v, &node.op, &node.inputs, dy)? {
            let x = node.inputs[k];
            if !from_wrt[x.0] {
                continue;
            }
            let acc = match grads.get(&x) {
                Some(&prev) => b.add(prev, g)?,
                None => g,
            };
            grads.insert(x, acc);
        }
    }
    wrt.iter()
        .map(|w| match grads.get(w) {
            Some(&g) => Ok(g),
            None => {
                let shape = b.shape(*w).to_vec();
                b.fill(&shape, b.dtype(*w), 0.0)
            }
        })
        .collect()
}

/// The backward rule of one op: (input index, gradient contribution) for each differentiable input.
fn rule(b: &mut GraphBuilder, y: ValueId, op: &Op, ins: &[ValueId], dy: ValueId) -> Result<Vec<(usize, ValueId)>> {
    let shape = |b: &GraphBuilder, v: ValueId| b.shape(v).to_vec();
    Ok(match op {
        Op::Add => {
            let db = if shape(b, ins[0]) == shape(b, ins[1]) { dy } else { b.op(Op::SumRows, &[dy])? };
            vec![(0, dy), (1, db)]
        }
        Op::Mul => vec![(0, b.mul(dy, ins[1])?), (1, b.mul(dy, ins[0])?)],
        Op::Scale { s } => vec![(0, b.scale(dy, *s)?)],
        Op::Unary { act } => vec![(0, b.op(Op::UnaryBackward { act: *act }, &[ins[0], dy])?)],
        // The same mask, scaled the same way: dropout is linear in x.
        Op::Dropout { .. } => vec![(0, b.op(op.clone(), &[dy])?)],
        Op::SumRows => {
            // Broadcast dy back over the rows: zeros of x's shape plus dy as a bias.
            let z = b.fill(&shape(b, ins[0]), b.dtype(ins[0]), 0.0)?;
            vec![(0, b.add(z, dy)?)]
        }
        Op::Cast { .. } => vec![(0, b.op(Op::Cast { to: b.dtype(ins[0]) }, &[dy])?)],
        Op::Reshape { .. } => vec![(0, b.reshape(dy, &shape(b, ins[0]))?)],
        Op::Permute0213 => vec![(0, b.op(Op::Permute0213, &[dy])?)],
        Op::MatMul { ta, tb } => matmul_rule(b, ins[0], ins[1], *ta, *tb, dy)?,
        Op::LinearAdd => {
            let mut g = matmul_rule(b, ins[0], ins[1], false, true, dy)?;
            g.push((2, dy));
            g
        }
        Op::Glu { act } => {
            // y = act(a) ⊙ u with a = x·Wgᵀ, u = x·Wuᵀ (recomputed here: the op keeps neither).
            let (x, wg, wu) = (ins[0], ins[1], ins[2]);
            let a = b.matmul(x, wg, false, true)?;
            let u = b.matmul(x, wu, false, true)?;
            let g = b.act(a, *act)?;
            let du = b.mul(dy, g)?;
            let dg = b.mul(dy, u)?;
            let da = b.op(Op::UnaryBackward { act: *act }, &[a, dg])?;
            let ga = matmul_rule(b, x, wg, false, true, da)?;
            let gu = matmul_rule(b, x, wu, false, true, du)?;
            let dx = b.add(ga[0].1, gu[0].1)?;
            vec![(0, dx), (1, ga[1].1), (2, gu[1].1)]
        }
        // Weight-only int8 (a frozen base): dx = dy·W with W widened, transposed, right here. The packed
        // weights and their scales get no gradient.
        Op::QMatMul { act: crate::graph::ActQuant::None } => {
            let wt = b.op(Op::Dequantize { transpose: true }, &ins[1..3])?;
            vec![(0, b.matmul(dy, wt, false, true)?)]
        }
        Op::QLinearAdd { act: crate::graph::ActQuant::None } => {
            let wt = b.op(Op::Dequantize { transpose: true }, &ins[1..3])?;
            vec![(0, b.matmul(dy, wt, false, true)?), (3, dy)]
        }
        Op::QGlu { act, quant: crate::graph::ActQuant::None } => {
            // As Glu's rule, the products recomputed and the weights widened (transposed) for dx.
            let q = Op::QMatMul { act: crate::graph::ActQuant::None };
            let a = b.op(q.clone(), &ins[..3])?;
            let u = b.op(q, &[ins[0], ins[3], ins[4]])?;
            let g = b.act(a, *act)?;
            let du = b.mul(dy, g)?;
            let dg = b.mul(dy, u)?;
            let da = b.op(Op::UnaryBackward { act: *act }, &[a, dg])?;
            let wgt = b.op(Op::Dequantize { transpose: true }, &ins[1..3])?;
            let wut = b.op(Op::Dequantize { transpose: true }, &ins[3..5])?;
            let dxg = b.matmul(da, wgt, false, true)?;
            let dxu = b.matmul(du, wut, false, true)?;
            vec![(0, b.add(dxg, dxu)?)]
        }
        Op::QMatMul { .. } | Op::QLinearAdd { .. } | Op::QGlu { .. } => {
            return Err(Error::Unsupported {
                op: op.name().into(),
                detail: "int8 layers with quantized activations are inference-only; a frozen int8 base trains \
                         weight-only"
                    .into(),
            })
        }
        Op::LayerNorm { eps } => vec![
            (0, b.op(Op::LayerNormGradX { eps: *eps }, &[ins[0], ins[1], dy])?),
            (1, b.op(Op::NormGradGamma { eps: *eps, rms: false }, &[ins[0], dy])?),
            (2, b.op(Op::SumRows, &[dy])?),
        ],
        Op::RmsNorm { eps } => vec![
            (0, b.op(Op::RmsNormGradX { eps: *eps }, &[ins[0], ins[1], dy])?),
            (1, b.op(Op::NormGradGamma { eps: *eps, rms: true }, &[ins[0], dy])?),
        ],
        Op::Softmax { .. } => vec![(0, b.op(Op::SoftmaxBackward, &[y, dy])?)],
        Op::Attention(spec) => match attention_by_matmuls(b, spec, ins, dy)? {
            Some(rule) => rule,
            None => {
                let mut args = ins.to_vec();
                args.push(dy);
                vec![
                    (0, b.op(Op::AttentionGradQ(spec.clone()), &args)?),
                    (1, b.op(Op::AttentionGradK(spec.clone()), &args)?),
                    (2, b.op(Op::AttentionGradV(spec.clone()), &args)?),
                ]
            }
        },
        // P = softmax(scale·Q·Kᵀ + masks) (training's dropout on the probabilities needs P itself): the
        // softmax's backward, then the two products. v and the mask take no gradient.
        Op::AttentionWeights(spec) => {
            let (q, k) = (ins[0], ins[1]);
            if b.shape(q)[1] != b.shape(k)[1] {
                return Err(Error::Unsupported {
                    op: op.name().into(),
                    detail: "backward with grouped-query heads (repeat the kv heads first)".into(),
                });
            }
            let (dq, dk) = weights_rule(b, spec, q, k, y, dy)?;
            vec![(0, dq), (1, dk)]
        }
        Op::Rope { theta, offset, inverse } => {
            let mut args = vec![dy];
            args.extend(ins.get(1)); // the frequency table, if any: a constant
            vec![(0, b.op(Op::Rope { theta: *theta, offset: offset.clone(), inverse: !inverse }, &args)?)]
        }
        Op::AddSinusoidal { .. } => vec![(0, dy)],
        Op::Embedding => {
            let vocab = shape(b, ins[0])[0];
            vec![(0, b.op(Op::EmbeddingBackward { vocab }, &[ins[1], dy])?)]
        }
        Op::CrossEntropy { ignore_index } => {
            vec![(0, b.op(Op::CrossEntropyBackward { ignore_index: *ignore_index }, &[ins[0], ins[1], dy])?)]
        }
        other => {
            return Err(Error::Unsupported {
                op: other.name().into(),
                detail: "has no backward rule (it is itself a backward or update op)".into(),
            })
        }
    })
}

/// Attention's backward through its probabilities, for a whole sequence (training: no query offset, every
/// key, as many kv heads as query heads): P = AttentionWeights (the masks applied), dV = Pᵀ·dO,
/// dS = SoftmaxBackward(P, dO·Vᵀ), dQ = scale·dS·K, dK = scale·dSᵀ·Q. Batched matmuls instead of the fused
/// per-row kernels: on a CPU adapter the fused kernels' per-lane storage loads made a character GPT's
/// attention backward 4.6 s of its 6.8 s step (bench train). None where the fused kernels are needed (a
/// KV-cache offset, runtime lengths, grouped-query heads).
fn attention_by_matmuls(
    b: &mut GraphBuilder,
    spec: &crate::graph::AttnSpec,
    ins: &[ValueId],
    dy: ValueId,
) -> Result<Option<Vec<(usize, ValueId)>>> {
    use crate::graph::Scalar;
    let (q, k, v) = (ins[0], ins[1], ins[2]);
    let (qs, ks) = (b.shape(q).to_vec(), b.shape(k).to_vec());
    let whole = spec.q_offset == Scalar::Const(0) && spec.kv_len == Scalar::Const(ks[2] as u32);
    if !whole || qs[1] != ks[1] || qs[2] != ks[2] || b.dtype(q) != crate::tensor::DType::F32 {
        return Ok(None);
    }
    let p = b.op(Op::AttentionWeights(spec.clone()), ins)?;
    let dv = b.matmul(p, dy, true, false)?;
    let dp = b.matmul(dy, v, false, true)?;
    let (dq, dk) = weights_rule(b, spec, q, k, p, dp)?;
    Ok(Some(vec![(0, dq), (1, dk), (2, dv)]))
}

/// dQ and dK from the probabilities P and their gradient dP: dS = SoftmaxBackward(P, dP) (zero where P is
/// masked), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
fn weights_rule(
    b: &mut GraphBuilder,
    spec: &crate::graph::AttnSpec,
    q: ValueId,
    k: ValueId,
    p: ValueId,
    dp: ValueId,
) -> Result<(ValueId, ValueId)> {
    let ds = b.op(Op::SoftmaxBackward, &[p, dp])?;
    let dq = b.matmul(ds, k, false, false)?;
    let dk = b.matmul(ds, q, true, false)?;
    Ok((b.scale(dq, spec.scale)?, b.scale(dk, spec.scale)?))
}

/// A 2-D [r, c] value transposed to [c, r] (Permute0213 over [1, r, c, 1]).
fn transpose(b: &mut GraphBuilder, w: ValueId) -> Result<ValueId> {
    let s = b.shape(w).to_vec();
    let x = b.reshape(w, &[1, s[0], s[1], 1])?;
    let t = b.op(Op::Permute0213, &[x])?;
    b.reshape(t, &[s[1], s[0]])
}

/// c = op(a)·op(b). With b 2-D shared over a's batch, a's batch is flattened into rows so that db sums over
/// the batch.
fn matmul_rule(
    b: &mut GraphBuilder,
    a: ValueId,
    w: ValueId,
    ta: bool,
    tb: bool,
    dc: ValueId,
) -> Result<Vec<(usize, ValueId)>> {
    let (sa, sw) = (b.shape(a).to_vec(), b.shape(w).to_vec());
    let broadcast = sw.len() == 2 && sa.len() > 2;
    if broadcast && ta {
        return Err(Error::Unsupported {
            op: "matmul".into(),
            detail: "backward of a transposed batched a times a shared 2-D b".into(),
        });
    }
    let (a2, dc2) = if broadcast {
        let k = sa[sa.len() - 1];
        let rows = sa.iter().product::<usize>() / k;
        let n = *b.shape(dc).last().unwrap_or(&1);
        (b.reshape(a, &[rows, k])?, b.reshape(dc, &[rows, n])?)
    } else {
        (a, dc)
    };
    let (da, dw) = match (ta, tb) {
        (false, false) => (b.matmul(dc, w, false, true)?, b.matmul(a2, dc2, true, false)?),
        // A frozen weight widened for this product (`Op::Dequantize`): widened again, transposed, instead of
        // keeping the f32 copy alive from the forward to here. Its own gradient is never asked for.
        (false, true) if matches!(b.graph.node(w).op, Op::Dequantize { transpose: false }) => {
            let stored = b.graph.node(w).inputs.clone();
            let wt = b.op(Op::Dequantize { transpose: true }, &stored)?;
            (b.matmul(dc, wt, false, true)?, b.matmul(dc2, a2, true, false)?)
        }
        (false, true) if b.grad_through_transpose && sw.len() == 2 => {
            let wt = transpose(b, w)?;
            (b.matmul(dc, wt, false, true)?, b.matmul(dc2, a2, true, false)?)
        }
        (false, true) => (b.matmul(dc, w, false, false)?, b.matmul(dc2, a2, true, false)?),
        (true, false) => (b.matmul(w, dc, false, true)?, b.matmul(a, dc, false, false)?),
        (true, true) => (b.matmul(w, dc, true, true)?, b.matmul(dc, a, true, true)?),
    };
    Ok(vec![(0, da), (1, dw)])
}
