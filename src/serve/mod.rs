//! `wgpu-llm serve`: the course's `/predict` service and an OpenAI-style API over the engine, on axum.
//! Handlers parse and check requests, then put jobs on a bounded queue (429 when full, 503 while shutting
//! down) for the one worker thread that owns the GPU (`worker`); replies come back through per-request
//! channels, streamed as server-sent events in OpenAI's chunk format. Every error is JSON
//! `{"error": "..."}` with its status. SIGINT/SIGTERM stop accepting, let running requests finish (within
//! a bound), and exit 0.
//!
//! Requests run one at a time in arrival order: continuous batching (decoding every active sequence as one
//! batch) is not built yet.

pub(crate) mod api;
mod batcher;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};

pub use worker::Load;

#[derive(Clone, Debug)]
pub struct Options {
    pub load: Load,
    pub host: String,
    pub port: u16,
    pub max_queue: usize,
    pub timeout: Duration,
    pub api_key: Option<String>,
    /// The largest request body, bytes (413 beyond).
    pub max_body: usize,
}

/// Counters for /metrics (Prometheus text).
#[derive(Default)]
pub struct Metrics {
    pub by_status: std::sync::Mutex<std::collections::BTreeMap<(String, u16), u64>>,
    pub queued: AtomicU64,
    pub tokens_generated: AtomicU64,
    pub prefill_tokens: AtomicU64,
    pub prefill_micros: AtomicU64,
    pub decode_tokens: AtomicU64,
    pub decode_micros: AtomicU64,
    pub cancelled: AtomicU64,
    /// Decode steps by the number of sequences they ran (`BATCH_BUCKETS`, then the rest), and their sum.
    pub batch_steps: [AtomicU64; BATCH_BUCKETS.len() + 1],
    pub batch_rows: AtomicU64,
}

/// Upper bounds of the batch-size histogram's buckets.
pub const BATCH_BUCKETS: [u64; 6] = [1, 2, 4, 8, 16, 32];

impl Metrics {
    /// A decode step of `rows` sequences.
    pub fn record_batch(&self, rows: usize) {
        let k = BATCH_BUCKETS.iter().position(|&b| rows as u64 <= b).unwrap_or(BATCH_BUCKETS.len());
        self.batch_steps[k].fetch_add(1, Ordering::Relaxed);
        self.batch_rows.fetch_add(rows as u64, Ordering::Relaxed);
    }

    fn record(&self, path: &str, status: u16) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry((path.to_string(), status)).or_default() += 1;
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        s += "# HELP wgpu_llm_requests_total Requests by path and status.\n# TYPE wgpu_llm_requests_total counter\n";
        if let Ok(m) = self.by_status.lock() {
            for ((path, status), n) in m.iter() {
                s += &format!("wgpu_llm_requests_total{{path=\"{path}\",status=\"{status}\"}} {n}\n");
            }
        }
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rate = |tok: u64, us: u64| if us == 0 { 0.0 } else { tok as f64 / (us as f64 / 1e6) };
        s += &format!(
            "# TYPE wgpu_llm_queue_length gauge\nwgpu_llm_queue_length {}\n\
             # TYPE wgpu_llm_tokens_generated_total counter\nwgpu_llm_tokens_generated_total {}\n\
             # TYPE wgpu_llm_cancelled_total counter\nwgpu_llm_cancelled_total {}\n\
             # TYPE wgpu_llm_prefill_tokens_per_second gauge\nwgpu_llm_prefill_tokens_per_second {:.3}\n\
             # TYPE wgpu_llm_decode_tokens_per_second gauge\nwgpu_llm_decode_tokens_per_second {:.3}\n",
            g(&self.queued),
            g(&self.tokens_generated),
            g(&self.cancelled),
            rate(g(&self.prefill_tokens), g(&self.prefill_micros)),
            rate(g(&self.decode_tokens), g(&self.decode_micros)),
        );
        // The counters the rates come from, so a client can take rates over any window.
        for (name, tokens, micros) in [
            ("prefill", &self.prefill_tokens, &self.prefill_micros),
            ("decode", &self.decode_tokens, &self.decode_micros),
        ] {
            s += &format!(
                "# TYPE wgpu_llm_{name}_tokens_total counter\nwgpu_llm_{name}_tokens_total {}\n\
                 # TYPE wgpu_llm_{name}_seconds_total counter\nwgpu_llm_{name}_seconds_total {:.6}\n",
                g(tokens),
                g(micros) as f64 / 1e6
            );
        }
        s += "# HELP wgpu_llm_batch_size Sequences per decode step.\n# TYPE wgpu_llm_batch_size histogram\n";
        let mut cum = 0;
        for (k, n) in self.batch_steps.iter().enumerate() {
            cum += g(n);
            let le = BATCH_BUCKETS.get(k).map_or("+Inf".to_string(), |b| b.to_string());
            s += &format!("wgpu_llm_batch_size_bucket{{le=\"{le}\"}} {cum}\n");
        }
        s += &format!("wgpu_llm_batch_size_sum {}\nwgpu_llm_batch_size_count {cum}\n", g(&self.batch_rows));
        s
    }
}

