//! The headless benchmark runner shared by `benches/` and `wgpu-llm bench`: each kernel is first validated
//! against the CPU reference (at the benchmarked shape; matmuls on sampled entries), then timed with GPU
//! timestamps (wall clock where the adapter has none), reporting µs, GFLOP/s and GB/s with the adapter.

pub mod all;
pub mod charts;
pub mod model;
pub mod report;
pub mod serve;
pub mod train;

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::RawKernel;
use crate::gpu::Gpu;
use crate::graph::{ActQuant, AttnSpec, Op, Scalar};
use crate::kernels::{self, matmul, ArgInfo, Lowered};
use crate::quant::{QTensor, BLOCK};
use crate::reference::{self, Val};
use crate::tensor::{DType, HostTensor};

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub kernel: String,
    pub dtype: String,
    pub micros: f64,
    pub gflops: Option<f64>,
    pub gbps: Option<f64>,
    /// Largest error against the reference, relative to the largest reference magnitude.
    pub max_err: f64,
    pub clock: String,
}

#[derive(Clone, Copy)]
enum Check {
    /// Run the reference for the whole op.
    Reference,
    /// Output equals input 0.
    Copy,
    /// c = a·bᵀ checked on sampled entries (m, k, n).
    Matmul(usize, usize, usize),
}

#[derive(Clone)]
struct Case {
    name: String,
    op: Op,
    inputs: Vec<HostTensor>,
    out_shape: Vec<usize>,
    out_dtype: DType,
    lowered: Lowered,
    flops: f64,
    bytes: f64,
    check: Check,
    vars: Vec<(&'static str, u32)>,
}

struct Rng(u64);
impl Rng {
    fn tensor(&mut self, shape: &[usize], dtype: DType) -> HostTensor {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        HostTensor { shape: shape.to_vec(), dtype, data: crate::tensor::HostData::F32(v) }
    }
}

fn info(t: &HostTensor) -> ArgInfo {
    ArgInfo { shape: t.shape.clone(), dtype: t.dtype, shards: vec![(0, t.shape.first().copied().unwrap_or(1))] }
}

fn case(gpu: &Gpu, name: &str, op: Op, inputs: Vec<HostTensor>, flops: f64, bytes: f64, check: Check) -> Result<Case> {
    let ins: Vec<(&[usize], DType)> = inputs.iter().map(|t| (t.shape.as_slice(), t.dtype)).collect();
    let (out_shape, out_dtype) = crate::graph::infer_shape(&op, &ins)?;
    let infos: Vec<ArgInfo> = inputs.iter().map(info).collect();
    let out = ArgInfo { shape: out_shape.clone(), dtype: out_dtype, shards: vec![(0, out_shape[0])] };
    let lowered = kernels::lower(&op, &infos, &out, &gpu.caps())?;
    Ok(Case { name: name.into(), op, inputs, out_shape, out_dtype, lowered, flops, bytes, check, vars: vec![] })
}

/// The shapes the cases run at. `full` is the benchmark; `quick` runs every case at small shapes (CI runs it
/// once, so no benchmark case can break unnoticed; the whole of it takes seconds on a software adapter).
struct Sizes {
    copy: usize,
    square: &'static [usize],
    /// The square size that also runs the baseline 4×4 kernel and f16.
    square_main: usize,
    gemv_n: &'static [usize],
    /// Rows of the prefill linear layer and of the int8 GEMM.
    prefill: usize,
    rows: usize,
    attention: &'static [(usize, usize)],
    qgemv_n: &'static [usize],
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                copy: 1 << 18,
                square: &[128],
                square_main: 128,
                gemv_n: &[1536],
                prefill: 24,
                rows: 16,
                attention: &[(24, 24), (1, 40)],
                qgemv_n: &[1536],
            }
        } else {
            Sizes {
                copy: 16 << 20,
                square: &[512, 1024, 2048],
                square_main: 1024,
                gemv_n: &[1536, 49152],
                prefill: 256,
                rows: 512,
                attention: &[(64, 64), (256, 256), (1024, 1024), (1, 256), (1, 1024)],
                qgemv_n: &[1536, 49152],
            }
        }
    }
}

