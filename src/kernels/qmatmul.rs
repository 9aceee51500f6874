//! Lowering of QMatMul: weight-only int8 kernels (shaders/qmatmul.wgsl) and, where the adapter's tier has
//! the packed int8 dot product, W8A8: for prefill the kernels of shaders/qdot.wgsl behind a quantizer that
//! writes the int8 activations and their block scales into two scratch buffers; for decode (up to 8 rows)
//! one dispatch of qmatmul.wgsl's gemv_w8_fq, which rounds the activations itself. Without the int8 dot
//! product, Dynamic and Static fall back to weight-only (the activations stay float), as `Op::QMatMul`'s
//! contract allows only through this choice of kernel: the fallback is more accurate, never less.

use super::matmul::uniform_row_fits;
use super::wgsl::composed;
use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, tex_gemm_rows, texture_fits, Arg, ArgInfo, BindKind,
    Caps, Dispatch, Lowered, Word,
};
use crate::error::{Error, Result};
use crate::graph::{Act, ActQuant, Op};
use crate::quant::BLOCK;
use crate::tensor::DType;

const FILE: &str = include_str!("../../shaders/qmatmul.wgsl");
pub const DOT_SOURCE: &str = include_str!("../../shaders/qdot.wgsl");

/// shaders/qmatmul.wgsl reading its storage bindings (gemv_w8_fq's static scales too).
pub fn source() -> &'static str {
    composed!("qmatmul", FILE, ["storage", "fq_static"])
}

/// shaders/qmatmul.wgsl with the GEMVs' reads for CPU adapters: the weights and scales through their texture
/// twins, the row through a 64 KiB uniform array bound on the row's own buffer (no copy; every plan buffer
/// there is at least that large, `Gpu::buffer`), f32 rows as words, f16 rows eight values to a vec4<u32>
/// (override X_F16), and gemv_w8_fq's static scales through their twin (decode on CPU adapters).
pub fn tex_source() -> &'static str {
    composed!("qmatmul_tex", FILE, ["texture", "fq_static_texture"])
}

/// shaders/qmatmul.wgsl with gemv_w8_fq quantizing each block by its own max (W8A8 dynamic decode).
pub fn fq_dynamic_source() -> &'static str {
    composed!("qmatmul_fqd", FILE, ["storage", "fq_dynamic"])
}

/// `tex_source` with gemv_w8_fq quantizing each block by its own max (W8A8 dynamic decode on CPU adapters).
pub fn fq_dynamic_tex_source() -> &'static str {
    composed!("qmatmul_fqd_tex", FILE, ["texture", "fq_dynamic"])
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
    let weights_fit = caps.texture_reads
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
        _ => source(),
    }
}

/// QLinearAdd: the product's dispatches with r (input 3) bound as the product's output and the override ACC
/// on (y += x·Wᵀ in the stores); the static scales move from input 3 to 4.
fn lower_add(act: ActQuant, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    let (product, _) = crate::graph::qlinear_add_parts(ins);
    let mut l = lower(&Op::QMatMul { act }, &product, out, caps)?;
    for d in l.dispatches.iter_mut().filter(|d| d.bindings.iter().any(|b| b.arg == Arg::Output)) {
        d.overrides.push(("ACC", 1.0));
    }
    l.remap(|a| match a {
        Arg::Input(3) => Arg::Input(4),
        Arg::Output => Arg::Input(3),
        a => a,
    });
    Ok(l)
}

/// QGlu (inputs x, wgq, wgs, wuq, wus (, xs)): up to `GEMV_MAX_ROWS` rows with Silu, one GEMV over both
/// weights — gemv_glu_w8, or gemv_glu_w8_fq where the gate's product would be W8A8's gemv_w8_fq — in the text
/// and binding kinds `select` picks for the gate's product, the up projection's weights at bindings 6 and 7;
/// otherwise the two products into scratch (each lowered as QMatMul, their own scratch after) and
/// elementwise `glu`.
fn lower_glu(act: Act, quant: ActQuant, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    let (gate, up) = crate::graph::qglu_parts(ins);
    let product = Op::QMatMul { act: quant };
    let xs = |a: Arg| if a == Arg::Input(3) { Arg::Input(5) } else { a };
    let c = select(quant, &gate, out.dtype, caps);
    if act == Act::Silu && matches!(c.entry, "gemv_w8" | "gemv_w8_fq") {
        let mut l = lower(&product, &gate, out, caps)?;
        l.remap(xs);
        let d = &mut l.dispatches[0];
        d.entry = if c.entry == "gemv_w8" { "gemv_glu_w8" } else { "gemv_glu_w8_fq" };
        let (w, s) = (d.bindings[1].kind, d.bindings[2].kind);
        if d.bindings.len() == 4 {
            d.bindings.push(bind(Arg::Input(0), false)); // binding 5 (static scales) unread: x stands in
        }
        d.bindings.extend([bind_as(Arg::Input(3), w), bind_as(Arg::Input(4), s)]);
        return Ok(l);
    }
    let bytes = (crate::tensor::numel(&out.shape) * out.dtype.size()) as u64;
    let mut lg = lower(&product, &gate, out, caps)?;
    let ng = lg.scratch.len();
    lg.remap(|a| match xs(a) {
        Arg::Output => Arg::Scratch(0),
        Arg::Scratch(i) => Arg::Scratch(2 + i),
        a => a,
    });
    let mut lu = lower(&product, &up, out, caps)?;
    lu.remap(|a| match a {
        Arg::Output => Arg::Scratch(1),
        Arg::Scratch(i) => Arg::Scratch(2 + ng + i),
        Arg::Input(i) if i > 0 => Arg::Input(i + 2),
        a => a,
    });
    let mut l = Lowered { scratch: vec![bytes, bytes], dispatches: vec![] };
    l.scratch.extend(lg.scratch.iter().chain(&lu.scratch));
    l.dispatches.extend(lg.dispatches.into_iter().chain(lu.dispatches));
    let n = crate::tensor::numel(&out.shape);
    l.dispatches.push(super::elementwise::glu_dispatch(act, n, out.dtype, caps));
    Ok(l)
}

pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    if let Op::QLinearAdd { act } = *op {
        return lower_add(act, ins, out, caps);
    }
    if let Op::QGlu { act, quant } = *op {
        return lower_glu(act, quant, ins, out, caps);
    }
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
