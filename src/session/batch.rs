//! Several prompts generated as one batch: the prompts are left-padded to one length, every step runs all
//! sequences through one plan (their KV caches side by side, [B, Hkv, max_seq, D]), and a key-padding mask
//! hides each sequence's padding. Rotary positions are shared (position p for every sequence at step p), so
//! a padded sequence sees its own tokens at the same relative distances as alone; learned positions
//! (GPT-2) are counted from each sequence's first real token.

use std::time::Instant;

use super::generation::Loop;
use super::{feeds, Generation, Session, Timings};
use crate::error::{Error, Result};
use crate::exec::Plan;
use crate::models::Step;
use crate::sample::Sampler;

impl Session<'_> {
    /// Run one step of `rows.len()` (= batch) sequences of equal length t at the current position, with
    /// `pads[i]` leading padding positions of sequence i in the cache; returns each sequence's last logits.
    pub fn forward_batch(&mut self, rows: &[Vec<u32>], pads: &[usize]) -> Result<Vec<Vec<f32>>> {
        let b = self.batch;
        let t = rows.first().map_or(0, Vec::len);
        if rows.len() != b || pads.len() != b || t == 0 || rows.iter().any(|r| r.len() != t) {
            return Err(Error::Run(format!("forward_batch needs {b} rows of one length ≥ 1 and {b} pad counts")));
        }
        let vocab = self.cfg.vocab();
        if let Some(bad) = rows.iter().flatten().find(|&&i| i as usize >= vocab) {
            return Err(Error::Run(format!("token id {bad} is outside the vocabulary ({vocab})")));
        }
        if self.pos + t > self.max_seq {
            return Err(Error::Run(format!("the context is full: {} + {t} > {} positions", self.pos, self.max_seq)));
        }
        let pos = self.pos as u32;
        // Sequence i's left padding is masked out of its keys and shifts its learned positions.
        let step = Step {
            ids: rows.concat(),
            b,
            t,
            last: (0..b as u32).map(|i| i * t as u32 + t as u32 - 1).collect(),
            pos,
            pos_ids: Some(
                pads.iter().flat_map(|&pad| (0..t as u32).map(move |j| (pos + j).saturating_sub(pad as u32))).collect(),
            ),
            mask: Some(crate::models::key_mask(b, self.max_seq, self.dtype, |i| pads[i]..self.max_seq)?),
            seq_pos: None,
        };
        let plan = match t {
            1 => &mut self.decode,
            _ => self.prefill.get_or_compile(t, || {
                let g = self.cfg.build_batch(b, t, b, self.max_seq, &self.prec)?;
                Plan::compile_shared(self.gpu, &g.graph, &[g.logits], Some(&self.shared))
            })?,
        };
        let out = plan.run(&feeds(&step.feeds(plan.graph(), self.cfg.max_pos())?), &step.scalars())?;
        self.pos += t;
        self.cached.clear();
        Ok(out[0].to_f32().chunks(vocab).map(<[f32]>::to_vec).collect())
    }
}

/// Generate up to `max_new` tokens after each prompt, as one batch (`s` opened with `load_batch` for
/// exactly `prompts.len()` sequences), one sampler per prompt; a sequence stops at any of `eos` (not
/// emitted); the batch stops when every sequence has. Timings are the batch's.
pub fn generate_batch(
    s: &mut Session,
    prompts: &[Vec<u32>],
    max_new: usize,
    samplers: &mut [Sampler],
    eos: &[u32],
    top_logprobs: usize,
) -> Result<Vec<Generation>> {
    if prompts.len() != s.batch || samplers.len() != s.batch || prompts.iter().any(Vec::is_empty) {
        return Err(Error::Run(format!("generate_batch needs {} non-empty prompts and samplers", s.batch)));
    }
    let (b, len) = (prompts.len(), prompts.iter().map(Vec::len).max().unwrap_or(1));
    let pads: Vec<usize> = prompts.iter().map(|p| len - p.len()).collect();
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| [vec![0; len - p.len()], p.clone()].concat()).collect();
    s.reset();
    let t0 = Instant::now();
    let logits = s.forward_batch(&rows, &pads)?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let lp = Loop { max_new, eos, top_logprobs, t0 };
    let (out, ttft, decode_secs) = lp.run(
        logits,
        prompts.to_vec(),
        samplers,
        &mut |_, _| true,
        &mut |s: &mut Session, next: &[u32]| {
            let step: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
            s.forward_batch(&step, &pads)
        },
        s,
    )?;
    let generated: Vec<usize> = out.iter().map(|o| o.0.len()).collect();
    // Prefill speed counts the padded rows the plan ran; the prompt tokens are the real ones.
    let mut timings = Timings::of(b * len, prefill_secs, &generated, decode_secs, ttft);
    timings.prompt_tokens = prompts.iter().map(Vec::len).sum();
    Ok(out.into_iter().map(|(tokens, logprobs)| Generation { tokens, logprobs, timings: timings.clone() }).collect())
}
