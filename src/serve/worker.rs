//! The one thread that owns the GPU: it opens the device, loads the models once, and serves jobs from the
//! bounded queue: generations are continuously batched (`batcher`: they join and leave a batch that decodes
//! one step at a time, each streaming its text through a per-request channel), classifier predictions and
//! embeddings run between steps. A prompt reuses the cached keys of the previous prompt's prefix.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::batcher::Batcher;
use super::Metrics;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions};
use crate::models::Precision;
use crate::sample::SamplerConfig;
use crate::session::encoder::Encoder;
use crate::session::{Session, TokenLogprob};
use crate::tokenizer::Tokenizer;
use crate::train::classifier::Classifier;

/// What the worker loads.
#[derive(Clone, Debug)]
pub struct Load {
    pub gpu: GpuOptions,
    pub chat: PathBuf,
    pub ctx: usize,
    pub precision: Option<String>,
    pub classifier: Option<PathBuf>,
    pub embedder: Option<PathBuf>,
    pub max_batch: usize,
    /// A LoRA adapter merged into the chat model.
    pub lora: Option<crate::train::lora::Adapter>,
}

pub enum Prompt {
    /// (role, content) pairs through the model's chat template.
    Chat(Vec<(String, String)>),
    Text(String),
}

pub struct GenJob {
    pub prompt: Prompt,
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub stops: Vec<String>,
    /// Alternatives per token in the logprobs (None: no logprobs).
    pub logprobs: Option<usize>,
    pub deadline: Instant,
    pub events: mpsc::UnboundedSender<Event>,
}

pub enum Job {
    Generate(GenJob),
    Predict { texts: Vec<String>, reply: oneshot::Sender<Result<Vec<serde_json::Value>>> },
    Embed { texts: Vec<String>, reply: oneshot::Sender<Result<(Vec<Vec<f32>>, usize)>> },
}

#[derive(Debug)]
pub enum Event {
    /// Text to append, with its tokens' log-probabilities when asked for.
    Delta {
        text: String,
        logprobs: Vec<serde_json::Value>,
    },
    Done {
        finish_reason: &'static str,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    /// The request cannot be served as it is (an empty prompt, one longer than the context): a 400.
    Rejected(String),
    Error(String),
}

pub(super) struct Chat<'g> {
    pub session: Session<'g>,
    pub tok: Tokenizer,
}

struct Models<'g> {
    chat: Chat<'g>,
    classifier: Option<(Classifier<'g>, Tokenizer)>,
    embedder: Option<(Encoder<'g>, Tokenizer, usize)>,
}

/// Names of what was loaded, for /v1/models and the log.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub chat: String,
    pub classifier: Option<(String, Vec<String>)>,
    pub embedder: Option<String>,
    pub adapter: String,
}

fn name_of(p: &std::path::Path) -> String {
    p.file_stem().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into_owned())
}

fn load<'g>(gpu: &'g Gpu, l: &Load) -> Result<(Models<'g>, Loaded)> {
    let float = if gpu.caps().f16 { crate::tensor::DType::F16 } else { crate::tensor::DType::F32 };
    let prec: Precision = match l.precision.as_deref() {
        None => float.into(),
        Some("f32") => crate::tensor::DType::F32.into(),
        Some("f16") => crate::tensor::DType::F16.into(),
        Some(other) => return Err(Error::Other(format!("--dtype {other}: serve takes f32 or f16"))),
    };
    let tok = Tokenizer::from_path(&l.chat)?;
    let mut session = Session::load_adapted(gpu, &l.chat, prec, l.ctx, 1, l.lora.as_ref())?;
    session.open_slots(l.max_batch)?;
    // The first request's time to first token should not include the driver compiling pipelines.
    let warmup = session.warm_up()?;
    log::info!("warmed up in {warmup:.2} s");
    let mut loaded =
        Loaded { chat: name_of(&l.chat), classifier: None, embedder: None, adapter: gpu.info.name.clone() };
    let classifier = match &l.classifier {
        Some(dir) => {
            let clf = crate::train::predict::open_classifier(gpu, dir, l.max_batch)?;
            loaded.classifier = Some((name_of(dir), clf.labels.clone()));
            Some((clf, Tokenizer::from_path(dir)?))
        }
        None => None,
    };
    let embedder = match &l.embedder {
        Some(p) => {
            let enc = Encoder::load(gpu, p, crate::tensor::DType::F32)?;
            let max = enc.cfg.max_pos.min(256);
            loaded.embedder = Some(name_of(p));
            Some((enc, Tokenizer::from_path(p)?, max))
        }
        None => None,
    };
    Ok((Models { chat: Chat { session, tok }, classifier, embedder }, loaded))
}

