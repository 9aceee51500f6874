//! Where a cold start's time goes: the GPU time of each kernel in the first decode step on a cold driver
//! cache (llvmpipe compiles a pipeline at its first dispatch, inside the timed span) against a warm step, and
//! the wall time of a first and a second prefill. Run with an empty Mesa cache:
//! `MESA_SHADER_CACHE_DIR=$(mktemp -d) cargo run --release --example cold_profile -- MODEL`.
use std::time::Instant;
use wgpu_llm::gpu::{Gpu, GpuOptions};
use wgpu_llm::session::Session;
use wgpu_llm::tensor::DType;

fn by_kernel(prof: &[wgpu_llm::exec::OpTiming]) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    for t in prof {
        *by.entry(t.kernel.clone()).or_insert(0.0) += t.micros / 1e3;
    }
    by
}

fn main() -> wgpu_llm::Result<()> {
    let model = std::env::args().nth(1).expect("a model path");
    let gpu = Gpu::new(&GpuOptions::default())?;
    let mut s = Session::load(&gpu, std::path::Path::new(&model), DType::F16, 256)?;
    let ids: Vec<u32> = (0..20).map(|i| 100 + 37 * i).collect();
    let t0 = Instant::now();
    s.forward(&ids)?;
    let first = t0.elapsed().as_secs_f64();
    s.reset();
    let t0 = Instant::now();
    s.forward(&ids)?;
    println!("prefill of {} tokens: first {first:.2} s, second {:.2} s", ids.len(), t0.elapsed().as_secs_f64());
    let cold = by_kernel(&s.profile_decode(7)?);
    let warm = by_kernel(&s.profile_decode(7)?);
    let mut v: Vec<_> = cold.iter().map(|(k, c)| (k.clone(), *c, warm[k])).collect();
    v.sort_by(|a, b| (b.1 - b.2).total_cmp(&(a.1 - a.2)));
    let (tc, tw): (f64, f64) = (cold.values().sum(), warm.values().sum());
    println!("decode step on the GPU: first {tc:.1} ms, second {tw:.1} ms");
    for (k, c, w) in v {
        println!("  {k:<48} first {c:>8.1} ms  second {w:>7.1} ms");
    }
    Ok(())
}
