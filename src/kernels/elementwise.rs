//! Lowering of the elementwise family (shaders/elementwise.wgsl): add/bias, mul, scale, activations and their
//! derivatives, sum over rows, casts, permute, KV-cache write, and the plain copy the benchmark times.

use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, texture_fits, Arg, ArgInfo, BindKind, Caps, Dispatch,
    Lowered, Word,
};
use crate::error::{Error, Result};
use crate::graph::{Act, Op, Scalar};
use crate::tensor::{numel, DType};

pub const SOURCE: &str = include_str!("../../shaders/elementwise.wgsl");

const WG: usize = 256;

/// From this many elements on, add/mul/unary read staged textures on CPU adapters (below it the copies and
/// the compute-pass split they need cost more than the storage loads they save: decode's rows).
const TEX_MIN_ELEMS: usize = 16_384;

/// Params words in struct order: n, cols, s, d0..d3, offset.
fn params(n: usize, cols: usize, s: f32, d: [usize; 4], offset: Word) -> Vec<(&'static str, Word)> {
    vec![
        ("n", Word::U32(n as u32)),
        ("cols", Word::U32(cols as u32)),
        ("s", Word::F32(s)),
        ("d0", Word::U32(d[0] as u32)),
        ("d1", Word::U32(d[1] as u32)),
        ("d2", Word::U32(d[2] as u32)),
        ("d3", Word::U32(d[3] as u32)),
        ("offset", offset),
    ]
}

