//! The Rust side of each WGSL kernel family: the shader source, entry points, the `Params` words, overrides
//! and grid of every dispatch. `lower` turns one graph op (with its input shapes) into the dispatches that
//! compute it; the executor (`exec`) runs them without knowing any kernel.
//!
//! Binding convention, for every shader: `@group(0) @binding(0) var<uniform> p: Params;` then bindings
//! 1, 2, … in the order of `Dispatch::bindings` (inputs `var<storage, read>`, outputs and in-place buffers
//! `var<storage, read_write>`). `Params` holds only 4-byte scalars (u32 or f32), named as in
//! `Dispatch::params`; a test checks the two agree. Float buffers are `array<T>` with `T` set by the prelude
//! (`alias T = f32;` or `enable f16; alias T = f16;`); accumulation is always in f32.

use crate::error::{Error, Result};
use crate::graph::{Op, Scalar};
use crate::tensor::DType;

/// One 4-byte word of a dispatch's Params, by name.
#[derive(Clone, Debug, PartialEq)]
pub enum Word {
    U32(u32),
    F32(f32),
    /// A runtime scalar (`Scalar`), resolved at each run, plus a constant.
    Var(Scalar, i64),
}

/// What a binding refers to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// Input `i` of the op (its only shard).
    Input(usize),
    /// Shard `s` of input `i` (a tensor stored in several buffers, split by rows of its first dim).
    InputShard(usize, usize),
    /// The op's output.
    Output,
    /// Scratch buffer `i` of `Lowered::scratch`.
    Scratch(usize),
}

/// How a binding is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>` (outputs, scratch written here, in-place inputs).
    Write,
    /// `var<uniform>` of a buffer written by an earlier dispatch (at most `Caps::max_uniform` bytes bound).
    Uniform,
    /// A leaf's texture twin (`exec::twins`): `texture_2d<u32>` of rgba32uint texels (16 bytes each).
    TextureU32x4,
    /// A leaf's texture twin: `texture_2d<f32>` of r32float texels (one f32 each).
    TextureF32,
    /// A leaf's texture twin: `texture_2d<f32>` of rgba32float texels (four f32 each).
    TextureF32x4,
    /// A leaf's texture twin: `texture_2d<f32>` of rgba16float texels (four f16 each, read as `vec4<f32>`).
    TextureF16x4,
    /// Any value, copied before the dispatch on every run into a plan texture laid out like a twin:
    /// `texture_2d<f32>` of rgba32float texels (four f32 each).
    StagedF32x4,
    /// The same for an f16 value: rgba16float texels (four f16 each, read as `vec4<f32>`).
    StagedF16x4,
    /// The same for a u32 value: `texture_2d<u32>` of rgba32uint texels (four words each).
    StagedU32x4,
    /// The same for an f32 value read one element a texel: `texture_2d<f32>` of r32float texels.
    StagedF32,
}

impl BindKind {
    pub fn is_texture(self) -> bool {
        matches!(self, BindKind::TextureU32x4 | BindKind::TextureF32 | BindKind::TextureF32x4 | BindKind::TextureF16x4)
            || self.is_staged()
    }

