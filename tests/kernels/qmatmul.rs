//! Int8 matmul (QMatMul) on the GPU: against the CPU reference on the dequantized weights (tight), against
//! the f32 weights (an NMSE budget), weight-only and W8A8 (dynamic and static activation scales), GEMV and
//! GEMM paths, f32 and f16 activations, awkward row and column counts; the fallback of W8A8 to weight-only
//! on a tier without the int8 dot product.

use std::collections::HashMap;

use wgpu_llm::exec::Plan;
use wgpu_llm::graph::{Act, ActQuant, GraphBuilder, Op};
use wgpu_llm::kernels::{lower, ArgInfo};
use wgpu_llm::quant::{QTensor, BLOCK};
use wgpu_llm::reference;
use wgpu_llm::tensor::{DType, HostTensor};

use crate::common::{self, check_op, info, Rng, Tol, F16, F32_REDUCE};

/// W8A8 on f32 activations: a value whose x/s lies within rounding error of a half-step may round either way
/// on the GPU and on the CPU (1/s is not correctly rounded in WGSL), moving one product by one activation
/// quantum s·|w| ≤ 1/127 for inputs in [-1, 1): a few such flips per output at most.
const W8A8: Tol = Tol { abs: 2e-2, rel: 1e-3 };
/// Two kernels doing the same arithmetic in the same order.
const SAME: Tol = Tol { abs: 1e-6, rel: 1e-6 };
/// Output NMSE of int8 weights (block 32, |w| < 1) against the f32 weights: per-weight error variance
/// (amax/127)²/12 against the weights' variance 1/3 gives ≈ 1.6e-5.
const NMSE_WEIGHT_ONLY: f64 = 1e-4;
/// And with the activations also rounded to int8 per block: about twice that.
const NMSE_W8A8: f64 = 2e-4;

/// x [m, k], packed weights [n, k/4], weight scales [n, k/32], static scales [k/32], and the float weights.
fn operands(r: &mut Rng, m: usize, k: usize, n: usize, dt: DType) -> (Vec<HostTensor>, HostTensor) {
    let x = r.tensor(&[m, k], dt);
    let w = r.vec(n * k, -1.0, 1.0);
    let q = QTensor::quantize(&w, n, k).unwrap();
    // Static scales from the data's block maxima, scaled down so some values clip, as calibration can.
    let xv = common::round_f16(&x).to_f32();
    let xs: Vec<f32> = (0..k / BLOCK)
        .map(|b| {
            (0..m)
                .flat_map(|i| xv[i * k + b * BLOCK..i * k + (b + 1) * BLOCK].to_vec())
                .fold(0f32, |a, v| a.max(v.abs()))
                * 0.9
                / 127.0
        })
        .collect();
    let ins = vec![
        x,
        HostTensor::u32(&[n, k / 4], q.packed()).unwrap(),
        HostTensor::f32(&[n, k / BLOCK], q.scales.clone()).unwrap(),
        HostTensor::f32(&[k / BLOCK], xs).unwrap(),
    ];
    (ins, HostTensor::f32(&[n, k], w).unwrap())
}

fn args(ins: &[HostTensor], act: ActQuant) -> &[HostTensor] {
    if act == ActQuant::Static {
        ins
    } else {
        &ins[..3]
    }
}

const SHAPES: [(usize, usize, usize); 7] =
    [(1, 32, 1), (1, 64, 37), (1, 576, 130), (3, 96, 70), (9, 64, 65), (70, 96, 67), (130, 32, 129)];

#[test]
fn against_the_reference() {
    let mut r = Rng::new(41);
    for dt in common::dtypes() {
        for (m, k, n) in SHAPES {
            let (ins, _) = operands(&mut r, m, k, n, dt);
            for act in [ActQuant::None, ActQuant::Dynamic, ActQuant::Static] {
                let tol = match (act, dt) {
                    (_, DType::F16) => F16,
                    (ActQuant::None, _) => F32_REDUCE,
                    _ => W8A8,
                };
                let case = format!("qmatmul {} [{m}, {k}]·[{n}, {k}]ᵀ {dt:?}", act.name());
                check_op(&case, Op::QMatMul { act }, args(&ins, act), &[], tol);
            }
        }
    }
}

