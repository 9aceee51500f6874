//! Pretraining a GPT-2 from scratch on a text corpus (the course's pretraining loop): a character or
//! existing tokenizer, random windows of the training 90% as batches (targets shifted by one), AdamW on a
//! schedule with optional clipping, evaluation on the last 10% every few steps, and a transformers
//! `GPT2LMHeadModel` folder (tied head, fused c_attn) with the tokenizer, `train_log.jsonl` and `loss.svg`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::classifier::normal;
use super::schedule::Schedule;
use super::{Accum, SplitMix};
use crate::error::{Error, Result};
use crate::exec::{Plan, SharedLeaves};
use crate::gpu::Gpu;
use crate::graph::{Graph, GraphBuilder, Op, ValueId};
use crate::loader::WeightStore;
use crate::models::{bert, gpt2, llama, ConfigSource};
use crate::tensor::{DType, HostTensor};

/// config.json fields a GPT-2 pretraining config may hold (`GPT2Config`'s); any other is an error.
const GPT2_FIELDS: &[&str] = &[
    "model_type",
    "architectures",
    "n_embd",
    "n_layer",
    "n_head",
    "n_positions",
    "n_ctx",
    "n_inner",
    "vocab_size",
    "layer_norm_epsilon",
    "activation_function",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "initializer_range",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_proj_to_labels",
    "summary_first_dropout",
    "scale_attn_weights",
    "use_cache",
    "transformers_version",
    "dtype",
    "torch_dtype",
];

/// The model a config describes, with `vocab` from the tokenizer.
/// config.json fields a Llama pretraining config may hold (`LlamaConfig`'s); any other is an error.
const LLAMA_FIELDS: &[&str] = &[
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "tie_word_embeddings",
    "vocab_size",
    "hidden_act",
    "initializer_range",
    "attention_bias",
    "attention_dropout",
    "mlp_bias",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "use_cache",
    "transformers_version",
    "dtype",
    "torch_dtype",
];

/// The decoder a `train` config describes.
#[derive(Clone, Debug)]
pub enum TrainConfig {
    Gpt2(gpt2::Config),
    Llama(llama::Config),
}

impl TrainConfig {
    pub fn max_pos(&self) -> usize {
        match self {
            TrainConfig::Gpt2(c) => c.max_pos,
            TrainConfig::Llama(c) => c.max_pos,
        }
    }
}

/// A `train` config: a GPT2Config or (model_type "llama") a LlamaConfig; unknown fields and zero sizes are
/// errors naming them.
pub fn config_from_json(path: &Path, v: &serde_json::Value, vocab: usize) -> Result<TrainConfig> {
    let bad = |detail: String| Error::Format { file: path.display().to_string(), detail };
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    match obj.get("model_type").and_then(|t| t.as_str()) {
        Some("llama") => return llama_config(path, v, vocab).map(TrainConfig::Llama),
        Some("gpt2") | None => {}
        Some(t) => {
            return Err(bad(format!(
                "model_type {t:?}: train builds GPT-2 (model_type \"gpt2\") and Llama (\"llama\") models"
            )))
        }
    }
    gpt2_config(path, v, vocab).map(TrainConfig::Gpt2)
}

/// The config's fields as an object, every one of them among `known` (a `class`'s fields).
fn known_fields<'v>(
    path: &Path,
    v: &'v serde_json::Value,
    known: &[&str],
    class: &str,
) -> Result<&'v serde_json::Map<String, serde_json::Value>> {
    let bad = |detail: String| Error::Format { file: path.display().to_string(), detail };
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!("unknown field {k:?} (a {class} has {known:?})")));
    }
    Ok(obj)
}

