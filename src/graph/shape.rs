//! Shape and dtype inference: one arm per op, each returning a `Shape` error that names the op and shapes.

use super::op::Op;
use crate::error::{Error, Result};
use crate::tensor::{numel, DType};

type In<'a> = (&'a [usize], DType);

fn err(op: &Op, ins: &[In], detail: impl Into<String>) -> Error {
    Error::Shape {
        op: op.name().to_string(),
        detail: detail.into(),
        shapes: ins.iter().map(|(s, _)| s.to_vec()).collect(),
    }
}

fn want_inputs(op: &Op, ins: &[In], n: usize) -> Result<()> {
    if ins.len() != n {
        return Err(err(op, ins, format!("expects {n} inputs, got {}", ins.len())));
    }
    Ok(())
}

fn want_float(op: &Op, ins: &[In], idx: &[usize]) -> Result<DType> {
    let dt = ins[idx[0]].1;
    for &i in idx {
        if !ins[i].1.is_float() || ins[i].1 != dt {
            return Err(Error::DType {
                op: op.name().into(),
                detail: format!(
                    "input {i} is {} but the op needs float inputs of one dtype ({})",
                    ins[i].1.name(),
                    dt.name()
                ),
            });
        }
    }
    Ok(dt)
}

fn want_dtype(op: &Op, ins: &[In], i: usize, dt: DType) -> Result<()> {
    if ins[i].1 != dt {
        return Err(Error::DType {
            op: op.name().into(),
            detail: format!("input {i} is {} but must be {}", ins[i].1.name(), dt.name()),
        });
    }
    Ok(())
}

fn same(op: &Op, ins: &[In], a: usize, b: usize) -> Result<()> {
    if ins[a].0 != ins[b].0 {
        return Err(err(op, ins, format!("inputs {a} and {b} must have the same shape")));
    }
    Ok(())
}

fn rank_at_least(op: &Op, ins: &[In], i: usize, r: usize) -> Result<()> {
    if ins[i].0.len() < r {
        return Err(err(op, ins, format!("input {i} needs rank ≥ {r}")));
    }
    Ok(())
}

fn last(s: &[usize]) -> usize {
    *s.last().unwrap_or(&1)
}

