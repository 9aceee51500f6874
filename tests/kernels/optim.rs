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
    let v = HostTensor::f32(&[n], r.vec(n, 0.0, 0.01)).unwrap(); // second moments are ≥ 0
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
