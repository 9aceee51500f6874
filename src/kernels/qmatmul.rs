//! Lowering of QMatMul: weight-only int8 kernels (shaders/qmatmul.wgsl) and, where the adapter's tier has
//! the packed int8 dot product, W8A8: for prefill the kernels of shaders/qdot.wgsl behind a quantizer that
//! writes the int8 activations and their block scales into two scratch buffers; for decode (up to 8 rows)
//! one dispatch of qmatmul.wgsl's gemv_w8_fq, which rounds the activations itself. Without the int8 dot
//! product, Dynamic and Static fall back to weight-only (the activations stay float), as `Op::QMatMul`'s
//! contract allows only through this choice of kernel: the fallback is more accurate, never less.

use super::matmul::uniform_row_fits;
use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, tex_gemm_rows, texture_fits, Arg, ArgInfo, BindKind,
    Caps, Dispatch, Lowered, Word,
};
use crate::error::{Error, Result};
use crate::graph::{ActQuant, Op};
use crate::quant::BLOCK;
use crate::tensor::DType;

pub const SOURCE: &str =
    concat!(include_str!("../../shaders/qmatmul.wgsl"), include_str!("../../shaders/gemv_cols.wgsl"));
pub const DOT_SOURCE: &str = include_str!("../../shaders/qdot.wgsl");

/// shaders/qmatmul.wgsl with the GEMVs' loads swapped for CPU adapters: the weights and scales through their
/// texture twins, the row through a 64 KiB uniform array bound on the row's own buffer (no copy; every plan
/// buffer there is at least that large, `Gpu::buffer`), f32 rows as words, f16 rows eight values to a
/// vec4<u32> (override X_F16), and gemv_w8_fq's static scales through their twin (decode on CPU adapters).
pub fn tex_source() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        super::swap_loads(
            "qmatmul",
            SOURCE,
            &[
                ("    return array<vec4<f32>, 2>(gemv_x(2u * u), gemv_x(2u * u + 1u));\n", "    return xrow8(u);\n"),
                ("    return wq4[t];\n", "    return wtex(t);\n"),
                ("    return ws[t];\n", "    return stex(t);\n"),
                ("    return xs[b];\n", "    return sxtex(b);\n"),
            ],
        ) + UNIFORM_ROW
    });
    &TEXT
}

/// The uniform row of `tex_source`: vec4s 2u and 2u + 1 of the row-major rows, one load for eight f16.
const UNIFORM_ROW: &str = "
override X_F16: bool = false;
@group(0) @binding(1) var<uniform> xuu: array<vec4<u32>, 4096>;
fn xrow8(u: u32) -> array<vec4<f32>, 2> {
    if (X_F16) {
        let v = xuu[u];
        return array<vec4<f32>, 2>(vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)),
                                   vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)));
    }
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(xuu[2u * u]), bitcast<vec4<f32>>(xuu[2u * u + 1u]));
}
";

/// The block scale of gemv_w8_fq's dynamic variants: the block's max / 127, as quantize_dynamic.
const FQ_DYNAMIC: &str = "    return amax / 127.0;\n";

/// shaders/qmatmul.wgsl with gemv_w8_fq quantizing each block by its own max (W8A8 dynamic decode).
pub fn fq_dynamic_source() -> &'static str {
    static TEXT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| super::swap_loads("qmatmul_fqd", SOURCE, &[("    return xs[b];\n", FQ_DYNAMIC)]));
    &TEXT
}

/// `tex_source` with gemv_w8_fq quantizing each block by its own max (W8A8 dynamic decode on CPU adapters).
pub fn fq_dynamic_tex_source() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        super::swap_loads("qmatmul_fqd_tex", tex_source(), &[("    return sxtex(b);\n", FQ_DYNAMIC)])
    });
    &TEXT
}

/// Up to this many rows run as GEMVs (one row per z); more use the 64×64-tiled GEMM.
use super::matmul::GEMV_MAX_ROWS;

