//! `wgpu-llm bench all`: everything measured on the GPU at hand in one run — the adapter's ceilings first
//! (copy bandwidth, the best GEMM per dtype, the best GEMV per weight format, an empty dispatch, a
//! submission), then every kernel case, SmolLM2 per dtype, MiniLM embeddings, training and serving — each
//! figure `repeat` times, kept as `report::Report` (bench.json, bench.md and SVG charts in `-o DIR`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::report::{Collector, Figure, Report, RooflinePoint};
use crate::error::Result;
use crate::exec::Plan;
use crate::gpu::Gpu;
use crate::graph::GraphBuilder;
use crate::models::Precision;
use crate::tensor::{DType, HostTensor};

pub struct Options {
    /// A subset at small sizes (CI; under two minutes on the software adapter in a release build).
    pub quick: bool,
    pub repeat: usize,
    /// SmolLM2 and MiniLM (resolved by the caller).
    pub chat_model: PathBuf,
    pub encoder_model: PathBuf,
    /// Run `bench serve` (it starts this binary's server) at these stream counts; empty: no serving figures.
    pub serve_levels: Vec<usize>,
}

/// The stages, for a progress bar: (name, weight).
pub fn stages(o: &Options) -> Vec<&'static str> {
    let mut s = vec!["ceilings", "kernels", "models", "encoder", "training"];
    if !o.serve_levels.is_empty() {
        s.push("serving");
    }
    s
}

/// Wall-clock median of `n` runs of `f` (seconds).
fn timed(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut t = vec![];
    for _ in 0..n {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed().as_secs_f64());
    }
    Ok(super::report::median(&t))
}

/// The cost of a dispatch and of a submission: plans of 1 and of 65 chained scalings of 4 floats, each run
/// (upload, one submission, readback) timed; a dispatch is the difference over the 64 extra dispatches.
fn dispatch_costs(gpu: &Gpu) -> Result<(f64, f64)> {
    let plan_of = |n: usize| -> Result<Plan> {
        let mut g = GraphBuilder::new();
        let x = g.input("x", &[4], DType::F32)?;
        let mut y = x;
        for _ in 0..n {
            y = g.scale(y, 1.0)?;
        }
        Plan::compile(gpu, &g.finish(), &[y])
    };
    let x = HostTensor::f32(&[4], vec![1.0; 4])?;
    let (mut one, mut many) = (plan_of(1)?, plan_of(65)?);
    one.run(&[("x", &x)], &[])?;
    many.run(&[("x", &x)], &[])?;
    let t1 = timed(21, || one.run(&[("x", &x)], &[]).map(|_| ()))?;
    let t65 = timed(21, || many.run(&[("x", &x)], &[]).map(|_| ()))?;
    Ok((((t65 - t1) / 64.0).max(0.0) * 1e6, t1 * 1e6))
}

/// Whether a kernel case is a product (rated in GFLOP/s against the best GEMM) or memory-bound (GB/s
/// against the copy bandwidth).
fn is_product(name: &str) -> bool {
    ["matmul", "linear", "qgemm", "attention"].iter().any(|p| name.starts_with(p))
}

/// The weight format of a GEMV case (its ceiling).
fn gemv_format(name: &str, dtype: &str) -> Option<String> {
    (name.starts_with("gemv") || name.starts_with("qgemv")).then(|| {
        if name.contains("int8") {
            "int8".to_string()
        } else {
            dtype.to_string()
        }
    })
}

