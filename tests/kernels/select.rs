//! The matmul kernel table (`kernels::matmul::select`, `select_glu`) as a table: for each product shape,
//! dtype and adapter strategy, the entry that serves it and how its operands are bound. No device: the
//! table reads only `Caps`, so a GPU's choices (texture reads off) are checked on any machine.

use wgpu_llm::graph::{Act, Op};
use wgpu_llm::kernels::matmul::{self, Kernel};
use wgpu_llm::kernels::{ArgInfo, BindKind, Caps};
use wgpu_llm::tensor::DType;

use crate::common::info as arg;

/// A discrete GPU's strategy (storage buffers) and a CPU adapter's (textures), with lavapipe's limits.
fn caps(texture_reads: bool) -> Caps {
    Caps { f16: true, int8dot: true, texture_reads, max_texture_rows: 16_384, max_uniform: 65_536, ..Caps::default() }
}

use BindKind::*;

#[test]
fn matmul_table() {
    let (gpu, cpu) = (caps(false), caps(true));
    let small_uniform = Caps { max_uniform: 16_384, ..cpu };
    let forced_tiled = Caps { matmul: Kernel::Tiled, ..cpu };
    let vec4_kept = Caps { gemv_vec4: true, ..gpu };
    let (f32_, f16_) = (DType::F32, DType::F16);
    // (what, caps, tb, a, b, dtype, family, entry, a binding, b binding)
    type Row<'a> = (&'a str, Caps, bool, &'a [usize], &'a [usize], DType, &'a str, &'a str, BindKind, BindKind);
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("GPU decode q_proj",            gpu, true, &[1, 576], &[1536, 576], f32_, "matmul", "gemv_vec4", Read, Read),
        ("GPU decode output head",       gpu, true, &[1, 576], &[49152, 576], f32_, "matmul", "gemv_rows4", Read, Read),
        ("GPU head, gemv_vec4 kept",     vec4_kept, true, &[1, 576], &[49152, 576], f32_, "matmul", "gemv_vec4", Read, Read),
        ("GPU decode, odd k",            gpu, true, &[1, 575], &[36, 575], f32_, "matmul", "gemv", Read, Read),
        ("GPU prefill",                  gpu, true, &[256, 576], &[1536, 576], f16_, "matmul", "matmul_tiled", Read, Read),
        ("GPU prefill, odd k",           gpu, true, &[37, 575], &[36, 575], f32_, "matmul", "matmul_tiled_scalar", Read, Read),
        ("GPU two decode rows",          gpu, true, &[2, 576], &[1536, 576], f32_, "matmul", "matmul_tiled", Read, Read),
        ("CPU decode f32",               cpu, true, &[1, 576], &[1536, 576], f32_, "matmul_tex_ux", "gemv_tex", Uniform, TextureF32x4),
        ("CPU decode f16",               cpu, true, &[1, 576], &[1536, 576], f16_, "matmul_tex_ux", "gemv_tex_h8", Uniform, TextureU32x4),
        ("CPU 2 rows f16",               cpu, true, &[2, 576], &[1536, 576], f16_, "matmul_tex_ux", "gemv_tex_h8", Uniform, TextureU32x4),
        ("CPU 3 rows f16 (GEMM beyond)", cpu, true, &[3, 576], &[1536, 576], f16_, "matmul_tex", "gemm_tex_h8", StagedU32x4, TextureU32x4),
        ("CPU decode f16, k % 8 = 4",    cpu, true, &[1, 572], &[64, 572], f16_, "matmul_tex", "gemv_tex", StagedF16x4, TextureF16x4),
        ("CPU decode, row over uniform", small_uniform, true, &[2, 2304], &[64, 2304], f32_, "matmul_tex", "gemv_tex", StagedF32x4, TextureF32x4),
        ("CPU 9 rows",                   cpu, true, &[9, 576], &[1536, 576], f32_, "matmul_tex", "gemm_tex", StagedF32x4, TextureF32x4),
        ("CPU 33 rows: weight staged",   cpu, true, &[33, 576], &[1536, 576], f32_, "matmul_tex", "gemm_tex", StagedF32x4, StagedF32x4),
        ("CPU prefill f16",              cpu, true, &[256, 576], &[1536, 576], f16_, "matmul_tex", "gemm_tex_h8", StagedU32x4, StagedU32x4),
        ("CPU batch folded into rows",   cpu, true, &[2, 5, 576], &[64, 576], f32_, "matmul_tex", "gemm_tex", StagedF32x4, TextureF32x4),
        ("CPU decode, odd k",            cpu, true, &[1, 575], &[36, 575], f32_, "matmul", "gemv", Read, Read),
        ("CPU x·W (no transpose)",       cpu, false, &[1, 576], &[576, 64], f32_, "matmul", "gemv_vec4", Read, Read),
        ("CPU batched (z)",              cpu, false, &[2, 16, 8], &[2, 8, 16], f32_, "matmul_tex", "gemm_tex_nn", StagedF32x4, StagedF32x4),
        ("CPU batched x·Wᵀ (z)",         cpu, true, &[24, 32, 32], &[24, 32, 32], f32_, "matmul_tex", "gemm_tex", StagedF32x4, StagedF32x4),
        ("CPU batched f16",              cpu, false, &[2, 16, 8], &[2, 8, 16], f16_, "matmul", "matmul_tiled", Read, Read),
        ("CPU x·W, 3 rows: W's twin",     cpu, false, &[3, 576], &[576, 64], f32_, "matmul_tex", "gemm_tex_nn", StagedF32x4, TextureF32x4),
        ("CPU x·W, 768 rows",            cpu, false, &[12, 64, 128], &[128, 384], f32_, "matmul_tex", "gemm_tex_nn", StagedF32x4, StagedF32x4),
        ("CPU x·W, n % 4 != 0",          cpu, false, &[64, 128], &[128, 6], f32_, "matmul", "matmul_tiled_scalar", Read, Read),
        ("GPU x·W",                      gpu, false, &[64, 128], &[128, 384], f32_, "matmul", "matmul_tiled", Read, Read),
        ("CPU forced tiled",             forced_tiled, true, &[1, 576], &[1536, 576], f32_, "matmul", "matmul_tiled", Read, Read),
    ];
    for &(what, caps, tb, a, b, dtype, family, entry, ka, kb) in table {
        let op = Op::MatMul { ta: false, tb };
        let c = matmul::select(&op, &[arg(a, dtype), arg(b, dtype)], dtype, &caps).unwrap();
        assert_eq!((c.family, c.entry, c.a, c.b), (family, entry, ka, kb), "{what}");
        // Lowering builds exactly the chosen dispatch.
        let out = arg(&[1], dtype);
        let l = matmul::lower(&op, &[arg(a, dtype), arg(b, dtype)], &out, &caps).unwrap();
        let d = &l.dispatches[0];
        assert_eq!((d.family, d.entry, d.bindings[0].kind, d.bindings[1].kind), (family, entry, ka, kb), "{what}");
    }
}

