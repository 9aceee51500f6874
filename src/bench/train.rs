//! `wgpu-llm bench train`: training throughput on the GPU at hand for the two recipes, with the
//! dispatches and GPU memory of a step and one step's GPU time by op:
//! - a character-level GPT-2 (vocab 84, 4 pre-LN layers, d 128, 4 heads, MLP 512, tied head), batch
//!   12 × 64, AdamW: training tokens/s;
//! - all-MiniLM-L6-v2 with mean pooling + Linear (3 labels), batch 32, AdamW, dropout 0.1: training
//!   sentences/s at a padded length (64 by default, VADER's longest bucket at --max-length 64).
//!
//! Batches are random token ids: throughput does not depend on the text.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
use crate::exec::Plan;
use crate::gpu::Gpu;
use crate::graph::Op;
use crate::models::gpt2;
use crate::train::classifier::{Classifier, HeadKind, Setup, TrainSpec};
use crate::train::lm;
use crate::train::schedule::{Kind, Schedule};
use crate::train::SplitMix;

#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    pub recipe: String,
    pub adapter: String,
    pub steps: usize,
    /// Median wall time of one step (submit to loss read back), seconds.
    pub step_secs: f64,
    /// Training tokens/s (the GPT) or sentences/s (MiniLM).
    pub per_sec: f64,
    pub unit: &'static str,
    pub dispatches_per_step: usize,
    pub gpu_memory_bytes: u64,
    /// One step's GPU time by op: (op, µs, dispatches), largest first (the GPT only).
    pub profile: Vec<(String, f64, usize)>,
}