fn llama_config(path: &Path, v: &serde_json::Value, vocab: usize) -> Result<llama::Config> {
    let bad = |detail: String| Error::Format { file: path.display().to_string(), detail };
    let obj = known_fields(path, v, LLAMA_FIELDS, "LlamaConfig")?;
    if let Some(a) = obj.get("hidden_act").and_then(|a| a.as_str()).filter(|a| *a != "silu") {
        return Err(bad(format!("hidden_act {a:?}: only silu (Llama's) is built")));
    }
    for k in ["attention_bias", "mlp_bias"] {
        if obj.get(k).and_then(|b| b.as_bool()) == Some(true) {
            return Err(bad(format!("{k}: biases are not built for Llama training")));
        }
    }
    let src = ConfigSource::Json(v.clone());
    let hidden = src.size("hidden_size", "")?.unwrap_or(4096);
    let n_head = src.size("num_attention_heads", "")?.unwrap_or(32);
    let n_kv_head = src.size("num_key_value_heads", "")?.unwrap_or(n_head);
    src.check_divides(n_head, n_kv_head, "num_attention_heads / num_key_value_heads")
        .map_err(|e| bad(e.to_string()))?;
    let head_dim = match src.size("head_dim", "")? {
        Some(d) => d,
        None => {
            src.check_divides(hidden, n_head, "hidden_size / num_attention_heads").map_err(|e| bad(e.to_string()))?;
            hidden / n_head
        }
    };
    Ok(llama::Config {
        arch: "llama".into(),
        hidden,
        n_layers: src.size("num_hidden_layers", "")?.unwrap_or(32),
        n_head,
        n_kv_head,
        head_dim,
        intermediate: src.size("intermediate_size", "")?.unwrap_or(11008),
        vocab,
        rms_eps: src.num("rms_norm_eps", "").unwrap_or(1e-6) as f32,
        rope_theta: src.num("rope_theta", "").unwrap_or(10000.0) as f32,
        tie_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        qkv_bias: false,
        max_pos: src.size("max_position_embeddings", "")?.unwrap_or(2048),
        rope_scaling: None,
    })
}

fn gpt2_config(path: &Path, v: &serde_json::Value, vocab: usize) -> Result<gpt2::Config> {
    let bad = |detail: String| Error::Format { file: path.display().to_string(), detail };
    let obj = known_fields(path, v, GPT2_FIELDS, "GPT2Config")?;
    if let Some(a) = obj.get("activation_function").and_then(|a| a.as_str()).filter(|a| *a != "gelu_new") {
        return Err(bad(format!("activation_function {a:?}: only gelu_new (GPT-2's) is built")));
    }
    let src = ConfigSource::Json(v.clone());
    let hidden = src.size("n_embd", "")?.unwrap_or(768);
    let n_head = src.size("n_head", "")?.unwrap_or(12);
    src.check_divides(hidden, n_head, "n_embd / n_head").map_err(|e| bad(e.to_string()))?;
    Ok(gpt2::Config {
        hidden,
        n_layers: src.size("n_layer", "")?.unwrap_or(12),
        n_head,
        inner: src.size("n_inner", "")?.unwrap_or(4 * hidden),
        vocab,
        max_pos: src.size("n_positions", "")?.unwrap_or(1024),
        eps: src.num("layer_norm_epsilon", "").unwrap_or(1e-5) as f32,
        prefix: "transformer.".into(),
    })
}

/// A character vocabulary: every distinct character of the text, in code point order.
#[derive(Clone, Debug)]
pub struct CharVocab {
    pub chars: Vec<char>,
}

impl CharVocab {
    pub fn build(text: &str) -> CharVocab {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharVocab { chars }
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|c| {
                self.chars
                    .binary_search(&c)
                    .map(|i| i as u32)
                    .map_err(|_| Error::Other(format!("{c:?} is not in the vocabulary")))
            })
            .collect()
    }

    /// tokenizer.json for transformers' `PreTrainedTokenizerFast` (and this engine): a BPE model with one
    /// token per character and no merges, no pre-tokenizer, and a decoder that joins tokens as they are.
    pub fn tokenizer_json(&self) -> serde_json::Value {
        let vocab: serde_json::Map<String, serde_json::Value> =
            self.chars.iter().enumerate().map(|(i, c)| (c.to_string(), i.into())).collect();
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": null,
            "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": []}
        })
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub data: Vec<PathBuf>,
    pub out: PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub schedule: Schedule,
    pub weight_decay: f32,
    pub betas: (f32, f32),
    pub grad_clip: Option<f32>,
    /// Batches per optimizer step (their gradients averaged; 1: none).
    pub grad_accum: usize,
    pub dropout: Option<f32>,
    pub eval_every: usize,
    pub eval_batches: usize,
    pub seed: u64,
    /// Write a checkpoint (`OUT/checkpoint`) every this many steps (0: only at the end).
    pub save_every: usize,
    /// Continue from this checkpoint folder.
    pub resume: Option<PathBuf>,
    /// The vocabulary: characters, a BPE trained on the data, or a model's tokenizer.
    pub tokenizer: super::vocab::Spec,
    /// Set (by a Ctrl-C handler) to stop after the current step with a checkpoint.
    pub stop: Option<&'static std::sync::atomic::AtomicBool>,
}

