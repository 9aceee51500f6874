//! `finetune`, `classify` and `evaluate`: argument checks, progress bars and printing over `train`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;

use super::model_path::resolve;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::train::classifier::HeadKind;
use crate::train::data::{self, Columns, Example};
use crate::train::finetune::{self, encode, Epoch};
use crate::train::predict::{open_classifier, predict};

#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// The column holding the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// The column holding the label (a name or an integer id).
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Collapse whitespace and strip punctuation, lowercased (the course's optional cleaning).
    #[arg(long)]
    pub clean: bool,
}

#[derive(Args, Clone, Debug)]
pub struct FinetuneArgs {
    /// classify: a pretrained encoder into a sequence classifier; lm: a decoder on instruction data (LoRA or
    /// --full).
    #[arg(long, default_value = "classify")]
    pub task: String,
    /// The pretrained model: a folder or a known name (default: minilm for classify, smollm2 for lm).
    #[arg(short, long)]
    pub model: Option<String>,
    /// Training data: CSV, TSV or JSONL with a header (classify); JSONL of {"messages"}, {"prompt",
    /// "completion"} or {"text"} (lm).
    #[arg(long)]
    pub data: PathBuf,
    /// Validation data (same format).
    #[arg(long, conflicts_with = "val_split")]
    pub val: Option<PathBuf>,
    /// Hold out this fraction of the training data for validation instead.
    #[arg(long)]
    pub val_split: Option<f64>,
    #[command(flatten)]
    pub columns: DataArgs,
    /// Label names in id order (default: from the data, sorted; integers 0..=max when all are integers).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// cls ([CLS] → Linear), pooler ([CLS] → dense + tanh → Linear, transformers'), mean (mean pooling → Linear).
    /// (Default: pooler; mean with --from-scratch.)
    #[arg(long)]
    pub head: Option<String>,
    /// Train the textbook Transformer (post-LN, ReLU, sinusoidal positions) from scratch instead of
    /// finetuning -m: CONFIG.json gives its sizes (d_model, nhead, dim_feedforward, num_layers, max_len).
    #[arg(long, value_name = "CONFIG", conflicts_with = "model")]
    pub from_scratch: Option<PathBuf>,
    /// With --from-scratch, the vocabulary built from the training texts: char, bpe:N (a byte-level BPE of N
    /// tokens) or a model whose tokenizer.json is reused.
    #[arg(long, default_value = "bpe:1000", requires = "from_scratch")]
    pub tokenizer: String,
    #[command(flatten)]
    pub lm: super::lora::LmArgs,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate (default 2e-5 for classify, 2e-4 for lm).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Sequences per step (default 32 for classify, 4 for lm).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Tokens per sequence at most (default 128 for classify, [CLS] and [SEP] kept; 512 for lm).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Linear warmup over this fraction of the steps, then linear decay to 0 (0: a constant rate).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f32,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Hidden dropout (default: the model's hidden_dropout_prob).
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Dropout on the attention probabilities (default: the model's attention_probs_dropout_prob).
    #[arg(long)]
    pub attention_dropout: Option<f32>,
    /// AdamW's betas.
    #[arg(long, value_delimiter = ',', default_value = "0.9,0.999")]
    pub betas: Vec<f32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Clip the gradients by this global norm before each update (as torch's clip_grad_norm_).
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Batch sentences of similar lengths together (as transformers' group_by_length: sorted within
    /// megabatches of 50 batches, the batches shuffled), so that most batches pad to a short bucket
    /// (--task classify).
    #[arg(long)]
    pub group_by_length: bool,
    /// The output folder (classify: a transformers BertForSequenceClassification checkpoint; lm: a PEFT
    /// adapter, or a model folder with --full).
    #[arg(short, long)]
    pub out: PathBuf,
    /// One JSON object per epoch on stdout.
    #[arg(long)]
    pub json: bool,
}

impl FinetuneArgs {
    /// The checks every task shares, before any model loads or the GPU opens.
    pub fn check_common(&self, lr: f32, batch: usize) -> Result<()> {
        check(self.epochs >= 1, format!("--epochs {}: must be at least 1", self.epochs))?;
        check(batch >= 1, format!("--batch-size {batch}: must be at least 1"))?;
        check(lr.is_finite() && lr > 0.0, format!("--lr {lr}: must be > 0"))?;
        check(
            (0.0..1.0).contains(&self.warmup_ratio),
            format!("--warmup-ratio {}: must be in [0, 1)", self.warmup_ratio),
        )?;
        check(self.grad_clip.is_none_or(|c| c > 0.0), format!("--grad-clip {:?}: must be > 0", self.grad_clip))?;
        check(self.lm.grad_accum >= 1, format!("--grad-accum {}: must be at least 1", self.lm.grad_accum))?;
        check(self.weight_decay >= 0.0, format!("--weight-decay {}: must be ≥ 0", self.weight_decay))?;
        check(
            self.betas.len() == 2 && self.betas.iter().all(|b| (0.0..1.0).contains(b)),
            format!("--betas {:?}: two numbers in [0, 1)", self.betas),
        )
    }
}

pub(super) fn check(cond: bool, msg: String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::Other(msg))
    }
}

fn read(path: &Path, cols: &DataArgs, labels: Option<&[String]>) -> Result<(Vec<Example>, Vec<String>)> {
    let c = Columns { text: &cols.text_column, label: &cols.label_column, labels };
    let (mut ex, names) = data::read_labelled(path, &c)?;
    if cols.clean {
        for e in &mut ex {
            e.text = data::clean(&e.text, true);
        }
    }
    Ok((ex, names))
}

/// A progress bar on stderr when it is a terminal (and not under --json).
pub(super) fn bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    b
}

pub fn run_finetune(gpu: &dyn Fn() -> Result<Gpu>, a: &FinetuneArgs) -> Result<()> {
    match a.task.as_str() {
        "classify" => {}
        "lm" if a.group_by_length => return Err(Error::Other("--group-by-length: only with --task classify".into())),
        "lm" => return super::lora::run_finetune_lm(gpu, a),
        other => return Err(Error::Other(format!("--task {other:?}: classify or lm"))),
    }
    // Every check before the model loads or the GPU opens.
    let head = HeadKind::parse(a.head.as_deref().unwrap_or(if a.from_scratch.is_some() { "mean" } else { "pooler" }))?;
    check(
        !(a.from_scratch.is_some() && head == HeadKind::Pooler),
        "--head pooler: the textbook encoder has no pooler (use mean or cls)".into(),
    )?;
    let (lr, batch, max_length) = (a.lr.unwrap_or(2e-5), a.batch_size.unwrap_or(32), a.max_length.unwrap_or(128));
    a.check_common(lr, batch)?;
    check(max_length >= 2, format!("--max-length {max_length}: must be at least 2 ([CLS] and [SEP])"))?;
    check(a.dropout.is_none_or(|p| (0.0..1.0).contains(&p)), format!("--dropout {:?}: must be in [0, 1)", a.dropout))?;
    check(
        a.attention_dropout.is_none_or(|p| (0.0..1.0).contains(&p)),
        format!("--attention-dropout {:?}: must be in [0, 1)", a.attention_dropout),
    )?;
    let model = match &a.from_scratch {
        Some(config) => config.clone(),
        None => resolve(Some(a.model.as_deref().unwrap_or("minilm")))?,
    };
    let (mut train, labels) = read(&a.data, &a.columns, a.labels.as_deref())?;
    let val = match (&a.val, a.val_split) {
        (Some(v), _) => read(v, &a.columns, Some(&labels))?.0,
        (None, Some(f)) => {
            let (tr, va) = data::split(train, f, a.seed)?;
            train = tr;
            va
        }
        (None, None) => vec![],
    };
    check(labels.len() >= 2, format!("{}: a classifier needs at least 2 labels, found {labels:?}", a.data.display()))?;
    let opts = finetune::Options {
        model,
        head,
        labels: labels.clone(),
        epochs: a.epochs,
        lr,
        batch,
        max_length,
        warmup_ratio: a.warmup_ratio,
        weight_decay: a.weight_decay,
        dropout: a.dropout,
        attention_dropout: a.attention_dropout,
        betas: (a.betas[0], a.betas[1]),
        seed: a.seed,
        out: a.out.clone(),
        grad_clip: a.grad_clip,
        grad_accum: a.lm.grad_accum,
        from_scratch: match &a.from_scratch {
            Some(config) => Some(finetune::FromScratch {
                config: config.clone(),
                tokenizer: crate::train::vocab::Spec::parse(&a.tokenizer, &|m| resolve(Some(m)))?,
            }),
            None => None,
        },
        group_by_length: a.group_by_length,
    };
    let gpu = gpu()?;
    eprintln!(
        "finetune: {} training and {} validation sentences, labels {labels:?}, head {}, on {}",
        train.len(),
        val.len(),
        head.name(),
        gpu.info.name
    );
    let steps = train.len().div_ceil(batch) as u64;
    let mut pb = bar(steps, a.json);
    let epoch = std::cell::Cell::new(1);
    let t0 = std::time::Instant::now();
    let mut seen = 0usize;
    let mut on_step = |k: usize, n: usize, loss: f32| {
        if k == 1 {
            pb = bar(n as u64, a.json);
            pb.set_prefix(format!("epoch {}", epoch.get()));
        }
        seen += batch;
        pb.set_position(k as u64);
        pb.set_message(format!("loss {loss:.4} {:.1} sentences/s", seen as f64 / t0.elapsed().as_secs_f64()));
    };
    let mut on_epoch = |e: &Epoch| {
        epoch.set(e.epoch + 1);
        if a.json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!(
                "Epoch {}: Train Loss: {:.4}, Val Loss: {:.4}, Val Accuracy: {:.4}, Val Macro-F1: {:.4} ({:.1} sentences/s){}",
                e.epoch,
                e.train_loss,
                e.val_loss,
                e.val_accuracy,
                e.val_macro_f1,
                e.sentences_per_sec,
                if e.saved { ", saved" } else { "" }
            );
        }
    };
    finetune::finetune(&gpu, &opts, &train, &val, &mut on_step, &mut on_epoch)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

pub fn run_classify(
    gpu: &Gpu,
    model: &Path,
    texts: &[String],
    file: Option<&Path>,
    batch: usize,
    json: bool,
) -> Result<()> {
    let mut texts = texts.to_vec();
    if let Some(f) = file {
        let body = std::fs::read_to_string(f).map_err(|e| Error::Other(format!("{}: {e}", f.display())))?;
        texts.extend(body.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    check(!texts.is_empty(), "classify needs at least one text (arguments or --file)".into())?;
    check(batch >= 1, format!("--batch-size {batch}: must be at least 1"))?;
    let tok = crate::tokenizer::Tokenizer::from_path(model)?;
    let mut clf = open_classifier(gpu, model, batch)?;
    for r in predict(&mut clf, &tok, &texts)? {
        if json {
            println!("{r}");
        } else {
            println!(
                "{} ({:.3})  {}",
                r["label"].as_str().unwrap_or(""),
                r["confidence"].as_f64().unwrap_or(0.0),
                r["text"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub fn run_evaluate(
    gpu: &dyn Fn() -> Result<Gpu>,
    model: &Path,
    data: &Path,
    cols: &DataArgs,
    batch: usize,
    json: bool,
) -> Result<()> {
    check(batch >= 1, format!("--batch-size {batch}: must be at least 1"))?;
    let labels = crate::train::predict::labels(model)?;
    let (ex, _) = read(data, cols, Some(&labels))?;
    let gpu = gpu()?;
    let tok = crate::tokenizer::Tokenizer::from_path(model)?;
    let mut clf = open_classifier(&gpu, model, batch)?;
    let max = clf.encoder.max_pos();
    let tokenized: Vec<(Vec<u32>, usize)> =
        ex.iter().map(|e| Ok((encode(&tok, &e.text, max)?, e.label))).collect::<Result<_>>()?;
    let t0 = std::time::Instant::now();
    let (loss, rep) = finetune::evaluate(&mut clf, &tokenized)?;
    let sps = ex.len() as f64 / t0.elapsed().as_secs_f64();
    if json {
        let mut v = serde_json::to_value(&rep).unwrap_or_default();
        v["loss"] = loss.into();
        v["sentences_per_sec"] = sps.into();
        v["examples"] = ex.len().into();
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} examples: accuracy {:.4}, macro-F1 {:.4}, loss {loss:.4} ({sps:.1} sentences/s)",
        ex.len(),
        rep.accuracy,
        rep.macro_f1
    );
    println!("{:<16} {:>9} {:>9} {:>9} {:>8}", "label", "precision", "recall", "f1", "support");
    for c in &rep.per_class {
        println!("{:<16} {:>9.4} {:>9.4} {:>9.4} {:>8}", c.label, c.precision, c.recall, c.f1, c.support);
    }
    println!("confusion (rows: true, columns: predicted, in label order): {:?}", rep.confusion);
    Ok(())
}

#[derive(Args, Clone, Debug)]
pub struct PretrainArgs {
    /// A transformers GPT2Config config.json (n_embd, n_layer, n_head, n_positions, n_inner, …).
    #[arg(long)]
    pub config: PathBuf,
    /// Text files, concatenated; the last 10% of the tokens are the validation split.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// char (the data's characters), bpe:N (a byte-level BPE of N tokens trained on the data, GPT-2's
    /// scheme) or a model folder or known name whose tokenizer.json is reused.
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    #[arg(short, long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// constant, linear (warmup, then linear decay to 0) or cosine (warmup, then cosine to --min-lr).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f32,
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f32,
    #[arg(long, value_delimiter = ',', default_value = "0.9,0.99")]
    pub betas: Vec<f32>,
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Batches per optimizer step (their gradients averaged): an effective batch of batch × N.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Hidden dropout (default: the config's resid_pdrop, else 0).
    #[arg(long)]
    pub dropout: Option<f32>,
    #[arg(long, default_value_t = 250)]
    pub eval_every: usize,
    #[arg(long, default_value_t = 20)]
    pub eval_batches: usize,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Write a checkpoint (OUT/checkpoint: weights, AdamW state, data position, log) every N steps; one is
    /// always written at the end.
    #[arg(long, default_value_t = 0)]
    pub save_every: usize,
    /// Continue a run from its checkpoint folder (OUT/checkpoint of an earlier run of the same config and
    /// data): the losses go on as if it had never stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// One JSON object per evaluation on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A flag Ctrl-C (SIGINT) sets instead of killing the process, so a training loop can finish its step and
/// write a checkpoint.
fn stop_on_ctrl_c() -> &'static std::sync::atomic::AtomicBool {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    #[cfg(unix)]
    {
        extern "C" fn on_sigint(_: libc::c_int) {
            STOP.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
    &STOP
}

pub fn run_pretrain(gpu: &dyn Fn() -> Result<Gpu>, a: &PretrainArgs) -> Result<()> {
    use crate::train::lm;
    use crate::train::schedule::{Kind, Schedule};
    use crate::train::vocab::{check_model_dir, Spec};
    let tokenizer = Spec::parse(&a.tokenizer, &|m| {
        let dir = super::model_path::resolve(Some(m))?;
        check_model_dir(&dir)?;
        Ok(dir)
    })?;
    check(
        a.steps >= 1 && a.batch_size >= 1 && a.seq_len >= 1,
        "--steps, --batch-size and --seq-len must be at least 1".into(),
    )?;
    check(a.lr.is_finite() && a.lr > 0.0, format!("--lr {}: must be > 0", a.lr))?;
    check(
        a.betas.len() == 2 && a.betas.iter().all(|b| (0.0..1.0).contains(b)),
        format!("--betas {:?}: two numbers in [0, 1)", a.betas),
    )?;
    check(a.grad_clip.is_none_or(|c| c > 0.0), format!("--grad-clip {:?}: must be > 0", a.grad_clip))?;
    check(a.grad_accum >= 1, format!("--grad-accum {}: must be at least 1", a.grad_accum))?;
    check(a.dropout.is_none_or(|p| (0.0..1.0).contains(&p)), format!("--dropout {:?}: must be in [0, 1)", a.dropout))?;
    let kind = Kind::parse(&a.schedule)?;
    let mut text = String::new();
    for p in &a.data {
        let t = std::fs::read_to_string(p).map_err(|e| Error::Format {
            file: p.display().to_string(),
            detail: format!("cannot read as UTF-8 text: {e}"),
        })?;
        text.push_str(&t);
    }
    check(!text.is_empty(), "the --data files are empty".into())?;
    let opts = lm::Options {
        config: a.config.clone(),
        data: a.data.clone(),
        out: a.out.clone(),
        steps: a.steps,
        batch: a.batch_size,
        seq_len: a.seq_len,
        schedule: Schedule { kind, peak: a.lr, warmup: a.warmup, total: a.steps, min_lr: a.min_lr },
        weight_decay: a.weight_decay,
        betas: (a.betas[0], a.betas[1]),
        grad_clip: a.grad_clip,
        grad_accum: a.grad_accum,
        dropout: a.dropout,
        eval_every: a.eval_every,
        eval_batches: a.eval_batches,
        seed: a.seed,
        save_every: a.save_every,
        resume: a.resume.clone(),
        stop: Some(stop_on_ctrl_c()),
        tokenizer,
    };
    // The config is checked before the GPU opens.
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&a.config).map_err(|e| Error::Format {
            file: a.config.display().to_string(),
            detail: format!("cannot read: {e}"),
        })?)
        .map_err(|e| Error::Format { file: a.config.display().to_string(), detail: format!("not JSON: {e}") })?;
    lm::config_from_json(&a.config, &cfg_json, 1)?;
    let gpu = gpu()?;
    let pb = bar(a.steps as u64, a.json);
    let t0 = std::time::Instant::now();
    let mut on_step = |step: usize, loss: f32| {
        pb.set_position(step as u64);
        pb.set_message(format!(
            "loss {loss:.4} {:.0} tokens/s",
            (step * a.batch_size * a.seq_len) as f64 / t0.elapsed().as_secs_f64()
        ));
    };
    let mut on_eval = |p: &lm::EvalPoint| {
        // Above the progress bar while it shows (suspend), straight to stdout otherwise.
        pb.suspend(|| {
            if a.json {
                println!("{}", serde_json::to_string(p).unwrap_or_default());
            } else {
                println!(
                    "step {}: train loss {:.4}, val loss {:.4}, lr {:.1e}, {:.0} tokens/s",
                    p.step, p.train_loss, p.val_loss, p.lr, p.tokens_per_sec
                );
            }
        });
    };
    lm::train(&gpu, &opts, &text, &mut on_step, &mut on_eval)?;
    pb.finish_and_clear();
    eprintln!("wrote {} (model, tokenizer, train_log.jsonl, loss.svg)", a.out.display());
    Ok(())
}
