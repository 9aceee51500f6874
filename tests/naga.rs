//! Every WGSL family, in each dtype variant, parses and validates with naga (no device needed), and every
//! dispatch's Params words agree with the WGSL `Params` struct member by member.

use wgpu_llm::graph::{Act, ActQuant, AdamWSpec, AttnSpec, GraphBuilder, Op, Scalar, ValueId};
use wgpu_llm::kernels::{self, ArgInfo, Caps};
use wgpu_llm::tensor::DType;

fn validate(src: &str, what: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    module
}

#[test]
fn every_family_validates_in_every_variant() {
    for (family, src) in kernels::all_sources() {
        assert!(!src.trim().is_empty(), "family {family} has no WGSL source");
        for dt in [DType::F32, DType::F16] {
            validate(&format!("{}{}", kernels::prelude(dt), src), &format!("{family} ({})", dt.name()));
        }
    }
}

/// One graph holding a representative of every op (small shapes), to lower and inspect each dispatch.
fn sample_ops() -> (wgpu_llm::graph::Graph, Vec<ValueId>) {
    let mut b = GraphBuilder::new();
    let f = DType::F32;
    let x = b.input("x", &[2, 3, 8], f).unwrap();
    let w = b.input("w", &[5, 8], f).unwrap();
    let g = b.input("g", &[8], f).unwrap();
    let bias = b.input("bias", &[8], f).unwrap();
    let q = b.input("q", &[1, 4, 3, 8], f).unwrap();
    let k = b.input("k", &[1, 2, 6, 8], f).unwrap();
    let mask = b.input("mask", &[1, 6], f).unwrap();
    let ids = b.input("ids", &[2, 3], DType::U32).unwrap();
    let table = b.input("table", &[11, 8], f).unwrap();
    let logits = b.input("logits", &[4, 11], f).unwrap();
    let tgt = b.input("tgt", &[4], DType::I32).unwrap();
    let one = b.input("one", &[1], f).unwrap();
    let cache = b.state("cache", &[1, 2, 9, 8], f).unwrap();
    let p = b.param("p", &[5, 8], f).unwrap();
    let m = b.state("m", &[5, 8], f).unwrap();
    let v = b.state("v", &[5, 8], f).unwrap();
    let x1 = b.input("x1", &[1, 8], f).unwrap();
    let sq = b.input("sq", &[8, 8], f).unwrap();
    let qx = b.input("qx", &[3, 64], f).unwrap();
    let qx9 = b.input("qx9", &[9, 64], f).unwrap();
    let wq = b.param("wq", &[5, 16], DType::U32).unwrap();
    let wqs = b.param("wqs", &[5, 2], DType::F32).unwrap();
    let xqs = b.param("xqs", &[2], DType::F32).unwrap();
    let spec =
        AttnSpec { causal: true, scale: 0.3, mask: true, q_offset: Scalar::var("pos"), kv_len: Scalar::Const(6) };
    let mut outs = vec![];
    let mut add = |b: &mut GraphBuilder, op: Op, ins: &[ValueId]| outs.push(b.op(op, ins).unwrap());
    add(&mut b, Op::Add, &[x, x]);
    add(&mut b, Op::Add, &[x, bias]);
    add(&mut b, Op::Mul, &[x, x]);
    add(&mut b, Op::Scale { s: 2.0 }, &[x]);
    add(&mut b, Op::Dropout { p: 0.1, seed: 3, step: Scalar::var("step") }, &[x]);
    for act in [Act::Relu, Act::GeluErf, Act::GeluTanh, Act::Silu, Act::Tanh] {
        add(&mut b, Op::Unary { act }, &[x]);
        add(&mut b, Op::UnaryBackward { act }, &[x, x]);
    }
    add(&mut b, Op::SumRows, &[x]);
    add(&mut b, Op::Cast { to: DType::F16 }, &[x]);
    add(&mut b, Op::Permute0213, &[q]);
    add(&mut b, Op::CacheWrite { offset: Scalar::var("pos") }, &[cache, k]);
    let seq_pos = b.input("seq_pos", &[1], DType::U32).unwrap();
    let cache2 = b.state("cache2", &[1, 2, 9, 8], f).unwrap();
    add(&mut b, Op::CacheWriteAt, &[cache2, k, seq_pos]);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        add(&mut b, Op::MatMul { ta, tb }, &[sq, sq]);
    }
    add(&mut b, Op::MatMul { ta: false, tb: true }, &[x, w]);
    add(&mut b, Op::MatMul { ta: false, tb: true }, &[x1, w]);
    for xin in [qx, qx9] {
        add(&mut b, Op::QMatMul { act: ActQuant::None }, &[xin, wq, wqs]);
        add(&mut b, Op::QMatMul { act: ActQuant::Dynamic }, &[xin, wq, wqs]);
        add(&mut b, Op::QMatMul { act: ActQuant::Static }, &[xin, wq, wqs, xqs]);
    }
    add(&mut b, Op::LayerNorm { eps: 1e-5 }, &[x, g, bias]);
    add(&mut b, Op::LayerNormGradX { eps: 1e-5 }, &[x, g, x]);
    add(&mut b, Op::RmsNorm { eps: 1e-5 }, &[x, g]);
    add(&mut b, Op::RmsNormGradX { eps: 1e-5 }, &[x, g, x]);
    add(&mut b, Op::NormGradGamma { eps: 1e-5, rms: true }, &[x, x]);
    add(&mut b, Op::NormGradGamma { eps: 1e-5, rms: false }, &[x, x]);
    add(&mut b, Op::Softmax { causal: true }, &[x]);
    add(&mut b, Op::SoftmaxBackward, &[x, x]);
    add(&mut b, Op::Attention(spec.clone()), &[q, k, k, mask]);
    add(&mut b, Op::AttentionWeights(spec.clone()), &[q, k, k, mask]);
    add(&mut b, Op::AttentionGradQ(spec.clone()), &[q, k, k, mask, q]);
    add(&mut b, Op::AttentionGradK(spec.clone()), &[q, k, k, mask, q]);
    add(&mut b, Op::AttentionGradV(spec), &[q, k, k, mask, q]);
    add(&mut b, Op::Rope { theta: 10000.0, offset: Scalar::var("pos"), inverse: false }, &[q]);
    let rope_tab = b.input("rope_tab", &[4], DType::F32).unwrap();
    add(&mut b, Op::Rope { theta: 10000.0, offset: Scalar::var("pos"), inverse: false }, &[q, rope_tab]);
    add(&mut b, Op::RopeAt { theta: 10000.0 }, &[q, seq_pos]);
    add(&mut b, Op::RopeAt { theta: 10000.0 }, &[q, seq_pos, rope_tab]);
    add(&mut b, Op::AddSinusoidal { offset: Scalar::Const(0) }, &[x]);
    add(&mut b, Op::Embedding, &[table, ids]);
    add(&mut b, Op::EmbeddingBackward { vocab: 11 }, &[ids, x]);
    add(&mut b, Op::CrossEntropy { ignore_index: -100 }, &[logits, tgt]);
    add(&mut b, Op::CrossEntropyBackward { ignore_index: -100 }, &[logits, tgt, one]);
    let spec = AdamWSpec::default();
    add(&mut b, Op::AdamW(spec.clone()), &[p, w, m, v]);
    let n2 = b.op(Op::SumSquares, &[w]).unwrap();
    outs.push(n2);
    let clip = AdamWSpec { max_grad_norm: Some(1.0), ..spec };
    let (m2, v2) = (b.state("m2", &[5, 8], DType::F32).unwrap(), b.state("v2", &[5, 8], DType::F32).unwrap());
    let p2 = b.param("p2", &[5, 8], DType::F32).unwrap();
    outs.push(b.op(Op::AdamW(clip), &[p2, w, m2, v2, n2]).unwrap());
    (b.finish(), outs)
}