/// Start the worker: it reports what it loaded (or why it could not) through `ready`, then serves `jobs`
/// until every sender is gone.
pub fn spawn(
    l: Load,
    jobs: std::sync::mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
    ready: std::sync::mpsc::Sender<Result<Loaded>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let gpu = match Gpu::new(&l.gpu) {
            Ok(g) => g,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let (mut models, loaded) = match load(&gpu, &l) {
            Ok(m) => m,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(loaded));
        let mut batch = Batcher::new();
        let mut open = true;
        while open || batch.busy() {
            // Block for work only when nothing is in flight; else take what has arrived and step.
            let mut arrived = vec![];
            if !batch.busy() {
                match jobs.recv() {
                    Ok(j) => arrived.push(j),
                    Err(_) => break,
                }
            }
            loop {
                match jobs.try_recv() {
                    Ok(j) => arrived.push(j),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            for job in arrived {
                if let Job::Generate(g) = job {
                    batch.push(g); // counted as queued until it joins the batch
                    continue;
                }
                metrics.queued.fetch_sub(1, Ordering::Relaxed);
                run_job(&mut models, job);
            }
            batch.step(&mut models.chat, &metrics);
        }
    })
}

/// A classifier or embedding job.
fn run_job(models: &mut Models, job: Job) {
    match job {
        Job::Generate(_) => unreachable!("generations go through the batcher"),
        Job::Predict { texts, reply } => {
            let r = match &mut models.classifier {
                Some((clf, tok)) => crate::train::predict::predict(clf, tok, &texts),
                None => Err(Error::Other("no classifier is loaded (start serve with --classifier)".into())),
            };
            let _ = reply.send(r);
        }
        Job::Embed { texts, reply } => {
            let r = match &mut models.embedder {
                Some((enc, tok, max)) => embed(enc, tok, *max, &texts),
                None => Err(Error::Other("no embedding model is loaded (start serve with --embedder)".into())),
            };
            let _ = reply.send(r);
        }
    }
}

fn embed(enc: &mut Encoder, tok: &Tokenizer, max: usize, texts: &[String]) -> Result<(Vec<Vec<f32>>, usize)> {
    let mut batch = vec![];
    for t in texts {
        let mut ids = tok.encode(t, true)?;
        Encoder::truncate(&mut ids, max);
        batch.push(ids);
    }
    let tokens = batch.iter().map(Vec::len).sum();
    Ok((enc.embed(&batch)?, tokens))
}

/// The longest suffix of `text` that begins some stop string (held back until it is known not to be one).
pub(super) fn pending_stop(text: &str, stops: &[String]) -> usize {
    let mut keep = 0;
    for s in stops {
        for k in (1..s.len().min(text.len() + 1)).rev() {
            if text.is_char_boundary(text.len() - k) && s.starts_with(&text[text.len() - k..]) {
                keep = keep.max(k);
                break;
            }
        }
    }
    keep
}

/// One token's log-probability in OpenAI's shape.
pub(super) fn logprob_json(tok: &Tokenizer, l: &TokenLogprob) -> serde_json::Value {
    let piece = |id: u32| tok.decode(&[id], false);
    serde_json::json!({
        "token": piece(l.token),
        "logprob": l.logprob,
        "top_logprobs": l.top.iter().map(|&(id, lp)| serde_json::json!({"token": piece(id), "logprob": lp})).collect::<Vec<_>>(),
    })
}