fn act_id(act: Act) -> f64 {
    match act {
        Act::Relu => 0.0,
        Act::GeluErf => 1.0,
        Act::GeluTanh => 2.0,
        Act::Silu => 3.0,
        Act::Tanh => 4.0,
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    entry: &'static str,
    dtype: DType,
    overrides: Vec<(&'static str, f64)>,
    params: Vec<(&'static str, Word)>,
    bindings: Vec<super::Binding>,
    threads: usize,
) -> Dispatch {
    Dispatch {
        family: "elementwise",
        source: SOURCE,
        entry,
        dtype,
        overrides,
        params,
        bindings,
        grid: grid_1d(ceil_div(threads, WG)),
    }
}

/// A plain buffer copy of `n_elems` elements of `dtype` (binding 1 read, binding 2 write): vec4 when
/// `n_elems % 4 == 0`. The benchmark's bandwidth ceiling.
pub fn copy_dispatch(n_elems: usize, dtype: DType) -> Dispatch {
    let entry = copy_entry(n_elems);
    let n = if entry == "copy_vec4" { n_elems / 4 } else { n_elems };
    let dtype = if dtype == DType::F16 { DType::F16 } else { DType::F32 };
    dispatch(
        entry,
        dtype,
        vec![],
        params(n, 0, 0.0, [0; 4], Word::U32(0)),
        vec![bind(Arg::Input(0), false), bind(Arg::Output, true)],
        n,
    )
}

/// The staged-texture kind an elementwise op over `n` elements of `dtype` reads its inputs as on this
/// adapter, or None for storage: CPU adapters only, from `TEX_MIN_ELEMS` elements on, whole texels.
fn staged_for(n: usize, dtype: DType, caps: &Caps) -> Option<BindKind> {
    staged_kind(dtype).filter(|&kind| {
        caps.texture_reads
            && n >= TEX_MIN_ELEMS
            && n.is_multiple_of(4)
            && texture_fits(caps, kind, (n * dtype.size()) as u64)
    })
}

/// What serves an elementwise op: its entry and how its inputs are bound (a staged texture kind for the
/// texture variants, else `Read`; in-place inputs are `Write` whatever this says). The family's kernel
/// table: lowering only builds the dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub entry: &'static str,
    pub inputs: BindKind,
}

pub fn select(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Choice> {
    let n = numel(&out.shape);
    let dt = out.dtype;
    let same_shapes = ins.iter().all(|i| i.shape == out.shape && i.dtype == dt);
    let tex = staged_for(n, dt, caps).filter(|_| same_shapes);
    let plain = |entry| Choice { entry, inputs: BindKind::Read };
    Ok(match (op, tex) {
        (Op::Add, Some(kind)) => Choice { entry: "add_tex", inputs: kind },
        (Op::Mul, Some(kind)) => Choice { entry: "mul_tex", inputs: kind },
        (Op::Unary { .. }, Some(kind)) => Choice { entry: "unary_tex", inputs: kind },
        (Op::Add, None) if ins[1].shape != ins[0].shape => plain("add_bias"),
        (Op::Add, None) => plain("add"),
        (Op::Mul, None) => plain("mul"),
        (Op::Unary { .. }, None) => plain("unary"),
        (Op::Scale { .. }, _) => plain("scale"),
        (Op::Dropout { .. }, _) => plain("dropout"),
        (Op::UnaryBackward { .. }, _) => plain("unary_backward"),
        (Op::SumRows, _) => plain("sum_rows"),
        (Op::Cast { to }, _) => match (ins[0].dtype, *to) {
            (DType::F32, DType::F16) => plain("cast_to_half"),
            (DType::F16, DType::F32) => plain("cast_to_float"),
            (a, b) if a == b && a.is_float() => plain(copy_entry(n)),
            (from, to) => {
                return Err(Error::DType {
                    op: op.name().into(),
                    detail: format!("cannot cast {} to {}", from.name(), to.name()),
                })
            }
        },
        (Op::Dequantize { .. }, _) if ins[0].dtype == DType::F16 => plain("dequant_half"),
        (Op::Dequantize { .. }, _) => plain("dequant_i8"),
        (Op::Permute0213, _) => plain("permute0213"),
        (Op::CacheWrite { .. }, _) => plain("cache_write"),
        (Op::CacheWriteAt, _) => plain("cache_write_at"),
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not an elementwise-family op".into() }),
    })
}

fn copy_entry(n_elems: usize) -> &'static str {
    if n_elems.is_multiple_of(4) {
        "copy_vec4"
    } else {
        "copy"
    }
}

/// y = act(a) ⊙ b over `n` elements from two scratch buffers (Glu's combining step); large ones on CPU
/// adapters through staged textures, as add/mul/unary.
pub fn glu_dispatch(act: Act, n: usize, dtype: DType, caps: &Caps) -> Dispatch {
    let over = vec![("ACT", act_id(act))];
    if let Some(kind) = staged_for(n, dtype, caps) {
        let bindings = vec![bind_as(Arg::Scratch(0), kind), bind_as(Arg::Scratch(1), kind), bind(Arg::Output, true)];
        return dispatch("glu_tex", dtype, over, params(n / 4, 0, 0.0, [0; 4], Word::U32(0)), bindings, n / 4);
    }
    let bindings = vec![bind(Arg::Scratch(0), false), bind(Arg::Scratch(1), false), bind(Arg::Output, true)];
    dispatch("glu", dtype, over, params(n, 0, 0.0, [0; 4], Word::U32(0)), bindings, n)
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    no_shards(op, ins)?;
    let n = numel(&out.shape);
    let dt = out.dtype;
    let choice = select(op, ins, out, caps)?;
    let entry = choice.entry;
    if choice.inputs.is_staged() {
        let kind = choice.inputs;
        let (overrides, mut bindings) = match op {
            Op::Unary { act } => (vec![("ACT", act_id(*act))], vec![bind_as(Arg::Input(0), kind)]),
            _ => (vec![], vec![bind_as(Arg::Input(0), kind), bind_as(Arg::Input(1), kind)]),
        };
        bindings.push(bind(Arg::Output, true));
        let d = dispatch(entry, dt, overrides, params(n / 4, 0, 0.0, [0; 4], Word::U32(0)), bindings, n / 4);
        return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
    }
    let zero = || Word::U32(0);
    let unary_bindings = || vec![bind(Arg::Input(0), false), bind(Arg::Output, true)];
    let binary_bindings = || vec![bind(Arg::Input(0), false), bind(Arg::Input(1), false), bind(Arg::Output, true)];
    let d = match op {
        Op::Add => {
            let cols = *ins[1].shape.last().unwrap_or(&1);
            dispatch(entry, dt, vec![], params(n, cols, 0.0, [0; 4], zero()), binary_bindings(), n)
        }
        Op::Mul => dispatch(entry, dt, vec![], params(n, 0, 0.0, [0; 4], zero()), binary_bindings(), n),
        Op::Scale { s } => dispatch(entry, dt, vec![], params(n, 0, *s, [0; 4], zero()), unary_bindings(), n),
        Op::Unary { act } => {
            dispatch(entry, dt, vec![("ACT", act_id(*act))], params(n, 0, 0.0, [0; 4], zero()), unary_bindings(), n)
        }
        Op::Dropout { p, seed, step } => {
            // s = 1/(1 − p); d0 = seed, d1 = the keep threshold; offset = step.
            let step = match step {
                Scalar::Const(v) => Word::U32(*v),
                var => Word::Var(var.clone(), 0),
            };
            let th = crate::reference::elementwise::dropout_threshold(*p) as usize;
            let words = params(n, 0, 1.0 / (1.0 - p), [*seed as usize, th, 0, 0], step);
            dispatch(entry, dt, vec![], words, unary_bindings(), n)
        }
        Op::UnaryBackward { act } => {
            dispatch(entry, dt, vec![("ACT", act_id(*act))], params(n, 0, 0.0, [0; 4], zero()), binary_bindings(), n)
        }
        Op::SumRows => {
            let cols = n;
            let rows = numel(&ins[0].shape) / cols.max(1);
            dispatch(entry, dt, vec![], params(rows, cols, 0.0, [0; 4], zero()), unary_bindings(), cols)
        }
        Op::Cast { to } if *to == ins[0].dtype => copy_dispatch(n, *to),
        // The f16 prelude makes T = f16; the f32 side is spelled out in the shader.
        Op::Cast { .. } => dispatch(entry, DType::F16, vec![], params(n, 0, 0.0, [0; 4], zero()), unary_bindings(), n),
        Op::Dequantize { transpose } => {
            // Params: n = elements, cols = the stored row length (in), d0 = the stored rows (out), d1 = 1 to
            // write [in, out].
            let (rows, cols) = (ins[0].shape[0], n / ins[0].shape[0].max(1));
            let words = params(n, cols, 0.0, [rows, *transpose as usize, 0, 0], zero());
            if ins[0].dtype == DType::F16 {
                dispatch(entry, DType::F16, vec![], words, unary_bindings(), n)
            } else {
                dispatch(entry, DType::F32, vec![], words, binary_bindings(), n)
            }
        }
        Op::Permute0213 => {
            let s = &ins[0].shape;
            dispatch(entry, dt, vec![], params(n, 0, 0.0, [s[0], s[1], s[2], s[3]], zero()), unary_bindings(), n)
        }
        Op::CacheWrite { offset } => {
            let (c, s) = (&ins[0].shape, &ins[1].shape);
            let n_src = numel(s);
            let off = match offset {
                Scalar::Const(v) => Word::U32(*v),
                var => Word::Var(var.clone(), 0),
            };
            // In place: the cache (input 0) is bound read_write; the output aliases it.
            dispatch(
                entry,
                dt,
                vec![],
                params(n_src, 0, 0.0, [c[0] * c[1], s[2], c[2], c[3]], off),
                vec![bind(Arg::Input(0), true), bind(Arg::Input(1), false)],
                n_src,
            )
        }
        Op::CacheWriteAt => {
            let (c, s) = (&ins[0].shape, &ins[1].shape);
            let n_src = numel(s);
            dispatch(
                entry,
                dt,
                vec![],
                params(n_src, c[1], 0.0, [c[0] * c[1], s[2], c[2], c[3]], Word::U32(0)),
                vec![bind(Arg::Input(0), true), bind(Arg::Input(1), false), bind(Arg::Input(2), false)],
                n_src,
            )
        }
        _ => unreachable!("select accepts only elementwise-family ops"),
    };
    Ok(Lowered { scratch: vec![], dispatches: vec![d] })
}
