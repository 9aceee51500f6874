//! Sequence classification on an encoder (a pretrained BERT, or the textbook Transformer trained from
//! scratch, `Encoder`): the step graph (encoder → head → cross-entropy → autodiff →
//! AdamW over every parameter), one plan per padded length compiled once and replayed with the learning
//! rate and step as runtime scalars, evaluation on forward-only plans over the same weights, and the
//! trained model written as a transformers `BertForSequenceClassification` folder.
//!
//! Heads (`HeadKind`): the course's (the [CLS] row → Linear), transformers' (the [CLS] row → dense + tanh
//! pooler → Linear) and sentence-transformers' mean pooling over real tokens → Linear. Pooling is one
//! batched matmul with a [B, 1, T] weight row per sequence fed from the host (one-hot at [CLS], or
//! mask / length), so one rule serves all three and its gradient comes from MatMul's.

use std::path::Path;

use crate::error::{Error, Result};
use crate::exec::{Plan, SharedLeaves};
use crate::gpu::Gpu;
use crate::graph::{Act, Graph, GraphBuilder, Op, ValueId};
use crate::loader::WeightStore;
use crate::models::{bert, textbook, ConfigSource, Precision};
use crate::tensor::{DType, HostTensor};

/// The encoder under the head.
#[derive(Clone, Debug)]
pub enum Encoder {
    Bert(bert::Config),
    /// The textbook Transformer (`finetune --from-scratch`): inputs `ids` and `mask` only, no pooler.
    Textbook(textbook::Config),
}

impl Encoder {
    pub fn max_pos(&self) -> usize {
        match self {
            Encoder::Bert(c) => c.max_pos,
            Encoder::Textbook(c) => c.max_len,
        }
    }

    pub fn hidden(&self) -> usize {
        match self {
            Encoder::Bert(c) => c.hidden,
            Encoder::Textbook(c) => c.d_model,
        }
    }

    pub fn vocab(&self) -> usize {
        match self {
            Encoder::Bert(c) => c.vocab,
            Encoder::Textbook(c) => c.vocab,
        }
    }

