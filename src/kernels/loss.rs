//! Lowering of the loss family (shaders/loss.wgsl): cross-entropy (per-row pass into a scratch buffer, then a
//! fixed-order mean) and its backward (count pass, then per-row gradients).

use super::{bind, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::Op;

pub const SOURCE: &str = include_str!("../../shaders/loss.wgsl");

fn dispatch(
    entry: &'static str,
    out: &ArgInfo,
    n: usize,
    v: usize,
    ignore: i32,
    bindings: Vec<super::Binding>,
    grid: [u32; 3],
) -> Dispatch {
    Dispatch {
        family: "loss",
        source: SOURCE,
        entry,
        dtype: out.dtype,
        overrides: vec![],
        params: vec![
            ("n", Word::U32(n as u32)),
            ("v", Word::U32(v as u32)),
            ("ignore_index", Word::U32(ignore as u32)),
        ],
        bindings,
        grid,
    }
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, _caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let (n, v) = (ins[0].shape[0], ins[0].shape[1]);
    let rows = grid_1d(n as u32);
    match *op {
        Op::CrossEntropy { ignore_index } => {
            let b = vec![
                bind(Arg::Input(0), false),
                bind(Arg::Input(1), false),
                bind(Arg::Scratch(0), true),
                bind(Arg::Output, true),
            ];
            Ok(Lowered {
                scratch: vec![(8 * n.max(1)) as u64],
                dispatches: vec![
                    dispatch("cross_entropy_rows", out, n, v, ignore_index, b.clone(), rows),
                    dispatch("cross_entropy_mean", out, n, v, ignore_index, b, [1, 1, 1]),
                ],
            })
        }
        Op::CrossEntropyBackward { ignore_index } => {
            let b = vec![
                bind(Arg::Input(0), false),
                bind(Arg::Input(1), false),
                bind(Arg::Input(2), false),
                bind(Arg::Scratch(0), true),
                bind(Arg::Output, true),
            ];
            Ok(Lowered {
                scratch: vec![4],
                dispatches: vec![
                    dispatch("cross_entropy_count", out, n, v, ignore_index, b.clone(), [1, 1, 1]),
                    dispatch("cross_entropy_backward", out, n, v, ignore_index, b, rows),
                ],
            })
        }
        _ => Err(Error::Unsupported { op: op.name().into(), detail: "not a loss-family op".into() }),
    }
}
