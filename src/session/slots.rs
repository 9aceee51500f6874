//! Continuous batching: `n` slots, each holding one sequence at its own position in its own row of a
//! second KV cache (`slots.{layer}.k/v` [n, Hkv, max_seq, D]), decoded together by one plan
//! (`Positions::PerSequence`: rotary angles and cache writes per sequence, a key mask per row) that shares
//! the session's weights. A sequence joins between steps: its prompt runs through the session's ordinary
//! single-sequence prefill (reusing the cached prefix of the previous prompt), and the prompt's keys and
//! values are copied into its slot's row; it leaves by freeing the slot, and the next occupant overwrites the
//! row. A decode step reads every weight once for all the slots' tokens. It runs the plan of the fewest rows
//! (a power of two) that covers the highest slot stepping — the plans share the cache, whose first rows a
//! smaller plan sees as its whole — and new sequences take the lowest free slot, so a lone sequence decodes
//! with the single-row plan (its GEMVs) instead of paying for every slot.

use super::{feeds, Session};
use crate::error::{Error, Result};
use crate::exec::{Plan, PlanCache};
use crate::graph::Op;
use crate::models::Step;

pub struct Slots<'g> {
    /// Step plans by their rows (the largest, compiled first, made the cache).
    plans: PlanCache<'g, usize>,
    /// Positions each slot's cache row holds (None: free).
    len: Vec<Option<usize>>,
    /// (single-sequence cache, slot cache, KV heads, head dim) of every cache leaf.
    caches: Vec<(String, String, usize, usize)>,
}

impl Slots<'_> {
    /// The step plan's transient bytes (its cache rows are shared leaves, counted with the weights).
    pub fn plan_bytes(&self) -> u64 {
        self.plans.plans().map(|p| p.memory().1).sum()
    }
}

impl<'g> Session<'g> {
    /// Compile the decode step of `n` slots (once; its cache rows are allocated here).
    pub fn open_slots(&mut self, n: usize) -> Result<()> {
        self.single("continuous batching")?;
        if n == 0 {
            return Err(Error::Run("continuous batching needs at least one slot".into()));
        }
        let g = self.cfg.build_slots(n, self.max_seq, &self.prec)?;
        let plan = Plan::compile_shared(self.gpu, &g.graph, &[g.logits], Some(&self.shared))?;
        let mut caches = vec![];
        for node in &plan.graph().nodes {
            if let Op::State { name } = &node.op {
                if let Some(rest) = name.strip_prefix("slots.") {
                    caches.push((format!("cache.{rest}"), name.clone(), node.shape[1], node.shape[3]));
                }
            }
        }
        let mut plans = PlanCache::default();
        plans.get_or_compile(n, || Ok(plan))?;
        self.slots = Some(Slots { plans, len: vec![None; n], caches });
        Ok(())
    }