    /// The encoder of a model folder's config: BERT or the textbook Transformer.
    pub fn from_source(src: &ConfigSource, store: &WeightStore) -> Result<Encoder> {
        match src.architecture()?.as_str() {
            "bert" => Ok(Encoder::Bert(bert::Config::from_source(src, store)?)),
            "textbook_transformer" => Ok(Encoder::Textbook(textbook::Config::from_source(src)?)),
            other => Err(Error::Unsupported {
                op: "sequence classification".into(),
                detail: format!(
                    "{other:?} is not an encoder (bert, or textbook_transformer from finetune --from-scratch)"
                ),
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    Cls,
    Pooler,
    Mean,
}

impl HeadKind {
    pub fn parse(s: &str) -> Result<HeadKind> {
        match s {
            "cls" => Ok(HeadKind::Cls),
            "pooler" => Ok(HeadKind::Pooler),
            "mean" => Ok(HeadKind::Mean),
            _ => Err(Error::Other(format!("--head {s}: expected cls, pooler or mean"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Cls => "cls",
            HeadKind::Pooler => "pooler",
            HeadKind::Mean => "mean",
        }
    }
}

/// The optimizer and regularisation of a finetune.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Hidden dropout (encoder and head); 0 turns it off.
    pub dropout: f32,
    /// Dropout on the attention probabilities (transformers' `attention_probs_dropout_prob`); 0 turns it off.
    pub attention_dropout: f32,
    pub seed: u32,
    /// Clip the gradients by their global norm (torch's `clip_grad_norm_`) before each update.
    pub max_grad_norm: Option<f32>,
    /// Compute each input gradient dY·W as dY·(Wᵀ)ᵀ, a transpose then the x·Wᵀ texture GEMM
    /// (`GraphBuilder::grad_through_transpose`); `Classifier::open` sets it from the device's strategy.
    pub grad_through_transpose: bool,
}

/// Parameters that take no weight decay (transformers' `no_decay`: biases and LayerNorm weights).
pub fn no_decay(name: &str) -> bool {
    name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm")
}

/// One step graph (or a forward-only one without `train`).
pub struct StepGraph {
    pub graph: Graph,
    pub logits: ValueId,
    pub loss: ValueId,
    /// Every trainable parameter with its gradient (training graphs only).
    pub params: Vec<(String, ValueId)>,
    pub grads: Vec<ValueId>,
}

/// Inputs: the encoder's (`ids`, `type_ids`, `pos_ids`, `mask` [B, T]), `pool` [B, 1, T] (each row's
/// pooling weights) and `labels` [B] i32 (-100 for padding rows). With `train`, AdamW updates every
/// parameter in place at the runtime scalars "lr" (f32 bits) and "step".
pub fn step_graph(
    enc: &Encoder,
    head: HeadKind,
    n_labels: usize,
    b: usize,
    t: usize,
    train: Option<&TrainSpec>,
    accum: super::Accum,
) -> Result<StepGraph> {
    let prec = Precision::from(DType::F32);
    let mut g =
        GraphBuilder { grad_through_transpose: train.is_some_and(|s| s.grad_through_transpose), ..Default::default() };
    let dropout = train.map(|s| bert::Dropout { p: s.dropout, seed: s.seed, attn: s.attention_dropout });
    let hidden = match enc {
        Encoder::Bert(cfg) => bert::build_into(&mut g, cfg, b, t, &prec, dropout)?,
        Encoder::Textbook(cfg) => textbook::build_into(&mut g, cfg, b, t, &prec, dropout)?,
    };
    let c = enc.hidden();
    let pool = g.input("pool", &[b, 1, t], DType::F32)?;
    let labels = g.input("labels", &[b], DType::I32)?;
    let pooled = g.matmul(pool, hidden, false, false)?;
    let mut x = g.reshape(pooled, &[b, c])?;
    if head == HeadKind::Pooler {
        let Encoder::Bert(cfg) = enc else {
            return Err(Error::Other("--head pooler: the textbook encoder has no pooler (use mean or cls)".into()));
        };
        let p = &cfg.prefix;
        let w = g.param(&format!("{p}pooler.dense.weight"), &[c, c], DType::F32)?;
        let bias = g.param(&format!("{p}pooler.dense.bias"), &[c], DType::F32)?;
        let y = g.linear(x, w, Some(bias))?;
        x = g.act(y, Act::Tanh)?;
    }
    if let Some(d) = dropout {
        // The classifier's dropout (transformers applies hidden_dropout_prob there too).
        x = d.apply(&mut g, x, &mut 1000)?;
    }
    let w = g.param("classifier.weight", &[n_labels, c], DType::F32)?;
    let bias = g.param("classifier.bias", &[n_labels], DType::F32)?;
    let logits = g.linear(x, w, Some(bias))?;
    let loss = g.cross_entropy(logits, labels)?;
    let (params, grads) = match train {
        Some(spec) => super::Optimizer {
            betas: (spec.beta1, spec.beta2),
            eps: spec.eps,
            weight_decay: spec.weight_decay,
            max_grad_norm: spec.max_grad_norm,
            no_decay,
            trainable: |_| true,
        }
        .append(&mut g, loss, accum)?,
        None => (vec![], vec![]),
    };
    Ok(StepGraph { graph: g.finish(), logits, loss, params, grads })
}

/// The squared global norm [1] of `grads`: one `SumSquares` over all of them (a few dispatches).
pub fn global_norm2(g: &mut GraphBuilder, grads: &[ValueId]) -> Result<ValueId> {
    if grads.is_empty() {
        return Err(Error::Graph("clipping needs at least one gradient".into()));
    }
    g.op(Op::SumSquares, grads)
}

/// A batch as the step graph's inputs: ids padded to `t`, pooling rows for `head`, labels (-100 for the
/// `b − len` padding rows of a last partial batch). `labels` may be empty (inference).
pub fn batch_feeds(
    seqs: &[Vec<u32>],
    labels: &[usize],
    b: usize,
    t: usize,
    head: HeadKind,
) -> Result<Vec<(&'static str, HostTensor)>> {
    let (mut ids, mut pos, mut mask, mut pool) =
        (vec![0u32; b * t], vec![0u32; b * t], vec![0f32; b * t], vec![0f32; b * t]);
    let mut tgt = vec![-100i32; b];
    for (i, s) in seqs.iter().enumerate() {
        if s.is_empty() || s.len() > t {
            return Err(Error::Run(format!("sequence {i} has {} tokens, the batch {t}", s.len())));
        }
        for (j, &id) in s.iter().enumerate() {
            ids[i * t + j] = id;
            pos[i * t + j] = j as u32;
            mask[i * t + j] = 1.0;
            if head == HeadKind::Mean {
                pool[i * t + j] = 1.0 / s.len() as f32;
            }
        }
        if head != HeadKind::Mean {
            pool[i * t] = 1.0;
        }
        if let Some(&l) = labels.get(i) {
            tgt[i] = l as i32;
        }
    }
    Ok(vec![
        ("ids", HostTensor::u32(&[b, t], ids)?),
        ("type_ids", HostTensor::u32(&[b, t], vec![0; b * t])?),
        ("pos_ids", HostTensor::u32(&[b, t], pos)?),
        ("mask", HostTensor::f32(&[b, t], mask)?),
        ("pool", HostTensor::f32(&[b, 1, t], pool)?),
        ("labels", HostTensor::i32(&[b], tgt)?),
    ])
}

/// The padded length of a batch whose longest sequence has `len` tokens: the smallest of 16, 32, 64, … that
/// holds it, at most `max` (so a run compiles one plan per length it meets, never one per batch).
pub fn bucket(len: usize, max: usize) -> usize {
    let mut t = 16;
    while t < len {
        t *= 2;
    }
    t.min(max).max(len)
}

/// A classifier being trained or evaluated on one device: the source checkpoint, the step and eval plans by
/// padded length over one copy of the weights.
pub struct Classifier<'g> {
    gpu: &'g Gpu,
    pub encoder: Encoder,
    pub head: HeadKind,
    pub labels: Vec<String>,
    pub batch: usize,
    store: WeightStore,
    source: std::path::PathBuf,
    config_json: serde_json::Value,
    shared: SharedLeaves,
    train: Option<TrainSpec>,
    steps: Vec<((usize, super::Accum), Plan<'g>)>,
    evals: Vec<((usize, super::Accum), Plan<'g>)>,
    init_seed: u64,
}

/// What one batch of training or evaluation gave.
pub struct BatchOut {
    /// Mean loss over the batch's real rows.
    pub loss: f32,
    /// The logits of each real row.
    pub logits: Vec<Vec<f32>>,
}

/// What a classifier is opened for: its head, its labels (one classifier row each), the batch its plans hold,
/// training (`None`: inference only) and the seed of a fresh head's initialisation.
#[derive(Clone, Debug)]
pub struct Setup {
    pub head: HeadKind,
    pub labels: Vec<String>,
    pub batch: usize,
    pub train: Option<TrainSpec>,
    pub seed: u64,
}

impl<'g> Classifier<'g> {
    /// Open the encoder at `path` (a BERT folder: a sentence-transformers model, a BertModel or a
    /// BertForSequenceClassification checkpoint; or a textbook classifier written by `finetune
    /// --from-scratch`). A head the checkpoint lacks starts as transformers initialises one (normal(0,
    /// initializer_range) weights, zero biases; seeded by `seed`); a classifier it has must have one row per
    /// label.
    pub fn open(gpu: &'g Gpu, path: &Path, setup: Setup) -> Result<Self> {
        let labels = &setup.labels;
        let store = crate::loader::open(path)?;
        let src = ConfigSource::find(path, &store)?;
        let encoder = Encoder::from_source(&src, &store)?;
        let ConfigSource::Json(config_json) = &src else {
            return Err(Error::Format {
                file: path.display().to_string(),
                detail: "an encoder needs config.json".into(),
            });
        };
        let config_json = config_json.clone();
        if let Ok(e) = store.entry("classifier.weight") {
            if e.shape.first() != Some(&labels.len()) {
                return Err(Error::Shape {
                    op: "finetune".into(),
                    detail: format!(
                        "{}: the checkpoint's classifier has {} labels, the data {} ({labels:?})",
                        path.display(),
                        e.shape.first().copied().unwrap_or(0),
                        labels.len()
                    ),
                    shapes: vec![e.shape.clone()],
                });
            }
        }
        Self::new(gpu, encoder, store, path, config_json, setup)
    }

    /// A textbook encoder with a fresh head trained from scratch (`finetune --from-scratch`): `cfg` sizes it,
    /// `config_json` is its config.json, `source` a folder holding its tokenizer (copied into the output).
    pub fn from_scratch(
        gpu: &'g Gpu,
        cfg: textbook::Config,
        config_json: serde_json::Value,
        source: &Path,
        setup: Setup,
    ) -> Result<Self> {
        Self::new(gpu, Encoder::Textbook(cfg), WeightStore::empty(), source, config_json, setup)
    }

    fn new(
        gpu: &'g Gpu,
        encoder: Encoder,
        store: WeightStore,
        source: &Path,
        config_json: serde_json::Value,
        setup: Setup,
    ) -> Result<Self> {
        let Setup { head, labels, batch, train, seed } = setup;
        if batch == 0 {
            return Err(Error::Other("--batch-size 0: must be at least 1".into()));
        }
        let train = train.map(|s| TrainSpec { grad_through_transpose: gpu.caps().texture_reads, ..s });
        Ok(Classifier {
            gpu,
            encoder,
            head,
            labels,
            batch,
            store,
            source: source.to_path_buf(),
            config_json,
            shared: SharedLeaves::new(),
            train,
            steps: vec![],
            evals: vec![],
            init_seed: seed,
        })
    }

    fn initial(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        if let Encoder::Textbook(cfg) = &self.encoder {
            // A saved textbook classifier holds every parameter; one trained from scratch none.
            return match self.store.names().next().is_some() {
                true => textbook::load_param(cfg, &self.store, name, shape),
                // From scratch (the head too): PyTorch's initialisation.
                false => textbook::init_param(cfg, name, shape, self.init_seed),
            };
        }
        if self.store.contains(name) {
            return crate::models::load_checked(&self.store, name, shape);
        }
        let is_head = name.starts_with("classifier.") || name.contains("pooler.dense.");
        if !is_head {
            return Err(Error::Format { file: self.source.display().to_string(), detail: format!("no tensor {name}") });
        }
        let n: usize = shape.iter().product();
        if name.ends_with(".bias") {
            return HostTensor::f32(shape, vec![0.0; n]);
        }
        let std = self.config_json["initializer_range"].as_f64().unwrap_or(0.02) as f32;
        let salt = name.bytes().fold(self.init_seed, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
        HostTensor::f32(shape, normal(n, std, salt))
    }

    fn plan(&mut self, t: usize, training: bool, accum: super::Accum) -> Result<&mut Plan<'g>> {
        let have = if training { &self.steps } else { &self.evals };
        if let Some(i) = have.iter().position(|p| p.0 == (t, accum)) {
            let list = if training { &mut self.steps } else { &mut self.evals };
            return Ok(&mut list[i].1);
        }
        let spec = if training { self.train.as_ref() } else { None };
        let sg = step_graph(&self.encoder, self.head, self.labels.len(), self.batch, t, spec, accum)?;
        let fresh = self.shared.bytes() == 0;
        let outputs = if training { vec![sg.loss] } else { vec![sg.logits, sg.loss] };
        let mut plan = Plan::compile_shared(self.gpu, &sg.graph, &outputs, Some(&self.shared))?;
        if fresh {
            let this = &*self;
            crate::models::upload_params(&sg.graph, &this.store, &|n, s| this.initial(n, s), &mut |n, t| {
                plan.set(n, t)
            })?;
        }
        let list = if training { &mut self.steps } else { &mut self.evals };
        list.push(((t, accum), plan));
        Ok(&mut list.last_mut().expect("just pushed").1)
    }

    /// One optimizer step on a batch (at most `batch` sequences), at learning rate `lr` and step `step`
    /// (1-based). Returns the batch's mean loss.
    pub fn train_step(&mut self, seqs: &[Vec<u32>], labels: &[usize], lr: f32, step: u32) -> Result<f32> {
        self.micro_step(seqs, labels, lr, step, super::Accum::Off)
    }

    /// One micro-batch of an optimizer step (`Accum`: only the last updates the weights).
    pub fn micro_step(
        &mut self,
        seqs: &[Vec<u32>],
        labels: &[usize],
        lr: f32,
        step: u32,
        accum: super::Accum,
    ) -> Result<f32> {
        let vars = [("lr", lr.to_bits()), ("step", step)];
        let out = self.with_batch(seqs, labels, Some(accum), |plan, feeds| plan.run(feeds, &vars))?;
        Ok(out[0].to_f32()[0])
    }

    /// One training step's GPU time by dispatch (`Plan::profile`; the step's update is applied).
    pub fn profile_step(
        &mut self,
        seqs: &[Vec<u32>],
        labels: &[usize],
        lr: f32,
        step: u32,
    ) -> Result<Vec<crate::exec::OpTiming>> {
        let vars = [("lr", lr.to_bits()), ("step", step)];
        self.with_batch(seqs, labels, Some(super::Accum::Off), |plan, feeds| plan.profile(feeds, &vars))
    }

    /// Logits (and the mean loss, if `labels` are given) of a batch, without dropout or updates.
    pub fn eval_batch(&mut self, seqs: &[Vec<u32>], labels: &[usize]) -> Result<BatchOut> {
        let n = self.labels.len();
        let out = self.with_batch(seqs, labels, None, |plan, feeds| plan.run(feeds, &[]))?;
        let l = out[0].to_f32();
        Ok(BatchOut {
            loss: out[1].to_f32()[0],
            logits: (0..seqs.len()).map(|i| l[i * n..(i + 1) * n].to_vec()).collect(),
        })
    }

    /// `f` on the plan of a batch's bucket — a training step's (`train`: Some(accum)) or evaluation's — and the
    /// batch's feeds that plan takes.
    fn with_batch<R>(
        &mut self,
        seqs: &[Vec<u32>],
        labels: &[usize],
        train: Option<super::Accum>,
        f: impl FnOnce(&mut Plan<'g>, &[(&'static str, &HostTensor)]) -> Result<R>,
    ) -> Result<R> {
        if train.is_some() && self.train.is_none() {
            return Err(Error::Run("this classifier was opened for evaluation only".into()));
        }
        let t = self.padded(seqs)?;
        let feeds = batch_feeds(seqs, labels, self.batch, t, self.head)?;
        let plan = self.plan(t, train.is_some(), train.unwrap_or(super::Accum::Off))?;
        let feeds = plan.takes(&feeds);
        f(plan, &feeds)
    }

    fn padded(&self, seqs: &[Vec<u32>]) -> Result<usize> {
        if seqs.is_empty() || seqs.len() > self.batch {
            return Err(Error::Run(format!("a batch of {} sequences (1..={})", seqs.len(), self.batch)));
        }
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(1);
        let max = self.encoder.max_pos();
        if longest > max {
            return Err(Error::Run(format!("{longest} tokens exceed the model's {max} positions")));
        }
        Ok(bucket(longest, max))
    }

    /// Read a parameter back.
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let plan = self.steps.first().or(self.evals.first()).map(|p| &p.1);
        plan.ok_or_else(|| Error::Run("no plan has run yet".into()))?.read(name)
    }

    /// Every parameter in transformers' `BertForSequenceClassification` naming ("bert." + the encoder's
    /// names, "classifier.*"), with the source's pooler when the head did not train one.
    pub fn tensors(&self) -> Result<Vec<crate::tools::export::ExportTensor>> {
        let plan = self.steps.first().or(self.evals.first()).map(|p| &p.1);
        let plan = plan.ok_or_else(|| Error::Run("no plan has run yet".into()))?;
        let cfg = match &self.encoder {
            Encoder::Bert(cfg) => cfg,
            Encoder::Textbook(_) => {
                // PyTorch's names (fused in_proj), which `textbook::load_param` reads back.
                let named = textbook::checkpoint_tensors(plan.graph(), &|n| Ok(plan.read(n)?.to_f32()))?;
                return Ok(named
                    .into_iter()
                    .map(|(n, s, v)| crate::tools::export::ExportTensor::f32(&n, &s, v))
                    .collect());
            }
        };
        let mut out = vec![];
        let p = &cfg.prefix;
        let rename =
            |n: &str| if n.starts_with("classifier.") { n.to_string() } else { format!("bert.{}", &n[p.len()..]) };
        let mut names = vec![];
        for node in &plan.graph().nodes {
            if let Op::Param { name } = &node.op {
                let t = plan.read(name)?;
                out.push(crate::tools::export::ExportTensor::f32(&rename(name), &node.shape, t.to_f32()));
                names.push(name.clone());
            }
        }
        for suffix in ["weight", "bias"] {
            let name = format!("{p}pooler.dense.{suffix}");
            if !names.contains(&name) && self.store.contains(&name) {
                let e = self.store.entry(&name)?;
                out.push(crate::tools::export::ExportTensor::f32(
                    &rename(&name),
                    &e.shape.clone(),
                    self.store.to_f32(&name)?,
                ));
            }
        }
        Ok(out)
    }

    /// The source checkpoint's config.json.
    pub fn source_config(&self) -> &serde_json::Value {
        &self.config_json
    }

    /// config.json of the trained classifier: the source's, with the architecture, the labels and the head.
    pub fn config(&self) -> serde_json::Value {
        let mut c = self.config_json.clone();
        if matches!(self.encoder, Encoder::Bert(_)) {
            c["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
            c["model_type"] = "bert".into();
        }
        let id2label: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone().into())).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().enumerate().map(|(i, l)| (l.clone(), i.into())).collect();
        c["id2label"] = id2label.into();
        c["label2id"] = label2id.into();
        c["problem_type"] = "single_label_classification".into();
        c["wgpu_llm_head"] = self.head.name().into();
        c
    }

    /// Write the classifier folder (atomically: a temporary folder renamed into place).
    pub fn save(&self, out: &Path) -> Result<()> {
        crate::tools::export::write_model_folder(out, &self.source, &self.config(), &self.tensors()?, true)
    }

    /// Dispatches of the training plan for padded length `t` (once compiled).
    pub fn step_dispatches(&self, t: usize) -> Option<usize> {
        self.steps.iter().find(|p| p.0 == (t, super::Accum::Off)).map(|p| p.1.dispatch_count())
    }

    /// GPU bytes held by the weights, optimizer state and the largest transient pool.
    pub fn gpu_bytes(&self) -> u64 {
        let transient = self.steps.iter().chain(&self.evals).map(|p| p.1.memory().1).max().unwrap_or(0);
        self.shared.bytes() + transient
    }
}

/// n draws of normal(0, std) from a seeded generator (Box–Muller over `SplitMix`).
pub fn normal(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = super::SplitMix(seed);
    (0..n)
        .map(|_| {
            let (u1, u2) = (rng.uniform().max(1e-300), rng.uniform());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 * std
        })
        .collect()
}