/// The character GPT recipe for `steps` timed steps (after two warm-up steps).
pub fn char_gpt(gpu: &Gpu, steps: usize) -> Result<TrainBench> {
    let cfg = gpt2::Config {
        hidden: 128,
        n_layers: 4,
        n_head: 4,
        inner: 512,
        vocab: 84,
        max_pos: 64,
        eps: 1e-5,
        prefix: "transformer.".into(),
    };
    let (b, t) = (12, 64);
    let opts = lm::Options {
        config: Default::default(),
        data: vec![],
        out: Default::default(),
        steps,
        batch: b,
        seq_len: t,
        schedule: Schedule { kind: Kind::Constant, peak: 1e-3, warmup: 0, total: steps, min_lr: 0.0 },
        weight_decay: 0.1,
        betas: (0.9, 0.99),
        grad_clip: None,
        grad_accum: 1,
        dropout: None,
        eval_every: usize::MAX,
        eval_batches: 0,
        save_every: 0,
        resume: None,
        stop: None,
        tokenizer: crate::train::vocab::Spec::Char,
        seed: 1,
    };
    let cfg = lm::TrainConfig::Gpt2(cfg);
    let g = lm::lm_graph(&cfg, b, t, Some((&opts, 0.0)), crate::train::Accum::Off)?;
    let mut plan = Plan::compile(gpu, &g.graph, &[g.loss])?;
    for node in &g.graph.nodes {
        if let Op::Param { name } = &node.op {
            plan.set(name, &lm::init_param(&cfg, name, &node.shape, 1)?)?;
        }
    }
    let mut rng = SplitMix(7);
    let tokens: Vec<u32> = (0..100_000).map(|_| (rng.next_u64() % 84) as u32).collect();
    let mut times = vec![];
    for step in 1..=steps + 2 {
        let f = lm::batch(&tokens, b, t, &mut rng);
        let feeds: Vec<(&str, &crate::tensor::HostTensor)> = f.iter().map(|(n, v)| (*n, v)).collect();
        let t0 = Instant::now();
        plan.run(&feeds, &[("lr", 1e-3f32.to_bits()), ("step", step as u32)])?;
        if step > 2 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let f = lm::batch(&tokens, b, t, &mut rng);
    let feeds: Vec<(&str, &crate::tensor::HostTensor)> = f.iter().map(|(n, v)| (*n, v)).collect();
    let timings = plan.profile(&feeds, &[("lr", 1e-3f32.to_bits()), ("step", (steps + 3) as u32)])?;
    let profile = by_op(timings);
    let step_secs = super::report::median(&times);
    let (persistent, transient) = plan.memory();
    Ok(TrainBench {
        recipe: "char GPT-2 (4 layers, d 128, batch 12x64)".into(),
        adapter: gpu.info.name.clone(),
        steps,
        step_secs,
        per_sec: (b * t) as f64 / step_secs,
        unit: "tokens/s",
        dispatches_per_step: plan.dispatch_count(),
        gpu_memory_bytes: persistent + transient,
        profile,
    })
}

/// The MiniLM finetuning recipe at padded length `len` for `steps` timed steps (after two warm-ups).
pub fn minilm(gpu: &Gpu, model: &Path, steps: usize, len: usize) -> Result<TrainBench> {
    let spec = TrainSpec {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        dropout: 0.1,
        attention_dropout: 0.1,
        seed: 1,
        max_grad_norm: None,
        grad_through_transpose: false,
    };
    let labels = vec!["negative".to_string(), "neutral".into(), "positive".into()];
    let batch = 32;
    let setup = Setup { head: HeadKind::Mean, labels, batch, train: Some(spec), seed: 1 };
    let mut clf = Classifier::open(gpu, model, setup)?;
    let vocab = clf.encoder.vocab() as u64;
    let mut rng = SplitMix(3);
    let mut times = vec![];
    let mut batch_of = || -> (Vec<Vec<u32>>, Vec<usize>) {
        let seqs = (0..batch).map(|_| (0..len).map(|_| (1000 + rng.next_u64() % (vocab - 1000)) as u32).collect());
        (seqs.collect(), (0..batch).map(|_| (rng.next_u64() % 3) as usize).collect())
    };
    for step in 1..=steps + 2 {
        let (seqs, labels) = batch_of();
        let t0 = Instant::now();
        clf.train_step(&seqs, &labels, 5e-5, step as u32)?;
        if step > 2 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let (seqs, labels) = batch_of();
    let timings = clf.profile_step(&seqs, &labels, 5e-5, (steps + 3) as u32)?;
    let step_secs = super::report::median(&times);
    Ok(TrainBench {
        recipe: format!("all-MiniLM-L6-v2 mean head, batch 32x{len}"),
        adapter: gpu.info.name.clone(),
        steps,
        step_secs,
        per_sec: batch as f64 / step_secs,
        unit: "sentences/s",
        dispatches_per_step: clf
            .step_dispatches(crate::train::classifier::bucket(len, clf.encoder.max_pos()))
            .unwrap_or(0),
        gpu_memory_bytes: clf.gpu_bytes(),
        profile: by_op(timings),
    })
}

/// Finetuning a decoder (`finetune --task lm`) at batch `batch` × `len` tokens: LoRA r 8 (alpha 16, no
/// dropout) on all seven projections over a frozen base stored as `lora` says, or every weight (None). Random token ids; the second half of
/// each sequence is learned (a reply after its prompt), so the head runs on half the rows; `steps` timed
/// steps after two warm-ups.
pub fn decoder(
    gpu: &Gpu,
    model: &Path,
    lora: Option<crate::train::sft::Base>,
    steps: usize,
    batch: usize,
    len: usize,
) -> Result<TrainBench> {
    use crate::train::lora::{LoraConfig, LLAMA_TARGETS};
    use crate::train::sft::{LmTrainer, Options};
    use crate::train::sft_data::Sequence;
    let lc = LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: LLAMA_TARGETS.iter().map(|s| s.to_string()).collect(),
        rslora: false,
    };
    let opts = Options {
        model: model.to_path_buf(),
        lora: lora.map(|_| lc),
        base: lora.unwrap_or_default(),
        epochs: 1,
        lr: 1e-5,
        batch,
        max_length: len,
        warmup_ratio: 0.0,
        weight_decay: 0.0,
        betas: (0.9, 0.999),
        grad_clip: None,
        grad_accum: 1,
        seed: 1,
        out: Default::default(),
    };
    let mut tr = LmTrainer::open(gpu, &opts, None)?;
    let vocab = tr.cfg.vocab as u64;
    let mut rng = SplitMix(5);
    let mut times = vec![];
    // Random ids; the second half of each sequence learned.
    let mut batch_of = || -> Vec<Sequence> {
        (0..batch)
            .map(|_| {
                let ids: Vec<u32> = (0..len).map(|_| (rng.next_u64() % vocab) as u32).collect();
                let labels = ids.iter().enumerate().map(|(k, &i)| if k < len / 2 { -100 } else { i as i32 }).collect();
                Sequence { labels, ids }
            })
            .collect()
    };
    for step in 1..=steps + 2 {
        let seqs = batch_of();
        let refs: Vec<&Sequence> = seqs.iter().collect();
        let t0 = Instant::now();
        tr.train_step(&refs, len, 1e-5, step as u32)?;
        if step > 2 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let seqs = batch_of();
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let timings = tr.profile_step(&refs, len, (steps + 3) as u32)?;
    let step_secs = super::report::median(&times);
    let fp = tr.footprint();
    let name = model.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let how = match lora {
        Some(base) => format!("LoRA r 8 on 7 projections, {} base", base.name()),
        None => "full (f32)".into(),
    };
    Ok(TrainBench {
        recipe: format!(
            "{name} {how}, {} of {} params trainable, batch {batch}x{len}",
            fp.trainable_params, fp.total_params
        ),
        adapter: gpu.info.name.clone(),
        steps,
        step_secs,
        per_sec: (batch * len) as f64 / step_secs,
        unit: "tokens/s",
        dispatches_per_step: fp.step_dispatches,
        gpu_memory_bytes: fp.gpu_bytes,
        profile: by_op(timings),
    })
}

/// GPU time by op: (op, µs, dispatches), largest first.
fn by_op(timings: Vec<crate::exec::OpTiming>) -> Vec<(String, f64, usize)> {
    let mut m: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for tm in timings {
        let e = m.entry(format!("{} {}", tm.op, tm.kernel)).or_default();
        e.0 += tm.micros;
        e.1 += 1;
    }
    let mut v: Vec<(String, f64, usize)> = m.into_iter().map(|(k, (us, n))| (k, us, n)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}