/// What a checkpoint holds besides the tensors (every param and AdamW's m and v, in
/// `training_state.safetensors`): the steps done, the data position (the window generator's state) and the
/// evaluation log, so a resumed run continues exactly as the uninterrupted one.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct TrainerState {
    pub step: usize,
    pub rng: u64,
    /// The training loss sum and count since the last evaluation.
    pub since: f64,
    pub since_n: usize,
    pub points: Vec<EvalPoint>,
    /// The model config's text, to refuse a checkpoint of another model.
    pub config: serde_json::Value,
    pub vocab: usize,
}

/// The checkpoint folder of a training run.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Read a checkpoint and check it against the graph's leaves (names, shapes) and the run's config, before
/// anything runs on the GPU.
fn load_checkpoint(
    dir: &Path,
    graph: &Graph,
    cfg_json: &serde_json::Value,
    vocab: usize,
) -> Result<(TrainerState, WeightStore)> {
    let bad = |detail: String| Error::Format { file: dir.display().to_string(), detail };
    let text = std::fs::read_to_string(dir.join("trainer_state.json"))
        .map_err(|e| bad(format!("--resume: no trainer_state.json ({e}): not a checkpoint folder")))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| bad(format!("trainer_state.json: {e}")))?;
    if state.config != *cfg_json || state.vocab != vocab {
        return Err(bad(format!(
            "--resume: the checkpoint is of another model (config {} with {} characters; this run: {} with {vocab})",
            state.config, state.vocab, cfg_json
        )));
    }
    let store = crate::loader::open(dir.join("training_state.safetensors"))?;
    for node in &graph.nodes {
        if let Op::Param { name } | Op::State { name } = &node.op {
            if name.starts_with("grad_acc.") {
                continue;
            }
            let e = store.entry(name).map_err(|_| bad(format!("--resume: the checkpoint has no {name}")))?;
            if e.shape != node.shape {
                return Err(bad(format!("--resume: {name} is {:?} there, {:?} here", e.shape, node.shape)));
            }
        }
    }
    Ok((state, store))
}

/// One evaluation's figures.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EvalPoint {
    pub step: usize,
    /// Mean loss of the training steps since the last evaluation.
    pub train_loss: f64,
    pub val_loss: f64,
    pub lr: f32,
    pub tokens_per_sec: f64,
}

/// The step graph: `ids`, `pos_ids` [B, T] and `targets` [B·T] i32 → the mean cross-entropy; with `train`,
/// backward and AdamW (lr and step at run time; no decay on biases and LayerNorm weights).
pub struct LmGraph {
    pub graph: Graph,
    pub loss: ValueId,
    pub params: Vec<(String, ValueId)>,
    pub grads: Vec<ValueId>,
}

