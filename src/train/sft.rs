//! Finetuning a Llama-family decoder on instruction data (`finetune --task lm`): LoRA adapters on frozen base
//! weights (PEFT's), or every weight (`--full`). One step plan per padded length over one copy of the weights
//! (`SharedLeaves`): forward over whole sequences, the cross-entropy of the learned tokens, backward for the
//! trainable params only (frozen weights get no gradient buffers and no optimizer state), AdamW.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::lora::{self, LoraConfig};
use super::schedule::Schedule;
use super::sft_data::{Sequence, IGNORE};
use super::Accum;
use crate::error::{Error, Result};
use crate::exec::{Plan, SharedLeaves};
use crate::gpu::Gpu;
use crate::graph::{Graph, GraphBuilder, Op, ValueId};
use crate::loader::WeightStore;
use crate::models::{llama, ConfigSource, Precision};
use crate::tensor::{DType, HostTensor};

#[derive(Clone, Debug)]
pub struct Options {
    pub model: PathBuf,
    /// None: `--full` (every weight trains, f32 master weights).
    pub lora: Option<LoraConfig>,
    /// How the frozen base's linear weights are stored on the GPU (`--base-dtype`; f32 with `--full`).
    pub base: Base,
    pub epochs: usize,
    pub lr: f32,
    pub batch: usize,
    pub max_length: usize,
    pub warmup_ratio: f32,
    pub weight_decay: f32,
    pub betas: (f32, f32),
    pub grad_clip: Option<f32>,
    /// Micro-batches of `batch` sequences per optimizer step (1: none).
    pub grad_accum: usize,
    pub seed: u64,
    pub out: PathBuf,
}

/// The storage of a LoRA run's frozen linear weights. Activations, norms, embeddings, biases and the
/// adapters stay f32 whatever it is; f16 weights are widened right before each product, int8 ones (`quant`'s
/// block-32, weight-only) multiply as they are and are widened for dY·W in the backward (`Op::Dequantize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    #[default]
    F32,
    F16,
    Int8,
}

impl Base {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Base::F32),
            "f16" => Ok(Base::F16),
            "int8" => Ok(Base::Int8),
            other => Err(Error::Other(format!("--base-dtype {other:?}: one of f32, f16, int8"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Base::F32 => "f32",
            Base::F16 => "f16",
            Base::Int8 => "int8",
        }
    }

    pub fn precision(self) -> Precision {
        let f32 = Precision::from(DType::F32);
        match self {
            Base::F32 => f32,
            Base::F16 => Precision { weights: Some(DType::F16), ..f32 },
            Base::Int8 => Precision {
                int8: Some(crate::graph::ActQuant::None),
                keep: crate::models::DEFAULT_KEEP.iter().map(|s| s.to_string()).collect(),
                ..f32
            },
        }
    }
}

/// A plan's named inputs.
type Feeds = Vec<(&'static str, HostTensor)>;

/// (name, value) pairs of a graph's params.
type NamedValues = Vec<(String, ValueId)>;

/// One epoch's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Epoch {
    pub epoch: usize,
    /// Mean loss per learned token.
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    pub tokens_per_sec: f64,
}

/// What a step costs: trainable and total parameters, GPU memory, dispatches of one step.
#[derive(Clone, Debug, Serialize)]
pub struct Footprint {
    pub trainable_params: usize,
    pub total_params: usize,
    /// The parameters' own bytes (frozen base in its storage dtype, adapters, f32 master weights).
    pub param_bytes: u64,
    pub gpu_bytes: u64,
    pub step_dispatches: usize,
}

