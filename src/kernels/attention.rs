//! Lowering of the attention family (shaders/attention.wgsl): fused scaled dot-product attention (online
//! softmax), its probabilities, and dq / dk / dv by recomputation from per-row (lse, Σ P·dP) statistics.

use super::wgsl::composed;
use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, texture_fits, Arg, ArgInfo, BindKind, Caps, Dispatch,
    Lowered, Word,
};
use crate::error::{Error, Result};
use crate::graph::{AttnSpec, Op};
use crate::tensor::DType;

const FILE: &str = include_str!("../../shaders/attention.wgsl");

/// shaders/attention.wgsl reading K and V from storage.
pub fn source() -> &'static str {
    composed!("attention", FILE, ["storage_kv"])
}

/// The family's text with attention_forward_rows reading K and V through staged textures (exec::twins
/// layout, texel t = vec4 t of the row-major tensor; prefill on CPU adapters, where texel fetches are
/// gathered in straight-line code and storage loads lane by lane).
pub fn tex_source() -> &'static str {
    composed!("attention_tex", FILE, ["texture_kv"])
}

/// Workgroup size; each invocation owns up to `MAXC` output dims (the shader's constant).
const WG: usize = 64;
const MAXC: usize = 8;
/// attention_forward_rows: query rows per invocation (the shader's `RQ`, halved for few rows), invocations per workgroup, and the
/// largest head_dim its unrolled registers hold (other head dims take attention_forward).
const RQ: usize = 8;
const ROWS_WG: usize = 16;
const ROWS_MAX_D: usize = 64;

/// What serves an attention op: the family's kernel table (`select`), which lowering only turns into
/// dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub family: &'static str,
    /// The entry of the op's last (or only) dispatch; the gradients run `attention_row_stats` first.
    pub entry: &'static str,
    /// Query rows per invocation of `attention_forward_rows` (0 for the other entries).
    pub rq: usize,
    /// How K and V are bound.
    pub kv: BindKind,
}

