//! Elementwise family on the GPU against the CPU reference: f32 and f16, awkward sizes, the f32 tier.

use wgpu_llm::graph::{Act, GraphBuilder, Op, Scalar};
use wgpu_llm::tensor::{DType, HostTensor};

use crate::common::{self, check_op, check_op_on, Rng, EXACT, F16, F32};

fn dtypes() -> Vec<(DType, common::Tol)> {
    let mut v = vec![(DType::F32, F32)];
    if common::has_f16() {
        v.push((DType::F16, F16));
    }
    v
}

const SHAPES: &[&[usize]] = &[&[1], &[7], &[13, 61], &[3, 5, 257]];

#[test]
fn add_mul_scale() {
    let mut r = Rng::new(1);
    for (dt, tol) in dtypes() {
        for s in SHAPES {
            let (a, b) = (r.tensor(s, dt), r.tensor(s, dt));
            check_op(&format!("add {s:?} {dt:?}"), Op::Add, &[a.clone(), b.clone()], &[], tol);
            check_op(&format!("mul {s:?} {dt:?}"), Op::Mul, &[a.clone(), b], &[], tol);
            check_op(&format!("scale {s:?} {dt:?}"), Op::Scale { s: -1.7 }, std::slice::from_ref(&a), &[], tol);
            let bias = r.tensor(&[*s.last().unwrap()], dt);
            check_op(&format!("add bias {s:?} {dt:?}"), Op::Add, &[a, bias], &[], tol);
        }
    }
}

/// Values across both tails of every activation, plus random ones.
fn act_inputs(r: &mut Rng, dt: DType) -> HostTensor {
    let mut v: Vec<f32> = (0..401).map(|i| -10.0 + i as f32 * 0.05).collect();
    v.extend(r.vec(210, -3.0, 3.0));
    match dt {
        DType::F16 => HostTensor::f16(&[v.len()], v).unwrap(),
        _ => HostTensor::f32(&[v.len()], v).unwrap(),
    }
}

#[test]
fn activations_and_their_derivatives() {
    let mut r = Rng::new(2);
    for (dt, tol) in dtypes() {
        for act in [Act::Relu, Act::GeluErf, Act::GeluTanh, Act::Silu, Act::Tanh] {
            let x = act_inputs(&mut r, dt);
            let dy = r.tensor(&x.shape, dt);
            check_op(&format!("{act:?} {dt:?}"), Op::Unary { act }, std::slice::from_ref(&x), &[], tol);
            check_op(&format!("{act:?}' {dt:?}"), Op::UnaryBackward { act }, &[x, dy], &[], tol);
        }
    }
}

