//! Using a classifier folder (ours, or a transformers `BertForSequenceClassification`): open it with its
//! labels and head, and the course's `SentimentAnalyzer.predict` (label, confidence, probabilities by
//! label, logits) for `classify` and `serve`'s `/predict`.

use std::path::Path;

use super::classifier::{Classifier, HeadKind};
use super::finetune::{argmax, encode};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Open a classifier folder: its labels (id2label) and head (`wgpu_llm_head`, else transformers' pooler).
pub fn open_classifier<'g>(gpu: &'g Gpu, dir: &Path, batch: usize) -> Result<Classifier<'g>> {
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| Error::Format {
            file: cfg_path.display().to_string(),
            detail: format!("cannot read: {e}"),
        })?)
        .map_err(|e| Error::Format { file: cfg_path.display().to_string(), detail: format!("not JSON: {e}") })?;
    let id2label = cfg["id2label"].as_object().ok_or_else(|| Error::Format {
        file: cfg_path.display().to_string(),
        detail: "no id2label: not a sequence classifier".into(),
    })?;
    let labels: Vec<String> = (0..id2label.len())
        .map(|i| id2label.get(&i.to_string()).and_then(|v| v.as_str()).map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Format {
            file: cfg_path.display().to_string(),
            detail: format!("id2label {} is not 0..n", cfg["id2label"]),
        })?;
    let head = HeadKind::parse(cfg["wgpu_llm_head"].as_str().unwrap_or("pooler"))?;
    Classifier::open(gpu, dir, head, labels, batch, None, 0)
}

fn softmax(l: &[f32]) -> Vec<f64> {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// The course's `SentimentAnalyzer.predict`: each text's label, confidence and probabilities by label.
pub fn predict(
    clf: &mut Classifier,
    tok: &crate::tokenizer::Tokenizer,
    texts: &[String],
) -> Result<Vec<serde_json::Value>> {
    let max = clf.cfg.max_pos;
    let mut out = vec![];
    for chunk in texts.chunks(clf.batch) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|t| encode(tok, t, max)).collect::<Result<_>>()?;
        let logits = clf.eval_batch(&seqs, &[])?.logits;
        for (t, l) in chunk.iter().zip(logits) {
            let p = softmax(&l);
            let best = argmax(&l);
            let probs: serde_json::Map<String, serde_json::Value> =
                clf.labels.iter().zip(&p).map(|(k, v)| (k.clone(), (*v).into())).collect();
            out.push(serde_json::json!({"text": t, "label": clf.labels[best], "confidence": p[best], "probabilities": probs, "logits": l}));
        }
    }
    Ok(out)
}