    /// A texture the executor refills from the value's buffer before every use (not a leaf's twin).
    pub fn is_staged(self) -> bool {
        matches!(self, BindKind::StagedF32x4 | BindKind::StagedF16x4 | BindKind::StagedU32x4 | BindKind::StagedF32)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub arg: Arg,
    pub kind: BindKind,
}

/// One compute dispatch.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// The family: the shader file's stem (`norm` for shaders/norm.wgsl).
    pub family: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    /// The float type `T` of the prelude.
    pub dtype: DType,
    /// Pipeline-overridable constants (`override NAME: u32 = …;`), part of the pipeline key.
    pub overrides: Vec<(&'static str, f64)>,
    /// Params words in struct order, with their WGSL member names.
    pub params: Vec<(&'static str, Word)>,
    pub bindings: Vec<Binding>,
    /// Workgroups in x, y, z (each ≤ 65,535; `grid_1d` folds large counts into y).
    pub grid: [u32; 3],
}

/// The dispatches of one op, in order, with any scratch buffers they share (sizes in bytes).
#[derive(Clone, Debug, Default)]
pub struct Lowered {
    pub scratch: Vec<u64>,
    pub dispatches: Vec<Dispatch>,
}

impl Lowered {
    /// Every binding's argument through `f`: an op lowered as another (a product into scratch, the residual
    /// as the output) rebinds its arguments this way.
    pub(crate) fn remap(&mut self, f: impl Fn(Arg) -> Arg) {
        for b in self.dispatches.iter_mut().flat_map(|d| d.bindings.iter_mut()) {
            b.arg = f(b.arg);
        }
    }
}

/// What lowering knows about an input: shape, dtype, and the row ranges of its shards (one range when the
/// tensor fits one binding).
#[derive(Clone, Debug)]
pub struct ArgInfo {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub shards: Vec<(usize, usize)>,
}

/// Fold a 1-D workgroup count into an x·y grid (x ≤ 65,535). Shaders recover the flat index as
/// `wid.x + wid.y * num_workgroups.x` and guard it.
pub fn grid_1d(n: u32) -> [u32; 3] {
    const MAX: u32 = 65_535;
    if n <= MAX {
        [n.max(1), 1, 1]
    } else {
        let y = n.div_ceil(MAX);
        [n.div_ceil(y), y, 1]
    }
}

pub fn ceil_div(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

/// Error for an op whose kernels cannot address a sharded input.
pub fn no_shards(op: &Op, ins: &[ArgInfo]) -> Result<()> {
    if let Some(i) = ins.iter().position(|a| a.shards.len() > 1) {
        return Err(Error::Unsupported {
            op: op.name().into(),
            detail: format!(
                "input {i} {:?} is stored in {} shards (larger than one storage binding) and this op's kernel \
                 cannot address shards",
                ins[i].shape,
                ins[i].shards.len()
            ),
        });
    }
    Ok(())
}

pub(crate) fn bind(arg: Arg, write: bool) -> Binding {
    Binding { arg, kind: if write { BindKind::Write } else { BindKind::Read } }
}

pub(crate) fn bind_as(arg: Arg, kind: BindKind) -> Binding {
    Binding { arg, kind }
}

/// The staged-texture kind of a float dtype.
pub(crate) fn staged_kind(dtype: DType) -> Option<BindKind> {
    match dtype {
        DType::F32 => Some(BindKind::StagedF32x4),
        DType::F16 => Some(BindKind::StagedF16x4),
        _ => None,
    }
}

/// Rows of the texture GEMMs' register tiles (override ROWS) for m rows: 8 up to 64 rows (a workgroup
/// then covers 64), else 16 (128).
pub(crate) fn tex_gemm_rows(m: usize) -> usize {
    if m <= 64 {
        8
    } else {
        16
    }
}

/// The twin kind of a float dtype (four elements a texel).
pub(crate) fn twin_kind(dtype: DType) -> Option<BindKind> {
    match dtype {
        DType::F32 => Some(BindKind::TextureF32x4),
        DType::F16 => Some(BindKind::TextureF16x4),
        _ => None,
    }
}

/// Whether `bytes` laid out as texture `kind` fit the adapter's texture height (`exec::twins`).
pub(crate) fn texture_fits(caps: &Caps, kind: BindKind, bytes: u64) -> bool {
    crate::exec::twins::rows_for(kind, bytes).is_some_and(|r| r <= caps.max_texture_rows as u64)
}

/// Every WGSL text a dispatch can name, by family (composed: `wgsl`), for validation without a device.
pub fn all_sources() -> Vec<(&'static str, &'static str)> {
    vec![
        ("attention", attention::source()),
        ("attention_tex", attention::tex_source()),
        ("elementwise", elementwise::SOURCE),
        ("embedding", embedding::SOURCE),
        ("loss", loss::SOURCE),
        ("matmul", matmul::source()),
        ("matmul_tex", matmul::tex_source()),
        ("matmul_tex_ux", matmul::uniform_row_source()),
        ("norm", norm::SOURCE),
        ("optim", optim::source(1)),
        ("optim_16", optim::source(optim::MAX_GROUP)),
        ("position", position::SOURCE),
        ("qdot", qmatmul::DOT_SOURCE),
        ("qmatmul", qmatmul::source()),
        ("qmatmul_tex", qmatmul::tex_source()),
        ("qmatmul_fqd", qmatmul::fq_dynamic_source()),
        ("qmatmul_fqd_tex", qmatmul::fq_dynamic_tex_source()),
        ("softmax", softmax::SOURCE),
    ]
}

/// Texels per row of a twin or staged texture (`exec::twins`): every shader reads it from the prelude
/// (`TEX_W`, `tex_at`), so the layout is written in one place.
pub const TEXTURE_WIDTH: u32 = 4096;

/// The WGSL prelude for a float dtype: `T`, and the texture layout of `exec::twins` (texel t of a texture
/// at `tex_at(t)`; `texel4` reads one from an f32 texture).
pub fn prelude(dtype: DType) -> &'static str {
    static TEXT: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
        let layout = format!(
            "const TEX_W: u32 = {TEXTURE_WIDTH}u;\n\
             fn tex_at(t: u32) -> vec2<u32> {{\n    return vec2<u32>(t % TEX_W, t / TEX_W);\n}}\n\
             fn texel4(tex: texture_2d<f32>, t: u32) -> vec4<f32> {{\n    return textureLoad(tex, tex_at(t), 0);\n}}\n"
        );
        [format!("enable f16;\nalias T = f16;\n{layout}"), format!("alias T = f32;\n{layout}")]
    });
    match dtype {
        DType::F16 => &TEXT[0],
        _ => &TEXT[1],
    }
}