/// aᵀ·b (a weight's gradient) through textures on CPU adapters where both operands are 2-D with whole
/// texels a row; storage otherwise.
#[test]
fn transposed_a_table() {
    let (gpu, cpu) = (caps(false), caps(true));
    let tn = |a: &[usize], b: &[usize], caps: &Caps| {
        let c = matmul::select(
            &Op::MatMul { ta: true, tb: false },
            &[arg(a, DType::F32), arg(b, DType::F32)],
            DType::F32,
            caps,
        )
        .unwrap();
        (c.family, c.entry, c.a, c.b)
    };
    assert_eq!(tn(&[1024, 384], &[1024, 1536], &cpu), ("matmul_tex", "gemm_tex_tn", StagedF32x4, StagedF32x4));
    assert_eq!(tn(&[1024, 384], &[1024, 1536], &gpu), ("matmul", "matmul_tiled", Read, Read));
    assert_eq!(tn(&[1024, 382], &[1024, 1536], &cpu).1, "matmul_tiled_scalar", "m % 4 != 0");
    assert_eq!(tn(&[64, 384], &[64, 6], &cpu).1, "matmul_tiled_scalar", "n % 4 != 0");
    assert_eq!(tn(&[2, 64, 32], &[2, 64, 32], &cpu).1, "gemm_tex_tn", "batched: z");
    assert_eq!(tn(&[2, 64, 32], &[64, 32], &cpu).1, "matmul_tiled", "a batched, b shared");
}

