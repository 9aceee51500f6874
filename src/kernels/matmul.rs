//! Lowering of MatMul (shaders/matmul.wgsl): the tiled GEMM, the decode GEMV (m = 1) and the plain 4×4
//! baseline the benchmark compares against; batching, transposes and row-sharded weights. On CPU adapters
//! (`Caps::texture_reads`) x·Wᵀ with more than 2 rows runs shaders/matmul_tex.wgsl's `gemm_tex` on staged
//! textures instead, a weight's gradient aᵀ·b its `gemm_tex_tn` and x·W (GPT-2's Conv1D) its `gemm_tex_nn`.
//!
//! A weight b (2-D) stored in several shards (split by rows of its first dim) runs as one dispatch per shard:
//! with `tb` (W [N, K]) a shard's rows are output columns, so each dispatch writes its own column range of c;
//! without `tb` (W [K, N]) a shard's rows are a slice of the reduction, so every dispatch reads the matching
//! columns of a and the first writes c, the later ones add to it (no scratch, ordered by the command stream).

use super::wgsl::composed;
use super::{
    bind, bind_as, ceil_div, grid_1d, no_shards, staged_kind, tex_gemm_rows, twin_kind, Arg, ArgInfo, BindKind, Caps,
    Dispatch, Lowered, Word,
};

/// Up to this many rows (of a's rows, batch folded) an int8 product (`qmatmul`) runs as GEMVs, one row per z.
pub const GEMV_MAX_ROWS: usize = 8;

/// A plain float x·Wᵀ on the texture path (and Glu's fused pair) runs as GEMVs up to this many rows, and as
/// the tiled texture GEMM beyond: each GEMV row reads the whole weight again, while the GEMM's tiles share it
/// (the measurement that sets 2: README, "Measurements behind the design").
pub const TEX_GEMV_MAX_ROWS: usize = 2;

/// Up to this many rows the texture GEMM reads x·Wᵀ's weight through its twin (as the GEMVs do) rather than
/// a staged copy made every run: the decode steps of continuous batching and short prefills, in sessions
/// whose decode GEMVs have made the twins anyway. Larger products (long prefills, training batches) stage,
/// so they never double a weight's memory (measured: README, "Measurements behind the design").
pub const TEX_TWIN_GEMM_MAX_ROWS: usize = 32;
use crate::error::{Error, Result};
use crate::graph::{Act, Op};
use crate::tensor::{numel, DType};

const FILE: &str = include_str!("../../shaders/matmul.wgsl");
const TEX_FILE: &str = include_str!("../../shaders/matmul_tex.wgsl");

/// shaders/matmul.wgsl, its register tiles generated (`wgsl::matmul_tiles`).
pub fn source() -> &'static str {
    composed!("matmul", FILE, [])
}

/// shaders/matmul_tex.wgsl with the GEMVs reading the row as a staged texture.
pub fn tex_source() -> &'static str {
    composed!("matmul_tex", TEX_FILE, ["staged_row"])
}

/// Bytes of the uniform array a GEMV reads its row from (`uniform_row_source`); on CPU adapters every plan
/// buffer is at least this large (`Gpu::buffer`), so any value can be bound that way.
pub const UNIFORM_ROW_BYTES: u64 = 65_536;

/// Whether a GEMV's input `row` (all its rows: `bytes`) can be bound as that uniform array: one buffer,
/// small enough, and an adapter that binds 64 KiB uniforms.
pub(crate) fn uniform_row_fits(caps: &Caps, row: &ArgInfo, bytes: usize) -> bool {
    row.shards.len() <= 1 && caps.max_uniform >= UNIFORM_ROW_BYTES && bytes as u64 <= UNIFORM_ROW_BYTES
}

/// shaders/matmul_tex.wgsl with the GEMVs reading the row from a 64 KiB uniform array (binding 1): f32 rows
/// as vec4<f32>, f16 rows eight values to a vec4<u32>.
pub fn uniform_row_source() -> &'static str {
    composed!("matmul_tex_ux", TEX_FILE, ["uniform_row"])
}