    fn slots_mut(&mut self) -> Result<&mut Slots<'g>> {
        self.slots.as_mut().ok_or_else(not_open)
    }

    /// Slots in all (0 before `open_slots`).
    pub fn slot_count(&self) -> usize {
        self.slots.as_ref().map_or(0, |s| s.len.len())
    }

    /// A free slot, if any.
    pub fn free_slot(&self) -> Option<usize> {
        self.slots.as_ref()?.len.iter().position(Option::is_none)
    }

    /// Positions slot `slot` holds (None: free).
    pub fn slot_len(&self, slot: usize) -> Option<usize> {
        self.slots.as_ref()?.len.get(slot).copied().flatten()
    }

    /// Give slot `slot` up (its row is overwritten by the next occupant).
    pub fn release_slot(&mut self, slot: usize) {
        if let Some(l) = self.slots.as_mut().and_then(|s| s.len.get_mut(slot)) {
            *l = None;
        }
    }

    /// Run `ids` as a new sequence in slot `slot` (which must be free): returns the logits after its last id
    /// and how many leading ids were reused from the single-sequence cache instead of recomputed.
    pub fn prefill_slot(&mut self, slot: usize, ids: &[u32]) -> Result<(Vec<f32>, usize)> {
        let n = self.slot_count();
        if slot >= n || self.slot_len(slot).is_some() {
            return Err(Error::Run(format!("slot {slot} is not a free one of {n}")));
        }
        if ids.is_empty() || ids.len() >= self.max_seq {
            return Err(Error::Run(format!(
                "a prompt of {} tokens does not fit a context of {} (1..{} tokens)",
                ids.len(),
                self.max_seq,
                self.max_seq - 1
            )));
        }
        let keep = self.reuse_prefix(ids);
        let logits = self.forward(&ids[keep..])?;
        self.copy_to_slot(slot, ids.len())?;
        self.slots_mut()?.len[slot] = Some(ids.len());
        Ok((logits, keep))
    }

    /// Copy positions 0..len of the single-sequence cache into slot `slot`'s row, every layer, K and V.
    fn copy_to_slot(&mut self, slot: usize, len: usize) -> Result<()> {
        let (max_seq, esize) = (self.max_seq as u64, self.dtype.size() as u64);
        let slots = self.slots.as_ref().ok_or_else(not_open)?;
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("slot") });
        for (single, slotted, heads, hd) in &slots.caches {
            let missing = |n: &str| Error::Run(format!("the cache {n} is not one buffer of this session"));
            let src = self.shared.buffer(single).ok_or_else(|| missing(single))?;
            let dst = self.shared.buffer(slotted).ok_or_else(|| missing(slotted))?;
            let row = max_seq * *hd as u64 * esize;
            for h in 0..*heads as u64 {
                let size = len as u64 * *hd as u64 * esize;
                enc.copy_buffer_to_buffer(&src, h * row, &dst, ((slot * heads) as u64 + h) * row, size);
            }
        }
        self.gpu.submit(enc.finish());
        Ok(())
    }

    /// One decode step of the slots in `tokens` (slot, token): each token goes in at its slot's next
    /// position; returns each one's logits, in order. Free slots ride along on a dummy token that writes
    /// only their own (unused) row.
    pub fn step_slots(&mut self, tokens: &[(usize, u32)]) -> Result<Vec<Vec<f32>>> {
        self.run_slots(tokens, false).map(|r| r.0)
    }

    /// Each dispatch's GPU time in one decode step of the slots in `tokens` (the step is taken).
    pub fn profile_slots(&mut self, tokens: &[(usize, u32)]) -> Result<Vec<crate::exec::OpTiming>> {
        self.run_slots(tokens, true).map(|r| r.1)
    }

    fn run_slots(
        &mut self,
        tokens: &[(usize, u32)],
        profile: bool,
    ) -> Result<(Vec<Vec<f32>>, Vec<crate::exec::OpTiming>)> {
        let (max_seq, vocab, max_pos, dtype) = (self.max_seq, self.cfg.vocab(), self.cfg.max_pos(), self.dtype);
        let all = self.slot_count();
        let highest = tokens.iter().map(|t| t.0).max().unwrap_or(0);
        // The fewest rows (a power of two, or every slot) that cover the highest slot stepping.
        let n = (highest + 1).next_power_of_two().min(all.max(1));
        let slots = self.slots.as_mut().ok_or_else(not_open)?;
        let (cfg, gpu, shared, prec) = (&self.cfg, self.gpu, &self.shared, &self.prec);
        let plan = slots.plans.get_or_compile(n, || {
            let g = cfg.build_slots(n, max_seq, prec)?;
            Plan::compile_shared(gpu, &g.graph, &[g.logits], Some(shared))
        })?;
        let mut ids = vec![0u32; n];
        let mut at = vec![0u32; n];
        for &(slot, tok) in tokens {
            let Some(Some(len)) = slots.len.get(slot).copied().filter(|_| slot < n) else {
                return Err(Error::Run(format!("slot {slot} holds no sequence")));
            };
            if len >= max_seq {
                return Err(Error::Run(format!("slot {slot}'s context is full ({max_seq} positions)")));
            }
            if tok as usize >= vocab {
                return Err(Error::Run(format!("token id {tok} is outside the vocabulary ({vocab})")));
            }
            ids[slot] = tok;
            at[slot] = len as u32;
        }
        // Each slot at its own position: its keys are its cached rows and the new one.
        let step = Step {
            ids,
            b: n,
            t: 1,
            last: (0..n as u32).collect(),
            pos: at.iter().copied().max().unwrap_or(0),
            pos_ids: Some(at.clone()),
            mask: Some(crate::models::key_mask(n, max_seq, dtype, |i| 0..at[i] as usize + 1)?),
            seq_pos: Some(at),
        };
        let inputs = step.feeds(plan.graph(), max_pos)?;
        let vars = step.scalars();
        let (rows, timings) = if profile {
            (vec![], plan.profile(&feeds(&inputs), &vars)?)
        } else {
            let logits = plan.run(&feeds(&inputs), &vars)?[0].to_f32();
            (tokens.iter().map(|&(slot, _)| logits[slot * vocab..(slot + 1) * vocab].to_vec()).collect(), vec![])
        };
        // Each stepped slot now holds one more position.
        for &(slot, _) in tokens {
            slots.len[slot] = slots.len[slot].map(|l| l + 1);
        }
        Ok((rows, timings))
    }
}

fn not_open() -> Error {
    Error::Run("open_slots was not called".into())
}
