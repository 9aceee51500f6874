//! softmax family: (causal) softmax over the last dim and its backward on the GPU against the reference.

use super::common::{self, check_op, check_op_on, Rng, F16, F32};
use common::dtypes;
use wgpu_llm::error::Error;
use wgpu_llm::graph::{GraphBuilder, Op};
use wgpu_llm::tensor::{DType, HostTensor};

/// Edge shapes [..., T, S]: width 1, primes, non-multiples of 4 and of the workgroup, a 4096-wide row.
const SHAPES: &[&[usize]] = &[&[1, 1], &[3, 7], &[2, 5, 13], &[7, 61], &[2, 3, 300], &[1, 4096]];

fn tol(dt: DType) -> common::Tol {
    if dt == DType::F16 {
        F16
    } else {
        F32
    }
}

/// Logits spread over [-12, 12): the max subtraction matters (exp(12) ≫ f16's range for sums of many).
fn logits(rng: &mut Rng, shape: &[usize], dt: DType) -> HostTensor {
    let v = rng.vec(shape.iter().product(), -12.0, 12.0);
    if dt == DType::F16 { HostTensor::f16(shape, v) } else { HostTensor::f32(shape, v) }.unwrap()
}

#[test]
fn forward_edge_shapes() {
    let mut rng = Rng::new(11);
    for dt in dtypes() {
        for &shape in SHAPES {
            let x = logits(&mut rng, shape, dt);
            check_op(
                &format!("softmax {shape:?} {dt:?}"),
                Op::Softmax { causal: false },
                std::slice::from_ref(&x),
                &[],
                tol(dt),
            );
            let (t, s) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            if t <= s {
                check_op(&format!("causal softmax {shape:?} {dt:?}"), Op::Softmax { causal: true }, &[x], &[], tol(dt));
            }
        }
        // Square and T < S causal (a prefill continuing a cache).
        for shape in [[2, 6, 6], [1, 5, 67]] {
            let x = logits(&mut rng, &shape, dt);
            check_op(&format!("causal softmax {shape:?} {dt:?}"), Op::Softmax { causal: true }, &[x], &[], tol(dt));
        }
    }
}

#[test]
fn backward_edge_shapes() {
    let mut rng = Rng::new(12);
    for dt in dtypes() {
        for &shape in SHAPES {
            let y = rng.tensor(shape, dt);
            let dy = rng.tensor(shape, dt);
            check_op(&format!("softmax backward {shape:?} {dt:?}"), Op::SoftmaxBackward, &[y, dy], &[], tol(dt));
        }
    }
}

#[test]
fn random_awkward_shapes() {
    let mut rng = Rng::new(13);
    for _ in 0..3 {
        let t = 1 + rng.next_u32() as usize % 9;
        let s = t + rng.next_u32() as usize % 500;
        let x = logits(&mut rng, &[2, t, s], DType::F32);
        check_op(&format!("causal softmax [2, {t}, {s}]"), Op::Softmax { causal: true }, &[x], &[], F32);
    }
}

#[test]
fn f32_tier() {
    let mut rng = Rng::new(14);
    let x = logits(&mut rng, &[3, 4, 13], DType::F32);
    check_op_on(common::gpu_f32_tier(), "causal softmax f32 tier", Op::Softmax { causal: true }, &[x], &[], F32);
    let (y, dy) = (rng.tensor(&[3, 13], DType::F32), rng.tensor(&[3, 13], DType::F32));
    check_op_on(common::gpu_f32_tier(), "softmax backward f32 tier", Op::SoftmaxBackward, &[y, dy], &[], F32);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[5, 3], DType::F32).unwrap();
    assert!(matches!(b.op(Op::Softmax { causal: true }, &[x]), Err(Error::Shape { .. })));
    let dy = b.input("dy", &[5, 4], DType::F32).unwrap();
    assert!(matches!(b.op(Op::SoftmaxBackward, &[x, dy]), Err(Error::Shape { .. })));
}
