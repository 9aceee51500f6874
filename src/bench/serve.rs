//! `wgpu-llm bench serve`: the real server (this binary's `serve`, on 127.0.0.1 and a free port) under 1, 4,
//! 8 and 16 concurrent streaming clients. Per level: aggregate completion tokens/s, p50/p99 time to first
//! token and inter-token latency (the gaps between streamed deltas), errors. Clients speak plain HTTP through
//! ureq and read the server-sent events line by line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct Level {
    pub streams: usize,
    pub requests: usize,
    pub errors: usize,
    pub completion_tokens: usize,
    pub wall_secs: f64,
    /// Completion tokens of every stream per second of the level's wall time (prefills included).
    pub tokens_per_sec: f64,
    /// Tokens the batched decode steps made per second of decode steps (the server's counters over the
    /// level): every sequence's tokens after its first.
    pub decode_tokens_per_sec: f64,
    /// Mean sequences per decode step.
    pub mean_batch: f64,
    pub ttft_p50_secs: f64,
    pub ttft_p99_secs: f64,
    pub itl_p50_secs: f64,
    pub itl_p99_secs: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub max_tokens: usize,
    pub levels: Vec<Level>,
    /// Aggregate tokens/s at 8 streams over 1 stream (when both ran).
    pub speedup_8_over_1: Option<f64>,
    /// Decode tokens/s at 8 streams over 1 stream.
    pub decode_speedup_8_over_1: Option<f64>,
}

pub struct Options {
    /// The chat model (serve's default when None).
    pub model: Option<String>,
    pub levels: Vec<usize>,
    pub requests: usize,
    pub max_tokens: usize,
    pub ctx: usize,
    /// Extra `serve` arguments (e.g. `--dtype f32`).
    pub serve_args: Vec<String>,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `serve` and wait for its address.
fn start(o: &Options, max_batch: usize) -> Result<(Server, String)> {
    let exe = std::env::current_exe().map_err(|e| Error::Other(format!("bench serve: this binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--port", "0", "--ctx", &o.ctx.to_string()])
        .args(o.model.iter().flat_map(|m| ["-m", m.as_str()]))
        .args(["--max-batch", &max_batch.to_string(), "--max-queue", "1024", "--timeout", "3600"])
        .args(&o.serve_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Other(format!("bench serve: cannot start serve: {e}")))?;
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    let server = Server(child);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            return Err(Error::Other(format!("bench serve: serve exited before listening:\n{seen}")));
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            let base = addr.to_string();
            std::thread::spawn(move || for _ in err.lines() {});
            return Ok((server, base));
        }
        seen += &line;
    }
}

/// One streamed chat completion: (time to first token, gaps between later deltas, completion tokens).
fn stream(base: &str, prompt: &str, max_tokens: usize) -> std::result::Result<(f64, Vec<f64>, usize), String> {
    let body = serde_json::json!({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
        "temperature": 0, "stream": true});
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(3600)).build();
    let t0 = Instant::now();
    let r = agent
        .post(&format!("{base}/v1/chat/completions"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .map_err(|e| e.to_string())?;
    let (mut first, mut last, mut gaps, mut tokens) = (None, t0, vec![], 0);
    for line in BufReader::new(r.into_reader()).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(data).map_err(|e| format!("{e}: {data}"))?;
        if let Some(e) = v.get("error") {
            return Err(e.to_string());
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            tokens = n as usize;
        }
        if v["choices"][0]["delta"]["content"].as_str().is_some_and(|s| !s.is_empty()) {
            let now = Instant::now();
            match first {
                None => first = Some(now - t0),
                Some(_) => gaps.push((now - last).as_secs_f64()),
            }
            last = now;
        }
    }
    let first = first.ok_or("no token was streamed")?;
    Ok((first.as_secs_f64(), gaps, tokens))
}

/// The server's counters: (decode tokens, decode seconds, batch rows, batch steps).
fn counters(base: &str) -> Result<[f64; 4]> {
    let text = ureq::get(&format!("{base}/metrics"))
        .call()
        .map_err(|e| Error::Other(format!("bench serve: /metrics: {e}")))?
        .into_string()
        .map_err(|e| Error::Other(format!("bench serve: /metrics: {e}")))?;
    let get = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    };
    Ok([
        get("wgpu_llm_decode_tokens_total"),
        get("wgpu_llm_decode_seconds_total"),
        get("wgpu_llm_batch_size_sum"),
        get("wgpu_llm_batch_size_count"),
    ])
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

const PROMPTS: [&str; 4] = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "Describe the water cycle in detail.",
    "List some facts about the moon.",
];

pub fn run(o: &Options, progress: &dyn Fn(&str)) -> Result<Report> {
    let max_batch = o.levels.iter().copied().max().unwrap_or(1);
    let (_server, base) = start(o, max_batch)?;
    progress(&format!("serve is up at {base}; warming up"));
    stream(&base, PROMPTS[0], 4).map_err(|e| Error::Other(format!("bench serve: warm-up request: {e}")))?;
    let mut levels = vec![];
    for &c in &o.levels {
        progress(&format!("{c} concurrent streams × {} requests", o.requests));
        let before = counters(&base)?;
        let t0 = Instant::now();
        let handles: Vec<_> = (0..c)
            .map(|i| {
                let (base, n, r) = (base.clone(), o.max_tokens, o.requests);
                std::thread::spawn(move || (0..r).map(|k| stream(&base, PROMPTS[(i + k) % 4], n)).collect::<Vec<_>>())
            })
            .collect();
        let results: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
        let wall = t0.elapsed().as_secs_f64();
        let after = counters(&base)?;
        let d: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let (mut ttft, mut itl, mut tokens, mut errors) = (vec![], vec![], 0, 0);
        for r in results {
            match r {
                Ok((first, gaps, n)) => {
                    ttft.push(first);
                    itl.extend(gaps);
                    tokens += n;
                }
                Err(e) => {
                    errors += 1;
                    progress(&format!("  error: {e}"));
                }
            }
        }
        levels.push(Level {
            streams: c,
            requests: c * o.requests,
            errors,
            completion_tokens: tokens,
            wall_secs: wall,
            tokens_per_sec: tokens as f64 / wall,
            decode_tokens_per_sec: d[0] / d[1].max(1e-9),
            mean_batch: d[2] / d[3].max(1.0),
            ttft_p50_secs: percentile(&mut ttft, 0.5),
            ttft_p99_secs: percentile(&mut ttft, 0.99),
            itl_p50_secs: percentile(&mut itl, 0.5),
            itl_p99_secs: percentile(&mut itl, 0.99),
        });
    }
    let ratio = |f: fn(&Level) -> f64| {
        let at = |c: usize| levels.iter().find(|l| l.streams == c).map(f);
        at(8).zip(at(1)).map(|(a, b)| a / b)
    };
    let (speedup_8_over_1, decode_speedup_8_over_1) = (ratio(|l| l.tokens_per_sec), ratio(|l| l.decode_tokens_per_sec));
    let model = o.model.clone().unwrap_or_else(|| "default".into());
    Ok(Report { model, max_tokens: o.max_tokens, levels, speedup_8_over_1, decode_speedup_8_over_1 })
}
