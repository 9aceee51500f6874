//! Lowering of the optimizer family (shaders/optim.wgsl): AdamW over a group of parameters, in place on each
//! param, m and v (optionally clipping the gradients by a global norm), and the sum of squares of many
//! tensors that norm is made of. A dispatch covers up to `group_size` tensors (as many as the adapter's
//! storage bindings allow, at most `MAX_GROUP`), so a model's whole update is a few dispatches instead of one
//! (or, with clipping, four) per parameter.

use super::{bind, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::{Op, Scalar};
use crate::tensor::{numel, DType};

const FILE: &str = include_str!("../../shaders/optim.wgsl");

/// The most tensors one dispatch covers (its text has a branch per tensor).
pub const MAX_GROUP: usize = 16;

/// The family's text for groups of `n` tensors (1..=MAX_GROUP), composed once.
pub fn source(n: usize) -> &'static str {
    static TEXTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (1..=MAX_GROUP).map(|n| super::wgsl::compose_sized("optim", FILE, &[], &[("N", n)])).collect()
    });
    assert!((1..=MAX_GROUP).contains(&n), "optim: a group of {n} tensors");
    TEXTS[n - 1].as_str()
}

/// Tensors one dispatch of `op` covers (the family's kernel table): as many as the adapter's storage bindings
/// allow (4 a parameter and the norm for AdamW, 1 a tensor and the partial sums for the sum of squares), at
/// most `MAX_GROUP`. AdamW on adapters that read through textures (CPU adapters) takes one parameter a
/// dispatch: llvmpipe runs a workgroup's invocations as SIMD lanes under masks, so every tensor's branch costs
/// every workgroup its masked loads and stores: a char GPT's update in 8 grouped dispatches measured 92–131 ms
/// a step against 12–35 ms in 68 per-parameter ones (README, "Measurements behind the design").
pub fn group_size(op: &Op, caps: &Caps) -> usize {
    let slots = caps.storage_bindings() as usize;
    let fit = |per: usize, extra: usize| (slots.saturating_sub(extra) / per).clamp(1, MAX_GROUP);
    match op {
        Op::AdamW(_) if caps.texture_reads => 1,
        Op::AdamW(spec) => fit(4, spec.max_grad_norm.is_some() as usize),
        _ => fit(1, 1),
    }
}

/// Partial sums of `sum_squares` for one tensor: a fixed count for a given n (so the order of the sum, and the
/// result, is the same every run), each workgroup striding over at least 4096 elements.
fn sum_squares_groups(n: usize) -> usize {
    n.div_ceil(4096).clamp(1, 256)
}

/// Each tensor's Params names, (n{k}, start{k}, groups{k}), as the composed texts declare them.
fn tensor_names(k: usize) -> &'static [String; 3] {
    static NAMES: std::sync::LazyLock<Vec<[String; 3]>> = std::sync::LazyLock::new(|| {
        (0..MAX_GROUP).map(|k| [format!("n{k}"), format!("start{k}"), format!("groups{k}")]).collect()
    });
    &NAMES[k]
}

