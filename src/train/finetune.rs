//! The finetuning loop of a sequence classifier (the course's training loop): tokenize and truncate,
//! shuffle each epoch, batch, step AdamW on a schedule, evaluate on the validation set after each epoch,
//! keep the best epoch by validation loss.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::classifier::{Classifier, HeadKind, Setup, TrainSpec};
use super::data::{by_length, length_grouped, shuffle, Example};
use super::metrics::{report, Report};
use super::schedule::Schedule;
use super::Accum;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::session::encoder::Encoder;
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug)]
pub struct Options {
    pub model: PathBuf,
    pub head: HeadKind,
    pub labels: Vec<String>,
    pub epochs: usize,
    pub lr: f32,
    pub batch: usize,
    pub max_length: usize,
    pub warmup_ratio: f32,
    pub weight_decay: f32,
    /// None: the model's `hidden_dropout_prob`.
    pub dropout: Option<f32>,
    /// None: the model's `attention_probs_dropout_prob`.
    pub attention_dropout: Option<f32>,
    pub betas: (f32, f32),
    pub seed: u64,
    pub out: PathBuf,
    /// Clip gradients by this global norm.
    pub grad_clip: Option<f32>,
    /// Batches per optimizer step (their gradients averaged; 1: none).
    pub grad_accum: usize,
    /// Train the textbook Transformer from scratch instead of finetuning `model` (`--from-scratch`).
    pub from_scratch: Option<FromScratch>,
    /// Batch sentences of similar lengths together (`--group-by-length`, `data::length_grouped`).
    pub group_by_length: bool,
}

/// `finetune --from-scratch CONFIG`: the textbook encoder's sizes (config.json fields of
/// `models::textbook::Config`: d_model, nhead, dim_feedforward, num_layers, max_len; vocab_size comes from
/// the vocabulary) and the vocabulary, built from the training texts as `train --tokenizer` builds one.
#[derive(Clone, Debug)]
pub struct FromScratch {
    pub config: PathBuf,
    pub tokenizer: super::vocab::Spec,
}

impl FromScratch {
    /// The config file as the model's config.json (model_type, vocab_size, architectures set), checked:
    /// unknown fields and bad sizes are errors naming the file.
    pub fn config_json(&self, vocab: usize) -> Result<serde_json::Value> {
        let file = self.config.display().to_string();
        let text = std::fs::read_to_string(&self.config)
            .map_err(|e| Error::Format { file: file.clone(), detail: format!("cannot read: {e}") })?;
        let mut v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Format { file: file.clone(), detail: format!("not JSON: {e}") })?;
        let known = [
            "model_type",
            "vocab_size",
            "d_model",
            "nhead",
            "dim_feedforward",
            "num_layers",
            "max_len",
            "layer_norm_eps",
            "scale_embedding",
            "dropout",
            "architectures",
        ];
        let Some(obj) = v.as_object() else {
            return Err(Error::Format { file, detail: "not a JSON object".into() });
        };
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::Format { file, detail: format!("unknown field {k:?} (known: {})", known.join(", ")) });
        }
        if obj.get("model_type").is_some_and(|m| m != "textbook_transformer") {
            return Err(Error::Format { file, detail: "model_type must be \"textbook_transformer\"".into() });
        }
        v["model_type"] = "textbook_transformer".into();
        v["vocab_size"] = vocab.into();
        v["architectures"] = serde_json::json!(["TextbookTransformerForSequenceClassification"]);
        crate::models::textbook::Config::from_source(&crate::models::ConfigSource::Json(v.clone()))
            .map_err(|e| Error::Format { file, detail: e.to_string() })?;
        Ok(v)
    }
}

/// One epoch's figures (the course's line plus validation accuracy and macro-F1).
#[derive(Clone, Debug, Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    pub sentences_per_sec: f64,
    /// Whether this epoch was the best so far by validation loss (and so was written to OUT).
    pub saved: bool,
}

