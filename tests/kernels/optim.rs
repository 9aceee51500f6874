//! Optimizer family on the GPU against the CPU reference: AdamW updates param, m and v in place.

use wgpu_llm::graph::{AdamWSpec, GraphBuilder, Op, Scalar};
use wgpu_llm::tensor::{DType, HostTensor};

use crate::common::{self, check_op, check_op_on, Rng, F32};

fn spec(step: Scalar) -> AdamWSpec {
    AdamWSpec {
        lr: 1e-2,
        lr_var: None,
        max_grad_norm: None,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        step,
    }
}

fn inputs(r: &mut Rng, n: usize) -> Vec<HostTensor> {
    // Second moments are ≥ 0; kept ≥ 1e-4 so that m/√v stays in the range training produces (Adam's |m̂| is
    // about √v̂ at most): with random m and v near 0 the ratio reaches 10⁴ and f32 rounding of the update
    // shows (one value in 70,001 off by 2e-5, the old per-parameter kernel the same).
    let v = HostTensor::f32(&[n], r.vec(n, 1e-4, 0.01)).unwrap();
    vec![r.tensor(&[n], DType::F32), r.tensor(&[n], DType::F32), r.tensor(&[n], DType::F32), v]
}

#[test]
fn adamw_step() {
    let mut r = Rng::new(41);
    for n in [1usize, 7, 257, 1000] {
        for step in [1u32, 3, 1000] {
            let ins = inputs(&mut r, n);
            check_op(
                &format!("adamw n={n} step={step}"),
                Op::AdamW(spec(Scalar::var("step"))),
                &ins,
                &[("step", step)],
                F32,
            );
        }
    }
    // A learning rate set at run time (a schedule's), as the bits of an f32.
    for lr in [3e-4f32, 0.0, 1e-2] {
        let ins = inputs(&mut r, 257);
        let op = Op::AdamW(AdamWSpec { lr: 99.0, lr_var: Some("lr".into()), ..spec(Scalar::var("step")) });
        check_op(&format!("adamw runtime lr {lr}"), op, &ins, &[("step", 2), ("lr", lr.to_bits())], F32);
    }
    let ins = inputs(&mut r, 61);
    check_op_on(common::gpu_f32_tier(), "tier adamw", Op::AdamW(spec(Scalar::Const(2))), &ins, &[], F32);
}

/// The sum of squares (two stages, a fixed order) against the reference at sizes around its stage
/// boundaries, and AdamW clipping by a global norm made of them: once with a norm above the limit (the
/// gradient scaled down) and once below it (unchanged).
#[test]
fn sum_squares_and_clipping() {
    let mut r = Rng::new(43);
    for n in [1usize, 255, 4097, 70_001, 1_100_000] {
        let x = r.tensor(&[n], DType::F32);
        let tol = common::Tol { abs: 1e-5, rel: 1e-5 };
        check_op(&format!("sum_squares n={n}"), Op::SumSquares, &[x], &[], tol);
    }
    for max in [0.05f32, 1e3] {
        let mut ins = inputs(&mut r, 257);
        ins.push(HostTensor::f32(&[1], vec![2.5]).unwrap());
        let op = Op::AdamW(AdamWSpec { max_grad_norm: Some(max), ..spec(Scalar::var("step")) });
        check_op(&format!("adamw clipped at {max}"), op, &ins, &[("step", 3)], F32);
    }
}