pub fn lm_graph(
    cfg: &TrainConfig,
    b: usize,
    t: usize,
    train: Option<(&Options, f32)>,
    accum: super::Accum,
) -> Result<LmGraph> {
    let mut g = GraphBuilder::new();
    let dropout = train.and_then(|(o, p)| (p > 0.0).then_some(bert::Dropout { p, seed: o.seed as u32, attn: 0.0 }));
    let logits = match cfg {
        TrainConfig::Gpt2(c) => gpt2::build_train(&mut g, c, b, t, dropout)?,
        TrainConfig::Llama(c) => {
            if dropout.is_some() {
                return Err(Error::Unsupported {
                    op: "train".into(),
                    detail: "--dropout: Llama training has no dropout (Llama's configs use none)".into(),
                });
            }
            llama::build_train(&mut g, c, b, t, &crate::models::Precision::from(DType::F32), None, None)?
        }
    };
    let targets = g.input("targets", &[b * t], DType::I32)?;
    let loss = g.cross_entropy(logits, targets)?;
    let (params, grads) = match train {
        Some((o, _)) => super::Optimizer {
            betas: o.betas,
            eps: 1e-8,
            weight_decay: o.weight_decay,
            max_grad_norm: o.grad_clip,
            // No decay on biases and norm weights (GPT-2's ln_*, Llama's *norm.weight).
            no_decay: |name| name.ends_with(".bias") || name.contains("ln_") || name.ends_with("norm.weight"),
            trainable: |name| name != llama::ROPE_TABLE,
        }
        .append(&mut g, loss, accum)?,
        None => (vec![], vec![]),
    };
    Ok(LmGraph { graph: g.finish(), loss, params, grads })
}

