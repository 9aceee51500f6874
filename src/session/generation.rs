//! The generation loop, shared by one sequence (`generate`) and a batch of them (`batch::generate_batch`):
//! sample each live sequence's next token from its logits, record its log-probability, stop a sequence at
//! an end-of-sequence token, its budget or its caller's say-so, and step the live ones on together.

use std::time::Instant;

use super::Session;
use crate::error::Result;
use crate::sample::{log_sum_exp, top_k, Sampler};

/// One generated token with its log-probability and the most likely alternatives.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

impl TokenLogprob {
    /// `token`'s log-probability under `logits` and the `top` most likely tokens with theirs. Every decode
    /// step makes one: the row's log-sum-exp is the only pass over the vocabulary unless `top` > 0 (the
    /// log-softmax is a shift, so the top tokens of the logits are those of the log-probabilities).
    pub fn new(logits: &[f32], token: u32, top: usize) -> Self {
        let lse = log_sum_exp(logits);
        TokenLogprob {
            token,
            logprob: logits[token as usize] - lse,
            top: top_k(logits, top).into_iter().map(|(i, x)| (i as u32, x - lse)).collect(),
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    pub prefill_tokens_per_sec: f64,
    pub decode_tokens_per_sec: f64,
    pub time_to_first_token_secs: f64,
}

pub struct Generation {
    pub tokens: Vec<u32>,
    pub logprobs: Vec<TokenLogprob>,
    pub timings: Timings,
}

/// Generate up to `max_new` tokens after `prompt`, stopping at any of `eos` (not emitted) or when
/// `on_token` returns false. `top_logprobs` alternatives are recorded per token.
pub fn generate(
    s: &mut Session,
    prompt: &[u32],
    max_new: usize,
    sampler: &mut Sampler,
    eos: &[u32],
    top_logprobs: usize,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<Generation> {
    // The repetition penalty sees the whole context, cached tokens included (as transformers' input_ids).
    let mut history = if s.cached.len() == s.pos { s.cached.clone() } else { vec![] };
    history.extend_from_slice(prompt);
    let t0 = Instant::now();
    let logits = s.forward(prompt)?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let lp = Loop { max_new, eos, top_logprobs, t0 };
    let (mut out, ttft, decode_secs) = lp.run(
        vec![logits],
        vec![history],
        std::slice::from_mut(sampler),
        &mut |_, tok| on_token(tok),
        &mut |s: &mut Session, next: &[u32]| Ok(vec![s.forward(&next[..1])?]),
        s,
    )?;
    let (tokens, logprobs) = out.remove(0);
    let timings = Timings::of(prompt.len(), prefill_secs, &[tokens.len()], decode_secs, ttft);
    Ok(Generation { tokens, logprobs, timings })
}

impl Timings {
    /// The figures of a generation: `generated[i]` tokens of sequence i, the first of each from the prefill.
    pub fn of(prompt_tokens: usize, prefill_secs: f64, generated: &[usize], decode_secs: f64, ttft: f64) -> Self {
        // Decode steps made every sequence's tokens after its first.
        let decoded: usize = generated.iter().map(|g| g.saturating_sub(1)).sum();
        Timings {
            prompt_tokens,
            generated_tokens: generated.iter().sum(),
            prefill_secs,
            decode_secs,
            prefill_tokens_per_sec: prompt_tokens as f64 / prefill_secs.max(1e-9),
            decode_tokens_per_sec: if decoded > 0 { decoded as f64 / decode_secs.max(1e-9) } else { 0.0 },
            time_to_first_token_secs: ttft,
        }
    }
}

/// One generation's stopping rules and clock (`t0`: when its prefill started).
pub(super) struct Loop<'a> {
    pub max_new: usize,
    pub eos: &'a [u32],
    pub top_logprobs: usize,
    pub t0: Instant,
}

/// Each sequence's tokens and their log-probabilities.
pub(super) type Outputs = Vec<(Vec<u32>, Vec<TokenLogprob>)>;

/// One decode step: each sequence's new token (0 for finished ones) → each sequence's next logits.
pub(super) type Step<'a> = dyn FnMut(&mut Session, &[u32]) -> Result<Vec<Vec<f32>>> + 'a;

impl Loop<'_> {
    /// From the prefill's `logits` (one row per sequence) and each sequence's `history` (what the
    /// repetition penalty sees): sample, record, and `step` the sequences on (`step(s, next)` gets each
    /// sequence's new token, 0 for finished ones, and returns their next logits) until every sequence is
    /// done or the context is full. `on_token(i, tok)` returning false finishes sequence i. Returns the
    /// outputs, the time to the first tokens and the decode time.
    pub fn run(
        &self,
        mut logits: Vec<Vec<f32>>,
        mut history: Vec<Vec<u32>>,
        samplers: &mut [Sampler],
        on_token: &mut dyn FnMut(usize, u32) -> bool,
        step: &mut Step,
        s: &mut Session,
    ) -> Result<(Outputs, f64, f64)> {
        let b = logits.len();
        let mut out: Outputs = vec![(vec![], vec![]); b];
        let mut done = vec![self.max_new == 0; b];
        let t1 = Instant::now();
        let mut ttft = 0.0;
        while !done.iter().all(|&d| d) {
            let mut next = vec![0u32; b];
            for i in 0..b {
                if done[i] {
                    continue;
                }
                let tok = samplers[i].sample(&logits[i], &history[i]);
                out[i].1.push(TokenLogprob::new(&logits[i], tok, self.top_logprobs));
                if self.eos.contains(&tok) {
                    done[i] = true;
                    continue;
                }
                out[i].0.push(tok);
                history[i].push(tok);
                next[i] = tok;
                done[i] = !on_token(i, tok) || out[i].0.len() >= self.max_new;
            }
            if ttft == 0.0 {
                ttft = self.t0.elapsed().as_secs_f64();
            }
            if done.iter().all(|&d| d) || s.pos >= s.max_seq {
                break;
            }
            logits = step(s, &next)?;
        }
        Ok((out, ttft, t1.elapsed().as_secs_f64()))
    }
}