fn params(m: usize, n: usize, k: usize) -> Vec<(&'static str, Word)> {
    vec![("m", Word::U32(m as u32)), ("n", Word::U32(n as u32)), ("k", Word::U32(k as u32))]
}

/// The grid of a product: GEMV (rows in z) or 64×64 tiles.
fn product_grid(op: &Op, m: usize, n: usize) -> Result<[u32; 3]> {
    if m <= GEMV_MAX_ROWS {
        let mut g = grid_1d(ceil_div(n, 64));
        g[2] = m as u32;
        return Ok(g);
    }
    if m.div_ceil(64) > 65_535 || n.div_ceil(64) > 65_535 {
        return Err(Error::Unsupported {
            op: op.name().into(),
            detail: format!("[{m}, {n}] needs more workgroups than one dispatch allows"),
        });
    }
    Ok([ceil_div(n, 64), ceil_div(m, 64), 1])
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    let Op::QMatMul { act } = *op else {
        return Err(Error::Unsupported { op: op.name().into(), detail: "not a qmatmul".into() });
    };
    no_shards(op, ins)?;
    let k = *ins[0].shape.last().expect("shape inference checked the rank");
    let m = ins[0].shape.iter().product::<usize>() / k;
    let n = ins[1].shape[0];
    let dtype = out.dtype;
    let grid = product_grid(op, m, n)?;
    let gemv = m <= GEMV_MAX_ROWS;
    // On an adapter that prefers texture reads: the weights and their scales through texture twins (decode),
    // and for prefill the activations through a staged texture too.
    let weights_fit = caps.texture_weights
        && texture_fits(caps, BindKind::TextureU32x4, (n * k) as u64)
        && texture_fits(caps, BindKind::TextureF32, (n * k / BLOCK * 4) as u64);
    let x_staged = staged_kind(ins[0].dtype).filter(|&kind| texture_fits(caps, kind, (m * k * dtype.size()) as u64));
    // Decode GEMVs on such an adapter: the twins, and the row through the uniform path (it must fit).
    let row_fits = uniform_row_fits(caps, &ins[0], m * k * dtype.size());
    let twins_fit = gemv && weights_fit && row_fits;
    let x_row = if twins_fit { bind_as(Arg::Input(0), BindKind::Uniform) } else { bind(Arg::Input(0), false) };
    let row_overrides =
        if twins_fit { vec![("X_F16", f64::from(u8::from(ins[0].dtype == DType::F16)))] } else { vec![] };
    if let (false, true, Some(kind), true) = (gemv, weights_fit, x_staged, act == ActQuant::None || !caps.int8dot) {
        let d = Dispatch {
            family: "qmatmul",
            source: SOURCE,
            entry: "gemm_w8_tex",
            dtype,
            overrides: vec![("ROWS", tex_gemm_rows(m) as f64)],
            params: params(m, n, k),
            bindings: vec![
                bind_as(Arg::Input(0), kind),
                bind_as(Arg::Input(1), BindKind::TextureU32x4),
                bind_as(Arg::Input(2), BindKind::TextureF32),
                bind(Arg::Output, true),
            ],
            grid: [ceil_div(n, 64), ceil_div(m, 8 * tex_gemm_rows(m)), 1],
        };
        return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
    }
    let (wq, ws) = if twins_fit {
        (bind_as(Arg::Input(1), BindKind::TextureU32x4), bind_as(Arg::Input(2), BindKind::TextureF32))
    } else {
        (bind(Arg::Input(1), false), bind(Arg::Input(2), false))
    };
    if act == ActQuant::None || !caps.int8dot {
        let d = Dispatch {
            family: if twins_fit { "qmatmul_tex" } else { "qmatmul" },
            source: if twins_fit { tex_source() } else { SOURCE },
            entry: if gemv { "gemv_w8" } else { "gemm_w8" },
            dtype,
            overrides: if gemv { row_overrides } else { vec![] },
            params: params(m, n, k),
            bindings: vec![if gemv { x_row } else { bind(Arg::Input(0), false) }, wq, ws, bind(Arg::Output, true)],
            grid,
        };
        return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
    }
    // W8A8 decode: one dispatch, the quantizer folded into the GEMV (gemv_w8_fq). Decode reads every weight
    // once, so the integer dot product buys nothing there, and the quantizer's dispatch is saved.
    if gemv {
        let (family, source) = match (twins_fit, act == ActQuant::Dynamic) {
            (false, false) => ("qmatmul", SOURCE),
            (true, false) => ("qmatmul_tex", tex_source()),
            (false, true) => ("qmatmul_fqd", fq_dynamic_source()),
            (true, true) => ("qmatmul_fqd_tex", fq_dynamic_tex_source()),
        };
        let mut bindings = vec![x_row, wq, ws, bind(Arg::Output, true)];
        if act == ActQuant::Static {
            bindings.push(if twins_fit {
                bind_as(Arg::Input(3), BindKind::TextureF32)
            } else {
                bind(Arg::Input(3), false)
            });
        }
        let d = Dispatch {
            family,
            source,
            entry: "gemv_w8_fq",
            dtype,
            overrides: row_overrides,
            params: params(m, n, k),
            bindings,
            grid,
        };
        return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
    }
    let blocks = m * (k / BLOCK);
    let mut qbind = vec![bind(Arg::Input(0), false)];
    if act == ActQuant::Static {
        qbind.push(bind(Arg::Input(3), false));
    }
    qbind.extend([bind(Arg::Scratch(0), true), bind(Arg::Scratch(1), true)]);
    let quantize = Dispatch {
        family: "qdot",
        source: DOT_SOURCE,
        entry: if act == ActQuant::Static { "quantize_static" } else { "quantize_dynamic" },
        dtype,
        overrides: vec![],
        params: params(m, n, k),
        bindings: qbind,
        grid: grid_1d(ceil_div(blocks, 64)),
    };
    let qx_bytes = (m * k) as u64;
    let sx_bytes = (blocks * 4) as u64;
    // Prefill on an adapter that prefers texture reads: the quantized activations staged as textures.
    if !gemv
        && weights_fit
        && texture_fits(caps, BindKind::StagedU32x4, qx_bytes)
        && texture_fits(caps, BindKind::StagedF32, sx_bytes)
    {
        let product = Dispatch {
            family: "qmatmul",
            source: SOURCE,
            entry: "gemm_w8a8_tex",
            dtype,
            overrides: vec![("ROWS", tex_gemm_rows(m) as f64)],
            params: params(m, n, k),
            bindings: vec![
                bind_as(Arg::Scratch(0), BindKind::StagedU32x4),
                bind_as(Arg::Input(1), BindKind::TextureU32x4),
                bind_as(Arg::Input(2), BindKind::TextureF32),
                bind(Arg::Output, true),
                bind_as(Arg::Scratch(1), BindKind::StagedF32),
            ],
            grid: [ceil_div(n, 64), ceil_div(m, 8 * tex_gemm_rows(m)), 1],
        };
        return Ok(Lowered { scratch: vec![qx_bytes, sx_bytes], dispatches: vec![quantize, product] });
    }
    let product = Dispatch {
        family: "qdot",
        source: DOT_SOURCE,
        entry: "gemm_w8a8",
        dtype,
        overrides: vec![],
        params: params(m, n, k),
        bindings: vec![
            bind(Arg::Scratch(0), false),
            bind(Arg::Scratch(1), false),
            bind(Arg::Input(1), false),
            bind(Arg::Input(2), false),
            bind(Arg::Output, true),
        ],
        grid,
    };
    Ok(Lowered { scratch: vec![qx_bytes, sx_bytes], dispatches: vec![quantize, product] })
}