/// The benchmark cases, in order; `filter` keeps those whose name contains it.
fn cases(gpu: &Gpu, filter: Option<&str>, quick: bool) -> Result<Vec<Case>> {
    let z = Sizes::new(quick);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut out = vec![];
    let want = |n: &str| filter.is_none_or(|f| n.contains(f));
    let mut dtypes = vec![DType::F32];
    if gpu.caps().f16 {
        dtypes.push(DType::F16);
    }
    if want("copy") {
        let n = z.copy;
        let x = rng.tensor(&[n], DType::F32);
        let name = format!("copy {} MiB", (n * 4) >> 20);
        let mut c = case(gpu, &name, Op::Scale { s: 1.0 }, vec![x], 0.0, 2.0 * 4.0 * n as f64, Check::Copy)?;
        c.lowered = Lowered { scratch: vec![], dispatches: vec![kernels::elementwise::copy_dispatch(n, DType::F32)] };
        out.push(c);
    }
    for &dt in &dtypes {
        for &s in z.square {
            let name = format!("matmul {s}x{s}x{s} {}", dt.name());
            if !want(&name) || (dt == DType::F16 && s != z.square_main) {
                continue;
            }
            let (a, b) = (rng.tensor(&[s, s], dt), rng.tensor(&[s, s], dt));
            let bytes = 3.0 * (s * s * dt.size()) as f64;
            let flops = 2.0 * (s * s * s) as f64;
            out.push(case(
                gpu,
                &name,
                Op::MatMul { ta: false, tb: true },
                vec![a.clone(), b.clone()],
                flops,
                bytes,
                Check::Matmul(s, s, s),
            )?);
            if s == z.square_main && dt == DType::F32 {
                let mut c = case(
                    gpu,
                    &format!("{name} (baseline 4x4)"),
                    Op::MatMul { ta: false, tb: true },
                    vec![a, b],
                    flops,
                    bytes,
                    Check::Matmul(s, s, s),
                )?;
                c.lowered =
                    Lowered { scratch: vec![], dispatches: vec![matmul::baseline_dispatch(s, s, s, false, true, dt)] };
                out.push(c);
            }
        }
        for &n in z.gemv_n {
            let name = format!("gemv 1x576 by 576x{n} {}", dt.name());
            if !want(&name) {
                continue;
            }
            let (x, w) = (rng.tensor(&[1, 576], dt), rng.tensor(&[n, 576], dt));
            let bytes = ((n * 576 + 576 + n) * dt.size()) as f64;
            out.push(case(
                gpu,
                &name,
                Op::MatMul { ta: false, tb: true },
                vec![x, w],
                2.0 * (n * 576) as f64,
                bytes,
                Check::Matmul(1, 576, n),
            )?);
        }
        // A prefill linear layer at SmolLM2's shape (x·Wᵀ): the kernel the adapter gets (gemm_tex on a CPU
        // adapter), and the storage-buffer tiled kernel for comparison.
        let p = z.prefill;
        let name = format!("linear {p}x576 by 1536x576 {}", dt.name());
        if want(&name) {
            let (x, w) = (rng.tensor(&[p, 576], dt), rng.tensor(&[1536, 576], dt));
            let bytes = ((p * 576 + 1536 * 576 + p * 1536) * dt.size()) as f64;
            let flops = 2.0 * (p * 576 * 1536) as f64;
            let op = Op::MatMul { ta: false, tb: true };
            let c = case(gpu, &name, op.clone(), vec![x, w], flops, bytes, Check::Matmul(p, 576, 1536))?;
            let mut tiled = Case { name: format!("{name} (storage tiled)"), ..c.clone() };
            let infos: Vec<ArgInfo> = c.inputs.iter().map(info).collect();
            let out_info = ArgInfo { shape: c.out_shape.clone(), dtype: c.out_dtype, shards: vec![(0, p)] };
            tiled.lowered = matmul::lower_kernel(&op, &infos, &out_info, matmul::Kernel::Tiled, &gpu.caps())?;
            out.push(c);
            out.push(tiled);
        }
        let rows = z.rows;
        let name = format!("softmax {rows}x4096 {}", dt.name());
        if want(&name) {
            let x = rng.tensor(&[rows, 4096], dt);
            out.push(case(
                gpu,
                &name,
                Op::Softmax { causal: false },
                vec![x],
                0.0,
                2.0 * (rows * 4096 * dt.size()) as f64,
                Check::Reference,
            )?);
        }
        let name = format!("rmsnorm {rows}x4096 {}", dt.name());
        if want(&name) {
            let (x, g) = (rng.tensor(&[rows, 4096], dt), rng.tensor(&[4096], dt));
            out.push(case(
                gpu,
                &name,
                Op::RmsNorm { eps: 1e-5 },
                vec![x, g],
                0.0,
                2.0 * (rows * 4096 * dt.size()) as f64,
                Check::Reference,
            )?);
        }
        // SmolLM2-135M's attention geometry: 9 query heads, 3 kv heads, head_dim 64.
        for &(t, s) in z.attention {
            let name = format!("attention causal T={t} S={s} 9/3 heads d64 {}", dt.name());
            // The long prefill takes tens of seconds on a software adapter: f32 only.
            if !want(&name) || (t == 1024 && dt == DType::F16) {
                continue;
            }
            let (q, k, v) =
                (rng.tensor(&[1, 9, t, 64], dt), rng.tensor(&[1, 3, s, 64], dt), rng.tensor(&[1, 3, s, 64], dt));
            let spec = AttnSpec {
                causal: true,
                scale: 0.125,
                mask: false,
                q_offset: Scalar::Const((s - t) as u32),
                kv_len: Scalar::Const(s as u32),
            };
            // Causal with the queries at the end of the cache: row i sees s − t + i + 1 keys.
            let pairs = (t * (s - t) + t * (t + 1) / 2) as f64;
            let flops = 4.0 * 9.0 * 64.0 * pairs;
            let bytes = ((9 * t * 64 * 2 + 2 * 3 * s * 64) * dt.size()) as f64;
            out.push(case(gpu, &name, Op::Attention(spec), vec![q, k, v], flops, bytes, Check::Reference)?);
        }
    }
    backward_cases(gpu, &z, &mut rng, &want, &mut out)?;
    // Int8 linear layers at SmolLM2's shapes (f32 activations): decode GEMVs and a 256-token prefill GEMM,
    // weight-only and W8A8 (dynamic; weight-only where the tier lacks the int8 dot product).
    let shapes = z.qgemv_n.iter().map(|&n| (1, n)).chain([(z.prefill, 1536)]);
    for (m, n) in shapes {
        for act in [ActQuant::None, ActQuant::Dynamic] {
            let kind = if m == 1 { "qgemv" } else { "qgemm" };
            let name = format!("{kind} {} {m}x576 by 576x{n} int8", act.name());
            if !want(&name) {
                continue;
            }
            let x = rng.tensor(&[m, 576], DType::F32);
            let q = QTensor::quantize(&rng.tensor(&[n, 576], DType::F32).to_f32(), n, 576)?;
            let wq = HostTensor::u32(&[n, 144], q.packed())?;
            let ws = HostTensor::f32(&[n, 576 / BLOCK], q.scales)?;
            let bytes = (n * 576 + 4 * n * 576 / BLOCK + 4 * m * (576 + n)) as f64;
            let flops = 2.0 * (m * n * 576) as f64;
            out.push(case(gpu, &name, Op::QMatMul { act }, vec![x, wq, ws], flops, bytes, Check::Reference)?);
        }
    }
    Ok(out)
}