/// Dropout on the GPU equals the reference exactly (the same hash decides every element), on sizes that are
/// not multiples of the workgroup, with the step as a runtime scalar; the kept fraction is 1 − p within
/// five standard errors; another step or seed draws another mask; p = 0 is the identity.
#[test]
fn dropout_matches_the_reference_and_keeps_one_minus_p() {
    let mut r = Rng::new(21);
    for (dt, tol) in dtypes() {
        for (n, p) in [(1usize, 0.5f32), (257, 0.1), (4099, 0.5), (70_001, 0.9)] {
            let x = r.tensor(&[n], dt);
            for step in [1u32, 2] {
                let op = Op::Dropout { p, seed: 7, step: Scalar::var("step") };
                check_op(
                    &format!("dropout n={n} p={p} step {step} {dt:?}"),
                    op,
                    std::slice::from_ref(&x),
                    &[("step", step)],
                    tol,
                );
            }
        }
    }
    use wgpu_llm::reference::elementwise::dropout_forward;
    let n = 100_000;
    let ones = vec![1.0; n];
    let mask = |p: f32, seed: u32, step: u32| {
        let mut out = vec![0.0; n];
        dropout_forward(&mut out, &ones, p, seed, step);
        out
    };
    for p in [0.1f32, 0.5, 0.9] {
        let m = mask(p, 1, 1);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        let se = (p as f64 * (1.0 - p as f64) / n as f64).sqrt();
        assert!((kept - (1.0 - p as f64)).abs() < 5.0 * se, "p {p}: kept {kept}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / (1.0 - p as f64)).abs() < 1e-12));
        let agree = |a: &[f64], b: &[f64]| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64;
        // Independent masks agree on p² + (1 − p)² of the elements.
        let want = (p * p + (1.0 - p) * (1.0 - p)) as f64;
        assert!((agree(&m, &mask(p, 1, 2)) - want).abs() < 0.01, "p {p}: another step");
        assert!((agree(&m, &mask(p, 2, 1)) - want).abs() < 0.01, "p {p}: another seed");
    }
    assert_eq!(mask(0.0, 1, 1), ones);
}

#[test]
fn sum_rows_cast_permute() {
    let mut r = Rng::new(3);
    for (dt, tol) in dtypes() {
        for s in [&[37usize, 61][..], &[2, 3, 5], &[1, 1], &[300, 3]] {
            let x = r.tensor(s, dt);
            let t = if dt == DType::F32 { common::F32_REDUCE } else { tol };
            check_op(&format!("sum_rows {s:?} {dt:?}"), Op::SumRows, &[x], &[], t);
        }
        for s in [&[2usize, 3, 5, 7][..], &[1, 1, 1, 1], &[3, 1, 13, 4]] {
            check_op(&format!("permute0213 {s:?} {dt:?}"), Op::Permute0213, &[r.tensor(s, dt)], &[], EXACT);
        }
    }
    if common::has_f16() {
        for n in [1usize, 7, 1000] {
            check_op(
                &format!("cast to f16 [{n}]"),
                Op::Cast { to: DType::F16 },
                &[r.tensor(&[n], DType::F32)],
                &[],
                F16,
            );
            check_op(
                &format!("cast to f32 [{n}]"),
                Op::Cast { to: DType::F32 },
                &[r.tensor(&[n], DType::F16)],
                &[],
                EXACT,
            );
        }
    }
    check_op("cast f32 to f32", Op::Cast { to: DType::F32 }, &[r.tensor(&[13], DType::F32)], &[], EXACT);
}

#[test]
fn cache_write_at_a_runtime_offset() {
    let mut r = Rng::new(4);
    for (dt, _) in dtypes() {
        let cache = r.tensor(&[2, 3, 16, 8], dt);
        for (t, off) in [(5usize, 7u32), (1, 0), (1, 15), (16, 0)] {
            let src = r.tensor(&[2, 3, t, 8], dt);
            let op = Op::CacheWrite { offset: Scalar::var("pos") };
            check_op(&format!("cache_write t={t} at {off} {dt:?}"), op, &[cache.clone(), src], &[("pos", off)], EXACT);
        }
        let src = r.tensor(&[2, 3, 3, 8], dt);
        check_op("cache_write const", Op::CacheWrite { offset: Scalar::Const(2) }, &[cache.clone(), src], &[], EXACT);
    }
}

/// Each sequence's rows written at its own offset (continuous batching); rows past the cache are dropped.
#[test]
fn cache_write_at_per_sequence_offsets() {
    let mut r = Rng::new(5);
    for (dt, _) in dtypes() {
        let cache = r.tensor(&[3, 2, 16, 8], dt);
        for (t, offs) in [(1usize, vec![0u32, 9, 15]), (5, vec![3, 0, 14])] {
            let src = r.tensor(&[3, 2, t, 8], dt);
            let pos = wgpu_llm::tensor::HostTensor::u32(&[3], offs.clone()).unwrap();
            check_op(
                &format!("cache_write_at t={t} at {offs:?} {dt:?}"),
                Op::CacheWriteAt,
                &[cache.clone(), src, pos],
                &[],
                EXACT,
            );
        }
    }
}

#[test]
fn f32_tier() {
    let gpu = common::gpu_f32_tier();
    let mut r = Rng::new(5);
    let (a, b) = (r.tensor(&[13, 61], DType::F32), r.tensor(&[61], DType::F32));
    check_op_on(gpu, "tier add bias", Op::Add, &[a.clone(), b], &[], F32);
    check_op_on(gpu, "tier gelu", Op::Unary { act: Act::GeluErf }, &[act_inputs(&mut r, DType::F32)], &[], F32);
    check_op_on(gpu, "tier sum_rows", Op::SumRows, &[a], &[], common::F32_REDUCE);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[3, 4], DType::F32).unwrap();
    let y = b.input("y", &[3, 5], DType::F32).unwrap();
    let e = b.op(Op::Add, &[x, y]).unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("[3, 5]"), "{e}");
    let e = b.op(Op::Mul, &[x, y]).unwrap_err().to_string();
    assert!(e.contains("mul"), "{e}");
}