/// One pass over everything; figures go to `c`. Returns the roofline points and the profiled decode and
/// prefill of the last model run.
#[allow(clippy::type_complexity)]
fn pass(
    gpu: &Gpu,
    o: &Options,
    c: &mut Collector,
    stage: &mut dyn FnMut(&str),
) -> Result<(Vec<RooflinePoint>, String, Vec<(String, f64, usize)>, Vec<(String, f64, usize)>)> {
    stage("ceilings");
    let (dispatch_us, submit_us) = dispatch_costs(gpu)?;
    c.add("ceilings", "empty dispatch", "µs", false, dispatch_us);
    c.add("ceilings", "submission (one tiny dispatch, upload and readback)", "µs", false, submit_us);
    stage("kernels");
    let rows = super::kernels(gpu, None, if o.quick { 2 } else { 5 }, o.quick)?;
    let mut roofline = vec![];
    let (mut best_gemm, mut best_gemv): (Vec<(String, f64)>, Vec<(String, f64)>) = (vec![], vec![]);
    let best = |v: &mut Vec<(String, f64)>, k: String, x: f64| match v.iter_mut().find(|e| e.0 == k) {
        Some(e) => e.1 = e.1.max(x),
        None => v.push((k, x)),
    };
    for r in &rows {
        let label = format!("{} [{}]", r.name, r.kernel);
        if r.name.starts_with("copy") {
            c.add("ceilings", "copy bandwidth", "GB/s", true, r.gbps.unwrap_or(0.0)); // storage buffer to buffer
            continue;
        }
        if let (Some(gf), Some(gb)) = (r.gflops, r.gbps) {
            if gb > 0.0 {
                roofline.push(RooflinePoint { name: label.clone(), intensity: gf / gb, gflops: gf });
            }
        }
        if let Some(fmt) = gemv_format(&r.name, &r.dtype) {
            // One multiply-add per weight: weights/s = FLOP/s ÷ 2.
            best(&mut best_gemv, format!("best GEMV, {fmt} weights"), r.gflops.unwrap_or(0.0) / 2.0);
        } else if is_product(&r.name) && !r.name.starts_with("attention") {
            let fmt = if r.name.contains("int8") { "int8".to_string() } else { r.dtype.clone() };
            best(&mut best_gemm, format!("best GEMM, {fmt}"), r.gflops.unwrap_or(0.0));
        }
        match (is_product(&r.name), r.gflops, r.gbps) {
            (true, Some(gf), _) => c.add("kernels", &label, "GFLOP/s", true, gf),
            (_, _, Some(gb)) => c.add("kernels", &label, "GB/s", true, gb),
            _ => c.add("kernels", &label, "µs", false, r.micros),
        }
    }
    for (k, v) in best_gemm {
        c.add("ceilings", &k, "GFLOP/s", true, v);
    }
    for (k, v) in best_gemv {
        c.add("ceilings", &k, "G weights/s", true, v);
    }

    stage("models");
    let dtypes: &[&str] = if o.quick { &["f16"] } else { &["f32", "f16", "int8", "w8a8"] };
    let (mut profiled, mut decode_profile, mut prefill_profile) = (String::new(), vec![], vec![]);
    for d in dtypes {
        let prec = Precision::parse(d, DType::F16, None)?;
        let r = super::model::run(gpu, &o.chat_model, prec, if o.quick { 8 } else { 32 })?;
        let s = format!("SmolLM2 {d}");
        c.add("models", &format!("{s}: load"), "s", false, r.load_secs);
        c.add("models", &format!("{s}: time to first token (64-token prompt)"), "s", false, r.time_to_first_token_secs);
        c.add("models", &format!("{s}: prefill at 64 tokens"), "tokens/s", true, r.prefill_64_tokens_per_sec);
        c.add("models", &format!("{s}: prefill at 256 tokens"), "tokens/s", true, r.prefill_256_tokens_per_sec);
        c.add("models", &format!("{s}: decode"), "tokens/s", true, r.decode_tokens_per_sec);
        c.add("models", &format!("{s}: decode weight traffic"), "GB/s", true, r.decode_weight_gbps);
        c.add("models", &format!("{s}: dispatches per token"), "", false, r.decode_dispatches_per_token as f64);
        c.add("models", &format!("{s}: submissions per token"), "", false, r.decode_submissions_per_token);
        c.add("models", &format!("{s}: weight bytes per token"), "MB", false, r.weight_bytes_per_token as f64 / 1e6);
        c.add("models", &format!("{s}: GPU memory"), "MiB", false, r.gpu_memory_bytes as f64 / 1048576.0);
        if *d == "f16" || profiled.is_empty() {
            profiled = s;
            decode_profile = r.decode_profile;
            prefill_profile = r.prefill_256_profile;
        }
    }

    stage("encoder");
    let (b, t) = if o.quick { (8, 16) } else { (32, 32) };
    let mut enc = crate::session::encoder::Encoder::load(gpu, &o.encoder_model, Precision::from(DType::F32))?;
    let batch: Vec<Vec<u32>> =
        (0..b).map(|i| (0..t).map(|j| (101 + (i * 31 + j * 7) % 20_000) as u32).collect()).collect();
    enc.embed(&batch)?;
    let secs = timed(3, || enc.embed(&batch).map(|_| ()))?;
    c.add("models", &format!("MiniLM embeddings ({b} × {t} tokens)"), "sentences/s", true, b as f64 / secs);
    drop(enc);

    stage("training");
    let g = super::train::char_gpt(gpu, if o.quick { 1 } else { 3 })?;
    c.add("training", "char GPT-2 (4 layers, d 128, batch 12×64)", "tokens/s", true, g.per_sec);
    c.add("training", "char GPT-2 dispatches per step", "", false, g.dispatches_per_step as f64);
    if !o.quick {
        let m = super::train::minilm(gpu, &o.encoder_model, 2, 32)?;
        c.add("training", "MiniLM finetune (mean head, batch 32×32)", "sentences/s", true, m.per_sec);
        c.add("training", "MiniLM finetune dispatches per step", "", false, m.dispatches_per_step as f64);
    }

    if !o.serve_levels.is_empty() {
        stage("serving");
        let so = super::serve::Options {
            model: Some(o.chat_model.display().to_string()),
            levels: o.serve_levels.clone(),
            requests: 2,
            max_tokens: 16,
            ctx: 512,
            serve_args: vec![],
        };
        let r = super::serve::run(&so, &|_| {})?;
        for l in &r.levels {
            c.add("serving", &format!("{} streams: tokens/s", l.streams), "tokens/s", true, l.tokens_per_sec);
            c.add(
                "serving",
                &format!("{} streams: decode tokens/s", l.streams),
                "tokens/s",
                true,
                l.decode_tokens_per_sec,
            );
            c.add("serving", &format!("{} streams: time to first token p50", l.streams), "s", false, l.ttft_p50_secs);
        }
    }
    Ok((roofline, profiled, decode_profile, prefill_profile))
}