#[test]
fn glu_table() {
    let (gpu, cpu) = (caps(false), caps(true));
    let glu = |rows: usize, k: usize, dtype: DType, act: Act, caps: &Caps| {
        let ins = [arg(&[rows, k], dtype), arg(&[1536, k], dtype), arg(&[1536, k], dtype)];
        matmul::select_glu(act, &ins, dtype, caps).map(|c| (c.entry, c.a, c.b))
    };
    assert_eq!(glu(1, 576, DType::F32, Act::Silu, &cpu), Some(("gemv_glu_tex", Uniform, TextureF32x4)));
    assert_eq!(glu(2, 576, DType::F16, Act::Silu, &cpu), Some(("gemv_glu_tex_h8", Uniform, TextureU32x4)));
    assert_eq!(glu(3, 576, DType::F16, Act::Silu, &cpu), None, "beyond 2 rows the products are GEMMs");
    // Not fused: a GPU, more rows than a GEMV takes, another activation, a forced kernel.
    assert_eq!(glu(1, 576, DType::F32, Act::Silu, &gpu), None);
    assert_eq!(glu(9, 576, DType::F32, Act::Silu, &cpu), None);
    assert_eq!(glu(1, 576, DType::F32, Act::GeluTanh, &cpu), None);
    assert_eq!(glu(1, 576, DType::F32, Act::Silu, &Caps { matmul: Kernel::Tiled, ..cpu }), None);
}

#[test]
fn kernel_names_round_trip() {
    for k in [Kernel::Auto, Kernel::Tiled, Kernel::Gemv, Kernel::Baseline, Kernel::Texture] {
        assert_eq!(Kernel::parse(k.name()).unwrap(), k);
    }
    assert!(Kernel::parse("fast").unwrap_err().to_string().contains("fast"));
}

#[test]
fn attention_table() {
    use wgpu_llm::graph::{AttnSpec, Scalar};
    use wgpu_llm::kernels::attention;
    let (gpu, cpu) = (caps(false), caps(true));
    let spec =
        AttnSpec { causal: true, scale: 0.125, mask: false, q_offset: Scalar::Const(0), kv_len: Scalar::var("len") };
    // (what, caps, op, q [B, Hq, T, D], kv heads, S, dtype, family, entry, rows per invocation, K/V binding)
    type Row<'a> = (&'a str, Caps, Op, [usize; 4], usize, usize, DType, &'a str, &'a str, usize, BindKind);
    let attn = Op::Attention(spec.clone());
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("decode, 3 heads a group",   cpu, attn.clone(), [1, 9, 1, 64], 3, 2048, DType::F16, "attention", "attention_forward_rows", 4, Read),
        ("decode, 8 heads a group",   cpu, attn.clone(), [1, 32, 1, 64], 4, 2048, DType::F16, "attention", "attention_forward_rows", 8, Read),
        ("CPU prefill: K/V staged",   cpu, attn.clone(), [1, 9, 64, 64], 3, 2048, DType::F16, "attention_tex", "attention_forward_rows", 8, StagedF16x4),
        ("CPU prefill of 8 rows",     cpu, attn.clone(), [1, 9, 8, 64], 3, 2048, DType::F32, "attention", "attention_forward_rows", 8, Read),
        ("GPU prefill",               gpu, attn.clone(), [1, 9, 64, 64], 3, 2048, DType::F16, "attention", "attention_forward_rows", 8, Read),
        ("head dim 80",               cpu, attn.clone(), [1, 8, 16, 80], 8, 512, DType::F32, "attention", "attention_forward", 0, Read),
        ("CPU probabilities",         cpu, Op::AttentionWeights(spec.clone()), [1, 4, 16, 64], 4, 16, DType::F32, "attention", "attention_probs_rows", 0, Read),
        ("CPU probabilities, GQA",    cpu, Op::AttentionWeights(spec.clone()), [1, 4, 16, 64], 2, 16, DType::F32, "attention", "attention_weights", 0, Read),
        ("GPU probabilities",         gpu, Op::AttentionWeights(spec.clone()), [1, 4, 16, 64], 4, 16, DType::F32, "attention", "attention_weights", 0, Read),
        ("dQ",                        cpu, Op::AttentionGradQ(spec.clone()), [1, 4, 16, 64], 4, 16, DType::F32, "attention", "attention_grad_q", 0, Read),
        ("dV",                        gpu, Op::AttentionGradV(spec.clone()), [1, 4, 16, 64], 4, 16, DType::F32, "attention", "attention_grad_kv", 0, Read),
    ];
    for (what, caps, op, q, hkv, s, dt, family, entry, rq, kv) in table {
        let kv_arg = arg(&[q[0], hkv, s, q[3]], dt);
        let ins = [arg(&q, dt), kv_arg.clone(), kv_arg.clone(), arg(&q, dt)];
        let c = attention::select(&op, &ins, &caps).unwrap();
        assert_eq!((c.family, c.entry, c.rq, c.kv), (family, entry, rq, kv), "{what}");
        // Lowering builds the chosen dispatch last.
        let l = attention::lower(&op, &ins, &arg(&q, dt), &caps).unwrap();
        let d = l.dispatches.last().unwrap();
        assert_eq!((d.family, d.entry, d.bindings[1].kind), (family, entry, kv), "{what}");
    }
}

