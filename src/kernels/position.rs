//! Lowering of the position family (shaders/position.wgsl): rotary embedding (RoPE) and additive
//! sinusoidal encodings, with the position offset a runtime scalar (or, for RopeAt, one per sequence from a
//! tensor).

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
    let shape = &ins[0].shape;
    let numel: usize = shape.iter().product();
    let zero = Scalar::Const(0);
    // (hq, hkv, smax) of rope_qkv_cache; zeros for the others.
    let mut heads = [0usize; 3];
    let (entry, n, t, d, theta, offset, inverse) = match op {
        Op::Rope { theta, offset, inverse } => {
            let (t, d) = (shape[2], shape[3]);
            let entry = if ins.len() == 2 { "rope_table" } else { "rope_forward" };
            (entry, numel / 2, t, d, *theta, offset, *inverse)
        }
        Op::RopeAt { theta } => {
            let (t, d) = (shape[2], shape[3]);
            let entry = if ins.len() == 3 { "rope_at_table" } else { "rope_at" };
            (entry, numel / 2, t, d, *theta, &zero, false)
        }
        Op::RopeQkvCache { theta, offset, q_heads, .. } => {
            let c = &ins[1].shape;
            heads = [*q_heads, c[1], c[2]];
            ("rope_qkv_cache", numel / 2, shape[1], c[3], *theta, offset, false)
        }
        Op::AddSinusoidal { offset } => {
            let (t, c) = (shape[1], shape[2]);
            ("add_sinusoidal", numel, t, c, 10000.0, offset, false)
        }
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a position op".into() }),
    };
    let h = if shape.len() == 4 { shape[1] } else { 0 };
    let mut d = Dispatch {
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
            ("h", Word::U32(h as u32)),
            ("hq", Word::U32(heads[0] as u32)),
            ("hkv", Word::U32(heads[1] as u32)),
            ("smax", Word::U32(heads[2] as u32)),
        ],
        // The inputs in order (x, then positions and/or the frequency table), then the output.
        bindings: (0..ins.len()).map(|i| bind(Arg::Input(i), false)).chain([bind(Arg::Output, true)]).collect(),
        grid: grid_1d(ceil_div(n, WG)),
    };
    if let Op::RopeQkvCache { at, .. } = op {
        // qkv, the caches (written in place), q, then the positions and the table at fixed bindings, qkv
        // standing in for the ones this variant does not read.
        let table = ins.len() == 4 + *at as usize;
        let pos = if *at { Arg::Input(3) } else { Arg::Input(0) };
        let freq = if table { Arg::Input(3 + *at as usize) } else { Arg::Input(0) };
        d.bindings = vec![
            bind(Arg::Input(0), false),
            bind(Arg::Input(1), true),
            bind(Arg::Input(2), true),
            bind(Arg::Output, true),
            bind(pos, false),
            bind(freq, false),
        ];
        d.overrides.extend([("AT", *at as u32 as f64), ("TABLE", table as u32 as f64)]);
    }
    Ok(Lowered { scratch: vec![], dispatches: vec![d] })
}
