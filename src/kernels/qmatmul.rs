//! Lowering of QMatMul: weight-only int8 kernels (shaders/qmatmul.wgsl) and, where the adapter's tier has
//! the packed int8 dot product, the W8A8 kernels (shaders/qdot.wgsl) behind a quantizer that writes the
//! int8 activations and their block scales into two scratch buffers. Without the int8 dot product, Dynamic
//! and Static fall back to weight-only (the activations stay float), as `Op::QMatMul`'s contract allows
//! only through this choice of kernel: the fallback is more accurate, never less.

use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, tex_gemm_rows, texture_fits, Arg, ArgInfo, BindKind,
    Caps, Dispatch, Lowered, Word,
};
use crate::error::{Error, Result};
use crate::graph::{ActQuant, Op};
use crate::quant::BLOCK;

pub const SOURCE: &str = include_str!("../../shaders/qmatmul.wgsl");
pub const DOT_SOURCE: &str = include_str!("../../shaders/qdot.wgsl");

/// shaders/qdot.wgsl with gemv_w8a8's load functions reading the quantized row and its scales from 64 KiB
/// uniform arrays and the weights and scales from their texture twins (decode on CPU adapters).
pub fn dot_tex_source() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        super::swap_loads(
            "qdot",
            DOT_SOURCE,
            &[
                ("    return qx4[t];\n", "    return qxu[t];\n"),
                ("    return sx[t];\n", "    return sxu[t / 4u][t % 4u];\n"),
                ("    return wq4[t];\n", "    return textureLoad(wqt, vec2<u32>(t % 4096u, t / 4096u), 0);\n"),
                ("    return ws[t];\n", "    return textureLoad(wst, vec2<u32>(t % 4096u, t / 4096u), 0).x;\n"),
            ],
        ) + "\n@group(0) @binding(1) var<uniform> qxu: array<vec4<u32>, 4096>;\n\
             @group(0) @binding(2) var<uniform> sxu: array<vec4<f32>, 4096>;\n\
             @group(0) @binding(3) var wqt: texture_2d<u32>;\n\
             @group(0) @binding(4) var wst: texture_2d<f32>;\n"
    });
    &TEXT
}

/// shaders/qmatmul.wgsl with gemv_w8's three load functions reading texel fetches: its gemv_w8 reads the
/// weights and scales through their twins and the row through a staged texture (decode on CPU adapters).
pub fn tex_source() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        super::swap_loads(
            "qmatmul",
            SOURCE,
            &[
                ("    return vec4<f32>(x4[t]);\n", "    return xtex(t);\n"),
                ("    return wq4[t];\n", "    return wtex(t);\n"),
                ("    return ws[t];\n", "    return stex(t);\n"),
            ],
        )
    });
    &TEXT
}

/// Bytes of each uniform array of `dot_tex_source` (its scratch inputs are at least this large).
const TEX_UNIFORM_BYTES: u64 = 65_536;

/// Up to this many rows run as GEMVs (one row per z); more use the 64×64-tiled GEMM.
const GEMV_MAX_ROWS: usize = 8;

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
    let twins_fit = gemv && weights_fit && x_staged.is_some();
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
            overrides: vec![],
            params: params(m, n, k),
            bindings: vec![
                match (twins_fit, x_staged) {
                    (true, Some(kind)) => bind_as(Arg::Input(0), kind),
                    _ => bind(Arg::Input(0), false),
                },
                wq,
                ws,
                bind(Arg::Output, true),
            ],
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
    // With texture twins, the quantized row goes through uniform bindings where it fits.
    let tex = twins_fit && caps.max_uniform >= TEX_UNIFORM_BYTES && qx_bytes <= TEX_UNIFORM_BYTES;
    if tex {
        let product = Dispatch {
            family: "qtex",
            source: dot_tex_source(),
            entry: "gemv_w8a8",
            dtype,
            overrides: vec![],
            params: params(m, n, k),
            bindings: vec![
                bind_as(Arg::Scratch(0), BindKind::Uniform),
                bind_as(Arg::Scratch(1), BindKind::Uniform),
                bind_as(Arg::Input(1), BindKind::TextureU32x4),
                bind_as(Arg::Input(2), BindKind::TextureF32),
                bind(Arg::Output, true),
            ],
            grid,
        };
        let scratch = vec![qx_bytes.max(TEX_UNIFORM_BYTES), sx_bytes.max(TEX_UNIFORM_BYTES)];
        return Ok(Lowered { scratch, dispatches: vec![quantize, product] });
    }
    let product = Dispatch {
        family: "qdot",
        source: DOT_SOURCE,
        entry: if gemv { "gemv_w8a8" } else { "gemm_w8a8" },
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
