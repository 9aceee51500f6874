//! The wiring of inference: load (file → config → graph → plans → weights), then prefill and KV-cache decode.
//! Prefill plans are compiled per bucket of prompt lengths (padded; the causal mask keeps padding out of the
//! real positions, and the next step overwrites its cache rows); the decode plan is compiled once and replayed
//! with a new position each step, creating no pipelines, buffers or bind groups.

pub mod batch;
pub mod calibrate;
pub mod encoder;
mod generation;
pub mod perplexity;
pub mod preflight;
pub mod slots;

use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::exec::{Plan, PlanCache, SharedLeaves};
use crate::gpu::Gpu;
use crate::graph::Op;
use crate::models::{ConfigSource, Precision, Step};

/// The decoder a session runs (`models::arch`: the registry of architectures).
pub use crate::models::arch::Arch;
use crate::tensor::{DType, HostTensor};

pub struct Session<'g> {
    gpu: &'g Gpu,
    pub cfg: Arch,
    pub dtype: DType,
    /// The precision the model runs in (the requested one, or a quantized checkpoint's scheme).
    pub prec: Precision,
    pub max_seq: usize,
    /// Sequences stepping together (1 unless opened with `load_batch`).
    pub batch: usize,
    shared: SharedLeaves,
    decode: Plan<'g>,
    /// Prefill plans by padded length (batched sessions: by length).
    prefill: PlanCache<'g, usize>,
    /// Scoring plans (logits of every row into a cross-entropy), one per window length (see `nll`).
    nll_plans: PlanCache<'g, usize>,
    /// Calibration plans (every linear layer's input as an output), one per window length.
    calib_plans: PlanCache<'g, usize>,
    /// The continuous-batching decode step and its slots (`open_slots`).
    slots: Option<slots::Slots<'g>>,
    /// Tokens in the KV cache.
    pub pos: usize,
    /// The ids whose keys and values the cache holds, in order, while `forward` alone has moved `pos`
    /// (valid only when its length is `pos`; other writers of the cache clear it).
    cached: Vec<u32>,
    pub load_secs: f64,
    pub weight_bytes: u64,
}

/// Prompt-length buckets for prefill plans.
fn bucket(t: usize) -> usize {
    if t <= 16 {
        16
    } else {
        t.next_power_of_two()
    }
}

impl<'g> Session<'g> {
    /// Open a model (a .gguf file, a .safetensors file or a Hugging Face folder), build its decode plan and
    /// upload the weights in `prec` (an int8 checkpoint runs its own scheme unless `prec` asks for int8).
    /// `max_seq` bounds the KV cache (and so the context).
    pub fn load(gpu: &'g Gpu, path: &Path, prec: impl Into<Precision>, max_seq: usize) -> Result<Self> {
        Self::load_batch(gpu, path, prec, max_seq, 1)
    }

    /// `load` for `batch` sequences that step together (`generate_batch`); a KV cache of `max_seq` positions
    /// per sequence.
    pub fn load_batch(
        gpu: &'g Gpu,
        path: &Path,
        prec: impl Into<Precision>,
        max_seq: usize,
        batch: usize,
    ) -> Result<Self> {
        Self::load_adapted(gpu, path, prec, max_seq, batch, None)
    }

    /// `load_batch` with a LoRA adapter merged into the weights as they load (W + (alpha/r)·B·A, before any
    /// int8 quantization), after checking that it fits the model.
    pub fn load_adapted(
        gpu: &'g Gpu,
        path: &Path,
        prec: impl Into<Precision>,
        max_seq: usize,
        batch: usize,
        lora: Option<&crate::train::lora::Adapter>,
    ) -> Result<Self> {
        let t0 = Instant::now();
        let batch = batch.max(1);
        let mut prec = prec.into();
        let dtype = prec.dtype;
        if dtype == DType::F16 && !gpu.caps().f16 {
            return Err(Error::Unsupported {
                op: "load".into(),
                detail: "--dtype f16 needs an adapter with SHADER_F16".into(),
            });
        }
        let store = crate::loader::open(path)?;
        let src = ConfigSource::find(path, &store)?;
        let cfg = Arch::from_source(&src, &store)?;
        prec.adopt_checkpoint(&src)?;
        if let Some(a) = lora {
            let Some(c) = cfg.llama() else {
                return Err(Error::Unsupported {
                    op: "--lora".into(),
                    detail: "LoRA adapters apply to Llama-family models".into(),
                });
            };
            a.check(&crate::models::llama::linear_layers(c), &path.display().to_string())?;
        }
        let max_seq = max_seq.min(cfg.max_pos()).max(1);
        if let Some(budget) = gpu.memory_budget() {
            // Before anything is allocated: the whole plan against what is left of the budget.
            let plan = preflight::MemoryPlan::for_arch(&cfg, &prec, max_seq)?;
            let left = budget.saturating_sub(gpu.allocated_bytes());
            plan.check(left, &format!("the memory budget ({budget} bytes, {left} left)"))?;
        }
        let step = cfg.build_batch(batch, 1, batch, max_seq, &prec)?;
        let shared = SharedLeaves::new();
        let mut decode = Plan::compile_shared(gpu, &step.graph, &[step.logits], Some(&shared))?;
        let weight_bytes = crate::models::upload_params(
            &step.graph,
            &store,
            &|name, shape| match lora {
                Some(a) => a.merge(name, cfg.load_param(&store, name, shape)?),
                None => cfg.load_param(&store, name, shape),
            },
            &mut |name, t| decode.set(name, t),
        )?;
        gpu.wait()?;
        Ok(Session {
            gpu,
            cfg,
            dtype,
            prec,
            max_seq,
            batch,
            shared,
            decode,
            prefill: PlanCache::default(),
            nll_plans: PlanCache::default(),
            calib_plans: PlanCache::default(),
            slots: None,
            pos: 0,
            cached: vec![],
            load_secs: t0.elapsed().as_secs_f64(),
            weight_bytes,
        })
    }

