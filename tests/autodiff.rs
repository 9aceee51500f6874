//! Autodiff of a small transformer block (attention + MLP + norms + loss): the reference interpreter's
//! gradients against central finite differences of its own loss, the GPU's gradients against the reference's,
//! and AdamW training steps on the GPU against the reference update.

#[path = "kernels/common.rs"]
mod common;

use std::collections::HashMap;

use common::{assert_close, gpu, Rng, Tol};
use wgpu_llm::autodiff::backward;
use wgpu_llm::exec::Plan;
use wgpu_llm::graph::{Act, AdamWSpec, AttnSpec, Graph, GraphBuilder, Op, Scalar, ValueId};
use wgpu_llm::reference::run_graph;
use wgpu_llm::tensor::{DType, HostTensor};

const B: usize = 2;
const T: usize = 5;
const C: usize = 8;
const H: usize = 2;
const HKV: usize = 1;
const D: usize = C / H;
const F: usize = 12;
const V: usize = 11;

struct Block {
    graph: Graph,
    loss: ValueId,
    params: Vec<ValueId>,
    grads: Vec<ValueId>,
}

fn heads(b: &mut GraphBuilder, x: ValueId, h: usize) -> ValueId {
    let r = b.reshape(x, &[B, T, h, D]).unwrap();
    b.op(Op::Permute0213, &[r]).unwrap()
}

/// x → LN → causal GQA attention with rotary q/k → dropout → o_proj → tanh → +x → RMSNorm → gated GELU MLP (Glu) → +h → head →
/// cross-entropy.
fn block(train: Option<AdamWSpec>) -> Block {
    let mut b = GraphBuilder::new();
    let f = DType::F32;
    let x = b.input("x", &[B, T, C], f).unwrap();
    let tgt = b.input("targets", &[B * T], DType::I32).unwrap();
    let p = |b: &mut GraphBuilder, n: &str, s: &[usize]| b.param(n, s, f).unwrap();
    let (ln_g, ln_b) = (p(&mut b, "ln.g", &[C]), p(&mut b, "ln.b", &[C]));
    let wq = p(&mut b, "wq", &[C, C]);
    let wk = p(&mut b, "wk", &[HKV * D, C]);
    let wv = p(&mut b, "wv", &[HKV * D, C]);
    let wo = p(&mut b, "wo", &[C, C]);
    let bo = p(&mut b, "bo", &[C]);
    let rms_g = p(&mut b, "rms.g", &[C]);
    let w1 = p(&mut b, "w1", &[F, C]);
    let w3 = p(&mut b, "w3", &[F, C]);
    let w2 = p(&mut b, "w2", &[C, F]);
    let head = p(&mut b, "head", &[V, C]);

    let h0 = b.layernorm(x, ln_g, ln_b, 1e-5).unwrap();
    let q = b.linear(h0, wq, None).unwrap();
    let k = b.linear(h0, wk, None).unwrap();
    let v = b.linear(h0, wv, None).unwrap();
    let (q, k, v) = (heads(&mut b, q, H), heads(&mut b, k, HKV), heads(&mut b, v, HKV));
    let rope = Op::Rope { theta: 10000.0, offset: Scalar::Const(0), inverse: false };
    let q = b.op(rope.clone(), &[q]).unwrap();
    let k = b.op(rope, &[k]).unwrap();
    let spec = AttnSpec {
        causal: true,
        scale: 1.0 / (D as f32).sqrt(),
        mask: false,
        q_offset: Scalar::Const(0),
        kv_len: Scalar::Const(T as u32),
    };
    let o = b.op(Op::Attention(spec), &[q, k, v]).unwrap();
    let o = b.op(Op::Permute0213, &[o]).unwrap();
    let o = b.reshape(o, &[B, T, C]).unwrap();
    // A fixed dropout mask (the step is a constant here) and a tanh, so both backward rules are checked.
    let o = b.op(Op::Dropout { p: 0.25, seed: 5, step: Scalar::Const(3) }, &[o]).unwrap();
    let o = b.linear(o, wo, Some(bo)).unwrap();
    let o = b.act(o, Act::Tanh).unwrap();
    let h1 = b.add(x, o).unwrap();
    let n = b.rmsnorm(h1, rms_g, 1e-5).unwrap();
    let u = b.op(Op::Glu { act: Act::GeluTanh }, &[n, w1, w3]).unwrap();
    let u = b.linear(u, w2, None).unwrap();
    let h2 = b.add(h1, u).unwrap();
    let logits = b.linear(h2, head, None).unwrap();
    let logits = b.reshape(logits, &[B * T, V]).unwrap();
    let loss = b.cross_entropy(logits, tgt).unwrap();

    let params = b.graph.params();
    let grads = backward(&mut b, loss, &params).unwrap();
    if let Some(spec) = train {
        wgpu_llm::optim::adamw(&mut b, &params, &grads, &spec, None).unwrap();
    }
    Block { graph: b.finish(), loss, params, grads }
}

