//! Continuous batching of generations: up to `--max-batch` sequences decode together, one batched step at a
//! time (`Session::step_slots`: every weight read once for all of them). Between steps the worker takes new
//! jobs: a generation joins when a slot is free (its prompt's prefill runs then, and its first token streams
//! at once), classifier and embedding jobs run as they come. A sequence leaves the batch as soon as it ends
//! (end of text, `max_tokens`, a stop string, the context, the deadline, or a client that went away) and its
//! slot is free for the next step.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::worker::{logprob_json, pending_stop, Chat, Event, GenJob, Prompt};
use super::Metrics;
use crate::error::{Error, Result};
use crate::sample::Sampler;
use crate::session::TokenLogprob;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// One sequence in the batch.
struct Running {
    job: GenJob,
    slot: usize,
    sampler: Sampler,
    dec: StreamDecoder,
    /// Prompt and generated ids (the repetition penalty's context).
    history: Vec<u32>,
    prompt_tokens: usize,
    tokens: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    text: String,
    /// Bytes of `text` already sent.
    sent: usize,
    /// Tokens it may generate (max_tokens, bounded by the context left after the prompt).
    room: usize,
    eos: Vec<u32>,
}

enum Next {
    Continue,
    /// Finished with this reason ("stop", "length"), or None when the client went away or time ran out.
    Done(Option<&'static str>),
}

impl Running {
    /// Take the sampled token `tok` after `logits`: stream its text, and say whether the sequence goes on.
    fn take(&mut self, logits: &[f32]) -> Next {
        let tok = self.sampler.sample(logits, &self.history);
        self.logprobs.push(TokenLogprob::new(logits, tok, self.job.logprobs.unwrap_or(0)));
        if self.eos.contains(&tok) {
            return Next::Done(Some("stop"));
        }
        self.tokens.push(tok);
        self.history.push(tok);
        if let Some(p) = self.dec.step(tok) {
            self.text.push_str(&p);
        }
        let sent = self.sent;
        // A stop string ends the text before it.
        let stop = self.job.stops.iter().filter_map(|s| self.text[sent..].find(s.as_str()).map(|i| sent + i)).min();
        if let Some(at) = stop {
            self.text.truncate(at);
        }
        let hold = if stop.is_some() { 0 } else { pending_stop(&self.text[sent..], &self.job.stops) };
        let upto = self.text.len() - hold;
        if upto > sent {
            let delta = Event::Delta { text: self.text[sent..upto].to_string(), logprobs: vec![] };
            self.sent = upto;
            if self.job.events.send(delta).is_err() {
                return Next::Done(None);
            }
        }
        if Instant::now() > self.job.deadline {
            let _ = self.job.events.send(Event::Error("the request took longer than --timeout".into()));
            return Next::Done(None);
        }
        match stop {
            Some(_) => Next::Done(Some("stop")),
            None if self.tokens.len() >= self.room => Next::Done(Some("length")),
            None => Next::Continue,
        }
    }

