//! Perplexity of a token sequence in sliding windows, as in Hugging Face transformers' perplexity guide: a
//! window of `ctx` tokens starts every `stride` tokens; each window scores only the tokens the previous one
//! did not, each conditioned on the window's earlier tokens; ppl = exp(total NLL / scored tokens). The first
//! token of the text (and of each window with stride = ctx) has no context and is not scored.
//!
//! The loss is computed on the GPU: the step graph with logits for every row feeds a `CrossEntropy` op whose
//! targets are the next tokens (-100 for rows not scored), so only the mean loss is read back.

use std::time::Instant;

use super::{feeds, Session};
use crate::error::{Error, Result};
use crate::exec::Plan;
use crate::graph::GraphBuilder;
use crate::models::Step;
use crate::tensor::{DType, HostTensor};

/// One window: tokens `begin..end` of the text; its tokens from index `first_scored` (within the window) on
/// are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub begin: usize,
    pub end: usize,
    pub first_scored: usize,
}

/// The windows over `n` tokens (transformers' loop: `trg_len = end − prev_end`, the window's last `trg_len`
/// labels count, less the first label, which the model's shift drops). Windows with nothing to score are
/// left out.
pub fn windows(n: usize, ctx: usize, stride: usize) -> Result<Vec<Window>> {
    if ctx < 2 {
        return Err(Error::Other(format!("--ctx {ctx}: a window needs at least 2 tokens")));
    }
    if stride == 0 || stride > ctx {
        return Err(Error::Other(format!("--stride {stride} must be between 1 and --ctx ({ctx})")));
    }
    let mut out = vec![];
    let mut prev_end = 0;
    for begin in (0..n).step_by(stride) {
        let end = (begin + ctx).min(n);
        let trg_len = end - prev_end;
        let first_scored = (end - begin - trg_len).max(1);
        if first_scored < end - begin {
            out.push(Window { begin, end, first_scored });
        }
        prev_end = end;
        if end == n {
            break;
        }
    }
    Ok(out)
}

/// The result of `perplexity`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Perplexity {
    pub ppl: f64,
    /// Mean negative log-likelihood per scored token (nats).
    pub nll: f64,
    pub tokens: usize,
    pub tokens_scored: usize,
    pub windows: usize,
    pub ctx: usize,
    pub stride: usize,
    pub secs: f64,
    /// Tokens run through the model (overlapping windows count twice) per second.
    pub tokens_per_sec: f64,
}

/// Perplexity of `ids` in windows of `ctx` tokens every `stride` tokens (see the module comment).
pub fn perplexity(s: &mut Session, ids: &[u32], ctx: usize, stride: usize) -> Result<Perplexity> {
    let ws = windows(ids.len(), ctx, stride)?;
    if ws.is_empty() {
        return Err(Error::Run(format!("{} token(s): perplexity needs at least 2", ids.len())));
    }
    let t0 = Instant::now();
    let (mut sum, mut scored, mut run) = (0.0, 0, 0);
    for w in &ws {
        let (nll, count) = s.nll(&ids[w.begin..w.end], w.first_scored)?;
        sum += nll;
        scored += count;
        run += w.end - w.begin;
    }
    let secs = t0.elapsed().as_secs_f64();
    let nll = sum / scored as f64;
    Ok(Perplexity {
        ppl: nll.exp(),
        nll,
        tokens: ids.len(),
        tokens_scored: scored,
        windows: ws.len(),
        ctx,
        stride,
        secs,
        tokens_per_sec: run as f64 / secs.max(1e-9),
    })
}

impl Session<'_> {
    /// Summed negative log-likelihood (nats) of `ids[first_scored..]`, each token given the ones before it in
    /// `ids` (from position 0), and the number of tokens scored. Overwrites the KV cache: the conversation is
    /// forgotten (`pos` = 0). One plan per length of `ids`, compiled over the session's weights, is kept.
    pub fn nll(&mut self, ids: &[u32], first_scored: usize) -> Result<(f64, usize)> {
        self.single("nll")?;
        let t = ids.len();
        if t < 2 || first_scored == 0 || first_scored >= t {
            return Err(Error::Run(format!(
                "nll over {t} tokens from token {first_scored}: needs 1 ≤ first scored < tokens"
            )));
        }
        if t > self.max_seq {
            return Err(Error::Run(format!(
                "a window of {t} tokens exceeds the context of {} (raise --ctx)",
                self.max_seq
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab()) {
            return Err(Error::Run(format!("token id {bad} is outside the vocabulary ({})", self.cfg.vocab())));
        }
        let plan = self.nll_plans.get_or_compile(t, || {
            let step = self.cfg.build(t, t, self.max_seq, &self.prec)?;
            let mut g = GraphBuilder { graph: step.graph, ..Default::default() };
            let targets = g.input("targets", &[t], DType::I32)?;
            let loss = g.cross_entropy(step.logits, targets)?;
            Plan::compile_shared(self.gpu, &g.finish(), &[loss], Some(&self.shared))
        })?;
        // Row i's logits predict token i + 1.
        let targets: Vec<i32> =
            (0..t).map(|i| if i + 1 >= first_scored && i + 1 < t { ids[i + 1] as i32 } else { -100 }).collect();
        let step = Step::single(ids, t, (0..t as u32).collect(), 0);
        let mut inputs = step.feeds(plan.graph(), self.cfg.max_pos())?;
        inputs.push(("targets", HostTensor::i32(&[t], targets)?));
        self.pos = 0;
        self.cached.clear();
        let out = plan.run(&feeds(&inputs), &step.scalars())?;
        let count = t - first_scored;
        Ok((out[0].to_f32()[0] as f64 * count as f64, count))
    }
}
