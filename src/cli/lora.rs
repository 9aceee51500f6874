//! `finetune --task lm` (LoRA or full finetuning of a decoder on instruction data) and `merge` (an adapter
//! folded into a model folder): argument checks, progress and printing over `train::sft` and `train::lora`.

use std::path::PathBuf;

use clap::Args;

use super::model_path::resolve;
use super::train::{bar, check, FinetuneArgs};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tokenizer::Tokenizer;
use crate::train::lora::{Adapter, LoraConfig, LLAMA_TARGETS};
use crate::train::sft::{self, Epoch};
use crate::train::sft_data;

/// The options of `finetune --task lm`.
#[derive(Args, Clone, Debug)]
pub struct LmArgs {
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// LoRA alpha (the update is scaled by alpha / r).
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f32,
    /// Dropout on each adapted layer's input (LoRA's branch only).
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout: f32,
    /// The adapted layers (default: all seven projections of a Llama layer).
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Option<Vec<String>>,
    /// Start from this adapter's weights (a PEFT folder) instead of a fresh one.
    #[arg(long)]
    pub lora_init: Option<PathBuf>,
    /// Train every weight (f32) instead of an adapter; OUT is then a model folder.
    #[arg(long, conflicts_with_all = ["lora_init", "base_dtype"])]
    pub full: bool,
    /// How LoRA's frozen base weights are stored on the GPU: f32, f16 (half the memory) or int8 (weight-only,
    /// about a quarter); activations and adapters stay f32.
    #[arg(long, default_value = "f32")]
    pub base_dtype: String,
    /// Learn the prompt tokens too (default: only the assistant replies / completions).
    #[arg(long)]
    pub train_on_prompt: bool,
    /// Micro-batches of --batch-size per optimizer step (their gradients averaged): the effective batch
    /// is batch × grad-accum at the memory of one batch (both tasks).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
}