/// Shared by every handler.
pub struct App {
    jobs: std::sync::mpsc::SyncSender<worker::Job>,
    pub loaded: worker::Loaded,
    pub metrics: Arc<Metrics>,
    opts: Options,
    shutting_down: AtomicBool,
}

/// An API error: a status and a message, answered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl App {
    /// Queue a job: 503 while shutting down, 429 when the queue is full.
    fn submit(&self, job: worker::Job) -> std::result::Result<(), ApiError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down".into()));
        }
        // Jobs wait in the channel and, for generations, in the batcher until a slot frees: `queued` counts
        // both, so it is what bounds the queue.
        if self.metrics.queued.fetch_add(1, Ordering::Relaxed) >= self.opts.max_queue as u64 {
            self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError(StatusCode::TOO_MANY_REQUESTS, "the request queue is full: try again later".into()));
        }
        self.jobs.try_send(job).map_err(|e| {
            self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
            match e {
                std::sync::mpsc::TrySendError::Full(_) => {
                    ApiError(StatusCode::TOO_MANY_REQUESTS, "the request queue is full: try again later".into())
                }
                std::sync::mpsc::TrySendError::Disconnected(_) => {
                    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the model worker has stopped".into())
                }
            }
        })
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Load the models, serve until SIGINT/SIGTERM, then let running requests finish (at most `drain`).
pub fn run(opts: Options) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = std::sync::mpsc::sync_channel(opts.max_queue.max(1));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker = worker::spawn(opts.load.clone(), rx, metrics.clone(), ready_tx);
    let loaded = ready_rx.recv().map_err(|_| Error::Other("the model worker stopped while loading".into()))??;
    let addr: SocketAddr = format!("{}:{}", opts.host, opts.port)
        .parse()
        .map_err(|e| Error::Other(format!("--host {} --port {}: {e}", opts.host, opts.port)))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    let app = Arc::new(App { jobs: tx, loaded, metrics, opts: opts.clone(), shutting_down: AtomicBool::new(false) });
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Other(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().map_err(|e| Error::Other(e.to_string()))?;
        log::info!("serving {} on {}", app.loaded.chat, app.loaded.adapter);
        eprintln!("listening on http://{local}");
        let stop = Arc::new(tokio::sync::Notify::new());
        let (app2, stop2) = (app.clone(), stop.clone());
        let server = axum::serve(listener, api::router(app.clone())).with_graceful_shutdown(async move {
            shutdown_signal().await;
            eprintln!("shutting down: finishing running requests");
            app2.shutting_down.store(true, Ordering::Relaxed);
            stop2.notify_one();
        });
        tokio::select! {
            r = server => r.map_err(|e| Error::Other(format!("server: {e}"))),
            _ = async { stop.notified().await; tokio::time::sleep(opts.timeout.max(Duration::from_secs(5))).await } => {
                eprintln!("shutdown: requests still running after the bound were dropped");
                Ok(())
            }
        }
    })?;
    drop(app);
    drop(rt);
    // The worker ends once the last job sender (the app) is gone and its current job is done.
    let _ = worker.join();
    Ok(())
}