    /// Static int8 calibration: run `ids` (one window, from position 0) in the session's float precision and
    /// fold every linear layer's input into `cal`. The KV cache is left as after a prefill of `ids`.
    pub fn calibrate(&mut self, ids: &[u32], cal: &mut calibrate::Calibration) -> Result<()> {
        if self.prec.int8.is_some() {
            return Err(Error::Run("calibration runs a float model (load it with --dtype f32 or f16)".into()));
        }
        self.single("calibrate")?;
        let t = ids.len();
        if t == 0 || t > self.max_seq {
            return Err(Error::Run(format!("a calibration window needs 1..={} tokens", self.max_seq)));
        }
        let max_pos = self.cfg.max_pos();
        let plan = self.calib_plans.get_or_compile(t, || {
            // Every position goes through the head, so an int8 head is calibrated on all of them.
            let g = self.cfg.build(t, t, self.max_seq, &self.prec)?;
            // The logits ride along (after the taps) so every input of the step is part of the plan.
            let mut outputs = calibrate::tap_outputs(&g.graph);
            outputs.push(g.logits);
            Plan::compile_shared(self.gpu, &g.graph, &outputs, Some(&self.shared))
        })?;
        let step = Step::single(ids, t, (0..t as u32).collect(), 0);
        cal.observe_run(plan, &feeds(&step.feeds(plan.graph(), max_pos)?), &step.scalars(), &|_| true)?;
        self.pos = t;
        self.cached.clear();
        Ok(())
    }

