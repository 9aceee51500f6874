//! The executor and runtime: compile errors are errors, limits are enforced with typed errors, runtime
//! scalars change without recompiling, memory is reused by liveness, per-op timings come back.

#[path = "kernels/common.rs"]
mod common;

use std::collections::HashMap;

use common::{assert_close, gpu, gpu_small_binding, Rng, F32_REDUCE};
use wgpu_llm::exec::Plan;
use wgpu_llm::gpu::{Gpu, GpuOptions};
use wgpu_llm::graph::{Act, AttnSpec, GraphBuilder, Op, Scalar};
use wgpu_llm::kernels::{Arg, BindKind, Binding, Dispatch, Word};
use wgpu_llm::reference::run_graph;
use wgpu_llm::tensor::{DType, HostTensor};
use wgpu_llm::Error;

#[test]
fn a_wgsl_error_is_a_compile_error_naming_the_kernel() {
    let d = Dispatch {
        family: "broken",
        source: "struct Params { n: u32 }\n@group(0) @binding(0) var<uniform> p: Params;\n@compute @workgroup_size(1) fn main() { let x: f32 = p.n; }",
        entry: "main",
        dtype: DType::F32,
        overrides: vec![],
        params: vec![("n", Word::U32(1))],
        bindings: vec![],
        grid: [1, 1, 1],
    };
    match gpu().pipeline(&d) {
        Err(Error::Compile { kernel, entry, message, .. }) => {
            assert_eq!((kernel.as_str(), entry.as_str()), ("broken", "main"));
            assert!(!message.is_empty());
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a broken shader compiled"),
    }
    // A missing entry point is caught by wgpu's validation, through the error scope.
    let d2 = Dispatch {
        source: "@compute @workgroup_size(1) fn main() {}",
        entry: "nope",
        bindings: vec![Binding { arg: Arg::Output, kind: BindKind::Write }],
        params: vec![],
        ..d
    };
    assert!(matches!(gpu().pipeline(&d2), Err(Error::Compile { .. })));
}

#[test]
fn an_activation_larger_than_one_binding_is_a_typed_error() {
    let small = gpu_small_binding(1024);
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[300], DType::F32).unwrap(); // 1200 bytes > 1024
    let y = b.act(x, Act::Relu).unwrap();
    match Plan::compile(&small, &b.finish(), &[y]) {
        Err(Error::TooLarge { tensor, bytes, limit, .. }) => {
            assert_eq!((tensor.as_str(), bytes, limit), ("x", 1200, 1024));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("compiled a plan whose input exceeds the binding limit"),
    }
}

#[test]
fn bad_runs_are_errors_not_panics() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[1, 2, 3, 4], DType::F32).unwrap();
    let y = b.op(Op::Rope { theta: 10000.0, offset: Scalar::var("pos"), inverse: false }, &[x]).unwrap();
    let mut plan = Plan::compile(gpu(), &b.finish(), &[y]).unwrap();
    let t = HostTensor::f32(&[1, 2, 3, 4], vec![0.5; 24]).unwrap();
    assert!(matches!(plan.run(&[("x", &t)], &[]), Err(Error::Run(_))), "a missing runtime scalar");
    let wrong = HostTensor::f32(&[2, 12], vec![0.5; 24]).unwrap();
    assert!(matches!(plan.run(&[("x", &wrong)], &[("pos", 1)]), Err(Error::Run(_))), "a wrong shape");
    assert!(matches!(plan.run(&[("nope", &t)], &[("pos", 1)]), Err(Error::Run(_))), "an unknown input");
    assert!(plan.run(&[("x", &t)], &[("pos", 1)]).is_ok());
}