/// What the adapter can do, as far as kernel choice is concerned (no wgpu types here).
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    pub f16: bool,
    /// The `subgroups` tier: detected and reported (`devices`), used by no kernel yet (README, "Picking a GPU").
    pub subgroups: bool,
    pub subgroup_min: u32,
    pub subgroup_max: u32,
    /// WGSL's packed int8 dot product (`dot4I8Packed`): the W8A8 kernels.
    pub int8dot: bool,
    /// Read operands through textures and uniforms instead of storage buffers — the CPU-adapter strategy,
    /// chosen here once: weights through texture twins (`exec::twins`), activations, norms' rows and prefill
    /// attention's K/V through staged textures, decode rows through 64 KiB uniforms (so every plan buffer is
    /// at least that large). The kernel tables (`select`) read it; on by default on CPU adapters, where texel
    /// fetches and uniform loads are much cheaper than storage loads.
    pub texture_reads: bool,
    /// Rows a texture twin may have (`max_texture_dimension_2d`).
    pub max_texture_rows: u32,
    /// The most bytes a uniform binding may hold.
    pub max_uniform: u64,
    /// Storage buffers one dispatch may bind (`max_storage_buffers_per_shader_stage`; 0: WebGPU's
    /// guaranteed 8, see `storage_bindings`).
    pub max_storage_buffers: u32,
    /// A matmul kernel forced for every product (`Kernel::Auto`: the table's choice; `GpuOptions::matmul`).
    pub matmul: matmul::Kernel,
    /// Storage GEMVs keep gemv_vec4 where gemv_rows4 would serve (`GpuOptions::gemv_vec4`; a benchmark
    /// comparison).
    pub gemv_vec4: bool,
}

impl Caps {
    /// Storage buffers one dispatch may bind: the adapter's limit, or WebGPU's guaranteed 8 when unknown.
    pub fn storage_bindings(&self) -> u32 {
        if self.max_storage_buffers == 0 {
            8
        } else {
            self.max_storage_buffers
        }
    }
}

pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod position;
pub mod qmatmul;
pub mod softmax;
pub mod wgsl;

/// Lower one op to its dispatches. `ins` describe the op's inputs, `out` its output (one shard).
pub fn lower(op: &Op, ins: &[ArgInfo], out: &ArgInfo, caps: &Caps) -> Result<Lowered> {
    match op {
        Op::Input { .. } | Op::Param { .. } | Op::State { .. } | Op::Fill { .. } | Op::Reshape { .. } => {
            Ok(Lowered::default())
        }
        Op::Add
        | Op::Mul
        | Op::Scale { .. }
        | Op::Unary { .. }
        | Op::Dropout { .. }
        | Op::UnaryBackward { .. }
        | Op::SumRows
        | Op::Cast { .. }
        | Op::Dequantize { .. }
        | Op::Permute0213
        | Op::CacheWrite { .. }
        | Op::CacheWriteAt => elementwise::lower(op, ins, out, caps),
        Op::MatMul { .. } | Op::Glu { .. } | Op::LinearAdd | Op::LinearF32 => matmul::lower(op, ins, out, caps),
        Op::QMatMul { .. } | Op::QLinearAdd { .. } | Op::QGlu { .. } => qmatmul::lower(op, ins, out, caps),
        Op::LayerNorm { .. }
        | Op::LayerNormGradX { .. }
        | Op::RmsNorm { .. }
        | Op::RmsNormGradX { .. }
        | Op::NormGradGamma { .. } => norm::lower(op, ins, out, caps),
        Op::Softmax { .. } | Op::SoftmaxBackward => softmax::lower(op, ins, out, caps),
        Op::Attention(_)
        | Op::AttentionWeights(_)
        | Op::AttentionGradQ(_)
        | Op::AttentionGradK(_)
        | Op::AttentionGradV(_) => attention::lower(op, ins, out, caps),
        Op::Rope { .. } | Op::RopeAt { .. } | Op::RopeQkvCache { .. } | Op::AddSinusoidal { .. } => {
            position::lower(op, ins, out, caps)
        }
        Op::Embedding | Op::EmbeddingBackward { .. } => embedding::lower(op, ins, out, caps),
        Op::CrossEntropy { .. } | Op::CrossEntropyBackward { .. } => loss::lower(op, ins, out, caps),
        Op::AdamW(_) | Op::SumSquares => optim::lower(op, ins, out, caps),
    }
}