#[test]
fn params_structs_match_the_rust_mirrors() {
    let (graph, outs) = sample_ops();
    let caps = Caps {
        f16: true,
        subgroups: false,
        subgroup_min: 4,
        subgroup_max: 64,
        int8dot: true,
        texture_reads: false,
        max_texture_rows: 16384,
        max_uniform: 65536,
        ..Caps::default()
    };
    let mut checked = 0;
    for o in outs {
        let node = graph.node(o);
        let info = |v: ValueId| {
            let s = graph.shape(v).to_vec();
            ArgInfo { shards: vec![(0, s[0])], shape: s, dtype: graph.dtype(v) }
        };
        let ins: Vec<ArgInfo> = node.inputs.iter().map(|&v| info(v)).collect();
        let lowered =
            kernels::lower(&node.op, &ins, &info(o), &caps).unwrap_or_else(|e| panic!("lower {}: {e}", node.op.name()));
        assert!(
            !lowered.dispatches.is_empty() || matches!(node.op, Op::Reshape { .. }),
            "{} lowers to nothing",
            node.op.name()
        );
        for d in &lowered.dispatches {
            let what = format!("{}::{} (op {})", d.family, d.entry, node.op.name());
            let module = validate(&format!("{}{}", kernels::prelude(d.dtype), d.source), &what);
            assert!(module.entry_points.iter().any(|e| e.name == d.entry), "{what}: no such entry point");
            let params = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some("Params"))
                .unwrap_or_else(|| panic!("{what}: no struct Params"));
            let naga::TypeInner::Struct { members, .. } = &params.1.inner else {
                panic!("{what}: Params is not a struct")
            };
            let wgsl: Vec<(String, u32)> =
                members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset)).collect();
            let rust: Vec<(String, u32)> =
                d.params.iter().enumerate().map(|(i, (n, _))| (n.to_string(), 4 * i as u32)).collect();
            assert_eq!(wgsl, rust, "{what}: WGSL Params members/offsets differ from the Rust words");
            for (_, t) in members.iter().map(|m| ((), &module.types[m.ty].inner)) {
                assert!(
                    matches!(t, naga::TypeInner::Scalar(s) if s.width == 4),
                    "{what}: Params members must be 4-byte scalars"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} dispatches checked");
}
