//! Using a classifier folder (ours, or a transformers `BertForSequenceClassification`): open it with its
//! labels and head, and the course's `SentimentAnalyzer.predict` (label, confidence, probabilities by
//! label, logits) for `classify` and `serve`'s `/predict`.

use std::path::Path;

use super::classifier::{Classifier, HeadKind, Setup};
use super::data::by_length;
use super::finetune::{argmax, encode};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::ConfigSource;

/// A classifier folder's labels in id order: config.json's id2label, one per row of `classifier.weight`
/// (`LABEL_i` where it names none); no GPU work.
pub fn labels(dir: &Path) -> Result<Vec<String>> {
    let store = crate::loader::open(dir)?;
    let ConfigSource::Json(cfg) = ConfigSource::find(dir, &store)? else {
        return Err(Error::Format { file: dir.display().to_string(), detail: "a classifier needs config.json".into() });
    };
    let Ok(e) = store.entry("classifier.weight") else {
        return Err(Error::Format {
            file: dir.display().to_string(),
            detail: "no classifier.weight: not a sequence classifier".into(),
        });
    };
    Ok(crate::models::labels_from_config(&cfg, e.shape.first().copied().unwrap_or(0)))
}

/// Open a classifier folder with its labels and head (`wgpu_llm_head` in config.json, else transformers'
/// pooler).
pub fn open_classifier<'g>(gpu: &'g Gpu, dir: &Path, batch: usize) -> Result<Classifier<'g>> {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let head = HeadKind::parse(cfg["wgpu_llm_head"].as_str().unwrap_or("pooler"))?;
    Classifier::open(gpu, dir, Setup { head, labels: labels(dir)?, batch, train: None, seed: 0 })
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
    let max = clf.encoder.max_pos();
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| encode(tok, t, max)).collect::<Result<_>>()?;
    // Batched in order of length, answered in the texts' order.
    let mut out = vec![serde_json::Value::Null; texts.len()];
    for chunk in by_length(ids.len(), |i| ids[i].len()).chunks(clf.batch) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let logits = clf.eval_batch(&seqs, &[])?.logits;
        for (&i, l) in chunk.iter().zip(logits) {
            let p = softmax(&l);
            let best = argmax(&l);
            let probs: serde_json::Map<String, serde_json::Value> =
                clf.labels.iter().zip(&p).map(|(k, v)| (k.clone(), (*v).into())).collect();
            out[i] = serde_json::json!({"text": texts[i], "label": clf.labels[best], "confidence": p[best], "probabilities": probs, "logits": l});
        }
    }
    Ok(out)
}
