//! The one test helper: build a one-op graph, run it on the GPU and on the CPU reference, compare with a
//! named tolerance, and say where and how badly they differ.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::OnceLock;

use wgpu_llm::exec::Plan;
use wgpu_llm::gpu::{Gpu, GpuOptions, Tier};
use wgpu_llm::graph::{GraphBuilder, Op};
use wgpu_llm::kernels::ArgInfo;
use wgpu_llm::reference;
use wgpu_llm::tensor::{DType, HostData, HostTensor};

/// Named tolerance presets: |got − want| ≤ abs + rel·|want| elementwise.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f32,
    pub rel: f32,
}
/// f32 kernels with short reductions.
pub const F32: Tol = Tol { abs: 1e-5, rel: 1e-4 };
/// f32 kernels with long reductions (matmul over large K, attention, norms of wide rows).
pub const F32_REDUCE: Tol = Tol { abs: 1e-4, rel: 1e-3 };
/// f16 storage (11-bit mantissa) with f32 accumulation.
pub const F16: Tol = Tol { abs: 2e-2, rel: 2e-2 };
/// Exact (ids, copies, permutations).
pub const EXACT: Tol = Tol { abs: 0.0, rel: 0.0 };

/// The shared device for all tests (the best adapter; CI has only the software Vulkan driver).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(&GpuOptions::default()).expect("a GPU adapter (install mesa-vulkan-drivers)"))
}

/// A device forced to the f32 tier (no f16, no subgroups), so that tier's kernels are tested too.
pub fn gpu_f32_tier() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(&GpuOptions { tier: Some(Tier::F32), ..GpuOptions::default() }).expect("a GPU adapter"))
}

/// A device that binds int8 weights as storage buffers only (on a CPU adapter the default decode path
/// reads them as textures), so both GEMV paths are tested.
pub fn gpu_storage_weights() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::new(&GpuOptions { texture_reads: Some(false), ..GpuOptions::default() }).expect("a GPU adapter")
    })
}

/// A device that binds int8 weights as textures for decode, whatever the adapter.
pub fn gpu_texture_reads() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::new(&GpuOptions { texture_reads: Some(true), ..GpuOptions::default() }).expect("a GPU adapter")
    })
}

/// A device whose max storage binding is forced down to `bytes`, to test sharded tensors.
pub fn gpu_small_binding(bytes: u64) -> Gpu {
    Gpu::new(&GpuOptions { max_binding: Some(bytes), ..GpuOptions::default() }).expect("a GPU adapter")
}

/// A small deterministic generator (xorshift), so every test draws fresh but reproducible inputs.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u32() as f32 / 4_294_967_296.0)
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// A float tensor of `dtype` with values uniform in [-1, 1).
    pub fn tensor(&mut self, shape: &[usize], dtype: DType) -> HostTensor {
        let n = shape.iter().product();
        let v = self.vec(n, -1.0, 1.0);
        match dtype {
            DType::F16 => HostTensor::f16(shape, v).unwrap(),
            _ => HostTensor::f32(shape, v).unwrap(),
        }
    }
    pub fn ids(&mut self, shape: &[usize], below: u32) -> HostTensor {
        let n = shape.iter().product();
        HostTensor::u32(shape, (0..n).map(|_| self.next_u32() % below).collect()).unwrap()
    }
}

/// Round a float tensor's values to f16 precision (what the GPU holds for an F16 tensor), so the reference
/// sees the same inputs.
pub fn round_f16(t: &HostTensor) -> HostTensor {
    let mut t = t.clone();
    if t.dtype == DType::F16 {
        if let HostData::F32(v) = &mut t.data {
            for x in v.iter_mut() {
                *x = half::f16::from_f32(*x).to_f32();
            }
        }
    }
    t
}

/// Compare two tensors; panic with the mismatch count, worst index, max abs/rel error and the first pairs.
pub fn assert_close(case: &str, got: &HostTensor, want: &HostTensor, tol: Tol) {
    assert_eq!(got.shape, want.shape, "{case}: shapes differ");
    let (g, w) = (got.to_f32(), want.to_f32());
    let mut bad = vec![];
    let (mut max_abs, mut max_rel, mut worst) = (0f32, 0f32, 0usize);
    for i in 0..g.len() {
        let d = (g[i] - w[i]).abs();
        let ok = d <= tol.abs + tol.rel * w[i].abs();
        if !ok || g[i].is_nan() != w[i].is_nan() {
            bad.push(i);
        }
        if d > max_abs || d.is_nan() {
            max_abs = d;
            worst = i;
        }
        max_rel = max_rel.max(d / w[i].abs().max(1e-12));
    }
    if !bad.is_empty() {
        let pairs: Vec<String> = bad.iter().take(6).map(|&i| format!("[{i}] got {} want {}", g[i], w[i])).collect();
        panic!(
            "{case}: {} of {} values mismatch (tol abs {} rel {}); worst index {worst}: got {} want {}; \
             max abs err {max_abs:e}, max rel err {max_rel:e}; first: {}",
            bad.len(),
            g.len(),
            tol.abs,
            tol.rel,
            g[worst],
            w[worst],
            pairs.join(", ")
        );
    }
}

