//! Lowering of the optimizer family (shaders/optim.wgsl): AdamW, in place on param, m and v.

use super::{bind, ceil_div, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::{Op, Scalar};
use crate::tensor::{numel, DType};

pub const SOURCE: &str = include_str!("../../shaders/optim.wgsl");

pub fn lower(op: &Op, ins: &[ArgInfo], _out: &ArgInfo, _caps: &Caps) -> Result<Lowered> {
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
    let d = Dispatch {
        family: "optim",
        source: SOURCE,
        entry: "adamw",
        dtype: DType::F32,
        overrides: vec![],
        params: vec![
            ("n", Word::U32(n as u32)),
            ("step", step),
            ("lr", Word::F32(spec.lr)),
            ("beta1", Word::F32(spec.beta1)),
            ("beta2", Word::F32(spec.beta2)),
            ("eps", Word::F32(spec.eps)),
            ("weight_decay", Word::F32(spec.weight_decay)),
        ],
        // In place: param, m and v are bound read_write; the output aliases the param.
        bindings: vec![
            bind(Arg::Input(0), true),
            bind(Arg::Input(1), false),
            bind(Arg::Input(2), true),
            bind(Arg::Input(3), true),
        ],
        grid: grid_1d(ceil_div(n, 256)),
    };
    Ok(Lowered { scratch: vec![], dispatches: vec![d] })
}
