//! Lowering of the embedding family (shaders/embedding.wgsl): row gather from a (possibly sharded) table, and
//! the deterministic scatter-add backward.

use super::{bind, ceil_div, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::tensor::numel;

pub const SOURCE: &str = include_str!("../../shaders/embedding.wgsl");

fn params(n: usize, c: usize, v: usize, row0: usize, row1: usize, first: bool) -> Vec<(&'static str, Word)> {
    let u = |x: usize| Word::U32(x as u32);
    vec![("n", u(n)), ("c", u(c)), ("v", u(v)), ("row0", u(row0)), ("row1", u(row1)), ("first", u(first as usize))]
}

fn dispatch(
    entry: &'static str,
    out: &ArgInfo,
    params: Vec<(&'static str, Word)>,
    bindings: Vec<super::Binding>,
    threads: usize,
) -> Dispatch {
    Dispatch {
        family: "embedding",
        source: SOURCE,
        entry,
        dtype: out.dtype,
        overrides: vec![],
        params,
        bindings,
        grid: grid_1d(ceil_div(threads, 256)),
    }
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, _caps: &Caps) -> Result<Lowered> {
    match op {
        Op::Embedding => {
            no_shards(op, &ins[1..])?;
            let (v, c) = (ins[0].shape[0], ins[0].shape[1]);
            let n = numel(&ins[1].shape);
            let one = [(0, v)];
            let shards: &[(usize, usize)] = if ins[0].shards.len() > 1 { &ins[0].shards } else { &one };
            // Shard 0's dispatch writes every element (zeros outside its rows); later shards fill their rows.
            let dispatches = shards
                .iter()
                .enumerate()
                .map(|(s, &(r0, r1))| {
                    let table = if shards.len() > 1 { Arg::InputShard(0, s) } else { Arg::Input(0) };
                    dispatch(
                        "embedding",
                        out,
                        params(n, c, v, r0, r1, s == 0),
                        vec![bind(table, false), bind(Arg::Input(1), false), bind(Arg::Output, true)],
                        n * c,
                    )
                })
                .collect();
            Ok(Lowered { scratch: vec![], dispatches })
        }
        Op::EmbeddingBackward { vocab } => {
            no_shards(op, ins)?;
            let n = numel(&ins[0].shape);
            let c = out.shape[1];
            let p = params(n, c, *vocab, 0, *vocab, true);
            let zero = dispatch("embedding_zero", out, p.clone(), vec![bind(Arg::Output, true)], vocab * c);
            // embedding_zero uses only binding 3; bind ids and dy too so both dispatches share one layout.
            let zero = Dispatch {
                bindings: vec![bind(Arg::Input(0), false), bind(Arg::Input(1), false), bind(Arg::Output, true)],
                ..zero
            };
            let bwd = dispatch(
                "embedding_backward",
                out,
                p,
                vec![bind(Arg::Input(0), false), bind(Arg::Input(1), false), bind(Arg::Output, true)],
                c,
            );
            Ok(Lowered { scratch: vec![], dispatches: vec![zero, bwd] })
        }
        _ => Err(Error::Unsupported { op: op.name().into(), detail: "not an embedding-family op".into() }),
    }
}