#[test]
fn qmatmul_table() {
    use wgpu_llm::graph::ActQuant::{self, Dynamic, Static};
    use wgpu_llm::kernels::qmatmul;
    let (gpu, cpu) = (caps(false), caps(true));
    let no_dot = Caps { int8dot: false, ..cpu };
    let w = ActQuant::None;
    // (what, caps, act, rows, dtype of x, family, entry, x binding, weight binding)
    type Row<'a> = (&'a str, Caps, ActQuant, usize, DType, &'a str, &'a str, BindKind, BindKind);
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("CPU decode, weight-only",      cpu, w, 1, DType::F32, "qmatmul_tex", "gemv_w8", Uniform, TextureU32x4),
        ("CPU decode, W8A8 dynamic",     cpu, Dynamic, 1, DType::F16, "qmatmul_fqd_tex", "gemv_w8_fq", Uniform, TextureU32x4),
        ("CPU decode, W8A8 static",      cpu, Static, 1, DType::F32, "qmatmul_tex", "gemv_w8_fq", Uniform, TextureU32x4),
        ("CPU prefill, weight-only",     cpu, w, 256, DType::F32, "qmatmul", "gemm_w8_tex", StagedF32x4, TextureU32x4),
        ("CPU prefill, W8A8",            cpu, Dynamic, 256, DType::F32, "qmatmul", "gemm_w8a8_tex", StagedU32x4, TextureU32x4),
        ("CPU prefill, no int8 dot",     no_dot, Dynamic, 256, DType::F32, "qmatmul", "gemm_w8_tex", StagedF32x4, TextureU32x4),
        ("GPU decode, weight-only",      gpu, w, 1, DType::F32, "qmatmul", "gemv_w8", Read, Read),
        ("GPU decode, W8A8 dynamic",     gpu, Dynamic, 1, DType::F32, "qmatmul_fqd", "gemv_w8_fq", Read, Read),
        ("GPU prefill, weight-only",     gpu, w, 256, DType::F16, "qmatmul", "gemm_w8", Read, Read),
        ("GPU prefill, W8A8",            gpu, Static, 256, DType::F32, "qdot", "gemm_w8a8", Read, Read),
    ];
    for &(what, caps, act, m, dt, family, entry, x, wk) in table {
        let ins =
            [arg(&[m, 576], dt), arg(&[1536, 144], DType::U32), arg(&[1536, 18], DType::F32), arg(&[18], DType::F32)];
        let c = qmatmul::select(act, &ins, dt, &caps);
        assert_eq!((c.family, c.entry, c.x, c.w), (family, entry, x, wk), "{what}");
        // Lowering builds the chosen product last (W8A8 prefill quantizes x first).
        let n_in = if act == Static { 4 } else { 3 };
        let l = qmatmul::lower(&Op::QMatMul { act }, &ins[..n_in], &arg(&[m, 1536], dt), &caps).unwrap();
        let d = l.dispatches.last().unwrap();
        assert_eq!((d.family, d.entry, d.bindings[0].kind, d.bindings[1].kind), (family, entry, x, wk), "{what}");
    }
}