/// Which ceiling a figure is measured against.
fn ceiling_of(f: &Figure) -> Option<String> {
    match f.section.as_str() {
        "kernels" if f.unit == "GFLOP/s" => {
            let fmt = if f.name.contains("int8") {
                "int8"
            } else if f.name.contains(" f16") {
                "f16"
            } else {
                "f32"
            };
            Some(format!("best GEMM, {fmt}"))
        }
        "kernels" if f.unit == "GB/s" => Some("copy bandwidth".into()),
        "models" if f.unit == "GB/s" => Some("copy bandwidth".into()),
        _ => None,
    }
}

/// `repeat` passes; `stage(name)` as each stage starts.
pub fn run(gpu: &Gpu, o: &Options, stage: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut c = Collector::default();
    let mut last = (vec![], String::new(), vec![], vec![]);
    for _ in 0..o.repeat.max(1) {
        last = pass(gpu, o, &mut c, stage)?;
    }
    let (roofline, profiled, decode_profile, prefill_profile) = last;
    Ok(Report {
        adapter: gpu.info.name.clone(),
        driver: format!("{} {}", gpu.info.driver, gpu.info.driver_info).trim().to_string(),
        backend: format!("{:?}", gpu.info.backend),
        commit: commit(),
        date: utc_now(),
        quick: o.quick,
        repeat: o.repeat.max(1),
        figures: c.finish(&ceiling_of),
        roofline,
        profiled,
        decode_profile,
        prefill_profile,
    })
}

/// The source's commit: `WGPU_LLM_COMMIT`, else `git rev-parse` in the working directory, else "unknown".
fn commit() -> String {
    if let Ok(c) = std::env::var("WGPU_LLM_COMMIT") {
        return c;
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Now in UTC as `YYYY-MM-DDTHH:MM:SSZ` (days to the civil date: Howard Hinnant's algorithm).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Write bench.json, bench.md and the charts into `dir`; returns the chart file names.
pub fn write(dir: &Path, r: &Report) -> Result<Vec<String>> {
    let io = |p: &Path, e: std::io::Error| crate::error::Error::Format {
        file: p.display().to_string(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let charts = super::charts::draw(dir, r)?;
    let json = dir.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(r).unwrap_or_default()).map_err(|e| io(&json, e))?;
    let md = dir.join("bench.md");
    let names: Vec<&str> = charts.iter().map(String::as_str).collect();
    std::fs::write(&md, r.markdown(&names)).map_err(|e| io(&md, e))?;
    Ok(charts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates_are_civil() {
        // The format only; the algorithm's edge cases (leap years, eras) are Hinnant's.
        let d = super::utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z') && &d[10..11] == "T", "{d}");
    }
}
