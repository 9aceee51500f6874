//! norm family: LayerNorm / RMSNorm forward, dx and dgamma on the GPU against the CPU reference.

use super::common::{self, check_op, check_op_on, Rng, F32_REDUCE};
use common::{dtypes, tol};
use wgpu_llm::error::Error;
use wgpu_llm::graph::{GraphBuilder, Op};
use wgpu_llm::tensor::{DType, HostTensor};

const EPS: f32 = 1e-5;

/// Edge shapes: rows of width 1, primes, non-multiples of 4 and of the workgroup, one wider than 256.
const SHAPES: &[&[usize]] = &[&[1, 1], &[3, 7], &[2, 3, 13], &[61], &[4, 300]];

/// x with an offset, so the mean is not ~0 and LayerNorm's centring matters.
fn x_tensor(rng: &mut Rng, shape: &[usize], dt: DType) -> HostTensor {
    let n = shape.iter().product();
    let v = rng.vec(n, -1.0, 1.0).iter().map(|x| 2.0 * x + 0.5).collect();
    if dt == DType::F16 {
        HostTensor::f16(shape, v).unwrap()
    } else {
        HostTensor::f32(shape, v).unwrap()
    }
}

#[test]
fn forward_edge_shapes() {
    let mut rng = Rng::new(1);
    for dt in dtypes() {
        for &shape in SHAPES {
            let c = *shape.last().unwrap();
            let x = x_tensor(&mut rng, shape, dt);
            let (g, b) = (rng.tensor(&[c], dt), rng.tensor(&[c], dt));
            check_op(
                &format!("layernorm {shape:?} {dt:?}"),
                Op::LayerNorm { eps: EPS },
                &[x.clone(), g.clone(), b],
                &[],
                tol(dt),
            );
            check_op(&format!("rmsnorm {shape:?} {dt:?}"), Op::RmsNorm { eps: EPS }, &[x, g], &[], tol(dt));
        }
    }
}

#[test]
fn rmsnorm_wide_row_and_large_activations() {
    let mut rng = Rng::new(2);
    for dt in dtypes() {
        let x = x_tensor(&mut rng, &[2, 4096], dt);
        let g = rng.tensor(&[4096], dt);
        check_op(&format!("rmsnorm [2, 4096] {dt:?}"), Op::RmsNorm { eps: EPS }, &[x, g.clone()], &[], tol(dt));
        // Activations near 22,500 (as in real checkpoints): x² overflows f16, so the sum must be f32.
        let v: Vec<f32> = rng.vec(2 * 4096, -22_500.0, 22_500.0);
        let x = if dt == DType::F16 { HostTensor::f16(&[2, 4096], v) } else { HostTensor::f32(&[2, 4096], v) }.unwrap();
        check_op(&format!("rmsnorm large {dt:?}"), Op::RmsNorm { eps: EPS }, &[x.clone(), g.clone()], &[], tol(dt));
        let b = rng.tensor(&[4096], dt);
        check_op(&format!("layernorm large {dt:?}"), Op::LayerNorm { eps: EPS }, &[x, g, b], &[], tol(dt));
    }
}

#[test]
fn backward_edge_shapes() {
    let mut rng = Rng::new(3);
    for dt in dtypes() {
        for &shape in SHAPES {
            let c = *shape.last().unwrap();
            let x = x_tensor(&mut rng, shape, dt);
            let g = rng.tensor(&[c], dt);
            let dy = rng.tensor(shape, dt);
            let ins = [x.clone(), g, dy.clone()];
            check_op(&format!("layernorm dx {shape:?} {dt:?}"), Op::LayerNormGradX { eps: EPS }, &ins, &[], tol(dt));
            check_op(&format!("rmsnorm dx {shape:?} {dt:?}"), Op::RmsNormGradX { eps: EPS }, &ins, &[], tol(dt));
            for rms in [false, true] {
                check_op(
                    &format!("dgamma rms={rms} {shape:?} {dt:?}"),
                    Op::NormGradGamma { eps: EPS, rms },
                    &[x.clone(), dy.clone()],
                    &[],
                    tol(dt),
                );
            }
        }
    }
}

#[test]
fn random_awkward_shapes() {
    let mut rng = Rng::new(4);
    for _ in 0..3 {
        let rows = 1 + rng.next_u32() as usize % 9;
        let c = 1 + rng.next_u32() as usize % 700;
        let shape = [rows, c];
        let x = x_tensor(&mut rng, &shape, DType::F32);
        let g = rng.tensor(&[c], DType::F32);
        let dy = rng.tensor(&shape, DType::F32);
        check_op(
            &format!("layernorm dx {shape:?}"),
            Op::LayerNormGradX { eps: EPS },
            &[x.clone(), g.clone(), dy.clone()],
            &[],
            F32_REDUCE,
        );
        check_op(&format!("rmsnorm {shape:?}"), Op::RmsNorm { eps: EPS }, &[x.clone(), g], &[], F32_REDUCE);
        check_op(&format!("dgamma {shape:?}"), Op::NormGradGamma { eps: EPS, rms: false }, &[x, dy], &[], F32_REDUCE);
    }
}