#[test]
fn norm_table() {
    use wgpu_llm::kernels::norm;
    let (gpu, cpu) = (caps(false), caps(true));
    let tiny_textures = Caps { max_texture_rows: 1, ..cpu };
    let (f32_, f16_) = (DType::F32, DType::F16);
    let (rms, ln) = (Op::RmsNorm { eps: 1e-5 }, Op::LayerNorm { eps: 1e-5 });
    // (what, caps, op, rows, c, dtype, entry, x binding, weights binding)
    type Row<'a> = (&'a str, Caps, &'a Op, usize, usize, DType, &'a str, BindKind, BindKind);
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("GPU rmsnorm",                  gpu, &rms, 64, 576, f32_, "rmsnorm_forward", Read, Read),
        ("GPU layernorm",                gpu, &ln, 64, 384, f16_, "layernorm_forward", Read, Read),
        ("CPU rmsnorm f32",              cpu, &rms, 64, 576, f32_, "rmsnorm_rows", StagedF32x4, TextureF32x4),
        ("CPU rmsnorm f16",              cpu, &rms, 1, 576, f16_, "rmsnorm_rows", StagedF16x4, TextureF16x4),
        ("CPU layernorm",                cpu, &ln, 64, 384, f32_, "layernorm_rows", StagedF32x4, TextureF32x4),
        ("CPU row not whole texels",     cpu, &rms, 64, 575, f32_, "rmsnorm_forward", Read, Read),
        ("CPU x past the texture",       tiny_textures, &rms, 8192, 576, f32_, "rmsnorm_forward", Read, Read),
        ("CPU rmsnorm dx",               cpu, &Op::RmsNormGradX { eps: 1e-5 }, 64, 576, f32_, "rmsnorm_backward_rows", StagedF32x4, TextureF32x4),
        ("CPU layernorm dx",             cpu, &Op::LayerNormGradX { eps: 1e-5 }, 64, 384, f32_, "layernorm_backward_rows", StagedF32x4, TextureF32x4),
        ("CPU dx, row not whole texels", cpu, &Op::LayerNormGradX { eps: 1e-5 }, 64, 575, f32_, "layernorm_backward_x", Read, Read),
        ("GPU layernorm dx",             gpu, &Op::LayerNormGradX { eps: 1e-5 }, 64, 384, f32_, "layernorm_backward_x", Read, Read),
        ("CPU dgamma",                   cpu, &Op::NormGradGamma { eps: 1e-5, rms: false }, 64, 384, f32_, "norm_row_stats_rows", StagedF32x4, Read),
        ("GPU dgamma",                   gpu, &Op::NormGradGamma { eps: 1e-5, rms: true }, 64, 576, f32_, "norm_row_stats", Read, Read),
    ];
    for &(what, caps, op, rows, c, dt, entry, x, w) in table {
        let ins = [arg(&[rows, c], dt), arg(&[c], dt), arg(&[c], dt)];
        let n_in = if matches!(op, Op::RmsNorm { .. }) { 2 } else { 3 };
        let choice = norm::select(op, &ins[..n_in], dt, &caps).unwrap();
        assert_eq!((choice.entry, choice.x, choice.weights), (entry, x, w), "{what}");
        let l = norm::lower(op, &ins[..n_in], &arg(&[rows, c], dt), &caps).unwrap();
        let d = &l.dispatches[0];
        assert_eq!((d.entry, d.bindings[0].kind), (entry, x), "{what}");
        if !matches!(op, Op::NormGradGamma { .. }) {
            assert_eq!(d.bindings[1].kind, w, "{what}"); // (dgamma's first dispatch writes its row statistics)
        }
    }
    assert!(norm::select(&Op::Add, &[arg(&[2, 4], DType::F32)], DType::F32, &cpu).is_err());
}