    /// Forget the conversation (the cache rows are overwritten by the next tokens).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.cached.clear();
    }

    /// Keep the longest prefix of `ids` whose keys and values the cache already holds, so that only the rest
    /// needs a forward (a chat turn re-renders the whole conversation, of which all but the new turn is
    /// cached). At least the last id is left to run, since its logits are wanted. Returns how many ids are
    /// kept; the position moves back to there.
    pub fn reuse_prefix(&mut self, ids: &[u32]) -> usize {
        if self.cached.len() != self.pos || self.batch != 1 {
            self.reset();
            return 0;
        }
        let same = self.cached.iter().zip(ids).take_while(|(a, b)| a == b).count();
        let keep = same.min(ids.len().saturating_sub(1));
        self.pos = keep;
        self.cached.truncate(keep);
        keep
    }

    /// Weight bytes one decode step reads: every param, except that a table only gathered from (an
    /// untied embedding table) costs one row.
    pub fn bytes_per_token(&self) -> u64 {
        let g = self.decode.graph();
        let mut bytes = 0;
        for (i, node) in g.nodes.iter().enumerate() {
            if !matches!(node.op, Op::Param { .. }) {
                continue;
            }
            let v = crate::graph::ValueId(i);
            let users: Vec<&crate::graph::Node> = g.nodes.iter().filter(|n| n.inputs.contains(&v)).collect();
            let gathered = !users.is_empty()
                && users.iter().all(|n| matches!(n.op, Op::Embedding) && n.inputs.first() == Some(&v));
            let n = if gathered { *node.shape.last().unwrap_or(&1) } else { node.shape.iter().product() };
            bytes += (n * node.dtype.size()) as u64;
        }
        bytes
    }

    /// Dispatches in one decode step.
    pub fn decode_dispatches(&self) -> usize {
        self.decode.dispatch_count()
    }

    /// Bytes on the GPU: shared weights and KV cache, plus each plan's transient pool.
    pub fn gpu_bytes(&self) -> u64 {
        let plans = self.prefill.plans().chain(self.nll_plans.plans()).chain(self.calib_plans.plans());
        let slots = self.slots.as_ref().map_or(0, |s| s.plan_bytes());
        self.shared.bytes() + self.decode.memory().1 + slots + plans.map(|p| p.memory().1).sum::<u64>()
    }

    /// Per-dispatch GPU times of one decode step of token `id` at the current position (the cache row it
    /// writes is overwritten by the next real step).
    pub fn profile_decode(&mut self, id: u32) -> Result<Vec<crate::exec::OpTiming>> {
        self.single("profile_decode")?;
        let pos = self.pos as u32;
        let step = Step::single(&[id], 1, vec![0], pos);
        let inputs = step.feeds(self.decode.graph(), self.cfg.max_pos())?;
        self.decode.profile(&feeds(&inputs), &step.scalars())
    }

    /// Time each dispatch of the prefill plan of `ids` at position 0 (after running it once, which compiles
    /// and warms it); the cache is left reset.
    pub fn profile_prefill(&mut self, ids: &[u32]) -> Result<Vec<crate::exec::OpTiming>> {
        self.reset();
        self.forward(ids)?;
        self.reset();
        let b = self.prefill.keys().copied().find(|&k| k >= ids.len()).unwrap_or(ids.len());
        let plan = self.prefill.get_mut(&b).ok_or_else(|| Error::Run("no prefill plan was compiled".into()))?;
        let step = Step::single(ids, b, vec![ids.len() as u32 - 1], 0);
        let out = plan.profile(&feeds(&step.feeds(plan.graph(), self.cfg.max_pos())?), &step.scalars());
        self.reset();
        out
    }

    /// Run a 16-token prefill and one decode step on throwaway tokens, then reset; returns its seconds. A
    /// driver that compiles a pipeline at its first dispatch (llvmpipe) compiles the ones a short prompt and
    /// its decode need here, at load, instead of inside the first request's time to first token (llama.cpp
    /// warms up the same way). A prompt in a longer bucket compiles that bucket's plan, whose kernels are the
    /// same pipelines (cached by `Gpu`), so it pays little more. With slots open (a server, which decodes
    /// through them only), the prefill goes into a slot and the decode step is the slots'; the slot is
    /// released.
    pub fn warm_up(&mut self) -> Result<f64> {
        self.single("warm_up")?;
        let t0 = Instant::now();
        self.reset();
        let t = 16.min(self.max_seq.saturating_sub(1)).max(1);
        match self.free_slot() {
            Some(slot) if t < self.max_seq => {
                self.prefill_slot(slot, &vec![0; t])?;
                self.step_slots(&[(slot, 0)])?;
                self.release_slot(slot);
            }
            _ => {
                self.forward(&vec![0; t])?;
                if self.pos < self.max_seq {
                    self.forward(&[0])?;
                }
            }
        }
        self.reset();
        Ok(t0.elapsed().as_secs_f64())
    }

    /// An error for single-sequence work on a batched session.
    fn single(&self, what: &str) -> Result<()> {
        if self.batch != 1 {
            return Err(Error::Run(format!("{what} runs one sequence; this session steps {} together", self.batch)));
        }
        Ok(())
    }

    /// Run `ids` at the current position and return the logits of the last one.
    pub fn forward(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        self.single("forward")?;
        if ids.is_empty() {
            return Err(Error::Run("forward needs at least one token".into()));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab()) {
            return Err(Error::Run(format!("token id {bad} is outside the vocabulary ({})", self.cfg.vocab())));
        }
        let t = ids.len();
        if self.pos + t > self.max_seq {
            return Err(Error::Run(format!(
                "the context is full: {} cached + {t} new tokens > {} (raise --ctx, or reset)",
                self.pos, self.max_seq
            )));
        }
        let pos = self.pos as u32;
        // Prefill pads to a bucket when the padded rows still fit the cache, else runs the exact length.
        let b = match t {
            1 => 1,
            _ if self.pos + bucket(t) <= self.max_seq => bucket(t),
            _ => t,
        };
        let plan = match b {
            1 => &mut self.decode,
            _ => self.prefill.get_or_compile(b, || {
                let g = self.cfg.build(b, 1, self.max_seq, &self.prec)?;
                Plan::compile_shared(self.gpu, &g.graph, &[g.logits], Some(&self.shared))
            })?,
        };
        let step = Step::single(ids, b, vec![t as u32 - 1], pos);
        let out = plan.run(&feeds(&step.feeds(plan.graph(), self.cfg.max_pos())?), &step.scalars())?;
        if self.cached.len() == self.pos {
            self.cached.extend_from_slice(ids);
        } else {
            self.cached.clear();
        }
        self.pos += t;
        Ok(out[0].to_f32())
    }
}

fn feeds<'a>(inputs: &'a [(&'static str, HostTensor)]) -> Vec<(&'static str, &'a HostTensor)> {
    inputs.iter().map(|(n, t)| (*n, t)).collect()
}

pub use generation::{generate, Generation, Timings, TokenLogprob};