/// Which matmul kernel to use; `Auto` is what `select` picks. `Caps::matmul` forces one (the GPU option
/// `GpuOptions::matmul`, env `WGPU_LLM_MATMUL`; a debug and benchmarking aid: a forced kernel falls back to
/// tiled where it does not apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel {
    #[default]
    Auto,
    Tiled,
    Gemv,
    Baseline,
    /// The texture kernels (matmul_tex: x·Wᵀ, aᵀ·b, x·W, batched or not; see `select_kernel`).
    Texture,
}

impl Kernel {
    pub fn parse(s: &str) -> Result<Kernel> {
        Ok(match s {
            "auto" => Kernel::Auto,
            "tiled" => Kernel::Tiled,
            "gemv" => Kernel::Gemv,
            "baseline" => Kernel::Baseline,
            "texture" => Kernel::Texture,
            _ => {
                return Err(Error::Other(format!(
                    "matmul kernel {s:?}: expected auto, tiled, gemv, baseline or texture"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Auto => "auto",
            Kernel::Tiled => "tiled",
            Kernel::Gemv => "gemv",
            Kernel::Baseline => "baseline",
            Kernel::Texture => "texture",
        }
    }
}

/// What serves one product: the kernel, the shader family and entry of its (first) dispatch, and how its
/// operands a and b are bound. `select` (MatMul) and `select_glu` are the one place this is decided;
/// lowering only builds the dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub kernel: Kernel,
    pub family: &'static str,
    pub entry: &'static str,
    pub a: BindKind,
    pub b: BindKind,
}

/// One dispatch's sub-problem (see the Params comment in the shader).
#[derive(Clone, Copy, Debug, Default)]
struct Geom {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    ldc: usize,
    stride_a: usize,
    stride_b: usize,
    stride_c: usize,
    k_off: usize,
    n_off: usize,
    accumulate: bool,
}

impl Geom {
    fn params(&self) -> Vec<(&'static str, Word)> {
        let u = |x: usize| Word::U32(x as u32);
        vec![
            ("batch", u(self.batch)),
            ("m", u(self.m)),
            ("n", u(self.n)),
            ("k", u(self.k)),
            ("lda", u(self.lda)),
            ("ldb", u(self.ldb)),
            ("ldc", u(self.ldc)),
            ("stride_a", u(self.stride_a)),
            ("stride_b", u(self.stride_b)),
            ("stride_c", u(self.stride_c)),
            ("k_off", u(self.k_off)),
            ("n_off", u(self.n_off)),
            ("accumulate", u(self.accumulate as usize)),
        ]
    }
}

/// The storage-buffer entry and grid for one dispatch's geometry. `gemv_vec4` keeps gemv_vec4 for TB too
/// (`Caps::gemv_vec4`, a benchmark comparison).
fn storage_entry(g: &Geom, kernel: Kernel, ta: bool, tb: bool, gemv_vec4: bool) -> (&'static str, [u32; 3]) {
    match kernel {
        Kernel::Gemv => {
            let vec4 = g.stride_a.is_multiple_of(4)
                && g.k_off.is_multiple_of(4)
                && g.stride_b.is_multiple_of(4)
                && g.ldb.is_multiple_of(4)
                && if tb { g.k.is_multiple_of(4) } else { g.n.is_multiple_of(4) };
            // gemv: 4 columns (TB) or 64 per workgroup; gemv_vec4 (!TB): 64; gemv_rows4 (TB): 256.
            // Below ~4096 columns gemv_rows4 has too few workgroups to keep every CPU thread of a software
            // adapter busy (and decode's q/k/v/o matrices are that small); gemv_vec4 splits k instead.
            let rows4 = vec4 && tb && g.n >= 4096 && !gemv_vec4;
            let groups = match (tb, vec4) {
                (true, true) if rows4 => ceil_div(g.n, 256),
                (true, true) => ceil_div(g.n, 8),
                (true, false) => ceil_div(g.n, 4),
                _ => ceil_div(g.n, 64),
            };
            let mut grid = grid_1d(groups);
            grid[2] = g.batch as u32;
            (
                if rows4 {
                    "gemv_rows4"
                } else if vec4 {
                    "gemv_vec4"
                } else {
                    "gemv"
                },
                grid,
            )
        }
        Kernel::Baseline => ("matmul_baseline", [ceil_div(g.n, 64).max(1), ceil_div(g.m, 64).max(1), g.batch as u32]),
        _ => {
            // vec4 loads where the operand's layout keeps every 4-group aligned (see the shader).
            let a_vec = g.lda.is_multiple_of(4)
                && g.stride_a.is_multiple_of(4)
                && if ta { g.m.is_multiple_of(4) } else { g.k_off.is_multiple_of(4) };
            let b_vec = g.ldb.is_multiple_of(4) && g.stride_b.is_multiple_of(4) && (tb || g.n.is_multiple_of(4));
            let entry = if a_vec && b_vec { "matmul_tiled" } else { "matmul_tiled_scalar" };
            (entry, [ceil_div(g.n, 64).max(1), ceil_div(g.m, 64).max(1), g.batch as u32])
        }
    }
}

fn dispatch(g: &Geom, kernel: Kernel, ta: bool, tb: bool, caps: &Caps, dtype: DType, b_arg: Arg) -> Dispatch {
    let (entry, grid) = storage_entry(g, kernel, ta, tb, caps.gemv_vec4);
    Dispatch {
        family: "matmul",
        source: source(),
        entry,
        dtype,
        overrides: vec![("TA", ta as u32 as f64), ("TB", tb as u32 as f64)],
        params: g.params(),
        bindings: vec![bind(Arg::Input(0), false), bind(b_arg, false), bind(Arg::Output, true)],
        grid,
    }
}

/// The plain 4×4 register-blocked kernel for c [m, n] = op(a)·op(b), unbatched (a binding 1, b binding 2,
/// c binding 3): the benchmark's point of comparison.
pub fn baseline_dispatch(m: usize, k: usize, n: usize, ta: bool, tb: bool, dtype: DType) -> Dispatch {
    let g =
        Geom { batch: 1, m, n, k, lda: if ta { m } else { k }, ldb: if tb { k } else { n }, ldc: n, ..Geom::default() };
    dispatch(&g, Kernel::Baseline, ta, tb, &Caps::default(), dtype, Arg::Input(1))
}

/// Lower MatMul or Glu with the kernel `select` / `select_glu` choose (`Caps::matmul` may force one).
pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    match *op {
        Op::Glu { act } => lower_glu(act, ins, out, caps),
        Op::LinearAdd => lower_add(ins, out, caps),
        Op::LinearF32 => lower_f32(ins, out, caps),
        _ => lower_kernel(op, ins, out, caps.matmul, caps),
    }
}

/// LinearF32: the x·Wᵀ product's kernel in the inputs' dtype. The texture kernels read their operands
/// typed by their bindings (textures, a uniform row), not by `T`, so they run as they are and store f32 (the
/// f32 variant); the storage kernels read and write `T`, so the product goes to a scratch buffer in the
/// inputs' dtype and is widened (as `MatMul` then `Cast` would).
fn lower_f32(ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    let dt = ins[0].dtype;
    let narrow = ArgInfo { dtype: dt, ..out.clone() };
    let mut l = lower_kernel(&Op::MatMul { ta: false, tb: true }, ins, &narrow, caps.matmul, caps)?;
    if dt == DType::F32 {
        return Ok(l);
    }
    if l.dispatches.iter().all(|d| d.family.starts_with("matmul_tex")) {
        l.dispatches.iter_mut().for_each(|d| d.dtype = DType::F32);
        return Ok(l);
    }
    debug_assert!(l.scratch.is_empty(), "a matmul lowering with scratch");
    l.remap(|a| if a == Arg::Output { Arg::Scratch(0) } else { a });
    let mut cast = super::elementwise::lower(&Op::Cast { to: DType::F32 }, &[narrow], out, caps)?;
    cast.remap(|a| if a == Arg::Input(0) { Arg::Scratch(0) } else { a });
    l.dispatches.extend(cast.dispatches);
    l.scratch.push((numel(&out.shape) * dt.size()) as u64);
    Ok(l)
}

/// LinearAdd: the x·Wᵀ product's dispatches, each adding its result to what the output holds (storage
/// kernels: `accumulate`; texture kernels: the override `ACC`), with r (input 2, which the output aliases)
/// bound as the output.
fn lower_add(ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    let mut l = lower_kernel(&Op::MatMul { ta: false, tb: true }, &ins[..2], out, caps.matmul, caps)?;
    for d in &mut l.dispatches {
        for b in d.bindings.iter_mut().filter(|b| b.arg == Arg::Output) {
            b.arg = Arg::Input(2);
        }
        match d.params.iter_mut().find(|(name, _)| *name == "accumulate") {
            Some(w) => w.1 = Word::U32(1),
            None => d.overrides.push(("ACC", 1.0)),
        }
    }
    Ok(l)
}

/// Glu: on CPU adapters up to `TEX_GEMV_MAX_ROWS` rows (where its two products would be GEMVs) run one GEMV
/// over both weights' twins with act(g)·u in registers
/// (Silu, f32 or f16 with k % 8 == 0); otherwise the two products go to scratch buffers (each lowered as
/// MatMul) and elementwise `glu` combines them.
/// The fused Glu GEMV where it applies (None: Glu runs as two products and elementwise `glu`, each product
/// chosen by `select`).
pub fn select_glu(act: Act, ins: &[ArgInfo], dtype: DType, caps: &Caps) -> Option<Choice> {
    let k = *ins[0].shape.last()?;
    let rows = ins[0].shape.iter().product::<usize>() / k.max(1);
    let n = ins.get(1)?.shape[0];
    let h8 = dtype == DType::F16 && k.is_multiple_of(8);
    let twin = match dtype {
        DType::F16 if h8 => Some(BindKind::TextureU32x4),
        DType::F32 => twin_kind(dtype),
        _ => None,
    };
    let fits = |t: BindKind| {
        caps.texture_reads
            && caps.matmul == Kernel::Auto
            && act == Act::Silu
            && rows <= TEX_GEMV_MAX_ROWS
            && ins[1..].iter().all(|w| w.shards.len() <= 1)
            && k.is_multiple_of(4)
            && ins.iter().all(|i| i.dtype == dtype)
            && uniform_row_fits(caps, &ins[0], rows * k * dtype.size())
            && super::texture_fits(caps, t, (n * k * dtype.size()) as u64)
    };
    twin.filter(|&t| fits(t)).map(|b| Choice {
        kernel: Kernel::Gemv,
        family: "matmul_tex_ux",
        entry: if h8 { "gemv_glu_tex_h8" } else { "gemv_glu_tex" },
        a: BindKind::Uniform,
        b,
    })
}

fn lower_glu(act: Act, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    let dtype = out.dtype;
    let k = *ins[0].shape.last().expect("shape inference checked the rank");
    let rows = ins[0].shape.iter().product::<usize>() / k.max(1);
    let n = ins[1].shape[0];
    if let Some(c) = select_glu(act, ins, dtype, caps) {
        let mut grid = grid_1d(ceil_div(n, 64));
        grid[2] = rows as u32;
        let u = |x: usize| Word::U32(x as u32);
        let d = Dispatch {
            family: c.family,
            source: uniform_row_source(),
            entry: c.entry,
            dtype,
            overrides: vec![],
            params: vec![("m", u(rows)), ("n", u(n)), ("k", u(k))],
            bindings: vec![
                bind_as(Arg::Input(0), c.a),
                bind_as(Arg::Input(1), c.b),
                bind(Arg::Output, true),
                bind_as(Arg::Input(2), c.b),
            ],
            grid,
        };
        return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
    }
    let product = |w: usize, scratch: usize| -> Result<Vec<Dispatch>> {
        let mut l = lower(&Op::MatMul { ta: false, tb: true }, &[ins[0].clone(), ins[w].clone()], out, caps)?;
        debug_assert!(l.scratch.is_empty(), "a matmul lowering with scratch");
        l.remap(|a| match a {
            Arg::Output => Arg::Scratch(scratch),
            Arg::Input(1) => Arg::Input(w),
            Arg::InputShard(1, s) => Arg::InputShard(w, s),
            other => other,
        });
        Ok(l.dispatches)
    };
    let mut dispatches = product(1, 0)?;
    dispatches.extend(product(2, 1)?);
    dispatches.push(super::elementwise::glu_dispatch(act, rows * n, dtype, caps));
    let bytes = (rows * n * dtype.size()) as u64;
    Ok(Lowered { scratch: vec![bytes, bytes], dispatches })
}

/// A MatMul's geometry for a whole (unsharded) weight: the batch folded into the rows where one 2-D weight
/// serves every batch. Returns (geometry, ta, tb, rank of b).
fn geometry(op: &Op, ins: &[ArgInfo]) -> Result<(Geom, bool, bool, usize)> {
    let Op::MatMul { ta, tb } = *op else {
        return Err(Error::Unsupported { op: op.name().into(), detail: "not a matmul".into() });
    };
    let (a, b) = (&ins[0].shape, &ins[1].shape);
    let (ra, rb) = (a.len(), b.len());
    let (m, k) = if ta { (a[ra - 1], a[ra - 2]) } else { (a[ra - 2], a[ra - 1]) };
    let n = if tb { b[rb - 2] } else { b[rb - 1] };
    let a_batch: usize = a[..ra - 2].iter().product();
    let mut g = Geom {
        batch: a_batch,
        m,
        n,
        k,
        lda: if ta { m } else { k },
        ldb: if tb { k } else { n },
        ldc: n,
        ..Geom::default()
    };
    if rb == 2 && !ta {
        // One weight for every batch: fold the batch into the rows.
        g.batch = 1;
        g.m = a_batch * m;
    } else {
        g.stride_a = m * k;
        g.stride_b = if rb == 2 { 0 } else { k * n };
        g.stride_c = m * n;
    }
    Ok((g, ta, tb, rb))
}

/// The kernel table of MatMul: which kernel, entry and operand bindings serve `op` on `ins` with output
/// dtype `dtype`, `kernel` forcing one (`Kernel::Auto`: the adapter's best).
/// - x·Wᵀ (one 2-D weight in one buffer, whole texels a row, within the texture height) on a
///   texture-weights adapter: `gemv_tex`/`gemv_tex_h8` up to `TEX_GEMV_MAX_ROWS` rows (the weight's twin, the
///   row as a uniform array where it fits, else staged), else `gemm_tex`/`gemm_tex_h8` (both staged);
/// - aᵀ·b with m and n multiples of 4 (a weight's gradient) there: `gemm_tex_tn` (both staged);
/// - batched products (b with a's batch, f32, more than `TEX_GEMV_MAX_ROWS` rows) there: the same texture
///   GEMMs with the batch as grid z; x·W (one 2-D W [k, n], k and n multiples of 4, more than `TEX_GEMV_MAX_ROWS` rows):
///   `gemm_tex_nn` (x staged, W staged or, up to `TEX_TWIN_GEMM_MAX_ROWS` rows, its twin);
/// - otherwise storage buffers: one row (not transposed) `gemv`, `gemv_vec4` or `gemv_rows4`; else
///   `matmul_tiled` (vec4 loads where aligned) or `matmul_tiled_scalar`.
pub fn select_kernel(op: &Op, ins: &[ArgInfo], dtype: DType, kernel: Kernel, caps: &Caps) -> Result<Choice> {
    let (g, ta, tb, rb) = geometry(op, ins)?;
    let k = g.k;
    let n = g.n;
    // gemm_tex: x·Wᵀ with one 2-D weight in one buffer, whole texels per row, both operands within the
    // texture height limit.
    let texture_fits =
        |bytes: usize| staged_kind(dtype).is_some_and(|kind| super::texture_fits(caps, kind, bytes as u64));
    // A batched product (b with a's batch; attention's products in training) runs the texture GEMMs with
    // its batch as grid z: f32, more rows than the GEMVs take (they use z for rows).
    let batched = g.batch > 1;
    let b_copies = if rb == 2 { 1 } else { g.batch };
    let operands_fit = (rb == 2 && !batched || rb > 2 && dtype == DType::F32 && g.m > TEX_GEMV_MAX_ROWS)
        && ins[1].shards.len() <= 1
        && ins[0].dtype == dtype
        && ins[1].dtype == dtype
        && texture_fits(g.batch * g.m * k * dtype.size())
        && texture_fits(b_copies * n * k * dtype.size());
    // gemm_tex_tn: aᵀ·b (a weight's gradient), whole texels per row of both.
    let tn = ta && !tb && g.m.is_multiple_of(4) && n.is_multiple_of(4) && operands_fit;
    // gemm_tex_nn: x·W with W [k, n] (GPT-2's Conv1D), beyond the GEMV's rows.
    let nn = !ta && !tb && g.m > TEX_GEMV_MAX_ROWS && k.is_multiple_of(4) && n.is_multiple_of(4) && operands_fit;
    let texture = tn || nn || (!ta && tb && k.is_multiple_of(4) && operands_fit);
    let kernel = match kernel {
        Kernel::Auto if texture && caps.texture_reads => Kernel::Texture,
        Kernel::Auto if g.m == 1 && !ta => Kernel::Gemv,
        Kernel::Texture if !texture => Kernel::Tiled,
        Kernel::Gemv if ta || g.m != 1 => Kernel::Tiled,
        Kernel::Auto => Kernel::Tiled,
        other => other,
    };
    if kernel != Kernel::Texture {
        let (entry, _) = storage_entry(&g, kernel, ta, tb, caps.gemv_vec4);
        return Ok(Choice { kernel, family: "matmul", entry, a: BindKind::Read, b: BindKind::Read });
    }
    // GEMM: both operands staged (a weight's twin would double its memory; the copy costs ~1% of a
    // prefill), but the weight through its twin up to TEX_TWIN_GEMM_MAX_ROWS rows. GEMV: the weight through its twin (copying every weight every token would cost about as
    // much as reading it), the row staged, or through the uniform path where it fits (every plan buffer on a
    // texture-weights adapter is at least UNIFORM_ROW_BYTES).
    // f16 with k % 8 == 0: eight values a texel (the f16 bytes as rgba32uint), twice rgba16float's.
    if tn || nn {
        let staged = staged_kind(dtype).expect("checked by `texture`");
        // x·W's weight through its twin up to TEX_TWIN_GEMM_MAX_ROWS rows, as x·Wᵀ's (below).
        let b = if nn && !batched && g.m <= TEX_TWIN_GEMM_MAX_ROWS { twin_kind(dtype).expect("float") } else { staged };
        let entry = if tn { "gemm_tex_tn" } else { "gemm_tex_nn" };
        return Ok(Choice { kernel, family: "matmul_tex", entry, a: staged, b });
    }
    let h8 = dtype == DType::F16 && k.is_multiple_of(8);
    let staged = if h8 { BindKind::StagedU32x4 } else { staged_kind(dtype).expect("checked by `texture`") };
    let gemv = g.m <= TEX_GEMV_MAX_ROWS;
    let (entry, b) = match (gemv, h8) {
        (true, true) => ("gemv_tex_h8", BindKind::TextureU32x4),
        (true, false) => ("gemv_tex", twin_kind(dtype).expect("float")),
        // A decode-sized GEMM (continuous batching, short prefills) reads the weight's twin, which the
        // session's decode GEMVs made already, instead of copying the weight into a staged texture every run.
        (false, true) if g.m <= TEX_TWIN_GEMM_MAX_ROWS => ("gemm_tex_h8", BindKind::TextureU32x4),
        (false, false) if g.m <= TEX_TWIN_GEMM_MAX_ROWS && !batched => ("gemm_tex", twin_kind(dtype).expect("float")),
        (false, true) => ("gemm_tex_h8", staged),
        (false, false) => ("gemm_tex", staged),
    };
    let uniform_row = gemv && (dtype == DType::F32 || h8) && uniform_row_fits(caps, &ins[0], g.m * k * dtype.size());
    let (family, a) = if uniform_row { ("matmul_tex_ux", BindKind::Uniform) } else { ("matmul_tex", staged) };
    Ok(Choice { kernel, family, entry, a, b })
}

/// `select_kernel` with the adapter's choice (`Caps::matmul`).
pub fn select(op: &Op, ins: &[ArgInfo], dtype: DType, caps: &Caps) -> Result<Choice> {
    select_kernel(op, ins, dtype, caps.matmul, caps)
}

/// `lower` with the kernel chosen by the caller (the benchmark compares them on one shape).
pub fn lower_kernel(op: &Op, ins: &[ArgInfo], out: &ArgInfo, kernel: Kernel, caps: &Caps) -> Result<Lowered> {
    no_shards(op, &ins[..1])?;
    let (g, ta, tb, rb) = geometry(op, ins)?;
    let (a, b) = (&ins[0].shape, &ins[1].shape);
    let shards = &ins[1].shards;
    if shards.len() > 1 && (ta || rb != 2) {
        no_shards(op, ins)?;
    }
    let n = g.n;
    if g.batch > 65_535 || g.m.div_ceil(64) > 65_535 || n.div_ceil(64) > 65_535 {
        return Err(Error::Unsupported {
            op: op.name().into(),
            detail: format!("shapes {a:?} × {b:?} need more workgroups than one dispatch allows"),
        });
    }
    let dtype = out.dtype;
    let c = select_kernel(op, ins, dtype, kernel, caps)?;
    if c.kernel == Kernel::Texture {
        let u = |x: usize| Word::U32(x as u32);
        let (grid, overrides) = if c.entry.starts_with("gemv") {
            let mut grid = grid_1d(ceil_div(n, 64));
            grid[2] = g.m as u32;
            (grid, vec![])
        } else {
            let rows = tex_gemm_rows(g.m);
            ([ceil_div(n, 64).max(1), ceil_div(g.m, 8 * rows).max(1), g.batch as u32], vec![("ROWS", rows as f64)])
        };
        let source = if c.family == "matmul_tex_ux" { uniform_row_source() } else { tex_source() };
        let d = Dispatch {
            family: c.family,
            source,
            entry: c.entry,
            dtype,
            overrides,
            params: vec![("m", u(g.m)), ("n", u(n)), ("k", u(g.k))],
            bindings: vec![bind_as(Arg::Input(0), c.a), bind_as(Arg::Input(1), c.b), bind(Arg::Output, true)],
            grid,
        };
        return Ok(Lowered { scratch: vec![], dispatches: vec![d] });
    }
    let mut dispatches = vec![];
    if shards.len() <= 1 {
        dispatches.push(dispatch(&g, c.kernel, ta, tb, caps, dtype, Arg::Input(1)));
    } else {
        for (s, &(r0, r1)) in shards.iter().enumerate() {
            let mut gs = g;
            if tb {
                gs.n_off = r0;
                gs.n = r1 - r0;
            } else {
                gs.k_off = r0;
                gs.k = r1 - r0;
                gs.accumulate = s > 0;
            }
            dispatches.push(dispatch(&gs, c.kernel, ta, tb, caps, dtype, Arg::InputShard(1, s)));
        }
    }
    Ok(Lowered { scratch: vec![], dispatches })
}