/// Run one QMatMul on `gpu`; returns y.
fn run_gpu(gpu: &wgpu_llm::gpu::Gpu, act: ActQuant, ins: &[HostTensor]) -> HostTensor {
    let mut b = GraphBuilder::new();
    let leaves: Vec<_> =
        ins.iter().enumerate().map(|(i, t)| b.input(&format!("in{i}"), &t.shape, t.dtype).unwrap()).collect();
    let y = b.op(Op::QMatMul { act }, &leaves).unwrap();
    let mut plan = Plan::compile(gpu, &b.finish(), &[y]).unwrap();
    let names: Vec<String> = (0..ins.len()).map(|i| format!("in{i}")).collect();
    let feeds: Vec<(&str, &HostTensor)> = names.iter().map(|n| n.as_str()).zip(ins).collect();
    plan.run(&feeds, &[]).unwrap().remove(0)
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    let sig: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    err / sig
}

#[test]
fn against_the_f32_weights() {
    let mut r = Rng::new(42);
    for (m, k, n) in [(1, 576, 130), (70, 96, 67)] {
        let (ins, w) = operands(&mut r, m, k, n, DType::F32);
        let mut env = HashMap::from([("x".to_string(), ins[0].clone()), ("w".to_string(), w)]);
        let mut b = GraphBuilder::new();
        let (x, wv) = (b.input("x", &[m, k], DType::F32).unwrap(), b.input("w", &[n, k], DType::F32).unwrap());
        let y = b.linear(x, wv, None).unwrap();
        let want = reference::run_graph(&b.finish(), &mut env, &HashMap::new(), &[y]).unwrap().remove(0).to_f32();
        for (act, budget) in [(ActQuant::None, NMSE_WEIGHT_ONLY), (ActQuant::Dynamic, NMSE_W8A8)] {
            let got = run_gpu(common::gpu(), act, args(&ins, act)).to_f32();
            let e = nmse(&got, &want);
            assert!(e < budget, "{} [{m}, {k}]·[{n}, {k}]ᵀ: NMSE {e:e} against f32 weights > {budget:e}", act.name());
        }
    }
}

/// The products with the weights bound as textures (W8A8's quantized row as uniforms for decode, the
/// activations as staged textures for GEMMs) and as storage buffers: the GEMVs do the same arithmetic, so give
/// the same values (f32 and f16); the GEMMs round in another order (within a float-reduction tolerance); f32
/// matches the CPU reference. Weight-only, static and dynamic, partial column quads and tiles, more weight
/// texels than one texture row holds.
#[test]
fn texture_and_storage_products_match_the_reference() {
    let mut r = Rng::new(44);
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    assert!(tex.caps().texture_reads && !storage.caps().texture_reads);
    for dt in common::dtypes() {
        // GEMVs up to 8 rows, then GEMMs (staged activations) off the 128 × 64 workgroup tile.
        for (m, k, n) in [
            (1, 32, 1),
            (1, 576, 130),
            (3, 96, 70),
            (8, 256, 1031),
            (2, 64, 4099),
            (9, 32, 7),
            (37, 96, 70),
            (130, 64, 65),
        ] {
            let (ins, _) = operands(&mut r, m, k, n, dt);
            for act in [ActQuant::None, ActQuant::Dynamic, ActQuant::Static] {
                let ins = args(&ins, act);
                let mut env: HashMap<String, HostTensor> =
                    ins.iter().enumerate().map(|(i, t)| (format!("in{i}"), t.clone())).collect();
                let mut b = GraphBuilder::new();
                let leaves: Vec<_> = ins
                    .iter()
                    .enumerate()
                    .map(|(i, t)| b.input(&format!("in{i}"), &t.shape, t.dtype).unwrap())
                    .collect();
                let y = b.op(Op::QMatMul { act }, &leaves).unwrap();
                let want = reference::run_graph(&b.finish(), &mut env, &HashMap::new(), &[y]).unwrap().remove(0);
                let case = format!("{} [{m}, {k}]·[{n}, {k}]ᵀ {dt:?}", act.name());
                // The texture device does lower to the texture kernel.
                let infos: Vec<ArgInfo> = ins.iter().map(|t| info(&t.shape, t.dtype)).collect();
                let lowered = lower(&Op::QMatMul { act }, &infos, &info(&[m, n], dt), &tex.caps()).unwrap();
                let kernel = match (m <= 8, act) {
                    (true, ActQuant::None) => "qmatmul_tex:gemv_w8",
                    (true, ActQuant::Static) => "qmatmul_tex:gemv_w8_fq",
                    (true, ActQuant::Dynamic) => "qmatmul_fqd_tex:gemv_w8_fq",
                    (false, ActQuant::None) => "qmatmul:gemm_w8_tex",
                    (false, _) => "qmatmul:gemm_w8a8_tex",
                };
                assert!(
                    lowered.dispatches.iter().any(|d| format!("{}:{}", d.family, d.entry) == kernel),
                    "{case}: not lowered to {kernel}"
                );
                let (got_tex, got_storage) = (run_gpu(tex, act, ins), run_gpu(storage, act, ins));
                let same = match (m <= 8, dt) {
                    (true, _) => SAME,
                    (false, DType::F16) => F16,
                    (false, _) => F32_REDUCE,
                };
                common::assert_close(&format!("texture vs storage {case}"), &got_tex, &got_storage, same);
                if dt == DType::F32 {
                    let tol = if act == ActQuant::None { F32_REDUCE } else { W8A8 };
                    common::assert_close(&format!("texture {case}"), &got_tex, &want, tol);
                }
            }
        }
    }
}