/// transformers' GPT-2 initialisation: normal(0, 0.02) weights and embeddings, the residual projections
/// (`c_proj`) scaled by 1/√(2·layers), zero biases, unit LayerNorm weights; seeded per parameter name.
pub fn init_param(cfg: &TrainConfig, name: &str, shape: &[usize], seed: u64) -> Result<HostTensor> {
    let n: usize = shape.iter().product();
    if name.ends_with(".bias") {
        return HostTensor::f32(shape, vec![0.0; n]);
    }
    if name.contains("ln_") || name.ends_with("norm.weight") {
        return HostTensor::f32(shape, vec![1.0; n]);
    }
    // GPT-2 scales its residual projections by 1/√(2·layers); Llama initialises every weight N(0, 0.02).
    let std = match cfg {
        TrainConfig::Gpt2(c) if name.ends_with("c_proj.weight") => 0.02 / (2.0 * c.n_layers as f32).sqrt(),
        _ => 0.02,
    };
    let salt = name.bytes().fold(seed, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
    HostTensor::f32(shape, normal(n, std, salt))
}

/// A batch of `b` random windows of `t + 1` tokens: the inputs (ids, positions) and the shifted targets.
pub fn batch(tokens: &[u32], b: usize, t: usize, rng: &mut SplitMix) -> Vec<(&'static str, HostTensor)> {
    let (mut ids, mut tgt) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
    let span = (tokens.len() - t) as u64;
    for _ in 0..b {
        let s = (rng.next_u64() % span) as usize;
        ids.extend_from_slice(&tokens[s..s + t]);
        tgt.extend(tokens[s + 1..s + t + 1].iter().map(|&x| x as i32));
    }
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    vec![
        ("ids", HostTensor::u32(&[b, t], ids).expect("sized")),
        ("pos_ids", HostTensor::u32(&[b, t], pos).expect("sized")),
        ("targets", HostTensor::i32(&[b * t], tgt).expect("sized")),
    ]
}

/// Train and write the model; `on_step(step, loss)` after each step, `on_eval` after each evaluation.
pub fn train(
    gpu: &Gpu,
    opts: &Options,
    text: &str,
    on_step: &mut dyn FnMut(usize, f32),
    on_eval: &mut dyn FnMut(&EvalPoint),
) -> Result<Vec<EvalPoint>> {
    let cfg_text = std::fs::read_to_string(&opts.config)
        .map_err(|e| Error::Format { file: opts.config.display().to_string(), detail: format!("cannot read: {e}") })?;
    let cfg_json: serde_json::Value = serde_json::from_str(&cfg_text)
        .map_err(|e| Error::Format { file: opts.config.display().to_string(), detail: format!("not JSON: {e}") })?;
    let vocab = super::vocab::Vocab::build(&opts.tokenizer, text)?;
    let cfg = config_from_json(&opts.config, &cfg_json, vocab.size())?;
    if opts.seq_len > cfg.max_pos() {
        return Err(Error::Other(format!("--seq-len {} exceeds the positions {}", opts.seq_len, cfg.max_pos())));
    }
    let tokens = vocab.encode(text)?;
    let n_val = tokens.len() / 10;
    let (train_tok, val_tok) = tokens.split_at(tokens.len() - n_val);
    let need = opts.seq_len + 2;
    if train_tok.len() < need || val_tok.len() < need {
        return Err(Error::Other(format!(
            "the data has {} tokens: its last 10% (validation) and the rest must each hold more than --seq-len {} + 1",
            tokens.len(),
            opts.seq_len
        )));
    }
    let dropout = opts.dropout.unwrap_or(cfg_json["resid_pdrop"].as_f64().unwrap_or(0.0) as f32);
    let (b, t) = (opts.batch, opts.seq_len);
    let shared = SharedLeaves::new();
    // One plan per micro-batch mode (`--grad-accum`); the updating one comes last and is saved from.
    let n_micro = opts.grad_accum.max(1);
    // A checkpoint to resume from is checked against the step graph before the GPU does anything.
    let resumed = match &opts.resume {
        Some(dir) => {
            let sg = lm_graph(&cfg, b, t, Some((opts, dropout)), Accum::of(n_micro - 1, n_micro))?;
            let (state, store) = load_checkpoint(dir, &sg.graph, &cfg_json, vocab.size())?;
            if state.step >= opts.steps {
                return Err(Error::Other(format!(
                    "--resume: the checkpoint is at step {} and --steps is {}: nothing is left to train",
                    state.step, opts.steps
                )));
            }
            Some((state, store))
        }
        None => None,
    };
    let mut modes: Vec<Accum> = (0..n_micro).map(|i| Accum::of(i, n_micro)).collect();
    modes.dedup();
    let mut plans = vec![];
    for &mode in &modes {
        let sg = lm_graph(&cfg, b, t, Some((opts, dropout)), mode)?;
        let mut plan = Plan::compile_shared(gpu, &sg.graph, &[sg.loss], Some(&shared))?;
        if plans.is_empty() {
            for node in &sg.graph.nodes {
                if let Op::Param { name } = &node.op {
                    plan.set(name, &init_param(&cfg, name, &node.shape, opts.seed)?)?;
                }
            }
        }
        plans.push((mode, sg, plan));
    }
    let eval_graph = lm_graph(&cfg, b, t, None, Accum::Off)?;
    let mut eval_plan = Plan::compile_shared(gpu, &eval_graph.graph, &[eval_graph.loss], Some(&shared))?;
    let mut rng = SplitMix(opts.seed);
    let (mut points, mut since, mut since_n) = (vec![], 0.0f64, 0usize);
    let mut first = 1;
    if let Some((state, store)) = resumed {
        // Every param and optimizer state as the checkpoint has them (a plan's set writes shared leaves).
        let (_, sg, plan) = plans.last_mut().expect("at least one mode");
        for node in &sg.graph.nodes {
            if let Op::Param { name } | Op::State { name } = &node.op {
                if !name.starts_with("grad_acc.") {
                    plan.set(name, &HostTensor::f32(&node.shape, store.to_f32(name)?)?)?;
                }
            }
        }
        rng = SplitMix(state.rng);
        (points, since, since_n, first) = (state.points, state.since, state.since_n, state.step + 1);
    }
    let mut t0 = Instant::now();
    let mut tokens_since = 0usize;
    let evaluate = |plan: &mut Plan| -> Result<f64> {
        // The same validation windows at every evaluation.
        let mut r = SplitMix(opts.seed ^ 0x005E_ED0F_7E57);
        let mut sum = 0.0;
        for _ in 0..opts.eval_batches.max(1) {
            let f = batch(val_tok, b, t, &mut r);
            let f = plan.takes(&f);
            sum += plan.run(&f, &[])?[0].to_f32()[0] as f64;
        }
        Ok(sum / opts.eval_batches.max(1) as f64)
    };
    for step in first..=opts.steps {
        let lr = opts.schedule.at(step);
        let mut loss = 0.0;
        for i in 0..n_micro {
            let f = batch(train_tok, b, t, &mut rng);
            let plan = &mut plans.iter_mut().find(|p| p.0 == Accum::of(i, n_micro)).expect("compiled above").2;
            let f = plan.takes(&f);
            loss += plan.run(&f, &[("lr", lr.to_bits()), ("step", step as u32)])?[0].to_f32()[0];
        }
        let loss = loss / n_micro as f32;
        if !loss.is_finite() {
            return Err(Error::Run(format!("the training loss is {loss} at step {step}: lower --lr")));
        }
        since += loss as f64;
        since_n += 1;
        tokens_since += b * t * n_micro;
        on_step(step, loss);
        if step % opts.eval_every.max(1) == 0 || step == opts.steps {
            let secs = t0.elapsed().as_secs_f64();
            let p = EvalPoint {
                step,
                train_loss: since / since_n as f64,
                val_loss: evaluate(&mut eval_plan)?,
                lr,
                tokens_per_sec: tokens_since as f64 / secs,
            };
            on_eval(&p);
            points.push(p);
            (since, since_n, tokens_since) = (0.0, 0, 0);
            t0 = Instant::now();
        }
        let state = || TrainerState {
            step,
            rng: rng.0,
            since,
            since_n,
            points: points.clone(),
            config: cfg_json.clone(),
            vocab: vocab.size(),
        };
        let (_, sg, plan) = plans.last().expect("at least one mode");
        let stop = opts.stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed));
        if (stop || (opts.save_every > 0 && step % opts.save_every == 0)) && step < opts.steps {
            std::fs::create_dir_all(&opts.out).map_err(|e| Error::Format {
                file: opts.out.display().to_string(),
                detail: format!("cannot create: {e}"),
            })?;
            save_checkpoint(&checkpoint_dir(&opts.out), &sg.graph, plan, &state())?;
            if stop {
                return Err(Error::Other(format!(
                    "interrupted after step {step}: the checkpoint is in {} (continue with --resume {0})",
                    checkpoint_dir(&opts.out).display()
                )));
            }
        }
        if step == opts.steps {
            // The model folder replaces OUT whole; the last checkpoint goes in after it.
            save(opts, &cfg, &cfg_json, &vocab, &sg.graph, plan, &points)?;
            save_checkpoint(&checkpoint_dir(&opts.out), &sg.graph, plan, &state())?;
        }
    }
    Ok(points)
}

