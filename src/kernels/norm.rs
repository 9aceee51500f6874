//! Lowering of the norm family (shaders/norm.wgsl): LayerNorm and RMSNorm, forward, dx, and dgamma.

use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, texture_fits, twin_kind, Arg, ArgInfo, Caps, Dispatch,
    Lowered, Word,
};
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::tensor::DType;

pub const SOURCE: &str = include_str!("../../shaders/norm.wgsl");

/// Workgroup size for a row of `c` values: small rows do not need 256 idle invocations.
fn wg_for(c: usize) -> u32 {
    if c <= 256 {
        64
    } else {
        256
    }
}

fn dispatch(
    entry: &'static str,
    dtype: DType,
    overrides: Vec<(&'static str, f64)>,
    (rows, c, eps): (usize, usize, f32),
    bindings: Vec<super::Binding>,
    grid: [u32; 3],
) -> Dispatch {
    Dispatch {
        family: "norm",
        source: SOURCE,
        entry,
        dtype,
        overrides,
        params: vec![("rows", Word::U32(rows as u32)), ("c", Word::U32(c as u32)), ("eps", Word::F32(eps))],
        bindings,
        grid,
    }
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let x = &ins[0];
    let c = *x.shape.last().unwrap_or(&1);
    let rows = x.shape.iter().product::<usize>().checked_div(c).unwrap_or(0);
    let dt = out.dtype;
    let wg = wg_for(c);
    let ov = vec![("WG", wg as f64)];
    let row_grid = grid_1d(rows as u32);
    let r = |i| bind(Arg::Input(i), false);
    let w = bind(Arg::Output, true);
    let single = |entry, eps, bindings| Lowered {
        scratch: vec![],
        dispatches: vec![dispatch(entry, dt, ov.clone(), (rows, c, eps), bindings, row_grid)],
    };
    // On a CPU adapter the forward norms walk one row per invocation through textures (see the shader).
    let rows_kind = staged_kind(dt).filter(|&kind| {
        caps.texture_weights
            && c.is_multiple_of(4)
            && ins.iter().all(|i| i.dtype == dt)
            && texture_fits(caps, kind, (rows * c * dt.size()) as u64)
    });
    if let (Some(kind), Op::LayerNorm { eps } | Op::RmsNorm { eps }) = (rows_kind, op) {
        let rms = matches!(op, Op::RmsNorm { .. });
        let param = twin_kind(dt).expect("a float dtype");
        let mut bindings = vec![bind_as(Arg::Input(0), kind), bind_as(Arg::Input(1), param)];
        if !rms {
            bindings.push(bind_as(Arg::Input(2), param));
        }
        bindings.push(w);
        let entry = if rms { "rmsnorm_rows" } else { "layernorm_rows" };
        let grid = grid_1d(ceil_div(rows, 16));
        return Ok(Lowered {
            scratch: vec![],
            dispatches: vec![dispatch(entry, dt, vec![], (rows, c, *eps), bindings, grid)],
        });
    }
    Ok(match *op {
        Op::LayerNorm { eps } => single("layernorm_forward", eps, vec![r(0), r(1), r(2), w]),
        Op::RmsNorm { eps } => single("rmsnorm_forward", eps, vec![r(0), r(1), w]),
        Op::LayerNormGradX { eps } => single("layernorm_backward_x", eps, vec![r(0), r(1), r(2), w]),
        Op::RmsNormGradX { eps } => single("rmsnorm_backward_x", eps, vec![r(0), r(1), r(2), w]),
        Op::NormGradGamma { eps, rms } => {
            // Per-row (mean, rstd) into scratch, then one invocation per column sums its rows in order.
            let stats = dispatch(
                "norm_row_stats",
                dt,
                vec![("WG", wg as f64), ("RMS", rms as u32 as f64)],
                (rows, c, eps),
                vec![r(0), bind(Arg::Scratch(0), true)],
                row_grid,
            );
            let cols = dispatch(
                "norm_grad_gamma",
                dt,
                vec![("WG", 64.0)],
                (rows, c, eps),
                vec![r(0), r(1), bind(Arg::Scratch(0), false), w],
                grid_1d(c.div_ceil(64) as u32),
            );
            Lowered { scratch: vec![(rows.max(1) * 2 * 4) as u64], dispatches: vec![stats, cols] }
        }
        _ => {
            return Err(Error::Unsupported { op: op.name().into(), detail: "not a norm op".into() });
        }
    })
}