#[test]
fn decode_folds_the_quantizer_into_the_gemv_exactly() {
    // Up to 8 rows run gemv_w8_fq (the activation rounded inside the GEMV); more rows run the quantizer and
    // the integer GEMM (dot4I8Packed). Both round the same values with the same scales and sum the same
    // integer products exactly, so each row alone must give what the 9-row product gives, up to the order
    // of the scale multiplications; skipping the activation rounding would be off by ~1e-2.
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(45);
    let (m, k, n) = (9, 576, 130);
    let (ins, _) = operands(&mut r, m, k, n, DType::F32);
    let x = ins[0].to_f32();
    for act in [ActQuant::Dynamic, ActQuant::Static] {
        let ins = args(&ins, act);
        let whole = run_gpu(storage, act, ins).to_f32();
        for i in [0, 4, 8] {
            let mut row = ins.to_vec();
            row[0] = HostTensor::f32(&[1, k], x[i * k..(i + 1) * k].to_vec()).unwrap();
            let want = HostTensor::f32(&[1, n], whole[i * n..(i + 1) * n].to_vec()).unwrap();
            for (gpu, name) in [(tex, "texture"), (storage, "storage")] {
                let got = run_gpu(gpu, act, &row);
                let case = format!("{} row {i} of [{m}, {k}]·[{n}, {k}]ᵀ, GEMV on {name}", act.name());
                common::assert_close(&case, &got, &want, Tol { abs: 1e-5, rel: 1e-5 });
            }
        }
    }
}

#[test]
fn w8a8_falls_back_to_weight_only_without_int8_dot() {
    let gpu = common::gpu_f32_tier();
    assert!(!gpu.caps().int8dot);
    let mut r = Rng::new(43);
    for (m, k, n) in [(1, 64, 37), (70, 96, 67)] {
        let (ins, _) = operands(&mut r, m, k, n, DType::F32);
        let got = run_gpu(gpu, ActQuant::Dynamic, &ins[..3]);
        let want = run_gpu(common::gpu(), ActQuant::None, &ins[..3]);
        common::assert_close(&format!("fallback [{m}, {k}]·[{n}, {k}]ᵀ"), &got, &want, F32_REDUCE);
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 48], DType::F32).unwrap();
    let wq = b.input("wq", &[5, 12], DType::U32).unwrap();
    let ws = b.input("ws", &[5, 1], DType::F32).unwrap();
    let e = b.op(Op::QMatMul { act: ActQuant::None }, &[x, wq, ws]).unwrap_err().to_string();
    assert!(e.contains("qmatmul") && e.contains("multiple of 32"), "{e}");
    let x = b.input("x2", &[2, 64], DType::F32).unwrap();
    let wf = b.input("wf", &[5, 16], DType::F32).unwrap();
    let ws = b.input("ws2", &[5, 2], DType::F32).unwrap();
    let e = b.op(Op::QMatMul { act: ActQuant::None }, &[x, wf, ws]).unwrap_err().to_string();
    assert!(e.contains("u32"), "{e}");
    let wq = b.input("wq2", &[5, 16], DType::U32).unwrap();
    let e = b.op(Op::QMatMul { act: ActQuant::Static }, &[x, wq, ws]).unwrap_err().to_string();
    assert!(e.contains("expects 4 inputs"), "{e}");
}