fn leaves(g: &Graph, seed: u64) -> HashMap<String, HostTensor> {
    let mut rng = Rng::new(seed);
    let mut env = HashMap::new();
    for node in &g.nodes {
        match &node.op {
            Op::Param { name } | Op::Input { name } if name != "targets" => {
                let scale = if name.ends_with(".g") { 1.0 } else { 0.5 };
                let mut t = rng.tensor(&node.shape, DType::F32);
                if name.ends_with(".g") {
                    t = HostTensor::f32(&node.shape, t.to_f32().iter().map(|x| 1.0 + 0.3 * x).collect()).unwrap();
                }
                let _ = scale;
                env.insert(name.clone(), t);
            }
            _ => {}
        }
    }
    let mut tg: Vec<i32> = (0..B * T).map(|_| (rng.next_u32() % V as u32) as i32).collect();
    tg[3] = -100; // an ignored position
    env.insert("targets".into(), HostTensor::i32(&[B * T], tg).unwrap());
    env
}

fn name(g: &Graph, v: ValueId) -> String {
    wgpu_llm::graph::leaf_name(&g.node(v).op).unwrap().to_string()
}

#[test]
fn reference_gradients_match_finite_differences() {
    let blk = block(None);
    let env = leaves(&blk.graph, 1);
    let vars = HashMap::new();
    let mut outs = vec![blk.loss];
    outs.extend(&blk.grads);
    let res = run_graph(&blk.graph, &mut env.clone(), &vars, &outs).unwrap();
    let mut rng = Rng::new(7);
    let h = 1e-2f32;
    for (i, &p) in blk.params.iter().enumerate() {
        let pname = name(&blk.graph, p);
        let g = res[i + 1].to_f32();
        for _ in 0..3 {
            let j = rng.next_u32() as usize % g.len();
            let loss_at = |delta: f32| {
                let mut e = env.clone();
                let mut v = e[&pname].to_f32();
                v[j] += delta;
                e.insert(pname.clone(), HostTensor::f32(&e[&pname].shape.clone(), v).unwrap());
                run_graph(&blk.graph, &mut e, &vars, &[blk.loss]).unwrap()[0].to_f32()[0] as f64
            };
            let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
            let err = (fd - g[j] as f64).abs();
            assert!(
                err <= 2e-3 + 3e-2 * fd.abs(),
                "d loss / d {pname}[{j}]: autodiff {} vs finite difference {fd}",
                g[j]
            );
        }
    }
}

#[test]
fn gpu_gradients_equal_the_reference() {
    let blk = block(None);
    let env = leaves(&blk.graph, 2);
    let mut outs = vec![blk.loss];
    outs.extend(&blk.grads);
    let want = run_graph(&blk.graph, &mut env.clone(), &HashMap::new(), &outs).unwrap();
    let mut plan = Plan::compile(gpu(), &blk.graph, &outs).unwrap();
    for (n, t) in &env {
        plan.set(n, t).unwrap();
    }
    let got = plan.run(&[], &[]).unwrap();
    let tol = Tol { abs: 1e-4, rel: 2e-3 };
    assert_close("loss", &got[0], &want[0], tol);
    for (i, &p) in blk.params.iter().enumerate() {
        assert_close(&format!("grad {}", name(&blk.graph, p)), &got[i + 1], &want[i + 1], tol);
    }
}

#[test]
fn adamw_steps_on_the_gpu_follow_the_reference_and_lower_the_loss() {
    let spec = AdamWSpec { lr: 1e-2, ..AdamWSpec::default() };
    let blk = block(Some(spec));
    let mut env = leaves(&blk.graph, 3);
    let mut plan = Plan::compile(gpu(), &blk.graph, &[blk.loss]).unwrap();
    for (n, t) in &env {
        plan.set(n, t).unwrap();
    }
    let mut losses = vec![];
    for step in 1..=12u32 {
        let vars: HashMap<String, u32> = [("step".to_string(), step)].into();
        let want = run_graph(&blk.graph, &mut env, &vars, &[blk.loss]).unwrap();
        let got = plan.run(&[], &[("step", step)]).unwrap();
        assert_close(&format!("loss at step {step}"), &got[0], &want[0], Tol { abs: 1e-4, rel: 2e-3 });
        losses.push(got[0].to_f32()[0]);
    }
    for &p in &blk.params {
        let n = name(&blk.graph, p);
        assert_close(&format!("{n} after 12 steps"), &plan.read(&n).unwrap(), &env[&n], Tol { abs: 2e-4, rel: 5e-3 });
    }
    assert!(losses[11] < 0.8 * losses[0], "loss did not fall: {losses:?}");
}

