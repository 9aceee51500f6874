//! Lowering of the position family (shaders/position.wgsl): rotary embedding (RoPE) and additive
//! sinusoidal encodings, with the position offset a runtime scalar.

use super::{bind, ceil_div, grid_1d, no_shards, Arg, ArgInfo, Caps, Dispatch, Lowered, Word};
use crate::error::{Error, Result};
use crate::graph::{Op, Scalar};

pub const SOURCE: &str = include_str!("../../shaders/position.wgsl");

const WG: usize = 256;

/// A Scalar as a Params word (a constant is baked, a runtime name resolved at each run).
pub(crate) fn scalar_word(s: &Scalar) -> Word {
    match s {
        Scalar::Const(c) => Word::U32(*c),
        Scalar::Var(_) => Word::Var(s.clone(), 0),
    }
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, _caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let table = ins.len() == 2;
    let shape = &ins[0].shape;
    let numel: usize = shape.iter().product();
    let (entry, n, t, d, theta, offset, inverse) = match op {
        Op::Rope { theta, offset, inverse } => {
            let (t, d) = (shape[2], shape[3]);
            (if table { "rope_table" } else { "rope_forward" }, numel / 2, t, d, *theta, offset, *inverse)
        }
        Op::AddSinusoidal { offset } => {
            let (t, c) = (shape[1], shape[2]);
            ("add_sinusoidal", numel, t, c, 10000.0, offset, false)
        }
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a position op".into() }),
    };
    Ok(Lowered {
        scratch: vec![],
        dispatches: vec![Dispatch {
            family: "position",
            source: SOURCE,
            entry,
            dtype: out.dtype,
            overrides: vec![("WG", WG as f64)],
            params: vec![
                ("n", Word::U32(n as u32)),
                ("t", Word::U32(t.max(1) as u32)),
                ("d", Word::U32(d.max(1) as u32)),
                ("theta", Word::F32(theta)),
                ("offset", scalar_word(offset)),
                ("inverse", Word::U32(inverse as u32)),
            ],
            bindings: if table {
                vec![bind(Arg::Input(0), false), bind(Arg::Input(1), false), bind(Arg::Output, true)]
            } else {
                vec![bind(Arg::Input(0), false), bind(Arg::Output, true)]
            },
            grid: grid_1d(ceil_div(n, WG)),
        }],
    })
}
