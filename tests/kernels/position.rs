//! position family: RoPE (forward and inverse, runtime offset) and additive sinusoidal encodings.

use super::common::{self, check_op, check_op_on, Rng, F32_REDUCE};
use common::{dtypes, tol};
use wgpu_llm::error::Error;
use wgpu_llm::graph::{GraphBuilder, Op, Scalar};
use wgpu_llm::tensor::DType;

#[test]
fn rope_edge_shapes() {
    let mut rng = Rng::new(21);
    for dt in dtypes() {
        for shape in [[1, 1, 1, 2], [2, 3, 5, 8], [1, 2, 13, 6], [1, 2, 61, 64]] {
            let x = rng.tensor(&shape, dt);
            for inverse in [false, true] {
                let op = Op::Rope { theta: 10000.0, offset: Scalar::Const(0), inverse };
                check_op(
                    &format!("rope {shape:?} inverse={inverse} {dt:?}"),
                    op,
                    std::slice::from_ref(&x),
                    &[],
                    tol(dt),
                );
            }
            // A decode position as a runtime scalar, and Llama-3's theta.
            let op = Op::Rope { theta: 500_000.0, offset: Scalar::var("pos"), inverse: false };
            check_op(
                &format!("rope {shape:?} pos=37 {dt:?}"),
                op.clone(),
                std::slice::from_ref(&x),
                &[("pos", 37)],
                tol(dt),
            );
            check_op(&format!("rope {shape:?} pos=1000 {dt:?}"), op, &[x], &[("pos", 1000)], tol(dt));
        }
    }
}

#[test]
fn sinusoidal_edge_shapes() {
    let mut rng = Rng::new(22);
    for dt in dtypes() {
        for shape in [[1, 1, 1], [2, 5, 7], [1, 13, 64], [3, 4, 61]] {
            let x = rng.tensor(&shape, dt);
            let op = Op::AddSinusoidal { offset: Scalar::Const(0) };
            check_op(&format!("sinusoidal {shape:?} {dt:?}"), op, std::slice::from_ref(&x), &[], tol(dt));
            let op = Op::AddSinusoidal { offset: Scalar::var("pos") };
            check_op(&format!("sinusoidal {shape:?} pos=9 {dt:?}"), op, &[x], &[("pos", 9)], tol(dt));
        }
    }
}

#[test]
fn random_awkward_shapes_and_f32_tier() {
    let mut rng = Rng::new(23);
    for _ in 0..2 {
        let shape = [
            1 + rng.next_u32() as usize % 3,
            1 + rng.next_u32() as usize % 5,
            1 + rng.next_u32() as usize % 40,
            2 * (1 + rng.next_u32() as usize % 50),
        ];
        let x = rng.tensor(&shape, DType::F32);
        let op = Op::Rope { theta: 10000.0, offset: Scalar::Const(3), inverse: false };
        check_op_on(common::gpu_f32_tier(), &format!("rope {shape:?} f32 tier"), op, &[x], &[], F32_REDUCE);
    }
    let x = rng.tensor(&[2, 7, 33], DType::F32);
    let op = Op::AddSinusoidal { offset: Scalar::Const(5) };
    check_op_on(common::gpu_f32_tier(), "sinusoidal f32 tier", op, &[x], &[], F32_REDUCE);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let odd = b.input("x", &[1, 2, 3, 5], DType::F32).unwrap();
    let op = Op::Rope { theta: 10000.0, offset: Scalar::Const(0), inverse: false };
    assert!(matches!(b.op(op, &[odd]), Err(Error::Shape { .. })));
    let x2 = b.input("x2", &[3, 5], DType::F32).unwrap();
    assert!(matches!(b.op(Op::AddSinusoidal { offset: Scalar::Const(0) }, &[x2]), Err(Error::Shape { .. })));
}

/// RoPE with a frequency table (the scaled variants) against the reference, forward and inverse, at a
/// runtime position; and the backward rule through the table (autodiff passes the table along).
#[test]
fn rope_with_frequency_table() {
    let mut rng = Rng::new(24);
    for dt in dtypes() {
        for shape in [[1, 2, 5, 8], [1, 3, 17, 64]] {
            let x = rng.tensor(&shape, dt);
            let table: Vec<f32> = (0..shape[3] / 2).map(|i| 0.9f32.powi(i as i32) / (1.0 + i as f32)).collect();
            let table = wgpu_llm::tensor::HostTensor::f32(&[shape[3] / 2], table).unwrap();
            for inverse in [false, true] {
                let op = Op::Rope { theta: 10000.0, offset: Scalar::var("pos"), inverse };
                let case = format!("rope table {shape:?} inverse={inverse} {dt:?}");
                check_op(&case, op, &[x.clone(), table.clone()], &[("pos", 300)], tol(dt));
            }
        }
    }
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 1, 2, 8], DType::F32).unwrap();
    let bad = b.input("t", &[3], DType::F32).unwrap();
    let op = Op::Rope { theta: 10000.0, offset: Scalar::Const(0), inverse: false };
    assert!(matches!(b.op(op, &[x, bad]), Err(Error::Shape { .. })));
}