/// QLinearAdd (r + the int8 product, written over r) on every int8 kernel both strategies take: the GEMVs
/// (weight-only and W8A8 with the quantizer folded in; twins and a uniform row, or storage), the texture
/// GEMMs, the storage GEMM and the W8A8 integer GEMM behind its quantizer; f32 and f16, rows and columns off
/// the tiles. Each lowering binds r as its product's output with ACC on, and the result is the reference's.
#[test]
fn qlinear_add_accumulates_into_the_residual() {
    use wgpu_llm::kernels::Arg;
    let mut r = Rng::new(45);
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    for dt in common::dtypes() {
        for (m, k, n) in [(1, 576, 130), (3, 96, 70), (37, 96, 70)] {
            let (ins, _) = operands(&mut r, m, k, n, dt);
            let res = r.tensor(&[m, n], dt);
            for act in [ActQuant::None, ActQuant::Dynamic, ActQuant::Static] {
                let mut add_ins = ins[..3].to_vec();
                add_ins.push(res.clone());
                if act == ActQuant::Static {
                    add_ins.push(ins[3].clone());
                }
                let tol = match (act, dt) {
                    (_, DType::F16) => F16,
                    (ActQuant::None, _) => F32_REDUCE,
                    _ => W8A8,
                };
                let op = Op::QLinearAdd { act };
                for gpu in [tex, storage] {
                    let what = if gpu.texture_reads { "textures" } else { "storage" };
                    let infos: Vec<ArgInfo> = add_ins.iter().map(|t| info(&t.shape, t.dtype)).collect();
                    let l = lower(&op, &infos, &info(&[m, n], dt), &gpu.caps()).unwrap();
                    let product = l.dispatches.last().unwrap();
                    let case =
                        format!("qlinear_add {} [{m}, {k}]·[{n}, {k}]ᵀ {dt:?} [{what}, {}]", act.name(), product.entry);
                    assert!(l.dispatches.iter().all(|d| d.bindings.iter().all(|b| b.arg != Arg::Output)), "{case}");
                    assert!(product.bindings.iter().any(|b| b.arg == Arg::Input(3)), "{case}: r is the output");
                    assert!(product.overrides.contains(&("ACC", 1.0)), "{case}: ACC");
                    if act == ActQuant::Static {
                        assert!(l.dispatches.iter().any(|d| d.bindings.iter().any(|b| b.arg == Arg::Input(4))));
                    }
                    common::check_op_on(gpu, &case, op.clone(), &add_ins, &[], tol);
                }
            }
        }
    }
    // r must have the product's shape.
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 32], DType::F32).unwrap();
    let wq = b.param("wq", &[4, 8], DType::U32).unwrap();
    let ws = b.param("ws", &[4, 1], DType::F32).unwrap();
    let bad = b.input("bad", &[2, 5], DType::F32).unwrap();
    assert!(b.op(Op::QLinearAdd { act: ActQuant::None }, &[x, wq, ws, bad]).is_err());
}

/// QGlu (silu(x·Wgᵀ) ⊙ x·Wuᵀ, both weights int8) against the reference on both strategies: one fused GEMV
/// for decode rows (weight-only and W8A8, the rounded row shared by both products), two products and the
/// elementwise glu for more rows or another activation; f32 and f16, columns off the tiles.
#[test]
fn qglu_fuses_the_gated_feed_forward() {
    let mut r = Rng::new(46);
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    for dt in common::dtypes() {
        for (m, k, n, act) in
            [(1, 576, 130, Act::Silu), (2, 96, 70, Act::Silu), (37, 96, 70, Act::Silu), (1, 64, 37, Act::GeluTanh)]
        {
            let (gate, _) = operands(&mut r, m, k, n, dt);
            let (up, _) = operands(&mut r, m, k, n, dt);
            for quant in [ActQuant::None, ActQuant::Dynamic, ActQuant::Static] {
                let mut ins = vec![gate[0].clone(), gate[1].clone(), gate[2].clone(), up[1].clone(), up[2].clone()];
                if quant == ActQuant::Static {
                    ins.push(gate[3].clone());
                }
                let tol = match (quant, dt) {
                    (_, DType::F16) => F16,
                    (ActQuant::None, _) => F32_REDUCE,
                    _ => W8A8,
                };
                let op = Op::QGlu { act, quant };
                for gpu in [tex, storage] {
                    let what = if gpu.texture_reads { "textures" } else { "storage" };
                    let infos: Vec<ArgInfo> = ins.iter().map(|t| info(&t.shape, t.dtype)).collect();
                    let l = lower(&op, &infos, &info(&[m, n], dt), &gpu.caps()).unwrap();
                    let last = l.dispatches.last().unwrap().entry;
                    let case = format!("qglu {} [{m}, {k}]·[{n}, {k}]ᵀ {act:?} {dt:?} [{what}, {last}]", quant.name());
                    let fused = m <= 8 && act == Act::Silu;
                    assert_eq!(l.dispatches.len() == 1, fused, "{case}: one dispatch for decode rows");
                    assert_eq!(last.starts_with("gemv_glu_w8"), fused, "{case}");
                    common::check_op_on(gpu, &case, op.clone(), &ins, &[], tol);
                }
            }
        }
    }
}
