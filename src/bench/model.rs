//! `wgpu-llm bench model`: load time, prefill tokens/s at 64 and 256 prompt tokens, time to first token,
//! decode tokens/s, dispatches and weight bytes per decode step, GPU memory, with the adapter.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::models::Precision;
use crate::sample::{Sampler, SamplerConfig};
use crate::session::{generate, Session};

#[derive(Debug, Serialize)]
pub struct ModelBench {
    pub model: String,
    pub adapter: String,
    pub dtype: String,
    pub load_secs: f64,
    pub prefill_64_tokens_per_sec: f64,
    pub prefill_256_tokens_per_sec: f64,
    pub time_to_first_token_secs: f64,
    pub decode_tokens_per_sec: f64,
    pub decode_tokens: usize,
    pub decode_dispatches_per_token: usize,
    /// Command buffers submitted per decode step (`Gpu::submissions` over the generation less its prefill's,
    /// over the tokens after the first, which the prefill gives).
    pub decode_submissions_per_token: f64,
    pub weight_bytes_per_token: u64,
    pub decode_weight_gbps: f64,
    pub gpu_memory_bytes: u64,
    /// GPU time of one decode step by op (microseconds, summed over its dispatches), largest first.
    pub decode_profile: Vec<(String, f64, usize)>,
    /// The same for one prefill of 256 tokens.
    pub prefill_256_profile: Vec<(String, f64, usize)>,
    /// One decode step's GPU time by kernel (family:entry), largest first.
    pub decode_kernels: Vec<(String, f64, usize)>,
}

/// Dispatch timings summed by op, largest first.
fn by_op(timings: Vec<crate::exec::OpTiming>) -> Vec<(String, f64, usize)> {
    summed(timings.into_iter().map(|t| (t.op, t.micros)))
}

/// Dispatch timings summed by kernel (the pipeline key's family and entry point), largest first.
fn by_kernel(timings: Vec<crate::exec::OpTiming>) -> Vec<(String, f64, usize)> {
    summed(timings.into_iter().map(|t| (t.kernel.split(':').take(2).collect::<Vec<_>>().join(":"), t.micros)))
}

fn summed(timings: impl Iterator<Item = (String, f64)>) -> Vec<(String, f64, usize)> {
    let mut sums: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for (name, micros) in timings {
        let e = sums.entry(name).or_default();
        e.0 += micros;
        e.1 += 1;
    }
    let mut v: Vec<(String, f64, usize)> = sums.into_iter().map(|(k, (us, n))| (k, us, n)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// Prompts of arbitrary ids (the speed does not depend on the text); greedy decode of `n` tokens.
pub fn run(gpu: &Gpu, path: &Path, prec: Precision, n: usize) -> Result<ModelBench> {
    let mut s = Session::load(gpu, path, prec, 512)?;
    let ids = |t: usize| -> Vec<u32> { (0..t).map(|i| (i * 37 % 1000 + 100) as u32).collect() };
    // Tokens/s of a warm prefill of t tokens, and its submissions.
    let mut prefill = |t: usize| -> Result<(f64, u64)> {
        s.reset();
        s.forward(&ids(t))?; // compiles this length's plan and warms it
        s.reset();
        let (t0, n0) = (Instant::now(), gpu.submissions());
        s.forward(&ids(t))?;
        Ok((t as f64 / t0.elapsed().as_secs_f64(), gpu.submissions() - n0))
    };
    let (p64, prefill_64_submissions) = prefill(64)?;
    let (p256, _) = prefill(256)?;
    s.reset();
    let mut sampler = Sampler::new(SamplerConfig::default());
    let n0 = gpu.submissions();
    let g = generate(&mut s, &ids(64), n, &mut sampler, &[], 0, &mut |_| true)?;
    let decode_submits = (gpu.submissions() - n0).saturating_sub(prefill_64_submissions);
    let decode = g.timings.decode_tokens_per_sec;
    let decode_timings = s.profile_decode(100)?;
    let decode_kernels = by_kernel(decode_timings.clone());
    let decode_profile = by_op(decode_timings);
    let prefill_256_profile = by_op(s.profile_prefill(&ids(256))?);
    Ok(ModelBench {
        model: path.display().to_string(),
        adapter: gpu.info.name.clone(),
        dtype: s.prec.name(),
        load_secs: s.load_secs,
        prefill_64_tokens_per_sec: p64,
        prefill_256_tokens_per_sec: p256,
        time_to_first_token_secs: g.timings.time_to_first_token_secs,
        decode_tokens_per_sec: decode,
        decode_tokens: g.tokens.len(),
        decode_dispatches_per_token: s.decode_dispatches(),
        decode_submissions_per_token: decode_submits as f64 / g.tokens.len().saturating_sub(1).max(1) as f64,
        weight_bytes_per_token: s.bytes_per_token(),
        decode_weight_gbps: s.bytes_per_token() as f64 * decode / 1e9,
        gpu_memory_bytes: s.gpu_bytes(),
        decode_profile,
        prefill_256_profile,
        decode_kernels,
    })
}