/// Decode-style replay: one plan writes k/v into a cache at a runtime position and attends over it; every
/// step matches the reference and no pipeline is created after compile. The plan gets a device of its own:
/// the shared one's pipeline count moves while the other tests of this binary run in parallel threads.
#[test]
fn decode_steps_replay_one_plan_with_runtime_positions() {
    let gpu = Gpu::new(&GpuOptions::default()).expect("a GPU adapter");
    let (hq, hkv, d, smax) = (4, 2, 8, 9);
    let mut b = GraphBuilder::new();
    let q = b.input("q", &[1, hq, 1, d], DType::F32).unwrap();
    let k = b.input("k", &[1, hkv, 1, d], DType::F32).unwrap();
    let v = b.input("v", &[1, hkv, 1, d], DType::F32).unwrap();
    let kc = b.state("k_cache", &[1, hkv, smax, d], DType::F32).unwrap();
    let vc = b.state("v_cache", &[1, hkv, smax, d], DType::F32).unwrap();
    let rope = Op::Rope { theta: 10000.0, offset: Scalar::var("pos"), inverse: false };
    let qr = b.op(rope.clone(), &[q]).unwrap();
    let kr = b.op(rope, &[k]).unwrap();
    let kc = b.op(Op::CacheWrite { offset: Scalar::var("pos") }, &[kc, kr]).unwrap();
    let vc = b.op(Op::CacheWrite { offset: Scalar::var("pos") }, &[vc, v]).unwrap();
    let spec =
        AttnSpec { causal: true, scale: 0.35, mask: false, q_offset: Scalar::var("pos"), kv_len: Scalar::var("len") };
    let o = b.op(Op::Attention(spec), &[qr, kc, vc]).unwrap();
    let g = b.finish();
    let mut plan = Plan::compile(&gpu, &g, &[o]).unwrap();
    let pipelines = gpu.pipeline_count();
    let dispatches = plan.dispatch_count();
    let mut env: HashMap<String, HostTensor> = HashMap::new();
    let mut rng = Rng::new(11);
    for pos in 0..smax as u32 {
        let (tq, tk, tv) = (
            rng.tensor(&[1, hq, 1, d], DType::F32),
            rng.tensor(&[1, hkv, 1, d], DType::F32),
            rng.tensor(&[1, hkv, 1, d], DType::F32),
        );
        let vars = [("pos", pos), ("len", pos + 1)];
        let got = plan.run(&[("q", &tq), ("k", &tk), ("v", &tv)], &vars).unwrap();
        env.insert("q".into(), tq);
        env.insert("k".into(), tk);
        env.insert("v".into(), tv);
        let vm: HashMap<String, u32> = vars.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let want = run_graph(&g, &mut env, &vm, &[o]).unwrap();
        assert_close(&format!("decode step {pos}"), &got[0], &want[0], F32_REDUCE);
    }
    assert_close("k cache", &plan.read("k_cache").unwrap(), &env["k_cache"], F32_REDUCE);
    assert_eq!(gpu.pipeline_count(), pipelines, "decode steps created pipelines");
    assert_eq!(plan.dispatch_count(), dispatches);
}

#[test]
fn transient_memory_is_reused_by_liveness() {
    let n = 4096;
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[n], DType::F32).unwrap();
    let mut y = x;
    for i in 0..12 {
        y = b.act(y, if i % 2 == 0 { Act::Silu } else { Act::GeluTanh }).unwrap();
    }
    let plan = Plan::compile(gpu(), &b.finish(), &[y]).unwrap();
    let (persistent, transient) = plan.memory();
    assert_eq!(persistent, (n * 4) as u64);
    // A chain needs two live buffers at a time (input and output of one op), not twelve.
    assert!(transient <= 2 * (n * 4) as u64, "transient pool {transient} bytes for a 12-op chain");
}

#[test]
fn per_op_timings_cover_every_dispatch() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[64, 32], DType::F32).unwrap();
    let w = b.param("w", &[48, 32], DType::F32).unwrap();
    let y = b.linear(x, w, None).unwrap();
    let y = b.softmax(y, false).unwrap();
    let mut plan = Plan::compile(gpu(), &b.finish(), &[y]).unwrap();
    let mut rng = Rng::new(3);
    plan.set("w", &rng.tensor(&[48, 32], DType::F32)).unwrap();
    let t = plan.profile(&[("x", &rng.tensor(&[64, 32], DType::F32))], &[]).unwrap();
    assert_eq!(t.len(), plan.dispatch_count());
    assert_eq!(t.iter().map(|t| t.op.as_str()).collect::<Vec<_>>(), ["matmul", "softmax"]);
    assert!(t.iter().all(|t| t.micros > 0.0 && t.micros.is_finite()), "{t:?}");
}
