//! Several prompts generated as one batch: the prompts are left-padded to one length, every step runs all
//! sequences through one plan (their KV caches side by side, [B, Hkv, max_seq, D]), and a key-padding mask
//! hides each sequence's padding. Rotary positions are shared (position p for every sequence at step p), so
//! a padded sequence sees its own tokens at the same relative distances as alone; learned positions
//! (GPT-2) are counted from each sequence's first real token.

use std::time::Instant;

use super::{feeds, Generation, Session, Timings, TokenLogprob};
use crate::error::{Error, Result};
use crate::exec::Plan;
use crate::sample::Sampler;
use crate::tensor::{DType, HostTensor};

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
        let top = self.cfg.max_pos() as u32 - 1;
        let mut mask = vec![0f32; b * self.max_seq];
        for (i, &pad) in pads.iter().enumerate() {
            mask[i * self.max_seq + pad.min(self.max_seq)..(i + 1) * self.max_seq].fill(1.0);
        }
        let mask = match self.dtype {
            DType::F16 => HostTensor::f16(&[b, self.max_seq], mask)?,
            _ => HostTensor::f32(&[b, self.max_seq], mask)?,
        };
        let pos_ids: Vec<u32> = pads
            .iter()
            .flat_map(|&pad| (0..t as u32).map(move |j| (pos + j).saturating_sub(pad as u32).min(top)))
            .collect();
        let mut inputs = vec![
            ("ids", HostTensor::u32(&[b, t], rows.concat())?),
            ("last", HostTensor::u32(&[b], (0..b as u32).map(|i| i * t as u32 + t as u32 - 1).collect())?),
            ("pos_ids", HostTensor::u32(&[b, t], pos_ids)?),
            ("mask", mask),
        ];
        let plan = match t {
            1 => &mut self.decode,
            _ => self.prefill.get_or_compile(t, || {
                let g = self.cfg.build_batch(b, t, b, self.max_seq, &self.prec)?;
                Plan::compile_shared(self.gpu, &g.graph, &[g.logits], Some(&self.shared))
            })?,
        };
        if plan.graph().find("pos_ids").is_none() {
            inputs.retain(|(n, _)| *n != "pos_ids");
        }
        let out = plan.run(&feeds(&inputs), &[("pos", pos), ("len", pos + t as u32)])?;
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
    let len = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let pads: Vec<usize> = prompts.iter().map(|p| len - p.len()).collect();
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| [vec![0; len - p.len()], p.clone()].concat()).collect();
    s.reset();
    let t0 = Instant::now();
    let mut logits = s.forward_batch(&rows, &pads)?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let b = prompts.len();
    let mut history: Vec<Vec<u32>> = prompts.to_vec();
    let mut out: Vec<(Vec<u32>, Vec<TokenLogprob>)> = vec![(vec![], vec![]); b];
    let mut done = vec![max_new == 0; b];
    let t1 = Instant::now();
    let mut ttft = 0.0;
    loop {
        let mut next = vec![0u32; b];
        for i in 0..b {
            if done[i] {
                continue;
            }
            let tok = samplers[i].sample(&logits[i], &history[i]);
            out[i].1.push(TokenLogprob::new(&logits[i], tok, top_logprobs));
            if eos.contains(&tok) {
                done[i] = true;
                continue;
            }
            out[i].0.push(tok);
            history[i].push(tok);
            next[i] = tok;
            done[i] = out[i].0.len() >= max_new;
        }
        if ttft == 0.0 {
            ttft = t0.elapsed().as_secs_f64();
        }
        if done.iter().all(|&d| d) || s.pos >= s.max_seq {
            break;
        }
        let step: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
        logits = s.forward_batch(&step, &pads)?;
    }
    let decode_secs = t1.elapsed().as_secs_f64();
    let generated: usize = out.iter().map(|o| o.0.len()).sum();
    let steps = out.iter().map(|o| o.0.len()).max().unwrap_or(0).saturating_sub(1);
    let timings = Timings {
        prompt_tokens: prompts.iter().map(Vec::len).sum(),
        generated_tokens: generated,
        prefill_secs,
        decode_secs,
        prefill_tokens_per_sec: (b * len) as f64 / prefill_secs.max(1e-9),
        // Tokens of every sequence per second of batched decode.
        decode_tokens_per_sec: if steps > 0 { (steps * b) as f64 / decode_secs.max(1e-9) } else { 0.0 },
        time_to_first_token_secs: ttft,
    };
    Ok(out.into_iter().map(|(tokens, logprobs)| Generation { tokens, logprobs, timings: timings.clone() }).collect())
}