#[test]
fn f32_tier() {
    let mut rng = Rng::new(5);
    let x = x_tensor(&mut rng, &[3, 13], DType::F32);
    let g = rng.tensor(&[13], DType::F32);
    let b = rng.tensor(&[13], DType::F32);
    check_op_on(
        common::gpu_f32_tier(),
        "layernorm f32 tier",
        Op::LayerNorm { eps: EPS },
        &[x.clone(), g, b],
        &[],
        F32_REDUCE,
    );
    let dy = rng.tensor(&[3, 13], DType::F32);
    check_op_on(
        common::gpu_f32_tier(),
        "dgamma f32 tier",
        Op::NormGradGamma { eps: EPS, rms: true },
        &[x, dy],
        &[],
        F32_REDUCE,
    );
}

#[test]
fn wrong_gamma_shape_is_a_shape_error() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 8], DType::F32).unwrap();
    let g = b.input("g", &[7], DType::F32).unwrap();
    let beta = b.input("b", &[8], DType::F32).unwrap();
    assert!(matches!(b.op(Op::LayerNorm { eps: EPS }, &[x, g, beta]), Err(Error::Shape { .. })));
    assert!(matches!(b.op(Op::RmsNorm { eps: EPS }, &[x, g]), Err(Error::Shape { .. })));
    let dy = b.input("dy", &[2, 7], DType::F32).unwrap();
    assert!(matches!(b.op(Op::NormGradGamma { eps: EPS, rms: true }, &[x, dy]), Err(Error::Shape { .. })));
}

#[test]
fn row_kernels_on_textures_match_the_reference() {
    // CPU adapters: one invocation per row through textures (c % 4 == 0); storage devices: a workgroup per
    // row. The norms, their dx, and dgamma (its row statistics). Partial workgroups of 16 rows, a row
    // spanning texture rows, large activations, gamma as a param (its twin) and as an input (staged).
    use wgpu_llm::kernels::{norm, ArgInfo};
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut rng = Rng::new(3);
    let info = |t: &HostTensor| ArgInfo { shape: t.shape.clone(), dtype: t.dtype, shards: vec![(0, t.shape[0])] };
    for dt in dtypes() {
        for (shape, scale) in
            [(vec![1, 4], 1.0), (vec![17, 36], 1.0), (vec![2, 3, 20000], 1.0), (vec![5, 64], 20_000.0)]
        {
            let c = *shape.last().unwrap();
            let v: Vec<f32> = rng.vec(shape.iter().product(), -scale, scale);
            let x = if dt == DType::F16 { HostTensor::f16(&shape, v) } else { HostTensor::f32(&shape, v) }.unwrap();
            let (g, b) = (rng.tensor(&[c], dt), rng.tensor(&[c], dt));
            let dy = rng.tensor(&shape, dt);
            for (op, ins, entry) in [
                (Op::RmsNorm { eps: EPS }, vec![x.clone(), g.clone()], "rmsnorm_rows"),
                (Op::LayerNorm { eps: EPS }, vec![x.clone(), g.clone(), b.clone()], "layernorm_rows"),
                (Op::LayerNormGradX { eps: EPS }, vec![x.clone(), g.clone(), dy.clone()], "layernorm_backward_rows"),
                (Op::RmsNormGradX { eps: EPS }, vec![x.clone(), g.clone(), dy.clone()], "rmsnorm_backward_rows"),
                (Op::NormGradGamma { eps: EPS, rms: false }, vec![x.clone(), dy.clone()], "norm_row_stats_rows"),
                (Op::NormGradGamma { eps: EPS, rms: true }, vec![x.clone(), dy.clone()], "norm_row_stats_rows"),
            ] {
                let case = format!("{entry} {shape:?} ×{scale} {dt:?}");
                let infos: Vec<ArgInfo> = ins.iter().map(info).collect();
                let lowered = norm::lower(&op, &infos, &info(&x), &tex.caps()).unwrap();
                assert_eq!(lowered.dispatches[0].entry, entry, "{case}");
                crate::matmul::check_with_param(tex, &case, op.clone(), &ins, 1, tol(dt));
                check_op_on(tex, &format!("{case}, gamma staged"), op.clone(), &ins, &[], tol(dt));
                check_op_on(storage, &format!("{case} on storage"), op, &ins, &[], tol(dt));
            }
        }
    }
}