/// The Params words: the eight scalars, then (n, first workgroup, workgroups) of each tensor.
fn params(head: [Word; 8], tensors: &[(usize, usize, usize)]) -> Vec<(&'static str, Word)> {
    let names = ["step", "lr", "beta1", "beta2", "eps", "weight_decay", "max_norm", "base"];
    let mut words: Vec<(&'static str, Word)> = names.into_iter().zip(head).collect();
    for (k, &(n, start, groups)) in tensors.iter().enumerate() {
        let [wn, ws, wg] = tensor_names(k);
        words.extend(
            [(wn.as_str(), n), (ws.as_str(), start), (wg.as_str(), groups)].map(|(w, v)| (w, Word::U32(v as u32))),
        );
    }
    words
}

/// Each tensor's (n, first workgroup, workgroups) in a dispatch over `sizes`, and the dispatch's workgroups.
fn layout(sizes: &[usize], groups: fn(usize) -> usize) -> (Vec<(usize, usize, usize)>, usize) {
    let mut start = 0;
    let tensors = sizes
        .iter()
        .map(|&n| {
            let g = groups(n);
            start += g;
            (n, start - g, g)
        })
        .collect();
    (tensors, start)
}

pub fn lower(op: &Op, ins: &[ArgInfo], _out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    if let Op::SumSquares = op {
        return Ok(sum_squares(ins, caps));
    }
    let Op::AdamW(spec) = op else {
        return Err(Error::Unsupported { op: op.name().into(), detail: "not an optimizer op".into() });
    };
    if ins.iter().any(|a| a.dtype != DType::F32) {
        return Err(Error::DType { op: op.name().into(), detail: "AdamW runs on f32 param, grad, m and v".into() });
    }
    let (params_in, norm) = crate::graph::adamw_parts(spec, ins);
    let (count, clip) = (params_in.len(), norm.is_some());
    let step = match &spec.step {
        Scalar::Const(s) => Word::U32(*s),
        var => Word::Var(var.clone(), 0),
    };
    let lr = match &spec.lr_var {
        // The run's scalar holds the f32's bits, written into the word as they are.
        Some(name) => Word::Var(Scalar::var(name), 0),
        None => Word::F32(spec.lr),
    };
    let head = [
        step,
        lr,
        Word::F32(spec.beta1),
        Word::F32(spec.beta2),
        Word::F32(spec.eps),
        Word::F32(spec.weight_decay),
        Word::F32(spec.max_grad_norm.unwrap_or(0.0)),
        Word::U32(0),
    ];
    let per = group_size(op, caps);
    let mut dispatches = vec![];
    for first in (0..count).step_by(per) {
        let group: Vec<usize> = (first..(first + per).min(count)).collect();
        let sizes: Vec<usize> = group.iter().map(|&k| numel(&ins[4 * k].shape)).collect();
        let (tensors, workgroups) = layout(&sizes, |n| n.div_ceil(256));
        // In place: param, m and v are bound read_write; the op's output aliases the first param.
        let mut bindings = vec![];
        for &k in &group {
            bindings.extend([
                bind(Arg::Input(4 * k), true),
                bind(Arg::Input(4 * k + 1), false),
                bind(Arg::Input(4 * k + 2), true),
                bind(Arg::Input(4 * k + 3), true),
            ]);
        }
        if clip {
            bindings.push(bind(Arg::Input(ins.len() - 1), false));
        }
        dispatches.push(Dispatch {
            family: "optim",
            source: source(group.len()),
            entry: if clip { "adamw_clip" } else { "adamw" },
            dtype: DType::F32,
            overrides: vec![],
            params: params(head.clone(), &tensors),
            bindings,
            grid: grid_1d(workgroups as u32),
        });
    }
    Ok(Lowered { scratch: vec![], dispatches })
}

/// Stage 1: each group of tensors writes its partial sums into scratch, after the previous group's; stage 2:
/// one workgroup adds them all in order.
fn sum_squares(ins: &[ArgInfo], caps: &Caps) -> Lowered {
    let per = group_size(&Op::SumSquares, caps);
    let sizes: Vec<usize> = ins.iter().map(|a| numel(&a.shape)).collect();
    let zero = |base: usize, step: usize| {
        [
            Word::U32(step as u32),
            Word::F32(0.0),
            Word::F32(0.0),
            Word::F32(0.0),
            Word::F32(0.0),
            Word::F32(0.0),
            Word::F32(0.0),
            Word::U32(base as u32),
        ]
    };
    let mut dispatches = vec![];
    let mut base = 0;
    for first in (0..ins.len()).step_by(per) {
        let group = first..(first + per).min(ins.len());
        let (tensors, workgroups) = layout(&sizes[group.clone()], sum_squares_groups);
        let mut bindings: Vec<_> = group.map(|k| bind(Arg::Input(k), false)).collect();
        bindings.push(bind(Arg::Scratch(0), true));
        dispatches.push(Dispatch {
            family: "optim",
            source: source(tensors.len()),
            entry: "sum_squares_partial",
            dtype: DType::F32,
            overrides: vec![],
            params: params(zero(base, 0), &tensors),
            bindings,
            grid: [workgroups as u32, 1, 1],
        });
        base += workgroups;
    }
    dispatches.push(Dispatch {
        family: "optim",
        source: source(1),
        entry: "sum_squares_total",
        dtype: DType::F32,
        overrides: vec![],
        params: params(zero(0, base), &[(0, 0, 0)]),
        bindings: vec![bind(Arg::Scratch(0), false), bind(Arg::Output, true)],
        grid: [1, 1, 1],
    });
    Lowered { scratch: vec![(base * 4) as u64], dispatches }
}