/// Every param and optimizer state of `graph` (not the gradient accumulators: a checkpoint falls between
/// steps) and the trainer's state, written crash-safely.
fn save_checkpoint(dir: &Path, graph: &Graph, plan: &Plan, state: &TrainerState) -> Result<()> {
    let mut tensors = vec![];
    for node in &graph.nodes {
        if let Op::Param { name } | Op::State { name } = &node.op {
            if !name.starts_with("grad_acc.") {
                tensors.push(crate::tools::export::ExportTensor::f32(name, &node.shape, plan.read(name)?.to_f32()));
            }
        }
    }
    let json = serde_json::to_value(state).map_err(|e| Error::Other(format!("trainer state: {e}")))?;
    crate::tools::export::write_folder(dir, true, &|tmp| {
        crate::tools::export::write_safetensors(&tmp.join("training_state.safetensors"), &tensors)?;
        crate::tools::export::write_json(&tmp.join("trainer_state.json"), &json)
    })
}

fn save(
    opts: &Options,
    cfg: &TrainConfig,
    cfg_json: &serde_json::Value,
    vocab: &super::vocab::Vocab,
    graph: &Graph,
    plan: &Plan,
    points: &[EvalPoint],
) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| Error::Format {
        file: p.display().to_string(),
        detail: format!("cannot write: {e}"),
    };
    // The tokenizer goes in through a staging folder (write_model_folder copies a source's tokenizer files).
    let staging = std::env::temp_dir().join(format!("wgpu-llm-train-tok-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
    let tj = staging.join("tokenizer.json");
    std::fs::write(&tj, vocab.tokenizer_json().to_string()).map_err(|e| io(&tj, e))?;
    let tc = staging.join("tokenizer_config.json");
    std::fs::write(&tc, r#"{"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1024}"#)
        .map_err(|e| io(&tc, e))?;
    // The tensors with transformers' names and the config.json of the architecture.
    let mut config = cfg_json.clone();
    let tensors: Vec<crate::tools::export::ExportTensor> = match cfg {
        TrainConfig::Gpt2(c) => {
            config["model_type"] = "gpt2".into();
            config["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
            config["vocab_size"] = c.vocab.into();
            config["n_embd"] = c.hidden.into();
            config["n_layer"] = c.n_layers.into();
            config["n_head"] = c.n_head.into();
            config["n_positions"] = c.max_pos.into();
            config["n_inner"] = c.inner.into();
            config["layer_norm_epsilon"] = (c.eps as f64).into();
            config["activation_function"] = "gelu_new".into();
            config["tie_word_embeddings"] = true.into();
            gpt2::checkpoint_tensors(c, graph, &|n| Ok(plan.read(n)?.to_f32()))?
                .into_iter()
                .map(|(n, s, d)| crate::tools::export::ExportTensor::f32(&n, &s, d))
                .collect()
        }
        TrainConfig::Llama(c) => {
            config["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
            config["vocab_size"] = c.vocab.into();
            config["tie_word_embeddings"] = c.tie_embeddings.into();
            config["hidden_act"] = "silu".into();
            // The params are transformers' LlamaForCausalLM names already.
            let mut tensors = vec![];
            for node in &graph.nodes {
                if let Op::Param { name } = &node.op {
                    if name != llama::ROPE_TABLE {
                        tensors.push(crate::tools::export::ExportTensor::f32(
                            name,
                            &node.shape,
                            plan.read(name)?.to_f32(),
                        ));
                    }
                }
            }
            tensors
        }
    };
    // A trained vocabulary has no bos/eos ids (GPT2Config's defaults name id 50256).
    config["bos_token_id"] = serde_json::Value::Null;
    config["eos_token_id"] = serde_json::Value::Null;
    let r = crate::tools::export::write_model_folder(&opts.out, &staging, &config, &tensors, true);
    let _ = std::fs::remove_dir_all(&staging);
    r?;
    write_log(opts, points)
}

/// train_log.jsonl and loss.svg beside the model.
fn write_log(opts: &Options, points: &[EvalPoint]) -> Result<()> {
    let log = opts.out.join("train_log.jsonl");
    let lines: Vec<String> = points.iter().map(|p| serde_json::to_string(p).unwrap_or_default()).collect();
    std::fs::write(&log, lines.join("\n") + "\n")
        .map_err(|e| Error::Format { file: log.display().to_string(), detail: format!("cannot write: {e}") })?;
    plot(&opts.out.join("loss.svg"), points)
}

/// loss.svg: train and validation loss against steps (plotters' SVG backend).
pub fn plot(path: &Path, points: &[EvalPoint]) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: String| Error::Format { file: path.display().to_string(), detail: format!("cannot plot: {e}") };
    let max_step = points.last().map_or(1, |p| p.step) as f64;
    let (lo, hi) = points
        .iter()
        .flat_map(|p| [p.train_loss, p.val_loss])
        .fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = if lo.is_finite() { (lo * 0.95, hi * 1.05) } else { (0.0, 1.0) };
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..max_step, lo..hi)
        .map_err(|e| err(e.to_string()))?;
    chart.configure_mesh().x_desc("step").y_desc("cross-entropy").draw().map_err(|e| err(e.to_string()))?;
    let line = |f: fn(&EvalPoint) -> f64| points.iter().map(move |p| (p.step as f64, f(p)));
    chart
        .draw_series(LineSeries::new(line(|p| p.train_loss), &BLUE))
        .map_err(|e| err(e.to_string()))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(line(|p| p.val_loss), &RED))
        .map_err(|e| err(e.to_string()))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.configure_series_labels().border_style(BLACK).draw().map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}