/// The backward kernels a training step runs (f32, as training graphs are), at SmolLM2's shapes: a linear
/// layer's input and weight gradients, the norm, softmax, activation and loss backwards, the embedding's
/// scatter-add and the fused attention gradients (the classifier's path; decoders' attention backward runs
/// as batched matmuls).
fn backward_cases(gpu: &Gpu, z: &Sizes, rng: &mut Rng, want: &dyn Fn(&str) -> bool, out: &mut Vec<Case>) -> Result<()> {
    let f = DType::F32;
    let (p, rows) = (z.prefill, z.rows);
    let mut add = |name: String, op: Op, inputs: Vec<HostTensor>, flops: f64, bytes: f64| -> Result<()> {
        if want(&name) {
            out.push(case(gpu, &name, op, inputs, flops, bytes, Check::Reference)?);
        }
        Ok(())
    };
    // y = x·Wᵀ, x [p, 576], W [1536, 576]: dX = dY·W, dW = dYᵀ·X.
    let (dy, w, x) = (rng.tensor(&[p, 1536], f), rng.tensor(&[1536, 576], f), rng.tensor(&[p, 576], f));
    let flops = 2.0 * (p * 1536 * 576) as f64;
    let bytes = ((p * 1536 + 1536 * 576 + p * 576) * 4) as f64;
    let name = format!("linear backward dX {p}x1536 by 1536x576 f32");
    add(name, Op::MatMul { ta: false, tb: false }, vec![dy.clone(), w], flops, bytes)?;
    let name = format!("linear backward dW (dYT·X) 1536x{p} by {p}x576 f32");
    add(name, Op::MatMul { ta: true, tb: false }, vec![dy, x], flops, bytes)?;
    let rowbytes = (rows * 4096 * 4) as f64;
    let (x, g, dy) = (rng.tensor(&[rows, 4096], f), rng.tensor(&[4096], f), rng.tensor(&[rows, 4096], f));
    let y = HostTensor::f32(&[rows, 4096], {
        let v = x.to_f32();
        v.chunks(4096)
            .flat_map(|r| {
                let m = r.iter().fold(f32::MIN, |a, &b| a.max(b));
                let e: Vec<f32> = r.iter().map(|&a| (a - m).exp()).collect();
                let s: f32 = e.iter().sum();
                e.into_iter().map(move |a| a / s)
            })
            .collect()
    })?;
    add(format!("softmax backward {rows}x4096 f32"), Op::SoftmaxBackward, vec![y, dy.clone()], 0.0, 3.0 * rowbytes)?;
    let op = Op::RmsNormGradX { eps: 1e-5 };
    add(format!("rmsnorm backward dx {rows}x4096 f32"), op, vec![x.clone(), g, dy.clone()], 0.0, 3.0 * rowbytes)?;
    let op = Op::NormGradGamma { eps: 1e-5, rms: true };
    add(format!("rmsnorm backward dgamma {rows}x4096 f32"), op, vec![x.clone(), dy.clone()], 0.0, 2.0 * rowbytes)?;
    let op = Op::UnaryBackward { act: crate::graph::Act::GeluTanh };
    add(format!("gelu backward {rows}x4096 f32"), op, vec![x, dy], 0.0, 3.0 * rowbytes)?;
    // The loss over a 49,152-token vocabulary (SmolLM2's), every row learned.
    let (n, v) = (z.rows.min(64), 49_152);
    let logits = rng.tensor(&[n, v], f);
    let targets = HostTensor::i32(&[n], (0..n).map(|i| ((i * 7919) % v) as i32).collect())?;
    let dloss = HostTensor::f32(&[1], vec![1.0])?;
    let op = Op::CrossEntropyBackward { ignore_index: -100 };
    add(format!("cross-entropy backward {n}x{v} f32"), op, vec![logits, targets, dloss], 0.0, (2 * n * v * 4) as f64)?;
    // The embedding's gradient: p rows of 576 scattered into a 4,096-row table.
    let ids = HostTensor::u32(&[p], (0..p).map(|i| ((i * 131) % 4096) as u32).collect())?;
    let dy = rng.tensor(&[p, 576], f);
    let op = Op::EmbeddingBackward { vocab: 4096 };
    add(
        format!("embedding backward {p}x576 into 4096 rows f32"),
        op,
        vec![ids, dy],
        0.0,
        ((p + 4096) * 576 * 4) as f64,
    )?;
    // Attention's fused gradients at the forward's first geometry, whole sequence (training: no offset).
    let (t, _) = z.attention[0];
    let spec = AttnSpec {
        causal: true,
        scale: 0.125,
        mask: false,
        q_offset: Scalar::Const(0),
        kv_len: Scalar::Const(t as u32),
    };
    let qkv: Vec<HostTensor> = (0..4).map(|_| rng.tensor(&[1, 9, t, 64], f)).collect();
    // Each gradient recomputes the probabilities (QKᵀ) and makes one product more: about twice the forward.
    let flops = 2.0 * 4.0 * 9.0 * 64.0 * (t * (t + 1) / 2) as f64;
    let bytes = (4 * 9 * t * 64 * 4) as f64;
    for (g, op) in [
        ("dQ", Op::AttentionGradQ(spec.clone())),
        ("dK", Op::AttentionGradK(spec.clone())),
        ("dV", Op::AttentionGradV(spec.clone())),
    ] {
        add(format!("attention backward {g} causal T=S={t} 9 heads d64 f32"), op, qkv.clone(), flops, bytes)?;
    }
    Ok(())
}