    /// The sequence has left the batch: count it, and finish it unless it was cancelled.
    fn end(self, reason: Option<&'static str>, tok: &Tokenizer, metrics: &Metrics) {
        metrics.tokens_generated.fetch_add(self.tokens.len() as u64, Ordering::Relaxed);
        match reason {
            Some(reason) => self.finish(reason, tok),
            None => {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Send what is left of the text, the log-probabilities and the final event.
    fn finish(mut self, reason: &'static str, tok: &Tokenizer) {
        if reason != "stop" || self.job.stops.is_empty() {
            self.text.push_str(&self.dec.flush());
        }
        let lps: Vec<serde_json::Value> = if self.job.logprobs.is_some() {
            self.logprobs.iter().take(self.tokens.len()).map(|l| logprob_json(tok, l)).collect()
        } else {
            vec![]
        };
        if self.sent < self.text.len() || !lps.is_empty() {
            let _ = self.job.events.send(Event::Delta { text: self.text[self.sent..].to_string(), logprobs: lps });
        }
        let _ = self.job.events.send(Event::Done {
            finish_reason: reason,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.tokens.len(),
        });
    }
}

/// The prompt's ids: a chat through the model's template, dropping its oldest turns (the system prompt
/// stays) while it and a short reply do not fit the context.
fn prompt_ids(tok: &Tokenizer, max_seq: usize, g: &GenJob) -> Result<Vec<u32>> {
    let ids = match &g.prompt {
        Prompt::Text(t) => tok.encode(t, true)?,
        Prompt::Chat(messages) => {
            let mut msgs = messages.clone();
            let keep = usize::from(msgs.first().is_some_and(|m| m.0 == "system"));
            loop {
                let ids = tok.encode(&tok.apply_chat_template(&msgs, true)?, false)?;
                if ids.len() + g.max_tokens.min(64) <= max_seq || msgs.len() <= keep + 1 {
                    break ids;
                }
                msgs.remove(keep);
            }
        }
    };
    if ids.is_empty() {
        return Err(Error::Other("the prompt is empty".into()));
    }
    if ids.len() >= max_seq {
        return Err(Error::Other(format!(
            "the prompt has {} tokens and the context {max_seq} (start serve with a larger --ctx)",
            ids.len()
        )));
    }
    Ok(ids)
}

/// The generations in flight and those waiting for a slot.
pub struct Batcher {
    running: Vec<Running>,
    waiting: VecDeque<GenJob>,
}

impl Batcher {
    pub fn new() -> Self {
        Batcher { running: vec![], waiting: VecDeque::new() }
    }

    /// Whether anything is in flight or waiting (the worker then polls for jobs instead of blocking).
    pub fn busy(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    pub fn push(&mut self, job: GenJob) {
        self.waiting.push_back(job);
    }

    /// Admit waiting jobs into free slots (running each one's prefill and first token), then run one
    /// batched decode step of everything in flight.
    pub fn step(&mut self, chat: &mut Chat, metrics: &Metrics) {
        while let Some(slot) = chat.session.free_slot() {
            let Some(job) = self.waiting.pop_front() else { break };
            metrics.queued.fetch_sub(1, Ordering::Relaxed);
            if job.events.is_closed() {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if Instant::now() > job.deadline {
                let _ = job.events.send(Event::Error("the request waited longer than --timeout".into()));
                continue;
            }
            let ids = match prompt_ids(&chat.tok, chat.session.max_seq, &job) {
                Ok(ids) => ids,
                Err(e) => {
                    let _ = job.events.send(Event::Rejected(e.to_string()));
                    continue;
                }
            };
            let events = job.events.clone();
            if let Err(e) = self.admit(chat, job, ids, slot, metrics) {
                chat.session.release_slot(slot);
                let _ = events.send(Event::Error(e.to_string()));
            }
        }
        if self.running.is_empty() {
            return;
        }
        let toks: Vec<(usize, u32)> =
            self.running.iter().map(|r| (r.slot, *r.tokens.last().expect("a running sequence has a token"))).collect();
        let t0 = Instant::now();
        let result = chat.session.step_slots(&toks);
        metrics.decode_micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        metrics.record_batch(toks.len());
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                // The step failed for all of them: each gets the error, every slot is freed.
                for r in self.running.drain(..) {
                    chat.session.release_slot(r.slot);
                    let _ = r.job.events.send(Event::Error(e.to_string()));
                }
                return;
            }
        };
        metrics.decode_tokens.fetch_add(toks.len() as u64, Ordering::Relaxed);
        let mut still = vec![];
        for (mut r, l) in self.running.drain(..).zip(&logits) {
            let next = match r.take(l) {
                // The context is full: no position is left for the next token.
                Next::Continue if chat.session.slot_len(r.slot).is_none_or(|n| n >= chat.session.max_seq) => {
                    Next::Done(Some("length"))
                }
                next => next,
            };
            match next {
                Next::Continue => still.push(r),
                Next::Done(reason) => {
                    chat.session.release_slot(r.slot);
                    r.end(reason, &chat.tok, metrics);
                }
            }
        }
        self.running = still;
    }

    /// Prefill `job`'s prompt `ids` into `slot` and take its first token.
    fn admit(&mut self, chat: &mut Chat, job: GenJob, ids: Vec<u32>, slot: usize, metrics: &Metrics) -> Result<()> {
        let s = &mut chat.session;
        let t0 = Instant::now();
        let (logits, reused) = s.prefill_slot(slot, &ids)?;
        metrics.prefill_tokens.fetch_add((ids.len() - reused) as u64, Ordering::Relaxed);
        metrics.prefill_micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        let mut r = Running {
            room: job.max_tokens.min(s.max_seq - ids.len()),
            sampler: Sampler::new(job.sampler.clone()),
            dec: chat.tok.stream_decoder(true),
            prompt_tokens: ids.len(),
            history: ids,
            tokens: vec![],
            logprobs: vec![],
            text: String::new(),
            sent: 0,
            eos: chat.tok.eos_ids().iter().copied().collect(),
            job,
            slot,
        };
        let next = if r.room == 0 { Next::Done(Some("length")) } else { r.take(&logits) };
        match next {
            Next::Continue => self.running.push(r),
            Next::Done(reason) => {
                s.release_slot(slot);
                r.end(reason, &chat.tok, metrics);
            }
        }
        Ok(())
    }
}
