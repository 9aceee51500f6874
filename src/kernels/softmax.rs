//! Lowering of the softmax family (shaders/softmax.wgsl): softmax over the last dim (optionally causal) and
//! its backward, one workgroup per row.

use super::{bind, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::Op;

pub const SOURCE: &str = include_str!("../../shaders/softmax.wgsl");

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, _caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let shape = &ins[0].shape;
    let s = *shape.last().unwrap_or(&1);
    let t = if shape.len() >= 2 { shape[shape.len() - 2] } else { 1 };
    let rows = shape.iter().product::<usize>().checked_div(s).unwrap_or(0);
    let (entry, causal, bindings) = match op {
        Op::Softmax { causal } => {
            ("softmax_forward", *causal, vec![bind(Arg::Input(0), false), bind(Arg::Output, true)])
        }
        Op::SoftmaxBackward => (
            "softmax_backward",
            false,
            vec![bind(Arg::Input(0), false), bind(Arg::Input(1), false), bind(Arg::Output, true)],
        ),
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a softmax op".into() }),
    };
    let wg = if s <= 256 { 64.0 } else { 256.0 };
    Ok(Lowered {
        scratch: vec![],
        dispatches: vec![Dispatch {
            family: "softmax",
            source: SOURCE,
            entry,
            dtype: out.dtype,
            overrides: vec![("WG", wg)],
            params: vec![
                ("rows", Word::U32(rows as u32)),
                ("t", Word::U32(t.max(1) as u32)),
                ("s", Word::U32(s as u32)),
                ("causal", Word::U32(causal as u32)),
            ],
            bindings,
            grid: grid_1d(rows as u32),
        }],
    })
}
