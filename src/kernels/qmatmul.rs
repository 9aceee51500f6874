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

/// What serves a QMatMul: the family's kernel table (`select`), which lowering only turns into dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub family: &'static str,
    /// The product's entry (W8A8 prefill runs `quantize_dynamic` or `quantize_static` before it).
    pub entry: &'static str,
    /// How the product reads x (W8A8 prefill: the quantized x) and the packed weights.
    pub x: BindKind,
    pub w: BindKind,
}

/// The QMatMul kernel table, from x [..., K], the weights' shape, the output dtype and `Caps`:
/// - up to `GEMV_MAX_ROWS` rows a GEMV (`gemv_w8`; W8A8 with the int8-dot tier `gemv_w8_fq`, the quantizer
///   folded in), with the weights and scales through their texture twins and the row through a uniform on a
///   texture-weights adapter where they fit (the `_tex` families);
/// - more rows: weight-only (or W8A8 without the int8-dot tier) `gemm_w8`, or `gemm_w8_tex` with the
///   weights' twins and x staged; W8A8 quantizes x first (`qdot`), then `gemm_w8a8` or, with twins and the
///   quantized x staged, `gemm_w8a8_tex`.
pub fn select(act: ActQuant, ins: &[ArgInfo], dtype: DType, caps: &Caps) -> Choice {
    let k = *ins[0].shape.last().unwrap_or(&0);
    let m = ins[0].shape.iter().product::<usize>() / k.max(1);
    let n = ins[1].shape[0];
    let gemv = m <= GEMV_MAX_ROWS;
    let weight_only = act == ActQuant::None || !caps.int8dot;
    // On an adapter that prefers texture reads: the weights and their scales through texture twins (decode),
    // and for prefill the activations through a staged texture too.
    let weights_fit = caps.texture_weights
        && texture_fits(caps, BindKind::TextureU32x4, (n * k) as u64)
        && texture_fits(caps, BindKind::TextureF32, (n * k / BLOCK * 4) as u64);
    let x_staged = staged_kind(ins[0].dtype).filter(|&kind| texture_fits(caps, kind, (m * k * dtype.size()) as u64));
    // Decode GEMVs on such an adapter: the twins, and the row through the uniform path (it must fit).
    let twins = gemv && weights_fit && uniform_row_fits(caps, &ins[0], m * k * dtype.size());
    let (x, w) = match twins {
        true => (BindKind::Uniform, BindKind::TextureU32x4),
        false => (BindKind::Read, BindKind::Read),
    };
    let c = |family, entry, x, w| Choice { family, entry, x, w };
    match (gemv, weight_only) {
        (false, true) => match x_staged.filter(|_| weights_fit) {
            Some(kind) => c("qmatmul", "gemm_w8_tex", kind, BindKind::TextureU32x4),
            None => c("qmatmul", "gemm_w8", BindKind::Read, BindKind::Read),
        },
        (true, true) => c(if twins { "qmatmul_tex" } else { "qmatmul" }, "gemv_w8", x, w),
        // W8A8 decode: one dispatch, the quantizer folded into the GEMV. Decode reads every weight once, so
        // the integer dot product buys nothing there, and the quantizer's dispatch is saved.
        (true, false) => {
            let family = match (twins, act == ActQuant::Dynamic) {
                (false, false) => "qmatmul",
                (true, false) => "qmatmul_tex",
                (false, true) => "qmatmul_fqd",
                (true, true) => "qmatmul_fqd_tex",
            };
            c(family, "gemv_w8_fq", x, w)
        }
        (false, false) => {
            let (qx, sx) = ((m * k) as u64, (m * (k / BLOCK) * 4) as u64);
            let staged = weights_fit
                && texture_fits(caps, BindKind::StagedU32x4, qx)
                && texture_fits(caps, BindKind::StagedF32, sx);
            match staged {
                true => c("qmatmul", "gemm_w8a8_tex", BindKind::StagedU32x4, BindKind::TextureU32x4),
                false => c("qdot", "gemm_w8a8", BindKind::Read, BindKind::Read),
            }
        }
    }
}

/// The WGSL text of a family `select` names.
fn family_source(family: &str) -> &'static str {
    match family {
        "qmatmul_tex" => tex_source(),
        "qmatmul_fqd" => fq_dynamic_source(),
        "qmatmul_fqd_tex" => fq_dynamic_tex_source(),
        "qdot" => DOT_SOURCE,
        _ => SOURCE,
    }
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
    let c = select(act, ins, dtype, caps);
    let scales = if c.w == BindKind::TextureU32x4 { BindKind::TextureF32 } else { BindKind::Read };
    let (wq, ws) = (bind_as(Arg::Input(1), c.w), bind_as(Arg::Input(2), scales));
    let tex_grid = [ceil_div(n, 64), ceil_div(m, 8 * tex_gemm_rows(m)), 1];
    let dispatch = |entry, overrides, bindings, grid| Dispatch {
        family: c.family,
        source: family_source(c.family),
        entry,
        dtype,
        overrides,
        params: params(m, n, k),
        bindings,
        grid,
    };
    let out_b = bind(Arg::Output, true);
    match c.entry {
        "gemm_w8_tex" => {
            let bindings = vec![bind_as(Arg::Input(0), c.x), wq, ws, out_b];
            let d = dispatch(c.entry, vec![("ROWS", tex_gemm_rows(m) as f64)], bindings, tex_grid);
            return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
        }
        "gemv_w8" | "gemm_w8" | "gemv_w8_fq" => {
            // A row through the uniform path says whether it holds f16 values.
            let overrides = match c.x {
                BindKind::Uniform => vec![("X_F16", f64::from(u8::from(ins[0].dtype == DType::F16)))],
                _ => vec![],
            };
            let mut bindings = vec![bind_as(Arg::Input(0), c.x), wq, ws, out_b];
            if c.entry == "gemv_w8_fq" && act == ActQuant::Static {
                bindings.push(bind_as(Arg::Input(3), scales));
            }
            return Ok(Lowered { scratch: vec![], dispatches: vec![dispatch(c.entry, overrides, bindings, grid)] });
        }
        _ => {}
    }
    // W8A8 prefill: x quantized per row and block into scratch (q bytes, block scales), then the product.
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
    let scratch = vec![(m * k) as u64, (blocks * 4) as u64];
    let product = match c.entry {
        "gemm_w8a8_tex" => dispatch(
            c.entry,
            vec![("ROWS", tex_gemm_rows(m) as f64)],
            vec![bind_as(Arg::Scratch(0), c.x), wq, ws, out_b, bind_as(Arg::Scratch(1), BindKind::StagedF32)],
            tex_grid,
        ),
        _ => dispatch(
            c.entry,
            vec![],
            vec![bind(Arg::Scratch(0), false), bind(Arg::Scratch(1), false), wq, ws, out_b],
            grid,
        ),
    };
    Ok(Lowered { scratch, dispatches: vec![quantize, product] })
}
