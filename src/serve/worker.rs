//! The one thread that owns the GPU: it opens the device, loads the models once, and runs jobs from the
//! bounded queue in arrival order: generations (streaming their text through a per-request channel and
//! stopping when the client goes away, the deadline passes, a stop string or the end of text appears),
//! classifier predictions and embeddings. A chat reuses the KV cache of the previous request's prefix.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Metrics;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions};
use crate::models::Precision;
use crate::sample::{Sampler, SamplerConfig};
use crate::session::encoder::Encoder;
use crate::session::{generate, Session, TokenLogprob};
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
    Error(String),
}

struct Chat<'g> {
    session: Session<'g>,
    tok: Tokenizer,
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
    let session = Session::load_adapted(gpu, &l.chat, prec, l.ctx, 1, l.lora.as_ref())?;
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
        for job in jobs {
            metrics.queued.fetch_sub(1, Ordering::Relaxed);
            match job {
                Job::Generate(g) => {
                    let events = g.events.clone();
                    if let Err(e) = run_generate(&mut models.chat, g, &metrics) {
                        let _ = events.send(Event::Error(e.to_string()));
                    }
                }
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
    })
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
fn pending_stop(text: &str, stops: &[String]) -> usize {
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

fn run_generate(chat: &mut Chat, g: GenJob, metrics: &Metrics) -> Result<()> {
    let tok = &chat.tok;
    let s = &mut chat.session;
    let ids = match &g.prompt {
        Prompt::Text(t) => tok.encode(t, true)?,
        Prompt::Chat(messages) => {
            // A conversation longer than the context drops its oldest turns (the system prompt stays).
            let mut msgs = messages.clone();
            let keep = usize::from(msgs.first().is_some_and(|m| m.0 == "system"));
            loop {
                let ids = tok.encode(&tok.apply_chat_template(&msgs, true)?, false)?;
                if ids.len() + g.max_tokens.min(64) <= s.max_seq || msgs.len() <= keep + 1 {
                    break ids;
                }
                msgs.remove(keep);
            }
        }
    };
    if ids.is_empty() {
        return Err(Error::Other("the prompt is empty".into()));
    }
    if ids.len() >= s.max_seq {
        return Err(Error::Other(format!(
            "the prompt has {} tokens and the context {} (start serve with a larger --ctx)",
            ids.len(),
            s.max_seq
        )));
    }
    let eos: Vec<u32> = tok.eos_ids().iter().copied().collect();
    let keep = s.reuse_prefix(&ids);
    let room = g.max_tokens.min(s.max_seq - ids.len());
    let mut sampler = Sampler::new(g.sampler.clone());
    let mut dec = tok.stream_decoder(true);
    let (mut text, mut sent) = (String::new(), 0usize);
    let mut finish = "length";
    let mut cancelled = false;
    let top = g.logprobs.unwrap_or(0);
    let gen = generate(s, &ids[keep..], room, &mut sampler, &eos, top, &mut |id| {
        if let Some(p) = dec.step(id) {
            text.push_str(&p);
        }
        // A stop string ends the text before it.
        if let Some(at) = g.stops.iter().filter_map(|st| text[sent..].find(st.as_str()).map(|i| sent + i)).min() {
            text.truncate(at);
            finish = "stop";
        }
        let hold = if finish == "stop" { 0 } else { pending_stop(&text[sent..], &g.stops) };
        let upto = text.len() - hold;
        if upto > sent {
            let delta = Event::Delta { text: text[sent..upto].to_string(), logprobs: vec![] };
            sent = upto;
            if g.events.send(delta).is_err() {
                cancelled = true;
                return false;
            }
        }
        if Instant::now() > g.deadline {
            cancelled = true;
            let _ = g.events.send(Event::Error("the request took longer than --timeout".into()));
            return false;
        }
        finish != "stop"
    })?;
    metrics.prefill_tokens.fetch_add((ids.len() - keep) as u64, Ordering::Relaxed);
    metrics.prefill_micros.fetch_add((gen.timings.prefill_secs * 1e6) as u64, Ordering::Relaxed);
    metrics.decode_tokens.fetch_add(gen.tokens.len().saturating_sub(1) as u64, Ordering::Relaxed);
    metrics.decode_micros.fetch_add((gen.timings.decode_secs * 1e6) as u64, Ordering::Relaxed);
    metrics.tokens_generated.fetch_add(gen.tokens.len() as u64, Ordering::Relaxed);
    if cancelled {
        metrics.cancelled.fetch_add(1, Ordering::Relaxed);
        // The cache holds a sequence nobody will continue: keep it only as a prefix for the next request.
        return Ok(());
    }
    // The end of text (or the context) before max_tokens is a natural stop.
    if finish == "length" && (gen.tokens.len() < room || gen.logprobs.len() > gen.tokens.len()) {
        finish = "stop";
    }
    if finish != "stop" || g.stops.is_empty() {
        text.push_str(&dec.flush());
    }
    // The tokens' log-probabilities (generate computes them) come with the final delta.
    let lps: Vec<serde_json::Value> = if g.logprobs.is_some() {
        gen.logprobs.iter().take(gen.tokens.len()).map(|l| logprob_json(tok, l)).collect()
    } else {
        vec![]
    };
    if sent < text.len() || !lps.is_empty() {
        let _ = g.events.send(Event::Delta { text: text[sent..].to_string(), logprobs: lps });
    }
    let _ = g.events.send(Event::Done {
        finish_reason: finish,
        prompt_tokens: ids.len(),
        completion_tokens: gen.tokens.len(),
    });
    Ok(())
}

/// One token's log-probability in OpenAI's shape.
fn logprob_json(tok: &Tokenizer, l: &TokenLogprob) -> serde_json::Value {
    let piece = |id: u32| tok.decode(&[id], false);
    serde_json::json!({
        "token": piece(l.token),
        "logprob": l.logprob,
        "top_logprobs": l.top.iter().map(|&(id, lp)| serde_json::json!({"token": piece(id), "logprob": lp})).collect::<Vec<_>>(),
    })
}