#[test]
fn copy_dispatch_uses_vec4_when_it_can() {
    use wgpu_llm::kernels::elementwise::copy_dispatch;
    let d = copy_dispatch(1 << 20, DType::F32);
    assert_eq!(d.entry, "copy_vec4");
    assert_eq!(d.params[0].1, wgpu_llm::kernels::Word::U32(1 << 18));
    assert_eq!(copy_dispatch(7, DType::F16).entry, "copy");
}

#[test]
fn large_tensors_read_staged_textures_on_cpu_adapters() {
    // add/mul/unary over at least 16,384 elements (n % 4 == 0) read staged textures on a texture device and
    // storage elsewhere; both match the reference, activations across both tails included.
    use wgpu_llm::kernels::{elementwise, ArgInfo};
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(7);
    let info = |t: &HostTensor| ArgInfo { shape: t.shape.clone(), dtype: t.dtype, shards: vec![(0, t.shape[0])] };
    for (dt, tol) in dtypes() {
        let shape = [37, 448];
        let n: usize = shape.iter().product();
        let (a, b) = (r.tensor(&shape, dt), r.tensor(&shape, dt));
        let wide: Vec<f32> = (0..n).map(|i| -10.0 + 20.0 * i as f32 / n as f32).collect();
        let x = if dt == DType::F16 { HostTensor::f16(&shape, wide) } else { HostTensor::f32(&shape, wide) }.unwrap();
        let mut cases = vec![(Op::Add, vec![a.clone(), b.clone()], "add_tex"), (Op::Mul, vec![a, b], "mul_tex")];
        for act in [Act::Relu, Act::GeluErf, Act::GeluTanh, Act::Silu] {
            cases.push((Op::Unary { act }, vec![x.clone()], "unary_tex"));
        }
        for (op, ins, entry) in cases {
            let case = format!("{op:?} {shape:?} {dt:?}");
            let infos: Vec<ArgInfo> = ins.iter().map(info).collect();
            let lowered = elementwise::lower(&op, &infos, &info(&ins[0]), &tex.caps()).unwrap();
            assert_eq!(lowered.dispatches[0].entry, entry, "{case}");
            check_op_on(tex, &format!("texture {case}"), op.clone(), &ins, &[], tol);
            check_op_on(storage, &format!("storage {case}"), op, &ins, &[], tol);
        }
    }
}

/// Dequantize: f16 and packed int8 weights widened to f32, as stored and transposed, at shapes that are not
/// multiples of the 256-lane workgroup; exact (both sides compute one f32 product per element).
#[test]
fn dequantize_f16_and_int8() {
    let mut r = Rng::new(9);
    for transpose in [false, true] {
        let op = Op::Dequantize { transpose };
        if common::has_f16() {
            for s in [[1usize, 1], [37, 61], [5, 300]] {
                check_op(
                    &format!("dequantize f16 {s:?} t{transpose}"),
                    op.clone(),
                    &[r.tensor(&s, DType::F16)],
                    &[],
                    EXACT,
                );
            }
        }
        for (rows, cols) in [(1usize, 32usize), (7, 96), (33, 160)] {
            let mut w = r.vec(rows * cols, -2.0, 2.0);
            w[3] = 0.0; // and a block's extreme values, both signs
            w[cols - 1] = -2.5;
            let q = wgpu_llm::quant::QTensor::quantize(&w, rows, cols).unwrap();
            let ins = [
                HostTensor::u32(&[rows, cols / 4], q.packed()).unwrap(),
                HostTensor::f32(&[rows, cols / 32], q.scales.clone()).unwrap(),
            ];
            check_op(&format!("dequantize int8 [{rows}, {cols}] t{transpose}"), op.clone(), &ins, &[], EXACT);
        }
    }
}