fn validate(c: &Case, got: &HostTensor) -> Result<f64> {
    let g = got.to_f32();
    let err = |want: &dyn Fn(usize) -> f64, idx: &mut dyn Iterator<Item = usize>| {
        let mut scale = 1e-30f64;
        let mut worst = 0f64;
        for i in idx {
            let w = want(i);
            scale = scale.max(w.abs());
            worst = worst.max((g[i] as f64 - w).abs());
        }
        worst / scale
    };
    Ok(match c.check {
        Check::Copy => {
            let x = c.inputs[0].to_f32();
            err(&|i| x[i] as f64, &mut (0..g.len()))
        }
        Check::Matmul(m, k, n) => {
            let (a, b) = (c.inputs[0].to_f32(), c.inputs[1].to_f32());
            let want = |i: usize| {
                let (r, col) = (i / n, i % n);
                (0..k).map(|j| a[r * k + j] as f64 * b[col * k + j] as f64).sum::<f64>()
            };
            let total = m * n;
            err(&want, &mut (0..256).map(|s| (s * 7919 + s * s * 104_729) % total))
        }
        Check::Reference => {
            let ins: Vec<Val> = c.inputs.iter().map(Val::from_host).collect();
            let refs: Vec<&Val> = ins.iter().collect();
            let vars: HashMap<String, u32> = c.vars.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let w = reference::eval(&c.op, &refs, &c.out_shape, &vars)?;
            err(&|i| w[i], &mut (0..g.len()))
        }
    })
}