pub fn run_finetune_lm(gpu: &dyn Fn() -> Result<Gpu>, a: &FinetuneArgs) -> Result<()> {
    let (lr, batch, max_length) = (a.lr.unwrap_or(2e-4), a.batch_size.unwrap_or(4), a.max_length.unwrap_or(512));
    a.check_common(lr, batch)?;
    check(max_length >= 2, format!("--max-length {max_length}: must be at least 2"))?;
    check(a.val_split.is_none(), "--val-split: give --val FILE for --task lm".into())?;
    let l = &a.lm;
    let lora = if l.full {
        None
    } else {
        check(l.lora_r >= 1, format!("--lora-r {}: must be at least 1", l.lora_r))?;
        check(l.lora_alpha > 0.0, format!("--lora-alpha {}: must be > 0", l.lora_alpha))?;
        check((0.0..1.0).contains(&l.lora_dropout), format!("--lora-dropout {}: must be in [0, 1)", l.lora_dropout))?;
        let mut targets =
            l.lora_targets.clone().unwrap_or_else(|| LLAMA_TARGETS.iter().map(|s| s.to_string()).collect());
        targets.sort();
        targets.dedup();
        Some(LoraConfig { r: l.lora_r, alpha: l.lora_alpha, dropout: l.lora_dropout, targets, rslora: false })
    };
    let base = sft::Base::parse(&l.base_dtype)?;
    let init = l.lora_init.as_deref().map(Adapter::load).transpose()?;
    if let (Some(i), Some(c)) = (&init, &lora) {
        check(
            i.config.r == c.r && i.config.targets == c.targets,
            format!(
                "--lora-init has r {} on {:?}: give the same --lora-r and --lora-targets",
                i.config.r, i.config.targets
            ),
        )?;
    }
    let model = resolve(Some(a.model.as_deref().unwrap_or("smollm2")))?;
    let tok = Tokenizer::from_path(&model)?;
    let (train, dropped) = sft_data::read_jsonl(&a.data, &tok, max_length, l.train_on_prompt)?;
    let val = match &a.val {
        Some(v) => sft_data::read_jsonl(v, &tok, max_length, l.train_on_prompt)?.0,
        None => vec![],
    };
    if dropped > 0 {
        eprintln!("finetune: {dropped} lines have nothing to learn within --max-length {max_length} and are skipped");
    }
    let opts = sft::Options {
        model: model.clone(),
        lora,
        base,
        epochs: a.epochs,
        lr,
        batch,
        max_length,
        warmup_ratio: a.warmup_ratio,
        weight_decay: a.weight_decay,
        betas: (a.betas[0], a.betas[1]),
        grad_clip: a.grad_clip,
        grad_accum: l.grad_accum,
        seed: a.seed,
        out: a.out.clone(),
    };
    sft::prepare(&opts, init.as_ref())?;
    let gpu = gpu()?;
    let learned: usize = train.iter().map(|s| s.learned()).sum();
    eprintln!(
        "finetune: {} training sequences ({learned} learned tokens), {} validation, {} on {}",
        train.len(),
        val.len(),
        match &opts.lora {
            Some(c) => format!("LoRA r {} alpha {} on {} ({} base)", c.r, c.alpha, c.targets.join(","), base.name()),
            None => "every weight".into(),
        },
        gpu.info.name
    );
    let mut pb = bar(0, a.json);
    let epoch = std::cell::Cell::new(1);
    let mut on_step = |k: usize, n: usize, loss: f32| {
        if k == 1 {
            pb = bar(n as u64, a.json);
            pb.set_prefix(format!("epoch {}", epoch.get()));
        }
        pb.set_position(k as u64);
        pb.set_message(format!("loss {loss:.4}"));
    };
    let mut on_epoch = |e: &Epoch| {
        epoch.set(e.epoch + 1);
        if a.json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            let val = e.val_loss.map(|v| format!(", Val Loss: {v:.4}")).unwrap_or_default();
            println!("Epoch {}: Train Loss: {:.4}{val} ({:.1} tokens/s)", e.epoch, e.train_loss, e.tokens_per_sec);
        }
    };
    let (_, fp) = sft::finetune(&gpu, &opts, &train, &val, init, &mut on_step, &mut on_epoch)?;
    eprintln!(
        "finetune: {} trainable of {} parameters ({:.3}%), {:.1} MiB on the GPU, {} dispatches a step; wrote {}",
        fp.trainable_params,
        fp.total_params,
        100.0 * fp.trainable_params as f64 / fp.total_params.max(1) as f64,
        fp.gpu_bytes as f64 / (1 << 20) as f64,
        fp.step_dispatches,
        a.out.display()
    );
    Ok(())
}

#[derive(Args, Clone, Debug)]
pub struct MergeArgs {
    /// The base model (a folder, a .gguf file or a known name).
    #[arg(short, long)]
    pub model: Option<String>,
    /// The adapter folder (PEFT's format).
    #[arg(long)]
    pub lora: PathBuf,
    /// The merged model folder (model.safetensors f32, config.json, the tokenizer).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// W + (alpha/r)·B·A into every adapted layer; the rest as the base model has it.
pub fn run_merge(a: &MergeArgs) -> Result<()> {
    let adapter = Adapter::load(&a.lora)?;
    let model = resolve(a.model.as_deref())?;
    let mut mt = crate::tools::export::model_tensors(&model)?;
    let linear: std::collections::BTreeMap<String, [usize; 2]> = mt
        .linear
        .iter()
        .filter_map(|n| {
            let t = mt.tensors.iter().find(|t| t.name == format!("{n}.weight"))?;
            Some((n.clone(), [t.shape[0], *t.shape.get(1)?]))
        })
        .collect();
    adapter.check(&linear, &model.display().to_string())?;
    for t in &mut mt.tensors {
        if adapter.layers.contains_key(t.name.trim_end_matches(".weight")) {
            let w = crate::tensor::HostTensor::f32(&t.shape, t.to_f32())?;
            let m = adapter.merge(&t.name, w)?.to_f32();
            *t = crate::tools::export::ExportTensor::f32(&t.name, &t.shape.clone(), m);
        }
    }
    crate::tools::export::write_model_folder(&a.out, &model, &mt.config, &mt.tensors, a.overwrite)?;
    eprintln!("merge: {} layers adapted; wrote {}", adapter.layers.len(), a.out.display());
    Ok(())
}
