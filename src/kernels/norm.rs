//! Lowering of the norm family (shaders/norm.wgsl): LayerNorm and RMSNorm, forward, dx, and dgamma.

use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, texture_fits, twin_kind, Arg, ArgInfo, BindKind, Caps,
    Dispatch, Lowered, Word,
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

/// What serves a norm op: the entry of its (first) dispatch and how x and the norm's weights are bound. The
/// family's kernel table: on CPU adapters the norms, their dx and dgamma's row statistics walk one row per
/// invocation through a staged x (and dy) and the weights' twins (see the shader); dgamma's column sums,
/// and everything on a GPU, read storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub entry: &'static str,
    pub x: BindKind,
    pub weights: BindKind,
}

pub fn select(op: &Op, ins: &[ArgInfo], dtype: DType, caps: &Caps) -> Result<Choice> {
    let x = &ins[0];
    let c = *x.shape.last().unwrap_or(&1);
    let rows = x.shape.iter().product::<usize>().checked_div(c).unwrap_or(0);
    let staged = staged_kind(dtype).filter(|&kind| {
        caps.texture_reads
            && c.is_multiple_of(4)
            && ins.iter().all(|i| i.dtype == dtype)
            && texture_fits(caps, kind, (rows * c * dtype.size()) as u64)
    });
    let plain = |entry| Choice { entry, x: BindKind::Read, weights: BindKind::Read };
    Ok(match (op, staged) {
        (Op::LayerNorm { .. }, Some(kind)) => {
            Choice { entry: "layernorm_rows", x: kind, weights: twin_kind(dtype).expect("a float dtype") }
        }
        (Op::RmsNorm { .. }, Some(kind)) => {
            Choice { entry: "rmsnorm_rows", x: kind, weights: twin_kind(dtype).expect("a float dtype") }
        }
        (Op::LayerNormGradX { .. }, Some(kind)) => {
            Choice { entry: "layernorm_backward_rows", x: kind, weights: twin_kind(dtype).expect("a float dtype") }
        }
        (Op::RmsNormGradX { .. }, Some(kind)) => {
            Choice { entry: "rmsnorm_backward_rows", x: kind, weights: twin_kind(dtype).expect("a float dtype") }
        }
        (Op::NormGradGamma { .. }, Some(kind)) => {
            Choice { entry: "norm_row_stats_rows", x: kind, weights: BindKind::Read }
        }
        (Op::LayerNorm { .. }, None) => plain("layernorm_forward"),
        (Op::RmsNorm { .. }, None) => plain("rmsnorm_forward"),
        (Op::LayerNormGradX { .. }, _) => plain("layernorm_backward_x"),
        (Op::RmsNormGradX { .. }, _) => plain("rmsnorm_backward_x"),
        (Op::NormGradGamma { .. }, _) => plain("norm_row_stats"),
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a norm op".into() }),
    })
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let x = &ins[0];
    let c = *x.shape.last().unwrap_or(&1);
    let rows = x.shape.iter().product::<usize>().checked_div(c).unwrap_or(0);
    let dt = out.dtype;
    let choice = select(op, ins, dt, caps)?;
    let wg = wg_for(c);
    let row_grid = grid_1d(rows as u32);
    let r = |i| bind_as(Arg::Input(i), choice.x);
    let g = |i| bind_as(Arg::Input(i), choice.weights);
    let w = bind(Arg::Output, true);
    let single = |eps, bindings, overrides, grid| Lowered {
        scratch: vec![],
        dispatches: vec![dispatch(choice.entry, dt, overrides, (rows, c, eps), bindings, grid)],
    };
    let ov = vec![("WG", wg as f64)];
    Ok(match *op {
        // One row per invocation (16 a workgroup), no WG override.
        Op::LayerNorm { eps } if choice.x.is_staged() => {
            single(eps, vec![r(0), g(1), g(2), w], vec![], grid_1d(ceil_div(rows, 16)))
        }
        Op::RmsNorm { eps } if choice.x.is_staged() => {
            single(eps, vec![r(0), g(1), w], vec![], grid_1d(ceil_div(rows, 16)))
        }
        Op::LayerNormGradX { eps } | Op::RmsNormGradX { eps } if choice.x.is_staged() => {
            single(eps, vec![r(0), g(1), r(2), w], vec![], grid_1d(ceil_div(rows, 16)))
        }
        Op::LayerNorm { eps } | Op::LayerNormGradX { eps } | Op::RmsNormGradX { eps } => {
            single(eps, vec![r(0), r(1), r(2), w], ov, row_grid)
        }
        Op::RmsNorm { eps } => single(eps, vec![r(0), r(1), w], ov, row_grid),
        Op::NormGradGamma { eps, rms } => {
            // Per-row (mean, rstd) into scratch, then one invocation per column sums its rows in order.
            // On CPU adapters the stats walk a row an invocation through the staged x.
            let (stats_wg, stats_grid) = if choice.x.is_staged() {
                (vec![], grid_1d(ceil_div(rows, 16)))
            } else {
                (vec![("WG", wg as f64)], row_grid)
            };
            let stats = dispatch(
                choice.entry,
                dt,
                [stats_wg, vec![("RMS", rms as u32 as f64)]].concat(),
                (rows, c, eps),
                vec![r(0), bind(Arg::Scratch(0), true)],
                stats_grid,
            );
            let plain = |i| bind(Arg::Input(i), false);
            let cols = dispatch(
                "norm_grad_gamma",
                dt,
                vec![("WG", 64.0)],
                (rows, c, eps),
                vec![plain(0), plain(1), bind(Arg::Scratch(0), false), w],
                grid_1d(c.div_ceil(64) as u32),
            );
            Lowered { scratch: vec![(rows.max(1) * 2 * 4) as u64], dispatches: vec![stats, cols] }
        }
        _ => unreachable!("select accepts only norm ops"),
    })
}