#[test]
fn elementwise_table() {
    use wgpu_llm::graph::Scalar;
    use wgpu_llm::kernels::elementwise;
    let (gpu, cpu) = (caps(false), caps(true));
    let (f32_, f16_) = (DType::F32, DType::F16);
    let silu = Op::Unary { act: Act::Silu };
    let big = [64, 576]; // 36,864 elements: past TEX_MIN_ELEMS
    let small = [1, 576]; // a decode row
                          // (what, caps, op, input shapes, input dtype, output shape, output dtype, entry, input binding)
    type Row<'a> = (&'a str, Caps, Op, &'a [&'a [usize]], DType, &'a [usize], DType, &'a str, BindKind);
    #[rustfmt::skip]
    let table: &[Row] = &[
        ("CPU add, prefill",        cpu, Op::Add, &[&big, &big], f32_, &big, f32_, "add_tex", StagedF32x4),
        ("CPU mul f16, prefill",    cpu, Op::Mul, &[&big, &big], f16_, &big, f16_, "mul_tex", StagedF16x4),
        ("CPU silu, prefill",       cpu, silu.clone(), &[&big], f32_, &big, f32_, "unary_tex", StagedF32x4),
        ("CPU add, decode row",     cpu, Op::Add, &[&small, &small], f32_, &small, f32_, "add", Read),
        ("CPU bias add",            cpu, Op::Add, &[&big, &[576]], f32_, &big, f32_, "add_bias", Read),
        ("GPU add, prefill",        gpu, Op::Add, &[&big, &big], f32_, &big, f32_, "add", Read),
        ("GPU silu",                gpu, silu.clone(), &[&big], f32_, &big, f32_, "unary", Read),
        ("scale",                   cpu, Op::Scale { s: 0.5 }, &[&big], f32_, &big, f32_, "scale", Read),
        ("dropout",                 cpu, Op::Dropout { p: 0.1, seed: 1, step: Scalar::Const(0) }, &[&big], f32_, &big, f32_, "dropout", Read),
        ("silu backward",           cpu, Op::UnaryBackward { act: Act::Silu }, &[&big, &big], f32_, &big, f32_, "unary_backward", Read),
        ("sum rows",                cpu, Op::SumRows, &[&big], f32_, &[576], f32_, "sum_rows", Read),
        ("cast to f16",             cpu, Op::Cast { to: f16_ }, &[&big], f32_, &big, f16_, "cast_to_half", Read),
        ("cast to f32",             gpu, Op::Cast { to: f32_ }, &[&big], f16_, &big, f32_, "cast_to_float", Read),
        ("cast to itself: a copy",  cpu, Op::Cast { to: f32_ }, &[&big], f32_, &big, f32_, "copy_vec4", Read),
        ("widen f16 weights",       cpu, Op::Dequantize { transpose: false }, &[&big], f16_, &big, f32_, "dequant_half", Read),
        ("permute",                 cpu, Op::Permute0213, &[&[1, 4, 3, 8]], f32_, &[1, 3, 4, 8], f32_, "permute0213", Read),
    ];
    for (what, caps, op, shapes, in_dt, out_shape, out_dt, entry, kind) in table {
        let ins: Vec<ArgInfo> = shapes.iter().map(|s| arg(s, *in_dt)).collect();
        let out = arg(out_shape, *out_dt);
        let c = elementwise::select(op, &ins, &out, caps).unwrap();
        assert_eq!((c.entry, c.inputs), (*entry, *kind), "{what}");
        let l = elementwise::lower(op, &ins, &out, caps).unwrap();
        let d = &l.dispatches[0];
        assert_eq!((d.entry, d.bindings[0].kind), (*entry, *kind), "{what}");
    }
    let bad = elementwise::select(&Op::Cast { to: DType::U32 }, &[arg(&[4], f32_)], &arg(&[4], DType::U32), &cpu);
    assert!(bad.is_err(), "a cast to u32 is an error");
}
