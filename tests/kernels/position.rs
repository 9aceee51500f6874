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

/// RoPE with each sequence at its own position (continuous batching), with and without a frequency table,
/// at positions that differ per sequence (0, mid-cache, large), on T not a multiple of anything.
#[test]
fn rope_at_per_sequence_positions() {
    use wgpu_llm::tensor::HostTensor;
    let mut rng = Rng::new(25);
    for dt in dtypes() {
        for (shape, pos) in [([3, 2, 1, 8], vec![0u32, 17, 1000]), ([2, 3, 5, 64], vec![9, 0]), ([1, 1, 3, 6], vec![4])]
        {
            let x = rng.tensor(&shape, dt);
            let p = HostTensor::u32(&[shape[0]], pos.clone()).unwrap();
            let op = Op::RopeAt { theta: 10000.0 };
            check_op(&format!("rope_at {shape:?} {pos:?} {dt:?}"), op, &[x.clone(), p.clone()], &[], tol(dt));
            let table: Vec<f32> = (0..shape[3] / 2).map(|i| 0.8f32.powi(i as i32) / (1.0 + i as f32)).collect();
            let table = HostTensor::f32(&[shape[3] / 2], table).unwrap();
            let op = Op::RopeAt { theta: 500_000.0 };
            check_op(&format!("rope_at table {shape:?} {pos:?} {dt:?}"), op, &[x, p, table], &[], tol(dt));
        }
    }
    // RopeAt at [p] equals Rope at offset p (the reference of both).
    use wgpu_llm::reference::{eval, Val};
    let x = Val::from_host(&rng.tensor(&[1, 2, 4, 8], DType::F32));
    let p = Val::from_host(&HostTensor::u32(&[1], vec![11]).unwrap());
    let vars = Default::default();
    let at = eval(&Op::RopeAt { theta: 10000.0 }, &[&x, &p], &x.shape, &vars).unwrap();
    let plain = Op::Rope { theta: 10000.0, offset: Scalar::Const(11), inverse: false };
    assert_eq!(at, eval(&plain, &[&x], &x.shape, &vars).unwrap());
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 1, 2, 8], DType::F32).unwrap();
    let wrong = b.input("p", &[3], DType::U32).unwrap();
    assert!(matches!(b.op(Op::RopeAt { theta: 1e4 }, &[x, wrong]), Err(Error::Shape { .. })));
}

/// The packed q/k/v op of a decoder step: q rotated into heads-first order, k rotated and v copied into the
/// caches, at a runtime offset or per-sequence positions, with and without a frequency table; grouped heads,
/// T > 1 (a prefill), odd head counts, and rows past the cache's end dropped (cache of 9, offset 7, T 3).
#[test]
fn rope_qkv_cache_rotates_q_and_writes_the_caches() {
    use wgpu_llm::tensor::HostTensor;
    let mut rng = Rng::new(26);
    for dt in dtypes() {
        // (b, t, hq, hkv, d, smax, offset or per-sequence positions)
        for (b, t, hq, hkv, d, smax, pos) in [
            (1, 1, 3, 1, 8, 16, vec![5u32]),
            (1, 5, 4, 2, 64, 40, vec![0]),
            (1, 3, 2, 2, 6, 9, vec![7]),
            (3, 1, 9, 3, 8, 12, vec![0, 11, 4]),
            (2, 2, 3, 3, 4, 10, vec![9, 1]),
        ] {
            let qkv = rng.tensor(&[b, t, (hq + 2 * hkv) * d], dt);
            let kc = rng.tensor(&[b, hkv, smax, d], dt);
            let vc = rng.tensor(&[b, hkv, smax, d], dt);
            let table: Vec<f32> = (0..d / 2).map(|i| 0.9f32.powi(i as i32) / (1.0 + i as f32)).collect();
            let table = HostTensor::f32(&[d / 2], table).unwrap();
            let case = format!("rope_qkv_cache b{b} t{t} hq{hq} hkv{hkv} d{d} smax{smax} {pos:?} {dt:?}");
            let base = [qkv, kc, vc];
            if b == 1 {
                let op = Op::RopeQkvCache { theta: 10000.0, offset: Scalar::var("pos"), q_heads: hq, at: false };
                check_op(&case, op.clone(), &base, &[("pos", pos[0])], tol(dt));
                let ins = [&base[..], std::slice::from_ref(&table)].concat();
                check_op(&format!("{case} table"), op, &ins, &[("pos", pos[0])], tol(dt));
            }
            let p = HostTensor::u32(&[b], pos.clone()).unwrap();
            let op = Op::RopeQkvCache { theta: 500_000.0, offset: Scalar::Const(0), q_heads: hq, at: true };
            let ins = [&base[..], std::slice::from_ref(&p)].concat();
            check_op(&format!("{case} at"), op.clone(), &ins, &[], tol(dt));
            let ins = [&base[..], &[p, table]].concat();
            check_op(&format!("{case} at table"), op, &ins, &[], tol(dt));
        }
    }
    let mut b = GraphBuilder::new();
    let qkv = b.input("qkv", &[1, 1, 40], DType::F32).unwrap();
    let kc = b.state("kc", &[1, 1, 8, 8], DType::F32).unwrap();
    let vc = b.state("vc", &[1, 1, 8, 8], DType::F32).unwrap();
    // 40 = (3 + 2)·8 holds 3 q heads, not 4.
    let op = Op::RopeQkvCache { theta: 1e4, offset: Scalar::Const(0), q_heads: 4, at: false };
    assert!(matches!(b.op(op, &[qkv, kc, vc]), Err(Error::Shape { .. })));
    let op = Op::RopeQkvCache { theta: 1e4, offset: Scalar::Const(0), q_heads: 3, at: false };
    assert_eq!(b.op(op, &[qkv, kc, vc]).map(|q| b.shape(q).to_vec()).unwrap(), [1, 3, 1, 8]);
}