/// A frozen base as LoRA trains it: x → (f16 weight, widened by Dequantize) → tanh → (a gated feed-forward
/// over int8 weights, QGlu) → (weight-only int8 QMatMul) → cross-entropy. The gradient of x (the only trainable value) against finite differences of the
/// reference's loss and the GPU against the reference; the backward widens each weight again, transposed,
/// instead of reading the forward's f32 copy (which would then live from forward to backward).
#[test]
fn frozen_f16_and_int8_weights_pass_gradients_through() {
    let (m, k, n) = (4usize, 64usize, 10usize);
    let mut b = GraphBuilder::new();
    let x = b.param("x", &[m, k], DType::F32).unwrap();
    let w1 = b.param("w1", &[k, k], DType::F16).unwrap();
    let wq = b.param("wq", &[n, k / 4], DType::U32).unwrap();
    let ws = b.param("wq_scale", &[n, k / 32], DType::F32).unwrap();
    // A gated feed-forward over int8 weights (QGlu), as a frozen int8 base's MLP.
    let glu: Vec<_> = ["wg", "wg_scale", "wu", "wu_scale"]
        .iter()
        .zip([
            (&[k, k / 4], DType::U32),
            (&[k, k / 32], DType::F32),
            (&[k, k / 4], DType::U32),
            (&[k, k / 32], DType::F32),
        ])
        .map(|(name, (shape, dt))| b.param(name, shape, dt).unwrap())
        .collect();
    let tgt = b.input("targets", &[m], DType::I32).unwrap();
    let w1f = b.op(Op::Dequantize { transpose: false }, &[w1]).unwrap();
    let h = b.linear(x, w1f, None).unwrap();
    let h = b.act(h, Act::Tanh).unwrap();
    let h =
        b.op(Op::QGlu { act: Act::Silu, quant: wgpu_llm::graph::ActQuant::None }, &[&[h][..], &glu].concat()).unwrap();
    let logits = b.op(Op::QMatMul { act: wgpu_llm::graph::ActQuant::None }, &[h, wq, ws]).unwrap();
    let loss = b.cross_entropy(logits, tgt).unwrap();
    let first_backward = b.graph.nodes.len();
    let grads = backward(&mut b, loss, &[x]).unwrap();
    let g = b.finish();
    // The backward's products read transposed dequantizations of the stored weights, never w1f.
    let uses_w1f = g.nodes[first_backward..].iter().any(|n| n.inputs.contains(&w1f));
    assert!(!uses_w1f, "the backward reads the forward's widened weight");
    let widened_t =
        g.nodes[first_backward..].iter().filter(|n| matches!(n.op, Op::Dequantize { transpose: true })).count();
    assert_eq!(widened_t, 4, "one transposed dequantization per frozen weight");

    let mut rng = Rng::new(11);
    let mut env = HashMap::new();
    env.insert("x".to_string(), rng.tensor(&[m, k], DType::F32));
    // Values an f16 holds exactly (HostTensor::f16 keeps what it is given; the GPU stores the rounding).
    let w1v: Vec<f32> = rng.vec(k * k, -0.3, 0.3).iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
    env.insert("w1".to_string(), HostTensor::f16(&[k, k], w1v).unwrap());
    let q = wgpu_llm::quant::QTensor::quantize(&rng.vec(n * k, -1.0, 1.0), n, k).unwrap();
    env.insert("wq".to_string(), HostTensor::u32(&[n, k / 4], q.packed()).unwrap());
    env.insert("wq_scale".to_string(), HostTensor::f32(&[n, k / 32], q.scales.clone()).unwrap());
    for w in ["wg", "wu"] {
        let q = wgpu_llm::quant::QTensor::quantize(&rng.vec(k * k, -0.3, 0.3), k, k).unwrap();
        env.insert(w.to_string(), HostTensor::u32(&[k, k / 4], q.packed()).unwrap());
        env.insert(format!("{w}_scale"), HostTensor::f32(&[k, k / 32], q.scales.clone()).unwrap());
    }
    env.insert("targets".to_string(), HostTensor::i32(&[m], vec![1, 9, -100, 4]).unwrap());
    let vars = HashMap::new();
    let want = run_graph(&g, &mut env.clone(), &vars, &[loss, grads[0]]).unwrap();
    let gx = want[1].to_f32();
    let h = 1e-2f32;
    for j in [0usize, 17, 130, 255] {
        let loss_at = |d: f32| {
            let mut e = env.clone();
            let mut v = e["x"].to_f32();
            v[j] += d;
            e.insert("x".into(), HostTensor::f32(&[m, k], v).unwrap());
            run_graph(&g, &mut e, &vars, &[loss]).unwrap()[0].to_f32()[0] as f64
        };
        let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
        assert!((fd - gx[j] as f64).abs() <= 1e-4 + 1e-2 * fd.abs(), "d loss / d x[{j}]: {} vs {fd}", gx[j]);
    }
    for dev in [gpu(), common::gpu_other_strategy()] {
        let mut plan = Plan::compile(dev, &g, &[loss, grads[0]]).unwrap();
        for (name, t) in &env {
            if name != "targets" {
                plan.set(name, t).unwrap();
            }
        }
        let got = plan.run(&[("targets", &env["targets"])], &[]).unwrap();
        let tol = Tol { abs: 1e-5, rel: 1e-3 };
        let how = if dev.texture_reads { "textures" } else { "storage" };
        assert_close(&format!("loss [{how}]"), &got[0], &want[0], tol);
        assert_close(&format!("grad x [{how}]"), &got[1], &want[1], tol);
    }
}

