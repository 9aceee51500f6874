//! Lowering of the optimizer family (shaders/optim.wgsl): AdamW, in place on param, m and v (optionally
//! clipping the gradient by a global norm), and the sum of squares that norm is made of.

use super::{bind, ceil_div, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::{Op, Scalar};
use crate::tensor::{numel, DType};

pub const SOURCE: &str = include_str!("../../shaders/optim.wgsl");

/// Partial sums of `sum_squares`: a fixed count for a given n (so the order of the sum, and the result, is
/// the same every run), each workgroup striding over at least 4096 elements.
fn sum_squares_groups(n: usize) -> usize {
    n.div_ceil(4096).clamp(1, 256)
}

pub fn lower(op: &Op, ins: &[ArgInfo], _out: &ArgInfo, _caps: &Caps) -> Result<Lowered> {
    if let Op::SumSquares = op {
        no_shards(op, ins)?;
        let n = numel(&ins[0].shape);
        let groups = sum_squares_groups(n);
        let d = |entry: &'static str, bindings, grid| Dispatch {
            family: "optim",
            source: SOURCE,
            entry,
            dtype: DType::F32,
            overrides: vec![],
            params: vec![
                ("n", Word::U32(n as u32)),
                ("step", Word::U32(groups as u32)),
                ("lr", Word::F32(0.0)),
                ("beta1", Word::F32(0.0)),
                ("beta2", Word::F32(0.0)),
                ("eps", Word::F32(0.0)),
                ("weight_decay", Word::F32(0.0)),
                ("max_norm", Word::F32(0.0)),
            ],
            bindings,
            grid,
        };
        // Stage 1: `groups` partial sums into scratch; stage 2: one workgroup adds them in order.
        let partial = d(
            "sum_squares_partial",
            vec![bind(Arg::Input(0), false), bind(Arg::Scratch(0), true)],
            [groups as u32, 1, 1],
        );
        let total = d("sum_squares_total", vec![bind(Arg::Scratch(0), false), bind(Arg::Output, true)], [1, 1, 1]);
        return Ok(Lowered { scratch: vec![(groups * 4) as u64], dispatches: vec![partial, total] });
    }
    let Op::AdamW(spec) = op else {
        return Err(Error::Unsupported { op: op.name().into(), detail: "not an optimizer op".into() });
    };
    no_shards(op, ins)?;
    if ins.iter().any(|a| a.dtype != DType::F32) {
        return Err(Error::DType { op: op.name().into(), detail: "AdamW runs on f32 param, grad, m and v".into() });
    }
    let n = numel(&ins[0].shape);
    let step = match &spec.step {
        Scalar::Const(s) => Word::U32(*s),
        var => Word::Var(var.clone(), 0),
    };
    let mut bindings = vec![
        bind(Arg::Input(0), true),
        bind(Arg::Input(1), false),
        bind(Arg::Input(2), true),
        bind(Arg::Input(3), true),
    ];
    if spec.max_grad_norm.is_some() {
        bindings.push(bind(Arg::Input(4), false));
    }
    let d = Dispatch {
        family: "optim",
        source: SOURCE,
        entry: if spec.max_grad_norm.is_some() { "adamw_clip" } else { "adamw" },
        dtype: DType::F32,
        overrides: vec![],
        params: vec![
            ("n", Word::U32(n as u32)),
            ("step", step),
            (
                "lr",
                match &spec.lr_var {
                    // The run's scalar holds the f32's bits, written into the word as they are.
                    Some(name) => Word::Var(Scalar::var(name), 0),
                    None => Word::F32(spec.lr),
                },
            ),
            ("beta1", Word::F32(spec.beta1)),
            ("beta2", Word::F32(spec.beta2)),
            ("eps", Word::F32(spec.eps)),
            ("weight_decay", Word::F32(spec.weight_decay)),
            ("max_norm", Word::F32(spec.max_grad_norm.unwrap_or(0.0))),
        ],
        // In place: param, m and v are bound read_write; the output aliases the param.
        bindings,
        grid: grid_1d(ceil_div(n, 256)),
    };
    Ok(Lowered { scratch: vec![], dispatches: vec![d] })
}
