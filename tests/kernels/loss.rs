//! Loss family on the GPU against the CPU reference: cross-entropy and its gradient with ignored rows, rows
//! that are all ignored, wide rows.

use wgpu_llm::graph::{GraphBuilder, Op};
use wgpu_llm::tensor::{DType, HostTensor};

use crate::common::{self, check_op, check_op_on, Rng, F16, F32, F32_REDUCE};

fn logits(r: &mut Rng, n: usize, v: usize, dt: DType) -> HostTensor {
    let x = r.vec(n * v, -6.0, 6.0);
    match dt {
        DType::F16 => HostTensor::f16(&[n, v], x).unwrap(),
        _ => HostTensor::f32(&[n, v], x).unwrap(),
    }
}

fn targets(r: &mut Rng, n: usize, v: usize) -> HostTensor {
    // Mostly valid targets, some ignored (-100), one out of range.
    let t = (0..n)
        .map(|i| match i % 5 {
            3 => -100,
            4 if i == 4 => v as i32 + 2,
            _ => (r.next_u32() % v as u32) as i32,
        })
        .collect();
    HostTensor::i32(&[n], t).unwrap()
}

#[test]
fn cross_entropy_forward_and_backward() {
    let mut r = Rng::new(31);
    let mut dts = vec![(DType::F32, F32, F32_REDUCE)];
    if common::has_f16() {
        dts.push((DType::F16, F16, F16));
    }
    for (dt, tol, tol_fwd) in dts {
        for (n, v) in [(1usize, 1usize), (7, 61), (13, 1000), (5, 3)] {
            let (l, t) = (logits(&mut r, n, v, dt), targets(&mut r, n, v));
            let ignore_index = -100;
            let case = format!("cross_entropy [{n},{v}] {dt:?}");
            check_op(&case, Op::CrossEntropy { ignore_index }, &[l.clone(), t.clone()], &[], tol_fwd);
            let dloss = match dt {
                DType::F16 => HostTensor::f16(&[1], vec![0.75]).unwrap(),
                _ => HostTensor::f32(&[1], vec![0.75]).unwrap(),
            };
            check_op(&format!("{case} backward"), Op::CrossEntropyBackward { ignore_index }, &[l, t, dloss], &[], tol);
        }
    }
}

#[test]
fn all_rows_ignored_gives_zero() {
    let mut r = Rng::new(32);
    let l = logits(&mut r, 4, 9, DType::F32);
    let t = HostTensor::i32(&[4], vec![-1; 4]).unwrap();
    check_op("cross_entropy all ignored", Op::CrossEntropy { ignore_index: -1 }, &[l.clone(), t.clone()], &[], F32);
    let dloss = HostTensor::f32(&[1], vec![1.0]).unwrap();
    check_op(
        "cross_entropy_backward all ignored",
        Op::CrossEntropyBackward { ignore_index: -1 },
        &[l, t, dloss],
        &[],
        F32,
    );
}

#[test]
fn f32_tier() {
    let gpu = common::gpu_f32_tier();
    let mut r = Rng::new(33);
    let (l, t) = (logits(&mut r, 9, 300, DType::F32), targets(&mut r, 9, 300));
    check_op_on(gpu, "tier cross_entropy", Op::CrossEntropy { ignore_index: -100 }, &[l, t], &[], F32_REDUCE);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let l = b.input("l", &[4, 9], DType::F32).unwrap();
    let t = b.input("t", &[5], DType::I32).unwrap();
    let e = b.op(Op::CrossEntropy { ignore_index: -100 }, &[l, t]).unwrap_err().to_string();
    assert!(e.contains("cross_entropy") && e.contains("[5]"), "{e}");
}