/// Build a graph of one op over the given inputs (leaf i is named "in{i}"; inputs the op updates in place
/// are State leaves, the rest Input leaves), run it on `gpu` and on the reference, and compare the op's
/// output — and, for in-place ops, the updated state — with `tol`.
pub fn check_op_on(gpu: &Gpu, case: &str, op: Op, inputs: &[HostTensor], vars: &[(&str, u32)], tol: Tol) {
    let inputs: Vec<HostTensor> = inputs.iter().map(round_f16).collect();
    let stateful: Vec<usize> = match &op {
        Op::AdamW(_) => (0..inputs.len() / 4 * 4).filter(|i| i % 4 != 1).collect(),
        Op::CacheWrite { .. } | Op::CacheWriteAt => vec![0],
        Op::RopeQkvCache { .. } => vec![1, 2],
        _ => vec![],
    };
    let mut b = GraphBuilder::new();
    let mut leaves = vec![];
    for (i, t) in inputs.iter().enumerate() {
        let name = format!("in{i}");
        let v =
            if stateful.contains(&i) { b.state(&name, &t.shape, t.dtype) } else { b.input(&name, &t.shape, t.dtype) };
        leaves.push(v.unwrap());
    }
    let out = b.op(op, &leaves).unwrap_or_else(|e| panic!("{case}: {e}"));
    let graph = b.finish();

    let mut plan = Plan::compile(gpu, &graph, &[out]).unwrap_or_else(|e| panic!("{case}: compile: {e}"));
    let mut feeds = vec![];
    for (i, t) in inputs.iter().enumerate() {
        let name = format!("in{i}");
        if stateful.contains(&i) {
            plan.set(&name, t).unwrap_or_else(|e| panic!("{case}: set {name}: {e}"));
        } else {
            feeds.push((name, t));
        }
    }
    let feeds_ref: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let got = plan.run(&feeds_ref, vars).unwrap_or_else(|e| panic!("{case}: run: {e}"));

    let mut env: HashMap<String, HostTensor> =
        inputs.iter().enumerate().map(|(i, t)| (format!("in{i}"), t.clone())).collect();
    let vars_map = vars.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let want = reference::run_graph(&graph, &mut env, &vars_map, &[out]).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_close(case, &got[0], &want[0], tol);
    for &i in &stateful {
        let name = format!("in{i}");
        let g = plan.read(&name).unwrap_or_else(|e| panic!("{case}: read {name}: {e}"));
        assert_close(&format!("{case} (state {name})"), &g, &env[&name], tol);
    }
}

/// `check_op_on` both kernel strategies: the shared device (textures on a CPU adapter, storage buffers on a
/// GPU) and the other one, so CI's CPU adapter also runs the storage kernels every GPU takes.
pub fn check_op(case: &str, op: Op, inputs: &[HostTensor], vars: &[(&str, u32)], tol: Tol) {
    check_op_on(gpu(), case, op.clone(), inputs, vars, tol);
    let other = gpu_other_strategy();
    let what = if other.texture_reads { "textures" } else { "storage" };
    check_op_on(other, &format!("{case} [{what}]"), op, inputs, vars, tol)
}

/// A device on the same adapter with the other kernel strategy than `gpu()` (texture reads flipped).
pub fn gpu_other_strategy() -> &'static Gpu {
    if gpu().texture_reads {
        gpu_storage_weights()
    } else {
        gpu_texture_reads()
    }
}

/// Whether the shared device runs f16 kernels (skip only the f16 half of a test when it does not; CI's
/// software adapter has f16).
pub fn has_f16() -> bool {
    gpu().caps().f16
}

/// The float dtypes the shared device runs (f16 only where it has SHADER_F16).
pub fn dtypes() -> Vec<DType> {
    if has_f16() {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    }
}

/// The tolerance preset for a kernel with reductions in `dt`.
pub fn tol(dt: DType) -> Tol {
    if dt == DType::F16 {
        F16
    } else {
        F32_REDUCE
    }
}

/// Fill `dir` with the tiny BERT classifier (tests/fixtures/tiny-bert-cls) and its word-level tokenizer
/// (tests/fixtures/tiny-bert-cls-data): a classifier folder the CLI and the server open.
pub fn tiny_classifier(dir: &std::path::Path) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(dir).unwrap();
    for (d, f) in [
        ("tiny-bert-cls", "config.json"),
        ("tiny-bert-cls", "model.safetensors"),
        ("tiny-bert-cls-data", "tokenizer.json"),
        ("tiny-bert-cls-data", "tokenizer_config.json"),
    ] {
        std::fs::copy(fixtures.join(d).join(f), dir.join(f)).unwrap();
    }
}

/// What lowering knows of a one-shard input of `shape` and `dtype` (for kernel-table and lowering checks).
pub fn info(shape: &[usize], dtype: DType) -> ArgInfo {
    ArgInfo { shape: shape.to_vec(), dtype, shards: vec![(0, shape[0])] }
}