/// Validate, then time, every case. A kernel whose error exceeds its dtype's bound is an error.
/// `quick` runs every case at small shapes (`Sizes`).
pub fn kernels(gpu: &Gpu, filter: Option<&str>, reps: usize, quick: bool) -> Result<Vec<Row>> {
    let mut rows = vec![];
    let cases = cases(gpu, filter, quick)?;
    if cases.is_empty() {
        return Err(Error::Other(format!("no benchmark case matches --filter {:?}", filter.unwrap_or(""))));
    }
    for c in cases {
        let k = RawKernel::new(gpu, &c.lowered, &c.inputs, &c.out_shape, c.out_dtype, &c.vars)?;
        let got = k.run()?;
        let max_err = validate(&c, &got)?;
        let bound = if c.out_dtype == DType::F16 { 2e-2 } else { 1e-4 };
        if max_err.is_nan() || max_err > bound {
            return Err(Error::Other(format!(
                "{}: GPU result differs from the reference (max error {max_err:e} > {bound:e})",
                c.name
            )));
        }
        // The validation run above warmed the pipeline. Shapes that take over a second get a single timed run.
        let (first, clock) = k.time(1)?;
        let (mut t, _) = if first[0] > 1e6 { (first, clock) } else { k.time(reps.max(1))? };
        t.sort_by(|a, b| a.total_cmp(b));
        let micros = t[t.len() / 2];
        let entries: Vec<&str> = c.lowered.dispatches.iter().map(|d| d.entry).collect();
        rows.push(Row {
            name: c.name.clone(),
            kernel: entries.join("+"),
            dtype: c.inputs[0].dtype.name().into(),
            micros,
            gflops: (c.flops > 0.0).then(|| c.flops / micros / 1e3),
            gbps: (c.bytes > 0.0).then(|| c.bytes / micros / 1e3),
            max_err,
            clock: clock.into(),
        });
        eprintln!("  done: {} ({micros:.0} µs)", c.name);
    }
    Ok(rows)
}

/// Print the rows as a table (or JSON) with the adapter, then the ratios the engine is judged by.
pub fn print(gpu: &Gpu, rows: &[Row], json: bool) {
    if json {
        let v = serde_json::json!({
            "adapter": gpu.info.name, "backend": format!("{:?}", gpu.info.backend), "tier": gpu.tier.name(), "rows": rows
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!("adapter: {} ({:?}, tier {})", gpu.info.name, gpu.info.backend, gpu.tier.name());
    println!("{:<46} {:<22} {:>11} {:>9} {:>8} {:>9}", "kernel / shape", "entry", "µs", "GFLOP/s", "GB/s", "max err");
    for r in rows {
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<46} {:<22} {:>11.1} {:>9} {:>8} {:>9.1e}",
            r.name,
            r.kernel,
            r.micros,
            f(r.gflops),
            f(r.gbps),
            r.max_err
        );
    }
    let find = |n: &str| rows.iter().find(|r| r.name == n);
    if let (Some(t), Some(b)) = (find("matmul 1024x1024x1024 f32"), find("matmul 1024x1024x1024 f32 (baseline 4x4)")) {
        println!("tiled / baseline 4x4 at 1024³ f32: {:.2}×", b.micros / t.micros);
    }
    let copy = rows.iter().find(|r| r.name.starts_with("copy "));
    if let (Some(c), Some(g)) = (copy, find("gemv 1x576 by 576x49152 f32")) {
        println!("gemv 576x49152 f32 / copy bandwidth: {:.0}%", 100.0 * g.gbps.unwrap_or(0.0) / c.gbps.unwrap_or(1.0));
    }
}