/// Token ids of a text as the model's tokenizer makes them, cut to `max` keeping the final [SEP].
pub fn encode(tok: &Tokenizer, text: &str, max: usize) -> Result<Vec<u32>> {
    let mut ids = tok.encode(text, true)?;
    Encoder::truncate(&mut ids, max);
    if ids.is_empty() {
        return Err(Error::Run(format!("{text:?} has no tokens")));
    }
    Ok(ids)
}

/// Mean loss and metrics of `clf` on `data` (already tokenized), without dropout. Batched in order of
/// length (the metrics do not depend on the order).
pub fn evaluate(clf: &mut Classifier, data: &[(Vec<u32>, usize)]) -> Result<(f64, Report)> {
    let (mut loss, mut pred) = (0.0f64, vec![0; data.len()]);
    for chunk in by_length(data.len(), |i| data[i].0.len()).chunks(clf.batch) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| data[i].0.clone()).collect();
        let labels: Vec<usize> = chunk.iter().map(|&i| data[i].1).collect();
        let out = clf.eval_batch(&seqs, &labels)?;
        loss += out.loss as f64 * chunk.len() as f64;
        for (&i, l) in chunk.iter().zip(&out.logits) {
            pred[i] = argmax(l);
        }
    }
    let truth: Vec<usize> = data.iter().map(|e| e.1).collect();
    Ok((loss / data.len().max(1) as f64, report(&clf.labels, &truth, &pred)))
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// Finetune and write the best epoch to `opts.out`. `on_step(step in epoch, steps in epoch, loss)` after
/// every step; `on_epoch` after every epoch.
pub fn finetune(
    gpu: &Gpu,
    opts: &Options,
    train: &[Example],
    val: &[Example],
    on_step: &mut dyn FnMut(usize, usize, f32),
    on_epoch: &mut dyn FnMut(&Epoch),
) -> Result<Vec<Epoch>> {
    // From scratch: the vocabulary from the training texts, staged as a tokenizer folder (the output copies it).
    let staging = std::env::temp_dir().join(format!("wgpu-llm-finetune-tok-{}", std::process::id()));
    let scratch = match &opts.from_scratch {
        Some(fs) => {
            let text: String = train.iter().map(|e| e.text.as_str()).collect::<Vec<_>>().join("\n");
            let vocab = super::vocab::Vocab::build(&fs.tokenizer, &text)?;
            let config = fs.config_json(vocab.size())?;
            let io = |e: std::io::Error| Error::Format { file: staging.display().to_string(), detail: e.to_string() };
            std::fs::create_dir_all(&staging).map_err(io)?;
            std::fs::write(staging.join("tokenizer.json"), vocab.tokenizer_json().to_string()).map_err(io)?;
            Some(config)
        }
        None => None,
    };
    let result = run(gpu, opts, train, val, scratch, &staging, on_step, on_epoch);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

#[allow(clippy::too_many_arguments)]
fn run(
    gpu: &Gpu,
    opts: &Options,
    train: &[Example],
    val: &[Example],
    scratch: Option<serde_json::Value>,
    staging: &std::path::Path,
    on_step: &mut dyn FnMut(usize, usize, f32),
    on_epoch: &mut dyn FnMut(&Epoch),
) -> Result<Vec<Epoch>> {
    let tok = Tokenizer::from_path(if scratch.is_some() { staging } else { &opts.model })?;
    // At most the textbook encoder's positions (BERT's are checked per batch).
    let max_len = scratch
        .as_ref()
        .and_then(|c| c["max_len"].as_u64())
        .map_or(opts.max_length, |m| opts.max_length.min(m as usize));
    let tokenize = |ex: &[Example]| -> Result<Vec<(Vec<u32>, usize)>> {
        ex.iter().map(|e| Ok((encode(&tok, &e.text, max_len)?, e.label))).collect()
    };
    let (train, val) = (tokenize(train)?, tokenize(val)?);
    if train.is_empty() {
        return Err(Error::Other("no training examples".into()));
    }
    let config: serde_json::Value = match &scratch {
        Some(c) => c.clone(),
        None => std::fs::read_to_string(opts.model.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
    };
    // BERT's two dropout fields; the textbook's one `dropout` (PyTorch's TransformerEncoderLayer, 0.1 by
    // default) for both.
    let from_config = |key: &str| config[key].as_f64().or(config["dropout"].as_f64()).unwrap_or(0.1) as f32;
    let dropout = opts.dropout.unwrap_or_else(|| from_config("hidden_dropout_prob"));
    let attention_dropout = opts.attention_dropout.unwrap_or_else(|| from_config("attention_probs_dropout_prob"));
    let spec = TrainSpec {
        beta1: opts.betas.0,
        beta2: opts.betas.1,
        eps: 1e-8,
        weight_decay: opts.weight_decay,
        dropout,
        attention_dropout,
        seed: opts.seed as u32,
        max_grad_norm: opts.grad_clip,
        grad_through_transpose: false,
    };
    let setup =
        Setup { head: opts.head, labels: opts.labels.clone(), batch: opts.batch, train: Some(spec), seed: opts.seed };
    let mut clf = match scratch {
        Some(c) => {
            let cfg = crate::models::textbook::Config::from_source(&crate::models::ConfigSource::Json(c.clone()))?;
            Classifier::from_scratch(gpu, cfg, c, staging, setup)?
        }
        None => Classifier::open(gpu, &opts.model, setup)?,
    };
    let accum = opts.grad_accum.max(1);
    let per_epoch = train.len().div_ceil(opts.batch).div_ceil(accum);
    let total = per_epoch * opts.epochs;
    let schedule = Schedule::finetune(opts.lr, opts.warmup_ratio, total);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut step, mut best, mut epochs) = (0u32, f64::INFINITY, vec![]);
    for epoch in 1..=opts.epochs {
        shuffle(&mut order, opts.seed.wrapping_add(epoch as u64));
        let t0 = Instant::now();
        let mut sum = 0.0f64;
        let batches: Vec<Vec<usize>> = if opts.group_by_length {
            length_grouped(&order, |i| train[i].0.len(), opts.batch, opts.seed.wrapping_add(epoch as u64))
        } else {
            order.chunks(opts.batch).map(<[usize]>::to_vec).collect()
        };
        for (k, group) in batches.chunks(accum).enumerate() {
            step += 1;
            let (mut step_sum, mut step_n) = (0.0f64, 0usize);
            for (i, idx) in group.iter().enumerate() {
                let seqs: Vec<Vec<u32>> = idx.iter().map(|&i| train[i].0.clone()).collect();
                let labels: Vec<usize> = idx.iter().map(|&i| train[i].1).collect();
                let lr = schedule.at(step as usize);
                let loss = clf.micro_step(&seqs, &labels, lr, step, Accum::of(i, group.len()))?;
                if !loss.is_finite() {
                    return Err(Error::Run(format!("the training loss is {loss} at step {step}: lower --lr")));
                }
                step_sum += loss as f64 * idx.len() as f64;
                step_n += idx.len();
            }
            sum += step_sum;
            on_step(k + 1, per_epoch, (step_sum / step_n.max(1) as f64) as f32);
        }
        let secs = t0.elapsed().as_secs_f64();
        let (val_loss, rep) =
            if val.is_empty() { (f64::NAN, report(&clf.labels, &[], &[])) } else { evaluate(&mut clf, &val)? };
        // The best epoch by validation loss is written (the last one when there is no validation set).
        let saved = val.is_empty() || val_loss < best;
        if saved {
            best = val_loss;
            clf.save(&opts.out)?;
        }
        let e = Epoch {
            epoch,
            train_loss: sum / train.len() as f64,
            val_loss,
            val_accuracy: rep.accuracy,
            val_macro_f1: rep.macro_f1,
            sentences_per_sec: train.len() as f64 / secs,
            saved,
        };
        on_epoch(&e);
        epochs.push(e);
    }
    Ok(epochs)
}