/// Infer the output (shape, dtype) of `op` applied to inputs of the given shapes and dtypes.
pub fn infer(op: &Op, ins: &[In]) -> Result<(Vec<usize>, DType)> {
    let out = |s: &[usize], d: DType| Ok((s.to_vec(), d));
    match op {
        Op::Input { .. } | Op::Param { .. } | Op::State { .. } | Op::Fill { .. } => {
            Err(err(op, ins, "leaves take no inputs"))
        }
        Op::Add => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0, 1])?;
            let (a, b) = (ins[0].0, ins[1].0);
            if a != b && !(b.len() == 1 && b[0] == last(a)) {
                return Err(err(op, ins, "b must have a's shape or be a bias of a's last dim"));
            }
            out(a, dt)
        }
        Op::Mul => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0, 1])?;
            same(op, ins, 0, 1)?;
            out(ins[0].0, dt)
        }
        Op::Permute0213 => {
            want_inputs(op, ins, 1)?;
            let dt = want_float(op, ins, &[0])?;
            let s = ins[0].0;
            if s.len() != 4 {
                return Err(err(op, ins, "expects a rank-4 input"));
            }
            out(&[s[0], s[2], s[1], s[3]], dt)
        }
        Op::Dropout { p, .. } if !(0.0..1.0).contains(p) => Err(err(op, ins, "needs 0 ≤ p < 1")),
        Op::Scale { .. } | Op::Unary { .. } | Op::Dropout { .. } => {
            want_inputs(op, ins, 1)?;
            let dt = want_float(op, ins, &[0])?;
            out(ins[0].0, dt)
        }
        Op::UnaryBackward { .. } | Op::SoftmaxBackward => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0, 1])?;
            same(op, ins, 0, 1)?;
            out(ins[0].0, dt)
        }
        Op::SumRows => {
            want_inputs(op, ins, 1)?;
            let dt = want_float(op, ins, &[0])?;
            rank_at_least(op, ins, 0, 1)?;
            out(&[last(ins[0].0)], dt)
        }
        Op::Cast { to } => {
            want_inputs(op, ins, 1)?;
            want_float(op, ins, &[0])?;
            if !to.is_float() {
                return Err(err(op, ins, "casts only between f32 and f16"));
            }
            out(ins[0].0, *to)
        }
        Op::Dequantize { transpose } => {
            let (w, dt) = (ins.first().map(|i| i.0).unwrap_or(&[]), ins.first().map(|i| i.1));
            if w.len() != 2 {
                return Err(err(op, ins, "needs a 2-D weight"));
            }
            let (rows, cols) = match dt {
                Some(DType::F16) => {
                    want_inputs(op, ins, 1)?;
                    (w[0], w[1])
                }
                Some(DType::U32) => {
                    want_inputs(op, ins, 2)?;
                    want_dtype(op, ins, 1, DType::F32)?;
                    let cols = w[1] * 4;
                    let bl = crate::quant::BLOCK;
                    if !cols.is_multiple_of(bl) || ins[1].0 != [w[0], cols / bl] {
                        return Err(err(
                            op,
                            ins,
                            format!("int8 [{}, {cols}] needs scales [{}, {}]", w[0], w[0], cols / bl),
                        ));
                    }
                    (w[0], cols)
                }
                _ => return Err(err(op, ins, "widens f16 or packed int8 (u32) weights")),
            };
            out(&if *transpose { [cols, rows] } else { [rows, cols] }, DType::F32)
        }
        Op::Reshape { shape } => {
            want_inputs(op, ins, 1)?;
            if numel(shape) != numel(ins[0].0) {
                return Err(err(op, ins, format!("cannot reshape to {shape:?}: element counts differ")));
            }
            out(shape, ins[0].1)
        }
        Op::MatMul { ta, tb } => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0, 1])?;
            rank_at_least(op, ins, 0, 2)?;
            rank_at_least(op, ins, 1, 2)?;
            let (a, b) = (ins[0].0, ins[1].0);
            let (ra, rb) = (a.len(), b.len());
            let (m, ka) = if *ta { (a[ra - 1], a[ra - 2]) } else { (a[ra - 2], a[ra - 1]) };
            let (kb, n) = if *tb { (b[rb - 1], b[rb - 2]) } else { (b[rb - 2], b[rb - 1]) };
            if ka != kb {
                return Err(err(op, ins, format!("inner dims differ: {ka} vs {kb}")));
            }
            if rb != 2 && a[..ra - 2] != b[..rb - 2] {
                return Err(err(op, ins, "batch dims differ (b must match a's batch or be 2-D)"));
            }
            let mut s = a[..ra - 2].to_vec();
            s.extend([m, n]);
            out(&s, dt)
        }
        Op::LinearF32 => {
            want_inputs(op, ins, 2)?;
            let (s, _) = infer(&Op::MatMul { ta: false, tb: true }, ins)?;
            if ins[1].0.len() != 2 {
                return Err(err(op, ins, "w must be a 2-D weight [N, K]"));
            }
            out(&s, DType::F32)
        }
        Op::LinearAdd => {
            want_inputs(op, ins, 3)?;
            let (s, dt) = infer(&Op::MatMul { ta: false, tb: true }, &ins[..2])?;
            if ins[1].0.len() != 2 {
                return Err(err(op, ins, "w must be a 2-D weight [N, K]"));
            }
            if ins[2].0 != s.as_slice() || ins[2].1 != dt {
                return Err(err(op, ins, format!("r must be x·Wᵀ's shape {s:?} and dtype {dt:?}")));
            }
            out(&s, dt)
        }
        Op::QMatMul { act } => {
            let n_in = if *act == super::op::ActQuant::Static { 4 } else { 3 };
            want_inputs(op, ins, n_in)?;
            let dt = want_float(op, ins, &[0])?;
            let x = ins[0].0;
            let k = *x.last().unwrap_or(&0);
            let bl = crate::quant::BLOCK;
            if x.is_empty() || k == 0 || !k.is_multiple_of(bl) {
                return Err(err(op, ins, format!("x's last dim {k} must be a positive multiple of {bl}")));
            }
            let (wq, ws) = (ins[1].0, ins[2].0);
            if ins[1].1 != DType::U32 || wq.len() != 2 || wq[1] != k / 4 {
                return Err(err(op, ins, format!("wq must be u32 [N, {}] (int8 packed by four)", k / 4)));
            }
            if ins[2].1 != DType::F32 || ws != [wq[0], k / bl] {
                return Err(err(op, ins, format!("ws must be f32 [{}, {}] (a scale per block)", wq[0], k / bl)));
            }
            if n_in == 4 && (ins[3].1 != DType::F32 || ins[3].0 != [k / bl]) {
                return Err(err(op, ins, format!("xs must be f32 [{}] (static activation scales)", k / bl)));
            }
            let mut s = x.to_vec();
            *s.last_mut().expect("rank checked") = wq[0];
            out(&s, dt)
        }
        Op::QLinearAdd { act } => {
            want_inputs(op, ins, if *act == super::op::ActQuant::Static { 5 } else { 4 })?;
            let (product, r) = super::op::qlinear_add_parts(ins);
            let (s, dt) = infer(&Op::QMatMul { act: *act }, &product)?;
            if r.0 != s.as_slice() || r.1 != dt {
                return Err(err(op, ins, format!("r must be the product's shape {s:?} and dtype {dt:?}")));
            }
            out(&s, dt)
        }
        Op::QGlu { quant, .. } => {
            want_inputs(op, ins, if *quant == super::op::ActQuant::Static { 6 } else { 5 })?;
            let (gate, up) = super::op::qglu_parts(ins);
            let (s, dt) = infer(&Op::QMatMul { act: *quant }, &gate)?;
            if infer(&Op::QMatMul { act: *quant }, &up)? != (s.clone(), dt) {
                return Err(err(op, ins, "the up projection's weights must match the gate's"));
            }
            out(&s, dt)
        }
        Op::Glu { .. } => {
            want_inputs(op, ins, 3)?;
            let dt = want_float(op, ins, &[0, 1, 2])?;
            rank_at_least(op, ins, 0, 1)?;
            let (x, wg, wu) = (ins[0].0, ins[1].0, ins[2].0);
            let k = *x.last().expect("rank checked");
            if wg.len() != 2 || wg[1] != k || wu != wg {
                return Err(err(op, ins, format!("wg and wu must both be [N, {k}]")));
            }
            let mut s = x.to_vec();
            *s.last_mut().expect("rank checked") = wg[0];
            out(&s, dt)
        }
        Op::LayerNorm { .. } => {
            want_inputs(op, ins, 3)?;
            let dt = want_float(op, ins, &[0, 1, 2])?;
            norm_params(op, ins, &[1, 2])?;
            out(ins[0].0, dt)
        }
        Op::RmsNorm { .. } => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0, 1])?;
            norm_params(op, ins, &[1])?;
            out(ins[0].0, dt)
        }
        Op::LayerNormGradX { .. } | Op::RmsNormGradX { .. } => {
            want_inputs(op, ins, 3)?;
            let dt = want_float(op, ins, &[0, 1, 2])?;
            norm_params(op, ins, &[1])?;
            same(op, ins, 0, 2)?;
            out(ins[0].0, dt)
        }
        Op::NormGradGamma { .. } => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0, 1])?;
            same(op, ins, 0, 1)?;
            rank_at_least(op, ins, 0, 1)?;
            out(&[last(ins[0].0)], dt)
        }
        Op::Softmax { .. } => {
            want_inputs(op, ins, 1)?;
            let dt = want_float(op, ins, &[0])?;
            rank_at_least(op, ins, 0, 2)?;
            let s = ins[0].0;
            if s[s.len() - 2] > s[s.len() - 1] && matches!(op, Op::Softmax { causal: true }) {
                return Err(err(op, ins, "a causal softmax needs T ≤ S"));
            }
            out(s, dt)
        }
        Op::Attention(a)
        | Op::AttentionWeights(a)
        | Op::AttentionGradQ(a)
        | Op::AttentionGradK(a)
        | Op::AttentionGradV(a) => {
            let grad = matches!(op, Op::AttentionGradQ(_) | Op::AttentionGradK(_) | Op::AttentionGradV(_));
            let n = 3 + a.mask as usize + grad as usize;
            want_inputs(op, ins, n)?;
            let dt = want_float(op, ins, &[0, 1, 2])?;
            let (q, k, v) = (ins[0].0, ins[1].0, ins[2].0);
            if q.len() != 4 || k.len() != 4 || k != v {
                return Err(err(op, ins, "q must be [B,Hq,T,D], k and v [B,Hkv,S,D]"));
            }
            let (b, hq, t, d) = (q[0], q[1], q[2], q[3]);
            let (hkv, s) = (k[1], k[2]);
            if k[0] != b || k[3] != d || hkv == 0 || hq % hkv != 0 {
                return Err(err(op, ins, "k/v batch and head_dim must match q, and Hq a multiple of Hkv"));
            }
            if a.mask {
                want_float(op, ins, &[3])?;
                if ins[3].0 != [b, s] {
                    return Err(err(op, ins, "the padding mask must be [B, S]"));
                }
            }
            if grad {
                want_float(op, ins, &[0, n - 1])?;
                if ins[n - 1].0 != q {
                    return Err(err(op, ins, "d_out must have q's shape"));
                }
            }
            match op {
                Op::AttentionWeights(_) => out(&[b, hq, t, s], dt),
                Op::AttentionGradK(_) | Op::AttentionGradV(_) => out(k, dt),
                _ => out(q, dt),
            }
        }
        Op::Rope { .. } => {
            if ins.len() != 2 {
                want_inputs(op, ins, 1)?;
            }
            let dt = want_float(op, ins, &[0])?;
            let s = ins[0].0;
            if s.len() != 4 || !s[3].is_multiple_of(2) {
                return Err(err(op, ins, "rope needs [B,H,T,D] with D even"));
            }
            if ins.len() == 2 && (ins[1].1 != DType::F32 || ins[1].0 != [s[3] / 2]) {
                return Err(err(op, ins, format!("the inverse-frequency table must be f32 [{}]", s[3] / 2)));
            }
            out(s, dt)
        }
        Op::RopeAt { .. } => {
            if ins.len() != 3 {
                want_inputs(op, ins, 2)?;
            }
            let dt = want_float(op, ins, &[0])?;
            want_dtype(op, ins, 1, DType::U32)?;
            let s = ins[0].0;
            if s.len() != 4 || !s[3].is_multiple_of(2) || ins[1].0 != [s[0]] {
                return Err(err(op, ins, "rope_at needs x [B,H,T,D] with D even and positions [B]"));
            }
            if ins.len() == 3 && (ins[2].1 != DType::F32 || ins[2].0 != [s[3] / 2]) {
                return Err(err(op, ins, format!("the inverse-frequency table must be f32 [{}]", s[3] / 2)));
            }
            out(s, dt)
        }
        Op::RopeQkvCache { q_heads, at, .. } => {
            let fixed = 3 + *at as usize;
            if ins.len() != fixed + 1 {
                want_inputs(op, ins, fixed)?;
            }
            let dt = want_float(op, ins, &[0, 1, 2])?;
            same(op, ins, 1, 2)?;
            let (x, c) = (ins[0].0, ins[1].0);
            if c.len() != 4 || !c[3].is_multiple_of(2) {
                return Err(err(op, ins, "the caches must be [B,Hkv,Smax,D] with D even"));
            }
            let (b, hkv, d) = (c[0], c[1], c[3]);
            if x.len() != 3 || x[0] != b || x[2] != (q_heads + 2 * hkv) * d || ins[0].1 != dt {
                return Err(err(
                    op,
                    ins,
                    format!("qkv must be [{b}, T, {}] (q, k, v heads side by side)", (q_heads + 2 * hkv) * d),
                ));
            }
            if *at && (ins[3].1 != DType::U32 || ins[3].0 != [b]) {
                return Err(err(op, ins, format!("the positions (input 3) must be u32 [{b}]")));
            }
            if ins.len() == fixed + 1 && (ins[fixed].1 != DType::F32 || ins[fixed].0 != [d / 2]) {
                return Err(err(op, ins, format!("the inverse-frequency table must be f32 [{}]", d / 2)));
            }
            out(&[b, *q_heads, x[1], d], dt)
        }
        Op::AddSinusoidal { .. } => {
            want_inputs(op, ins, 1)?;
            let dt = want_float(op, ins, &[0])?;
            if ins[0].0.len() != 3 {
                return Err(err(op, ins, "expects [B, T, C]"));
            }
            out(ins[0].0, dt)
        }
        Op::Embedding => {
            want_inputs(op, ins, 2)?;
            let dt = want_float(op, ins, &[0])?;
            want_dtype(op, ins, 1, DType::U32)?;
            if ins[0].0.len() != 2 {
                return Err(err(op, ins, "the table must be [V, C]"));
            }
            let mut s = ins[1].0.to_vec();
            s.push(ins[0].0[1]);
            out(&s, dt)
        }
        Op::EmbeddingBackward { vocab } => {
            want_inputs(op, ins, 2)?;
            want_dtype(op, ins, 0, DType::U32)?;
            let dt = want_float(op, ins, &[1])?;
            let (ids, dy) = (ins[0].0, ins[1].0);
            if dy.len() != ids.len() + 1 || &dy[..ids.len()] != ids {
                return Err(err(op, ins, "dy must be [ids..., C]"));
            }
            out(&[*vocab, last(dy)], dt)
        }
        Op::CrossEntropy { .. } | Op::CrossEntropyBackward { .. } => {
            let bwd = matches!(op, Op::CrossEntropyBackward { .. });
            want_inputs(op, ins, 2 + bwd as usize)?;
            let dt = want_float(op, ins, &[0])?;
            want_dtype(op, ins, 1, DType::I32)?;
            let (l, t) = (ins[0].0, ins[1].0);
            if l.len() != 2 || t != [l[0]] {
                return Err(err(op, ins, "logits must be [N, V] and targets [N]"));
            }
            if bwd {
                want_float(op, ins, &[0, 2])?;
                if ins[2].0 != [1] {
                    return Err(err(op, ins, "dloss must be [1]"));
                }
                return out(l, dt);
            }
            out(&[1], dt)
        }
        Op::CacheWrite { .. } | Op::CacheWriteAt => {
            let at = matches!(op, Op::CacheWriteAt);
            want_inputs(op, ins, 2 + at as usize)?;
            let dt = want_float(op, ins, &[0, 1])?;
            let (c, s) = (ins[0].0, ins[1].0);
            if c.len() != 4 || s.len() != 4 || c[0] != s[0] || c[1] != s[1] || c[3] != s[3] || s[2] > c[2] {
                return Err(err(op, ins, "cache [B,H,Smax,D] and src [B,H,T,D] with T ≤ Smax"));
            }
            if at {
                want_dtype(op, ins, 2, DType::U32)?;
                if ins[2].0 != [c[0]] {
                    return Err(err(op, ins, "the positions must be [B] u32"));
                }
            }
            out(c, dt)
        }
        Op::AdamW(spec) => {
            let (params, norm) = super::adamw_parts(spec, ins);
            if params.len() == 0 || !params.remainder().is_empty() || spec.max_grad_norm.is_some() != norm.is_some() {
                return Err(err(
                    op,
                    ins,
                    format!(
                        "expected (param, grad, m, v) for each parameter{}, got {} inputs",
                        if spec.max_grad_norm.is_some() { " then the squared gradient norm" } else { "" },
                        ins.len()
                    ),
                ));
            }
            for i in 0..ins.len() {
                want_dtype(op, ins, i, DType::F32)?;
            }
            for k in 0..params.len() {
                for i in 1..4 {
                    same(op, ins, 4 * k, 4 * k + i)?;
                }
            }
            if norm.is_some_and(|n| crate::tensor::numel(n.0) != 1) {
                return Err(err(op, ins, "the squared gradient norm (the last input) must hold one value"));
            }
            out(ins[0].0, DType::F32)
        }
        Op::SumSquares => {
            if ins.is_empty() {
                return Err(err(op, ins, "expected at least one tensor"));
            }
            for i in 0..ins.len() {
                want_dtype(op, ins, i, DType::F32)?;
            }
            out(&[1], DType::F32)
        }
    }
}

fn norm_params(op: &Op, ins: &[In], idx: &[usize]) -> Result<()> {
    rank_at_least(op, ins, 0, 1)?;
    let c = last(ins[0].0);
    for &i in idx {
        if ins[i].0 != [c] {
            return Err(err(op, ins, format!("input {i} must be [{c}] (the last dim of x)")));
        }
    }
    Ok(())
}