/// The attention kernel table, from shapes (`ins`: q [B, Hq, T, D], k [B, Hkv, S, D], …) and `Caps`:
/// - Attention with D a multiple of 4 up to `ROWS_MAX_D`: `attention_forward_rows` — a kv head's query rows
///   (its Hq/Hkv heads × T positions) 8 to an invocation, sharing K/V loads, or 4 when that is all there are
///   (decode with ≤ 4 heads a group: half the registers, a third of llvmpipe's compile time); on a
///   texture-weights adapter with T > 8, K and V staged as textures (`attention_tex`). Other head dims:
///   `attention_forward`.
/// - AttentionWeights: on a texture-weights adapter with as many kv heads as query heads (f32), the scores
///   Q·Kᵀ as a batched MatMul into scratch and `attention_probs_rows` (masks and softmax, a row an
///   invocation); otherwise `attention_weights`.
/// - The gradients: `attention_grad_q`, or `attention_grad_kv` for K and V (each after
///   `attention_row_stats`).
pub fn select(op: &Op, ins: &[ArgInfo], caps: &Caps) -> Result<Choice> {
    let plain = |entry| Choice { family: "attention", entry, rq: 0, kv: BindKind::Read };
    Ok(match op {
        Op::Attention(_) => {
            let (q, k) = (&ins[0].shape, &ins[1].shape);
            let (b, hq, t, d, hkv, s) = (q[0], q[1], q[2], q[3], k[1], k[2]);
            if !(d.is_multiple_of(4) && d <= ROWS_MAX_D) {
                return Ok(plain("attention_forward"));
            }
            let per_head = hq / hkv * t;
            let rq = if per_head <= RQ / 2 { RQ / 2 } else { RQ };
            let dt = ins[0].dtype;
            // Prefill on a CPU adapter: K and V (read once per 8 query rows) staged as textures. Not for decode,
            // where copying the whole cache would cost more than the few reads it saves.
            let kv_bytes = (b * hkv * s * d * dt.size()) as u64;
            let staged = staged_kind(dt).filter(|&kind| {
                caps.texture_reads && t > 8 && ins[1].dtype == dt && texture_fits(caps, kind, kv_bytes)
            });
            match staged {
                Some(kind) => Choice { family: "attention_tex", entry: "attention_forward_rows", rq, kv: kind },
                None => Choice { rq, ..plain("attention_forward_rows") },
            }
        }
        Op::AttentionWeights(_)
            if caps.texture_reads
                && ins[0].shape[1] == ins[1].shape[1]
                && ins[..2].iter().all(|i| i.dtype == DType::F32) =>
        {
            plain("attention_probs_rows")
        }
        Op::AttentionWeights(_) => plain("attention_weights"),
        Op::AttentionGradQ(_) => plain("attention_grad_q"),
        Op::AttentionGradK(_) | Op::AttentionGradV(_) => plain("attention_grad_kv"),
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not an attention op".into() }),
    })
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let spec: &AttnSpec = match op {
        Op::Attention(a)
        | Op::AttentionWeights(a)
        | Op::AttentionGradQ(a)
        | Op::AttentionGradK(a)
        | Op::AttentionGradV(a) => a,
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not an attention op".into() }),
    };
    let (q, k) = (&ins[0].shape, &ins[1].shape);
    let (b, hq, t, d) = (q[0], q[1], q[2], q[3]);
    let (hkv, s) = (k[1], k[2]);
    if d > WG * MAXC {
        return Err(Error::Unsupported {
            op: op.name().into(),
            detail: format!("head_dim {d} is larger than the kernel's {} (WG·MAXC)", WG * MAXC),
        });
    }
    let mask_kind = if !spec.mask {
        0
    } else if ins[3].dtype == DType::F16 {
        2
    } else {
        1
    };
    let params = vec![
        ("b", Word::U32(b as u32)),
        ("hq", Word::U32(hq as u32)),
        ("hkv", Word::U32(hkv as u32)),
        ("t", Word::U32(t as u32)),
        ("s", Word::U32(s as u32)),
        ("d", Word::U32(d as u32)),
        ("scale", Word::F32(spec.scale)),
        ("causal", Word::U32(spec.causal as u32)),
        ("mask_kind", Word::U32(mask_kind)),
        ("q_offset", super::position::scalar_word(&spec.q_offset)),
        ("kv_len", super::position::scalar_word(&spec.kv_len)),
    ];
    let r = |i| bind(Arg::Input(i), false);
    // Without a mask, k stands in for binding 4 (never read).
    let mask = if spec.mask { 3 } else { 1 };
    let d_o = if spec.mask { 4 } else { 3 };
    let q_rows = (b * hq * t) as u32;
    let k_rows = (b * hkv * s) as u32;
    let dt = out.dtype;
    let mk = |entry, grad_v: Option<bool>, bindings, grid| {
        let mut overrides = vec![("WG", WG as f64)];
        if let Some(g) = grad_v {
            overrides.push(("GRAD_V", g as u32 as f64));
        }
        Dispatch {
            family: "attention",
            source: source(),
            entry,
            dtype: dt,
            overrides,
            params: params.clone(),
            bindings,
            grid,
        }
    };
    let fwd = |entry| Lowered {
        scratch: vec![],
        dispatches: vec![mk(entry, None, vec![r(0), r(1), r(2), r(mask), bind(Arg::Output, true)], grid_1d(q_rows))],
    };
    let c = select(op, ins, caps)?;
    if c.entry == "attention_forward_rows" {
        // Prefill and decode alike: on llvmpipe, rows that share K/V loads beat key-parallel workgroups even
        // at T = 1 (the GQA heads of a kv head are the rows then). See the shader for the figures.
        let per_head = hq / hkv * t;
        let mut rows = mk(
            "attention_forward_rows",
            None,
            vec![r(0), r(1), r(2), r(mask), bind(Arg::Output, true)],
            grid_1d(ceil_div(b * hkv * per_head.div_ceil(c.rq), ROWS_WG)),
        );
        rows.overrides = vec![("WG", ROWS_WG as f64), ("D4", (d / 4) as f64), ("RQ", c.rq as f64)];
        if c.family == "attention_tex" {
            rows.family = c.family;
            rows.source = tex_source();
            rows.bindings[1] = bind_as(Arg::Input(1), c.kv);
            rows.bindings[2] = bind_as(Arg::Input(2), c.kv);
        }
        return Ok(Lowered { scratch: vec![], dispatches: vec![rows] });
    }
    if c.entry == "attention_probs_rows" {
        // The raw scores q·k as a batched matmul (whatever MatMul's table picks) into scratch 0.
        let scores = ArgInfo { shape: vec![b, hq, t, s], dtype: dt, shards: vec![] };
        let mut l = super::matmul::lower(&Op::MatMul { ta: false, tb: true }, &ins[..2], &scores, caps)?;
        debug_assert!(l.scratch.is_empty(), "a matmul lowering with scratch");
        l.remap(|a| if a == Arg::Output { Arg::Scratch(0) } else { a });
        let bindings = vec![bind(Arg::Scratch(0), false), r(1), r(2), r(mask), bind(Arg::Output, true)];
        l.dispatches.push(mk(c.entry, None, bindings, grid_1d(ceil_div(q_rows as usize, WG))));
        l.scratch.push((q_rows as u64 * s as u64).max(1) * dt.size() as u64);
        return Ok(l);
    }
    if matches!(op, Op::Attention(_) | Op::AttentionWeights(_)) {
        return Ok(fwd(c.entry));
    }
    // Backward: row statistics (lse, Dsum) into scratch, then the gradient kernel.
    let stats = mk(
        "attention_row_stats",
        None,
        vec![r(0), r(1), r(2), r(mask), r(d_o), bind(Arg::Scratch(0), true)],
        grid_1d(q_rows),
    );
    let gb = vec![r(0), r(1), r(2), r(mask), r(d_o), bind(Arg::Scratch(0), false), bind(Arg::Output, true)];
    let grad = match op {
        Op::AttentionGradQ(_) => mk("attention_grad_q", None, gb, grid_1d(q_rows)),
        Op::AttentionGradK(_) => mk("attention_grad_kv", Some(false), gb, grid_1d(k_rows)),
        _ => mk("attention_grad_kv", Some(true), gb, grid_1d(k_rows)),
    };
    Ok(Lowered { scratch: vec![(q_rows.max(1) as u64) * 2 * 4], dispatches: vec![stats, grad] })
}
