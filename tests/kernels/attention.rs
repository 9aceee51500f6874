//! attention family: forward, probabilities and dq/dk/dv on the GPU against the reference — causal and
//! bidirectional, key-padding masks, grouped-query heads, and decode (T = 1 against a cache with runtime
//! kv_len and q_offset).

use super::common::{self, check_op, check_op_on, Rng, F32_REDUCE};
use common::{dtypes, tol};
use wgpu_llm::error::Error;
use wgpu_llm::graph::{AttnSpec, GraphBuilder, Op, Scalar};
use wgpu_llm::tensor::{DType, HostTensor};

/// One attention problem: q [b, hq, t, d], k/v [b, hkv, s, d], optional padding mask, runtime vars.
struct Case {
    name: String,
    spec: AttnSpec,
    ins: Vec<HostTensor>,
    d_o: HostTensor,
    vars: Vec<(&'static str, u32)>,
}

#[allow(clippy::too_many_arguments)]
fn case(
    rng: &mut Rng,
    dt: DType,
    (b, hq, hkv, t, s, d): (usize, usize, usize, usize, usize, usize),
    causal: bool,
    mask: Option<DType>,
    q_offset: Scalar,
    kv_len: Scalar,
    vars: Vec<(&'static str, u32)>,
) -> Case {
    let q = rng.tensor(&[b, hq, t, d], dt);
    let k = rng.tensor(&[b, hkv, s, d], dt);
    let v = rng.tensor(&[b, hkv, s, d], dt);
    let mut ins = vec![q, k, v];
    if let Some(mdt) = mask {
        // Pad the tail of batch 0 and one key in the middle of the last batch.
        let mut m = vec![1.0f32; b * s];
        m[s - 1] = 0.0;
        if s > 2 {
            m[(b - 1) * s + s / 2] = 0.0;
        }
        // Left padding in the last batch: with a causal mask its first query row sees no key at all.
        if b > 1 {
            m[(b - 1) * s] = 0.0;
        }
        ins.push(if mdt == DType::F16 { HostTensor::f16(&[b, s], m) } else { HostTensor::f32(&[b, s], m) }.unwrap());
    }
    let spec = AttnSpec { causal, scale: 1.0 / (d as f32).sqrt(), mask: mask.is_some(), q_offset, kv_len };
    let name = format!("b{b} hq{hq} hkv{hkv} t{t} s{s} d{d} causal={causal} mask={mask:?} {vars:?} {dt:?}");
    Case { name, spec, ins, d_o: rng.tensor(&[b, hq, t, d], dt), vars }
}

fn cases(rng: &mut Rng, dt: DType) -> Vec<Case> {
    let c = Scalar::Const;
    vec![
        case(rng, dt, (2, 2, 2, 5, 5, 8), false, None, c(0), c(5), vec![]),
        case(rng, dt, (2, 2, 2, 5, 5, 8), true, None, c(0), c(5), vec![]),
        case(rng, dt, (2, 2, 2, 7, 7, 13), true, Some(DType::F32), c(0), c(7), vec![]),
        // GQA 4:2, keys over more than one workgroup block, head_dim over the workgroup size.
        case(rng, dt, (1, 4, 2, 3, 70, 96), false, Some(DType::F32), c(0), c(70), vec![]),
        case(rng, dt, (1, 4, 2, 6, 70, 5), true, None, c(64), c(70), vec![]),
        // Decode: one query at position 19 against a 37-slot cache holding 20 keys (runtime scalars).
        case(
            rng,
            dt,
            (1, 4, 2, 1, 37, 16),
            true,
            None,
            Scalar::var("pos"),
            Scalar::var("kv"),
            vec![("pos", 19), ("kv", 20)],
        ),
        // Decode where a kv head serves exactly 4 rows (GQA 4:1, batch 2, head_dim 64): the rows kernel's
        // 4-row variant over its whole unrolled width.
        case(rng, dt, (2, 8, 2, 1, 23, 64), true, None, c(21), c(22), vec![]),
        // attention_forward_rows (D a multiple of 4 up to 64, RQ = 8 rows per invocation here): row counts
        // that leave a partial row group, GQA 3:1, head_dim 64, 40, 12 and 8, and a chunk continuing a cache.
        case(rng, dt, (1, 6, 2, 19, 19, 64), true, None, c(0), c(19), vec![]),
        case(rng, dt, (2, 3, 3, 13, 70, 12), false, Some(DType::F32), c(0), c(66), vec![]),
        case(rng, dt, (2, 4, 1, 8, 8, 8), true, Some(DType::F16), c(0), c(8), vec![]),
        case(
            rng,
            dt,
            (2, 4, 2, 10, 41, 40),
            true,
            Some(dt),
            Scalar::var("pos"),
            Scalar::var("kv"),
            vec![("pos", 23), ("kv", 33)],
        ),
        // Chunked prefill continuing a cache: 3 queries at positions 10..12, 13 valid keys, padded.
        case(
            rng,
            dt,
            (2, 2, 1, 3, 37, 8),
            true,
            Some(dt),
            Scalar::var("pos"),
            Scalar::var("kv"),
            vec![("pos", 10), ("kv", 13)],
        ),
    ]
}

#[test]
fn forward_and_weights() {
    let mut rng = Rng::new(31);
    for dt in dtypes() {
        for cs in cases(&mut rng, dt) {
            check_op(&format!("attention {}", cs.name), Op::Attention(cs.spec.clone()), &cs.ins, &cs.vars, tol(dt));
            check_op(
                &format!("weights {}", cs.name),
                Op::AttentionWeights(cs.spec.clone()),
                &cs.ins,
                &cs.vars,
                tol(dt),
            );
        }
    }
}

#[test]
fn decode_step_changes_only_runtime_scalars() {
    // The same decode graph at several positions: every step must match the reference.
    let mut rng = Rng::new(32);
    let c = case(&mut rng, DType::F32, (1, 2, 1, 1, 37, 16), true, None, Scalar::var("pos"), Scalar::var("kv"), vec![]);
    for pos in [0u32, 1, 17, 36] {
        let vars = [("pos", pos), ("kv", pos + 1)];
        check_op(&format!("decode pos={pos}"), Op::Attention(c.spec.clone()), &c.ins, &vars, F32_REDUCE);
    }
}

#[test]
fn backward() {
    let mut rng = Rng::new(33);
    for dt in dtypes() {
        for cs in cases(&mut rng, dt) {
            let mut ins = cs.ins.clone();
            ins.push(cs.d_o.clone());
            for (what, op) in [
                ("dq", Op::AttentionGradQ(cs.spec.clone())),
                ("dk", Op::AttentionGradK(cs.spec.clone())),
                ("dv", Op::AttentionGradV(cs.spec.clone())),
            ] {
                check_op(&format!("{what} {}", cs.name), op, &ins, &cs.vars, tol(dt));
            }
        }
    }
}

#[test]
fn f32_tier() {
    let mut rng = Rng::new(34);
    let cs = case(
        &mut rng,
        DType::F32,
        (1, 4, 2, 5, 9, 12),
        true,
        Some(DType::F32),
        Scalar::Const(0),
        Scalar::Const(9),
        vec![],
    );
    let gpu = common::gpu_f32_tier();
    check_op_on(gpu, "attention f32 tier", Op::Attention(cs.spec.clone()), &cs.ins, &[], F32_REDUCE);
    let mut ins = cs.ins.clone();
    ins.push(cs.d_o.clone());
    check_op_on(gpu, "dk f32 tier", Op::AttentionGradK(cs.spec.clone()), &ins, &[], F32_REDUCE);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let spec = AttnSpec { causal: true, scale: 0.5, mask: true, q_offset: Scalar::Const(0), kv_len: Scalar::Const(4) };
    let mut b = GraphBuilder::new();
    let q = b.input("q", &[1, 3, 4, 8], DType::F32).unwrap();
    let k = b.input("k", &[1, 2, 4, 8], DType::F32).unwrap();
    let v = b.input("v", &[1, 2, 4, 8], DType::F32).unwrap();
    let m = b.input("m", &[1, 5], DType::F32).unwrap();
    // Hq = 3 is not a multiple of Hkv = 2, and the mask is [1, 5] instead of [1, 4].
    assert!(matches!(b.op(Op::Attention(spec.clone()), &[q, k, v, m]), Err(Error::Shape { .. })));
    let q2 = b.input("q2", &[1, 4, 4, 8], DType::F32).unwrap();
    assert!(matches!(b.op(Op::Attention(spec.clone()), &[q2, k, v, m]), Err(Error::Shape { .. })));
    // A missing d_out for a gradient op.
    let m2 = b.input("m2", &[1, 4], DType::F32).unwrap();
    assert!(matches!(b.op(Op::AttentionGradQ(spec), &[q2, k, v, m2]), Err(Error::Shape { .. })));
}

#[test]
fn prefill_reads_k_and_v_through_textures_on_cpu_adapters() {
    // attention_forward_rows with K and V staged as textures (more than 8 query rows, texture path on) and
    // through storage: both match the reference; decode keeps storage reads.
    use wgpu_llm::kernels::{attention, ArgInfo};
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut rng = Rng::new(35);
    let c = Scalar::Const;
    for dt in dtypes() {
        for (shape, mask, want_tex) in [
            ((1, 6, 2, 19, 19, 64), None, true),
            ((2, 3, 3, 13, 70, 12), Some(DType::F32), true),
            ((1, 4, 2, 9, 4100, 8), None, true),
            ((1, 4, 2, 1, 37, 16), None, false),
        ] {
            let cs =
                case(&mut rng, dt, shape, true, mask, c(shape.4 as u32 - shape.3 as u32), c(shape.4 as u32), vec![]);
            let info =
                |t: &HostTensor| ArgInfo { shape: t.shape.clone(), dtype: t.dtype, shards: vec![(0, t.shape[0])] };
            let infos: Vec<ArgInfo> = cs.ins.iter().map(info).collect();
            let op = Op::Attention(cs.spec.clone());
            let lowered = attention::lower(&op, &infos, &info(&cs.ins[0]), &tex.caps()).unwrap();
            let family = if want_tex { "attention_tex" } else { "attention" };
            assert_eq!(lowered.dispatches[0].family, family, "{}", cs.name);
            check_op_on(tex, &format!("texture attention {}", cs.name), op.clone(), &cs.ins, &[], tol(dt));
            check_op_on(storage, &format!("storage attention {}", cs.name), op, &cs.ins, &[], tol(dt));
        }
    }
}

#[test]
fn weights_run_as_scores_and_row_softmax_on_cpu_adapters() {
    // AttentionWeights on a texture-weights adapter (as many kv heads as query heads, f32): the scores as a
    // batched matmul, then attention_probs_rows; elsewhere attention_weights. Both match the reference:
    // causal and not, f32 and f16 masks (a first row that sees no key), a cache with runtime scalars.
    use wgpu_llm::kernels::{attention, ArgInfo};
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut rng = Rng::new(37);
    let c = Scalar::Const;
    let dt = DType::F32;
    let cases = [
        case(&mut rng, dt, (3, 4, 4, 32, 32, 32), false, Some(DType::F32), c(0), c(32), vec![]),
        case(&mut rng, dt, (2, 2, 2, 7, 7, 13), true, Some(DType::F16), c(0), c(7), vec![]),
        case(&mut rng, dt, (1, 3, 3, 70, 70, 8), true, None, c(0), c(70), vec![]),
        case(
            &mut rng,
            dt,
            (2, 2, 2, 3, 37, 8),
            true,
            Some(dt),
            Scalar::var("pos"),
            Scalar::var("kv"),
            vec![("pos", 10), ("kv", 13)],
        ),
    ];
    let info = |t: &HostTensor| ArgInfo { shape: t.shape.clone(), dtype: t.dtype, shards: vec![(0, t.shape[0])] };
    for cs in cases {
        let infos: Vec<ArgInfo> = cs.ins.iter().map(info).collect();
        let op = Op::AttentionWeights(cs.spec.clone());
        let out = ArgInfo { shape: vec![1], dtype: dt, shards: vec![] };
        let entries = |gpu: &wgpu_llm::gpu::Gpu| -> Vec<&'static str> {
            attention::lower(&op, &infos, &out, &gpu.caps()).unwrap().dispatches.iter().map(|d| d.entry).collect()
        };
        assert_eq!(entries(tex).last(), Some(&"attention_probs_rows"), "{}", cs.name);
        assert_eq!(entries(tex).len(), 2, "{}", cs.name);
        assert_eq!(entries(storage), ["attention_weights"], "{}", cs.name);
        check_op_on(tex, &format!("texture weights {}", cs.name), op.clone(), &cs.ins, &cs.vars, tol(dt));
        check_op_on(storage, &format!("storage weights {}", cs.name), op, &cs.ins, &cs.vars, tol(dt));
    }
    // Grouped-query heads keep attention_weights.
    let cs = case(&mut rng, dt, (1, 4, 2, 3, 70, 96), false, None, c(0), c(70), vec![]);
    let infos: Vec<ArgInfo> = cs.ins.iter().map(info).collect();
    let l = attention::lower(&Op::AttentionWeights(cs.spec.clone()), &infos, &info(&cs.ins[0]), &tex.caps()).unwrap();
    assert_eq!(l.dispatches[0].entry, "attention_weights");
}