/// One AdamW op over a group of 19 parameters of assorted sizes (two dispatches on an adapter binding 65 or
/// more storage buffers: groups of 16 and 3), with and without clipping by a norm that one SumSquares makes
/// of all 19 gradients (two partial dispatches and the total), each param, m and v against the reference.
#[test]
fn grouped_adamw_and_sum_squares_over_many_tensors() {
    let mut r = Rng::new(47);
    let sizes = [1usize, 7, 255, 256, 257, 1000, 4097, 33, 70_001, 64, 5, 300, 9, 128, 1, 2048, 77, 12_289, 3];
    let mut ins = vec![];
    for &n in &sizes {
        ins.extend(inputs(&mut r, n));
    }
    check_op("adamw over 19 params", Op::AdamW(spec(Scalar::var("step"))), &ins, &[("step", 4)], F32);
    let grads: Vec<HostTensor> = (0..sizes.len()).map(|k| ins[4 * k + 1].clone()).collect();
    let tol = common::Tol { abs: 1e-5, rel: 1e-5 };
    check_op("sum_squares over 19 tensors", Op::SumSquares, &grads, &[], tol);
    let norm2: f32 = grads.iter().flat_map(|g| g.as_f32().unwrap()).map(|x| x * x).sum();
    for max in [0.05f32, 1e4] {
        let mut ins = ins.clone();
        ins.push(HostTensor::f32(&[1], vec![norm2]).unwrap());
        let op = Op::AdamW(AdamWSpec { max_grad_norm: Some(max), ..spec(Scalar::var("step")) });
        check_op(&format!("adamw over 19 params clipped at {max}"), op, &ins, &[("step", 2)], F32);
    }
}

/// The group a dispatch covers follows the adapter's storage bindings: 4 a parameter (+1 for the norm), at
/// most 16; the sum of squares 1 a tensor (+1 for its partial sums); every param, grad, m and v bound once.
#[test]
fn groups_follow_the_storage_binding_limit() {
    use wgpu_llm::kernels::{self, Arg, ArgInfo, Caps};
    let info = |n: usize| ArgInfo { shape: vec![n], dtype: DType::F32, shards: vec![(0, n)] };
    let count = 19;
    let mut ins: Vec<ArgInfo> = (0..4 * count).map(|i| info(10 + i)).collect();
    let clip = AdamWSpec { max_grad_norm: Some(1.0), ..spec(Scalar::Const(1)) };
    for (limit, clipped, want) in
        [(8, false, vec![2; 10]), (9, true, vec![2; 10]), (200, false, vec![16, 3]), (0, false, vec![2; 10])]
    {
        let caps = Caps { max_storage_buffers: limit, ..Caps::default() };
        let op = Op::AdamW(if clipped { clip.clone() } else { spec(Scalar::Const(1)) });
        let mut ins = ins.clone();
        if clipped {
            ins.push(info(1));
        }
        let l = kernels::lower(&op, &ins, &info(10), &caps).unwrap();
        let mut per: Vec<usize> = l.dispatches.iter().map(|d| (d.bindings.len() - clipped as usize) / 4).collect();
        // The last group holds what is left.
        let left = count - per[..per.len() - 1].iter().sum::<usize>();
        assert_eq!(per.pop(), Some(left), "limit {limit}");
        assert_eq!(per, want[..want.len() - 1], "limit {limit}");
        let bound: Vec<usize> = l
            .dispatches
            .iter()
            .flat_map(|d| {
                d.bindings.iter().filter_map(|b| match b.arg {
                    Arg::Input(j) => Some(j),
                    _ => None,
                })
            })
            .collect();
        let mut expect: Vec<usize> = (0..4 * count).collect();
        if clipped {
            // The norm is bound once a dispatch.
            expect.extend(std::iter::repeat_n(4 * count, l.dispatches.len()));
        }
        let mut bound = bound;
        bound.sort();
        expect.sort();
        assert_eq!(bound, expect, "limit {limit}");
    }
    ins.truncate(count);
    let caps = Caps { max_storage_buffers: 200, ..Caps::default() };
    let l = kernels::lower(&Op::SumSquares, &ins, &info(1), &caps).unwrap();
    let entries: Vec<&str> = l.dispatches.iter().map(|d| d.entry).collect();
    assert_eq!(entries, ["sum_squares_partial", "sum_squares_partial", "sum_squares_total"]);
    assert_eq!(l.dispatches[0].bindings.len(), 17);
}

#[test]
fn adamw_needs_f32() {
    let mut b = GraphBuilder::new();
    let p = b.param("p", &[4], DType::F16).unwrap();
    let g = b.input("g", &[4], DType::F16).unwrap();
    let m = b.state("m", &[4], DType::F16).unwrap();
    let v = b.state("v", &[4], DType::F16).unwrap();
    let e = b.op(Op::AdamW(spec(Scalar::Const(1))), &[p, g, m, v]).unwrap_err().to_string();
    assert!(e.contains("adamw") && e.contains("f32"), "{e}");
}