/// A decoder being finetuned: the base model's store, the step/eval plans by padded length.
pub struct LmTrainer<'g> {
    gpu: &'g Gpu,
    pub cfg: llama::Config,
    pub lora: Option<LoraConfig>,
    pub batch: usize,
    base: Base,
    store: WeightStore,
    model: PathBuf,
    shared: SharedLeaves,
    optimizer: super::Optimizer,
    seed: u64,
    /// Plans by (padded length, gathered rows) and what the step does with its gradients.
    steps: Vec<((usize, usize, Accum), Plan<'g>)>,
    evals: Vec<((usize, usize, Accum), Plan<'g>)>,
    /// The trainable params (name, shape), in graph order.
    pub trainable: Vec<(String, Vec<usize>)>,
    /// Starting adapter weights (instead of A Kaiming-uniform, B zeros).
    init: Option<lora::Adapter>,
}

fn is_lora(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

/// Open the base model and check the options against it without touching the GPU: a Llama-family decoder,
/// every LoRA target names layers it has, a starting adapter fits it.
pub fn prepare(opts: &Options, init: Option<&lora::Adapter>) -> Result<(WeightStore, llama::Config)> {
    let store = crate::loader::open(&opts.model)?;
    let src = ConfigSource::find(&opts.model, &store)?;
    let arch = src.architecture()?;
    if arch == "gpt2" || arch == "bert" {
        return Err(Error::Unsupported {
            op: "finetune --task lm".into(),
            detail: format!("{arch:?}: LM finetuning builds Llama-family decoders (llama, qwen2, mistral)"),
        });
    }
    let cfg = llama::Config::from_source(&src, &store)?;
    if opts.lora.is_none() && opts.base != Base::F32 {
        return Err(Error::Other(format!(
            "--base-dtype {} with --full: every weight trains in f32 (the base dtype is for LoRA's frozen weights)",
            opts.base.name()
        )));
    }
    if let Some(lc) = &opts.lora {
        let layers = llama::linear_layers(&cfg);
        for t in &lc.targets {
            if !layers.keys().any(|n| n.rsplit('.').next() == Some(t.as_str())) {
                return Err(Error::Other(format!(
                    "--lora-targets {t:?} matches no layer of {} (its layers end in {:?})",
                    opts.model.display(),
                    lora::LLAMA_TARGETS
                )));
            }
        }
        if let Some(a) = init {
            a.check(&layers, &opts.model.display().to_string())?;
        }
    }
    Ok((store, cfg))
}

impl<'g> LmTrainer<'g> {
    pub fn open(gpu: &'g Gpu, opts: &Options, init: Option<lora::Adapter>) -> Result<Self> {
        let (store, cfg) = prepare(opts, init.as_ref())?;
        if opts.batch == 0 {
            return Err(Error::Other("--batch-size 0: must be at least 1".into()));
        }
        let full = opts.lora.is_none();
        let optimizer = super::Optimizer {
            betas: opts.betas,
            eps: 1e-8,
            weight_decay: opts.weight_decay,
            max_grad_norm: opts.grad_clip,
            // transformers' Trainer: no decay on biases and norm weights.
            no_decay: |n| n.ends_with(".bias") || n.ends_with("norm.weight"),
            trainable: if full { |n| n != llama::ROPE_TABLE } else { is_lora },
        };
        Ok(LmTrainer {
            gpu,
            cfg,
            lora: opts.lora.clone(),
            batch: opts.batch,
            base: opts.base,
            store,
            model: opts.model.clone(),
            shared: SharedLeaves::new(),
            optimizer,
            seed: opts.seed,
            steps: vec![],
            evals: vec![],
            trainable: vec![],
            init,
        })
    }

    /// The step graph (`train`) or the loss alone: `ids` [B, T], `rows` [R] (the positions whose next token
    /// is learned, padded with 0), `targets` [R] i32 (padding -100) → mean cross-entropy.
    fn graph(&self, t: usize, r: usize, train: bool, accum: Accum) -> Result<(Graph, ValueId, NamedValues)> {
        let mut g = GraphBuilder { grad_through_transpose: self.gpu.caps().texture_reads, ..Default::default() };
        let prec = self.base.precision();
        // Evaluation runs without LoRA dropout.
        let lc = self.lora.clone().map(|l| if train { l } else { LoraConfig { dropout: 0.0, ..l } });
        let logits = llama::build_train(
            &mut g,
            &self.cfg,
            self.batch,
            t,
            &prec,
            lc.as_ref().map(|l| (l, self.seed as u32)),
            Some(r),
        )?;
        let targets = g.input("targets", &[r], DType::I32)?;
        let loss = g.cross_entropy(logits, targets)?;
        let params = if train { self.optimizer.append(&mut g, loss, accum)?.0 } else { vec![] };
        Ok((g.finish(), loss, params))
    }

    fn initial(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let Some(stem) = name.strip_suffix(".lora_A.weight").or_else(|| name.strip_suffix(".lora_B.weight")) else {
            return llama::load_param(&self.cfg, &self.store, name, shape);
        };
        let a = name.ends_with(".lora_A.weight");
        if let Some((ta, tb)) = self.init.as_ref().and_then(|i| i.layers.get(stem)) {
            return Ok(if a { ta.clone() } else { tb.clone() });
        }
        if a {
            lora::init_a(stem, shape[0], shape[1], self.seed)
        } else {
            HostTensor::f32(shape, vec![0.0; shape.iter().product()])
        }
    }

    fn plan(&mut self, (t, r): (usize, usize), train: bool, accum: Accum) -> Result<&mut Plan<'g>> {
        let list = if train { &self.steps } else { &self.evals };
        if let Some(i) = list.iter().position(|p| p.0 == (t, r, accum)) {
            let list = if train { &mut self.steps } else { &mut self.evals };
            return Ok(&mut list[i].1);
        }
        let (graph, loss, params) = self.graph(t, r, train, accum)?;
        let fresh = self.shared.bytes() == 0;
        let mut plan = Plan::compile_shared(self.gpu, &graph, &[loss], Some(&self.shared))?;
        if fresh {
            let this = &*self;
            crate::models::upload_params(&graph, &this.store, &|n, s| this.initial(n, s), &mut |n, v| plan.set(n, v))?;
        }
        if train && self.trainable.is_empty() {
            self.trainable = params.iter().map(|(n, v)| (n.clone(), graph.shape(*v).to_vec())).collect();
        }
        let list = if train { &mut self.steps } else { &mut self.evals };
        list.push(((t, r, accum), plan));
        Ok(&mut list.last_mut().expect("just pushed").1)
    }

    /// A batch's plan key and inputs: the padded length (the next power of two from 16, at most the
    /// longest allowed), the learned positions gathered for the head (their count padded the same way), the
    /// ids and the targets.
    fn batch_inputs(&self, seqs: &[&Sequence], max_length: usize) -> Result<((usize, usize), Feeds)> {
        let longest = seqs.iter().map(|s| s.ids.len()).max().unwrap_or(1);
        if seqs.len() > self.batch {
            return Err(Error::Run(format!("{} sequences in a batch of {}", seqs.len(), self.batch)));
        }
        let t = super::classifier::bucket(longest, max_length.max(longest));
        let b = self.batch;
        let mut ids = vec![0u32; b * t];
        let (mut rows, mut tgt) = (vec![], vec![]);
        for (k, s) in seqs.iter().enumerate() {
            ids[k * t..k * t + s.ids.len()].copy_from_slice(&s.ids);
            for (i, &y) in s.targets().iter().enumerate().filter(|(_, &y)| y != IGNORE) {
                rows.push((k * t + i) as u32);
                tgt.push(y);
            }
        }
        let r = super::classifier::bucket(rows.len().max(1), b * t);
        rows.resize(r, 0);
        tgt.resize(r, IGNORE);
        let feeds = vec![
            ("ids", HostTensor::u32(&[b, t], ids)?),
            ("rows", HostTensor::u32(&[r], rows)?),
            ("targets", HostTensor::i32(&[r], tgt)?),
        ];
        Ok(((t, r), feeds))
    }

    /// One AdamW step on a batch at rate `lr`, step `step` (1-based); returns the mean loss per learned token.
    pub fn train_step(&mut self, seqs: &[&Sequence], max_length: usize, lr: f32, step: u32) -> Result<f32> {
        self.micro_step(seqs, max_length, lr, step, Accum::Off)
    }

    /// One micro-batch of an optimizer step (`Accum`: only the last updates the weights).
    pub fn micro_step(
        &mut self,
        seqs: &[&Sequence],
        max_length: usize,
        lr: f32,
        step: u32,
        accum: Accum,
    ) -> Result<f32> {
        let (key, feeds) = self.batch_inputs(seqs, max_length)?;
        let plan = self.plan(key, true, accum)?;
        let f: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, v)| (*n, v)).collect();
        Ok(plan.run(&f, &[("lr", lr.to_bits()), ("step", step)])?[0].to_f32()[0])
    }

    /// One training step's GPU time by dispatch (the step is taken: its update is real).
    pub fn profile_step(
        &mut self,
        seqs: &[&Sequence],
        max_length: usize,
        step: u32,
    ) -> Result<Vec<crate::exec::OpTiming>> {
        let (key, feeds) = self.batch_inputs(seqs, max_length)?;
        let plan = self.plan(key, true, Accum::Off)?;
        let f: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, v)| (*n, v)).collect();
        plan.profile(&f, &[("lr", 0f32.to_bits()), ("step", step)])
    }

    /// The mean loss per learned token of a batch, without updates or dropout.
    pub fn eval_batch(&mut self, seqs: &[&Sequence], max_length: usize) -> Result<f32> {
        let (key, feeds) = self.batch_inputs(seqs, max_length)?;
        let plan = self.plan(key, false, Accum::Off)?;
        let f: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, v)| (*n, v)).collect();
        Ok(plan.run(&f, &[("step", 0)])?[0].to_f32()[0])
    }

    /// Mean loss per learned token over `data`.
    pub fn evaluate(&mut self, data: &[Sequence], max_length: usize) -> Result<f64> {
        let (mut sum, mut n) = (0.0f64, 0usize);
        for chunk in data.chunks(self.batch) {
            let refs: Vec<&Sequence> = chunk.iter().collect();
            let k: usize = chunk.iter().map(|s| s.learned_targets()).sum();
            sum += self.eval_batch(&refs, max_length)? as f64 * k as f64;
            n += k;
        }
        Ok(sum / n.max(1) as f64)
    }

    /// A trained parameter's current value.
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let plan = self.steps.first().or(self.evals.first()).map(|p| &p.1);
        plan.ok_or_else(|| Error::Run("nothing has run yet".into()))?.read(name)
    }

    pub fn footprint(&self) -> Footprint {
        let first = self.steps.first().map(|p| &p.1);
        let params = || {
            first
                .into_iter()
                .flat_map(|p| &p.graph().nodes)
                .filter(|n| matches!(&n.op, Op::Param { name } if name != llama::ROPE_TABLE))
        };
        let total = params()
            .filter(|n| !matches!(&n.op, Op::Param { name } if name.ends_with("_scale")))
            // Packed int8 weights hold four values a word.
            .map(|n| n.shape.iter().product::<usize>() * if n.dtype == DType::U32 { 4 } else { 1 })
            .sum();
        let param_bytes = params().map(|n| (n.shape.iter().product::<usize>() * n.dtype.size()) as u64).sum();
        let trainable = self.trainable.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        let plans = self.steps.iter().chain(&self.evals);
        Footprint {
            trainable_params: trainable,
            total_params: total,
            param_bytes,
            gpu_bytes: self.shared.bytes() + plans.map(|p| p.1.memory().1).sum::<u64>(),
            step_dispatches: first.map_or(0, |p| p.dispatch_count()),
        }
    }

    /// Write the result: a PEFT adapter folder, or (`--full`) a model folder with the source's tokenizer.
    pub fn save(&self, out: &Path) -> Result<()> {
        match &self.lora {
            Some(lc) => {
                let mut layers = vec![];
                for (name, _) in &self.trainable {
                    if let Some(stem) = name.strip_suffix(".lora_A.weight") {
                        let a = self.read(name)?;
                        let b = self.read(&format!("{stem}.lora_B.weight"))?;
                        layers.push((stem.to_string(), a, b));
                    }
                }
                lora::save(out, lc, &self.model.display().to_string(), &layers)
            }
            None => {
                let mut mt = crate::tools::export::model_tensors(&self.model)?;
                for t in &mut mt.tensors {
                    if self.trainable.iter().any(|(n, _)| *n == t.name) {
                        let v = self.read(&t.name)?.to_f32();
                        if let Some(d) = t.f32_mut() {
                            *d = v;
                        }
                    }
                }
                crate::tools::export::write_model_folder(out, &self.model, &mt.config, &mt.tensors, true)
            }
        }
    }
}