/// Attention built from its probabilities for a dropout on them (BERT's attention_probs_dropout_prob):
/// AttentionWeights (key padding mask) → Dropout → ·V. The gradients of q, k and v against finite
/// differences of the reference's loss, and the GPU's against the reference's, on both kernel strategies.
#[test]
fn attention_probability_dropout_gradients() {
    let (b, h, t, d) = (2usize, 2usize, 5usize, 4usize);
    let mut g = GraphBuilder::new();
    let q = g.param("q", &[b, h, t, d], DType::F32).unwrap();
    let k = g.param("k", &[b, h, t, d], DType::F32).unwrap();
    let v = g.param("v", &[b, h, t, d], DType::F32).unwrap();
    let mask = g.input("mask", &[b, t], DType::F32).unwrap();
    let tgt = g.input("targets", &[b * h * t], DType::I32).unwrap();
    let spec =
        AttnSpec { causal: false, scale: 0.5, mask: true, q_offset: Scalar::Const(0), kv_len: Scalar::Const(t as u32) };
    let drop = wgpu_llm::models::bert::Dropout { p: 0.3, seed: 4, attn: 0.3 };
    let mut k_drop = 0;
    let o = wgpu_llm::models::attention_with_dropout(&mut g, spec, &[q, k, v, mask], Some(drop), &mut k_drop).unwrap();
    assert!(g.graph.nodes.iter().any(|n| matches!(n.op, Op::AttentionWeights(_))));
    let o = g.reshape(o, &[b * h * t, d]).unwrap();
    let loss = g.cross_entropy(o, tgt).unwrap();
    let grads = backward(&mut g, loss, &[q, k, v]).unwrap();
    let graph = g.finish();
    let mut rng = Rng::new(21);
    let mut env = HashMap::new();
    for n in ["q", "k", "v"] {
        env.insert(n.to_string(), rng.tensor(&[b, h, t, d], DType::F32));
    }
    let mut m = vec![1.0f32; b * t];
    m[t - 1] = 0.0; // the first sequence's last key is padding
    m[2 * t - 2] = 0.0;
    env.insert("mask".into(), HostTensor::f32(&[b, t], m).unwrap());
    let tg: Vec<i32> = (0..b * h * t).map(|_| (rng.next_u32() % d as u32) as i32).collect();
    env.insert("targets".into(), HostTensor::i32(&[b * h * t], tg).unwrap());
    let vars: HashMap<String, u32> = [("step".to_string(), 7u32)].into_iter().collect();
    let mut outs = vec![loss];
    outs.extend(&grads);
    let want = run_graph(&graph, &mut env.clone(), &vars, &outs).unwrap();
    let eps = 1e-2f32;
    for (i, n) in ["q", "k", "v"].iter().enumerate() {
        let gv = want[i + 1].to_f32();
        for j in [0usize, 9, 33, 77] {
            let loss_at = |delta: f32| {
                let mut e = env.clone();
                let mut x = e[*n].to_f32();
                x[j] += delta;
                e.insert(n.to_string(), HostTensor::f32(&[b, h, t, d], x).unwrap());
                run_graph(&graph, &mut e, &vars, &[loss]).unwrap()[0].to_f32()[0] as f64
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
            assert!((fd - gv[j] as f64).abs() <= 1e-4 + 2e-2 * fd.abs(), "d loss / d {n}[{j}]: {} vs {fd}", gv[j]);
        }
    }
    for dev in [gpu(), common::gpu_other_strategy()] {
        let mut plan = Plan::compile(dev, &graph, &outs).unwrap();
        for n in ["q", "k", "v"] {
            plan.set(n, &env[n]).unwrap();
        }
        let got = plan.run(&[("mask", &env["mask"]), ("targets", &env["targets"])], &[("step", 7)]).unwrap();
        let tol = Tol { abs: 1e-5, rel: 1e-3 };
        for (i, what) in ["loss", "grad q", "grad k", "grad v"].iter().enumerate() {
            assert_close(what, &got[i], &want[i], tol);
        }
    }
}