/// Finetune; `on_step(step in epoch, steps in epoch, loss)` after every optimizer step (of `grad_accum`
/// micro-batches; the last step of an epoch takes what is left), `on_epoch` after each epoch. The adapter (or
/// model) of the last epoch is written to `opts.out`.
pub fn finetune(
    gpu: &Gpu,
    opts: &Options,
    train: &[Sequence],
    val: &[Sequence],
    init: Option<lora::Adapter>,
    on_step: &mut dyn FnMut(usize, usize, f32),
    on_epoch: &mut dyn FnMut(&Epoch),
) -> Result<(Vec<Epoch>, Footprint)> {
    if train.is_empty() {
        return Err(Error::Other("no training sequences".into()));
    }
    let mut tr = LmTrainer::open(gpu, opts, init)?;
    let accum = opts.grad_accum.max(1);
    let per_epoch = train.len().div_ceil(opts.batch).div_ceil(accum);
    let total = per_epoch * opts.epochs;
    let schedule = Schedule::finetune(opts.lr, opts.warmup_ratio, total);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut step, mut epochs) = (0u32, vec![]);
    for epoch in 1..=opts.epochs {
        super::data::shuffle(&mut order, opts.seed.wrapping_add(epoch as u64));
        let t0 = Instant::now();
        let (mut sum, mut n, mut tokens) = (0.0f64, 0usize, 0usize);
        let batches: Vec<&[usize]> = order.chunks(opts.batch).collect();
        for (k, group) in batches.chunks(accum).enumerate() {
            step += 1;
            let (mut step_loss, mut step_n) = (0.0f64, 0usize);
            for (i, idx) in group.iter().enumerate() {
                let seqs: Vec<&Sequence> = idx.iter().map(|&i| &train[i]).collect();
                let lr = schedule.at(step as usize);
                let loss = tr.micro_step(&seqs, opts.max_length, lr, step, Accum::of(i, group.len()))?;
                if !loss.is_finite() {
                    return Err(Error::Run(format!("the training loss is {loss} at step {step}: lower --lr")));
                }
                let learned: usize = seqs.iter().map(|s| s.learned_targets()).sum();
                step_loss += loss as f64 * learned as f64;
                step_n += learned;
                tokens += seqs.iter().map(|s| s.ids.len()).sum::<usize>();
            }
            sum += step_loss;
            n += step_n;
            on_step(k + 1, per_epoch, (step_loss / step_n.max(1) as f64) as f32);
        }
        let secs = t0.elapsed().as_secs_f64();
        let val_loss = if val.is_empty() { None } else { Some(tr.evaluate(val, opts.max_length)?) };
        let e = Epoch { epoch, train_loss: sum / n.max(1) as f64, val_loss, tokens_per_sec: tokens as f64 / secs };
        on_epoch(&e);
        epochs.push(e);
    }
    tr.save(&opts.out)?;
    Ok((epochs, tr.footprint()))
}
