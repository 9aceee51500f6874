//! Model files against the original implementation: tiny random-weight checkpoints saved by
//! scripts/make_fixtures.py from Hugging Face transformers, with the logits and greedy tokens it recorded.

#[path = "kernels/common.rs"]
mod common;

use std::path::PathBuf;

use common::{assert_close, gpu, Tol};
use wgpu_llm::sample::{Sampler, SamplerConfig};
use wgpu_llm::session::{generate, Session};
use wgpu_llm::tensor::{DType, HostTensor};

fn fixture(name: &str) -> (PathBuf, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("fixture (scripts/make_fixtures.py)");
    (dir, serde_json::from_str(&text).unwrap())
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// f32 logits against transformers' f32 logits (different summation order, fused softmax).
const LOGITS: Tol = Tol { abs: 2e-4, rel: 1e-3 };

/// Prefill of the whole input, then token-by-token decode from scratch: every position's logits equal the
/// reference's, and greedy generation gives the recorded tokens.
fn check_causal_lm(name: &str) {
    let (dir, exp) = fixture(name);
    let input = ids(&exp["input_ids"]);
    let logits: Vec<Vec<f32>> = exp["logits"].as_array().unwrap().iter().map(floats).collect();
    let v = logits[0].len();
    let mut s = Session::load(gpu(), &dir, DType::F32, 64).unwrap();
    let last = s.forward(&input).unwrap();
    let t = |x: Vec<f32>| HostTensor::f32(&[v], x).unwrap();
    assert_close(&format!("{name} prefill, last position"), &t(last), &t(logits[input.len() - 1].clone()), LOGITS);
    s.reset();
    for (i, &id) in input.iter().enumerate() {
        let got = s.forward(&[id]).unwrap();
        assert_close(&format!("{name} decode, position {i}"), &t(got), &t(logits[i].clone()), LOGITS);
    }
    // A cache holding the first half of the input and then another token: only the rest runs again.
    s.reset();
    let half = input.len() / 2;
    let other = (input[half] + 1) % v as u32;
    s.forward(&[&input[..half], &[other, other]].concat()).unwrap();
    let keep = s.reuse_prefix(&input);
    assert_eq!((keep, s.pos), (half, half), "{name}: the cached prefix kept");
    let got = s.forward(&input[keep..]).unwrap();
    assert_close(&format!("{name} after a kept prefix"), &t(got), &t(logits[input.len() - 1].clone()), LOGITS);
    // All of it cached: the last token runs again, for its logits.
    assert_eq!(s.reuse_prefix(&input), input.len() - 1, "{name}: a fully cached input");
    let got = s.forward(&input[input.len() - 1..]).unwrap();
    assert_close(&format!("{name} fully cached"), &t(got), &t(logits[input.len() - 1].clone()), LOGITS);
    s.reset();
    assert_eq!(s.reuse_prefix(&input), 0, "{name}: nothing is cached after a reset");
    // The CLI's warm-up (a throwaway prefill and decode step) leaves nothing behind: the greedy continuation
    // below is the reference's.
    s.forward(&input[..2]).unwrap();
    s.warm_up().unwrap();
    assert_eq!(s.pos, 0, "{name}: the warm-up resets the cache");
    let want = ids(&exp["generate"]["generated_ids"]);
    let mut sampler = Sampler::new(SamplerConfig::default());
    let g = generate(&mut s, &input, want.len(), &mut sampler, &[], 0, &mut |_| true).unwrap();
    assert_eq!(g.tokens, want, "{name}: greedy continuation");
}

#[test]
fn tiny_llama_matches_transformers() {
    check_causal_lm("tiny-llama");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check_causal_lm("tiny-qwen2");
}

#[test]
fn unknown_architectures_and_missing_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-badmodel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, _) = fixture("tiny-llama");
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let err = |d: &PathBuf| Session::load(gpu(), d, DType::F32, 16).err().expect("should fail").to_string();
    let e = err(&dir);
    assert!(e.contains("config.json"), "{e}");
    std::fs::write(dir.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let e = err(&dir);
    assert!(e.contains("mamba"), "{e}");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["num_hidden_layers"] = 3.into(); // the file has only 2 layers
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let e = err(&dir);
    assert!(e.contains("model.layers.2"), "{e}");
    // Sizes that would divide by zero, underflow or not split into heads are named before any GPU work.
    let base = cfg.clone();
    for (key, value, want) in [
        ("num_attention_heads", serde_json::json!(0), "num_attention_heads = 0"),
        ("max_position_embeddings", serde_json::json!(0), "max_position_embeddings = 0"),
        ("num_key_value_heads", serde_json::json!(-2), "num_key_value_heads = -2"),
        ("hidden_size", serde_json::json!(64.5), "hidden_size = 64.5"),
        ("intermediate_size", serde_json::json!(1e12), "intermediate_size"),
        ("num_key_value_heads", serde_json::json!(3), "num_attention_heads / num_key_value_heads"),
    ] {
        let mut c = base.clone();
        c["num_hidden_layers"] = 2.into();
        c[key] = value;
        std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
        let e = err(&dir);
        assert!(e.contains(want), "{key}: {e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn rows(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(ids).collect()
}

/// The fixture's sequences without their padding, and their token types.
fn bert_inputs(exp: &serde_json::Value) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let mask = rows(&exp["attention_mask"]);
    let batch = rows(&exp["input_ids"])
        .iter()
        .zip(&mask)
        .map(|(r, m)| r.iter().zip(m).filter(|(_, &m)| m == 1).map(|(&i, _)| i).collect())
        .collect();
    (batch, rows(&exp["token_type_ids"]))
}

/// BERT with a padded batch and token types: hidden states at real positions and the pooler output equal
/// transformers'.
#[test]
fn tiny_bert_matches_transformers() {
    use wgpu_llm::session::encoder::Encoder;
    let (dir, exp) = fixture("tiny-bert");
    let (batch, types) = bert_inputs(&exp);
    let mut enc = Encoder::load(gpu(), &dir, DType::F32).unwrap();
    let hidden = enc.hidden(&batch, Some(&types)).unwrap();
    let want = exp["last_hidden_state"].as_array().unwrap();
    for (i, h) in hidden.iter().enumerate() {
        let w: Vec<f32> = want[i].as_array().unwrap().iter().take(batch[i].len()).flat_map(floats).collect();
        let n = w.len();
        assert_close(
            &format!("tiny-bert hidden, row {i}"),
            &HostTensor::f32(&[n], h.clone()).unwrap(),
            &HostTensor::f32(&[n], w).unwrap(),
            LOGITS,
        );
    }
    let pooled = enc.pooled(&batch, Some(&types)).unwrap();
    for (i, p) in pooled.iter().enumerate() {
        let w = floats(&exp["pooler_output"][i]);
        let n = w.len();
        assert_close(
            &format!("tiny-bert pooler, row {i}"),
            &HostTensor::f32(&[n], p.clone()).unwrap(),
            &HostTensor::f32(&[n], w).unwrap(),
            LOGITS,
        );
    }
}

#[test]
fn tiny_bert_classifier_matches_transformers() {
    use wgpu_llm::session::encoder::Encoder;
    let (dir, exp) = fixture("tiny-bert-cls");
    let (batch, types) = bert_inputs(&exp);
    let mut enc = Encoder::load(gpu(), &dir, DType::F32).unwrap();
    let logits = enc.classify(&batch, Some(&types)).unwrap();
    for (i, l) in logits.iter().enumerate() {
        let w = floats(&exp["logits"][i]);
        let n = w.len();
        assert_close(
            &format!("tiny-bert-cls logits, row {i}"),
            &HostTensor::f32(&[n], l.clone()).unwrap(),
            &HostTensor::f32(&[n], w).unwrap(),
            LOGITS,
        );
        let best = l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(enc.cfg.labels[best], exp["predicted_labels"][i].as_str().unwrap());
    }
}

#[test]
fn tiny_gpt2_matches_transformers() {
    check_causal_lm("tiny-gpt2");
}

/// The textbook Transformer encoder against PyTorch's nn.TransformerEncoder (padded batch, real positions).
#[test]
fn tiny_textbook_transformer_matches_pytorch() {
    use wgpu_llm::exec::Plan;
    use wgpu_llm::graph::Op;
    use wgpu_llm::models::{textbook, ConfigSource};
    let (dir, exp) = fixture("tiny-textbook");
    let store = wgpu_llm::loader::open(&dir).unwrap();
    let cfg = textbook::Config::from_source(&ConfigSource::find(&dir, &store).unwrap()).unwrap();
    let ids_in = rows(&exp["input_ids"]);
    let mask_in = rows(&exp["attention_mask"]);
    let (b, t) = (ids_in.len(), ids_in[0].len());
    let (graph, hidden) = textbook::build(&cfg, b, t, &DType::F32.into()).unwrap();
    let mut plan = Plan::compile(gpu(), &graph, &[hidden]).unwrap();
    for node in &graph.nodes {
        if let Op::Param { name } = &node.op {
            plan.set(name, &textbook::load_param(&cfg, &store, name, &node.shape).unwrap()).unwrap();
        }
    }
    let ids = HostTensor::u32(&[b, t], ids_in.concat()).unwrap();
    let mask = HostTensor::f32(&[b, t], mask_in.concat().iter().map(|&m| m as f32).collect()).unwrap();
    let got = plan.run(&[("ids", &ids), ("mask", &mask)], &[]).unwrap()[0].to_f32();
    let c = cfg.d_model;
    for i in 0..b {
        for j in 0..t {
            if mask_in[i][j] == 0 {
                continue;
            }
            let want = floats(&exp["last_hidden_state"][i][j]);
            let g = got[(i * t + j) * c..(i * t + j + 1) * c].to_vec();
            assert_close(
                &format!("textbook hidden [{i}, {j}]"),
                &HostTensor::f32(&[c], g).unwrap(),
                &HostTensor::f32(&[c], want).unwrap(),
                LOGITS,
            );
        }
    }
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    err / want.iter().map(|w| (*w as f64).powi(2)).sum::<f64>()
}

/// Int8 models against transformers' f32 logits: weight-only and W8A8 (dynamic), with the head float (the
/// default) and int8 (`keep` empty). Budgets: the output NMSE of block-32 int8 weights on these random
/// models is ~1e-4 (weight-only) and ~3e-4 (W8A8); a wrong scale or layout gives ≥ 1e-1.
#[test]
fn int8_decoders_track_transformers() {
    use wgpu_llm::graph::ActQuant;
    use wgpu_llm::models::Precision;
    for name in ["tiny-llama", "tiny-qwen2"] {
        let (dir, exp) = fixture(name);
        let input = ids(&exp["input_ids"]);
        let want: Vec<f32> = exp["logits"].as_array().unwrap().iter().flat_map(floats).collect();
        for (act, budget) in [(ActQuant::None, 1e-3), (ActQuant::Dynamic, 3e-3)] {
            for keep in [vec!["lm_head".to_string()], vec![]] {
                let prec = Precision {
                    dtype: DType::F32,
                    int8: Some(act),
                    keep: keep.clone(),
                    dynamic: vec![],
                    weights: None,
                };
                let mut s = Session::load(gpu(), &dir, prec.clone(), 64).unwrap();
                let got: Vec<f32> = input.iter().flat_map(|&id| s.forward(&[id]).unwrap()).collect();
                let e = nmse(&got, &want);
                assert!(e < budget, "{name} {} keep {keep:?}: logits NMSE {e:e} ≥ {budget:e}", prec.name());
                assert!(s.weight_bytes > 0);
            }
        }
    }
}

/// An int8 BERT's hidden states stay close to transformers' f32 ones (cosine per token).
#[test]
fn int8_bert_tracks_transformers() {
    use wgpu_llm::graph::ActQuant;
    use wgpu_llm::models::Precision;
    use wgpu_llm::session::encoder::Encoder;
    let (dir, exp) = fixture("tiny-bert");
    let (batch, types) = bert_inputs(&exp);
    for act in [ActQuant::None, ActQuant::Dynamic] {
        let mut enc = Encoder::load(
            gpu(),
            &dir,
            Precision { dtype: DType::F32, int8: Some(act), keep: vec![], dynamic: vec![], weights: None },
        )
        .unwrap();
        let hidden = enc.hidden(&batch, Some(&types)).unwrap();
        let c = enc.cfg.hidden;
        for (i, h) in hidden.iter().enumerate() {
            for (j, g) in h.chunks(c).enumerate() {
                let w = floats(&exp["last_hidden_state"][i][j]);
                let dot: f64 = g.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum();
                let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                let cos = dot / (n(g) * n(&w));
                assert!(cos > 0.999, "int8 {} bert [{i}, {j}]: cosine {cos}", act.name());
            }
        }
    }
}

/// Llama 3.1's RoPE scaling (rope_type llama3) gives transformers' inverse frequencies: values computed with
/// transformers' `_compute_llama3_parameters` arithmetic for Llama-3.1-8B's config (theta 500000, head dim
/// 128, factor 8, low 1, high 4, original 8192 positions); linear scaling divides; unknown types are errors.
#[test]
fn rope_scaling_variants() {
    use wgpu_llm::models::llama::RopeScaling;
    let cfg = serde_json::json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
    let s = RopeScaling::from_json(&cfg).unwrap().unwrap();
    let plain: Vec<f64> = (0..64).map(|i| 1.0 / (500_000f64).powf((2 * i) as f64 / 128.0)).collect();
    let got = s.apply(&plain).unwrap();
    let want = [
        (0, 1.0),
        (1, 0.8146172165870667),
        (20, 0.016560440883040428),
        (30, 0.0013718936825171113),
        (40, 3.428102354519069e-05),
        (45, 1.2297638932068367e-05),
        (50, 4.411534519022098e-06),
        (63, 3.068925877869333e-07),
    ];
    for (i, w) in want {
        assert!((got[i] as f64 - w).abs() <= 1e-5 * w, "llama3 inv_freq[{i}] = {} want {w}", got[i]);
    }
    let lin = RopeScaling::from_json(&serde_json::json!({"rope_scaling": {"type": "linear", "factor": 4.0}})).unwrap();
    assert_eq!(lin.unwrap().apply(&[1.0, 0.5]).unwrap(), vec![0.25, 0.125]);
    assert!(RopeScaling::from_json(&serde_json::json!({"rope_scaling": null})).unwrap().is_none());
    let e = RopeScaling::from_json(&serde_json::json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("yarn"), "{e}");
}

/// A Llama with scaled RoPE runs the table path: with linear factor 1 it equals the plain model exactly
/// (the same frequencies), so the scaled wiring is checked against transformers' fixture logits.
#[test]
fn scaled_rope_model_runs_the_table() {
    let (src, exp) = fixture("tiny-llama");
    let dir = std::env::temp_dir().join(format!("wgpu-llm-ropescale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 1.0});
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let input = ids(&exp["input_ids"]);
    let logits: Vec<Vec<f32>> = exp["logits"].as_array().unwrap().iter().map(floats).collect();
    let mut s = Session::load(gpu(), &dir, DType::F32, 64).unwrap();
    let last = s.forward(&input).unwrap();
    let v = last.len();
    let t = |x: Vec<f32>| HostTensor::f32(&[v], x).unwrap();
    assert_close("scaled rope, last position", &t(last), &t(logits[input.len() - 1].clone()), LOGITS);
    // Factor 2 halves every frequency: the logits move.
    cfg["rope_scaling"]["factor"] = 2.0.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut s = Session::load(gpu(), &dir, DType::F32, 64).unwrap();
    let moved = s.forward(&input).unwrap();
    assert!(nmse(&moved, &logits[input.len() - 1]) > 1e-6, "factor 2 changed nothing");
    std::fs::remove_dir_all(&dir).ok();
}

/// Several prompts of different lengths generated as one batch (left padding, key mask, shared rotary
/// positions / per-sequence learned positions) give each prompt's greedy tokens and logprobs as generated
/// alone.
#[test]
fn batched_generation_equals_one_by_one() {
    use wgpu_llm::session::batch::generate_batch;
    for name in ["tiny-llama", "tiny-gpt2", "tiny-qwen2"] {
        let (dir, _) = fixture(name);
        let prompts: Vec<Vec<u32>> = vec![vec![5, 9, 13], vec![2, 40, 41, 7, 7, 63, 1], vec![30, 22, 18, 11, 3]];
        let mut alone = vec![];
        let mut s = Session::load(gpu(), &dir, DType::F32, 32).unwrap();
        for p in &prompts {
            s.reset();
            let mut sampler = Sampler::new(SamplerConfig::default());
            alone.push(generate(&mut s, p, 6, &mut sampler, &[], 2, &mut |_| true).unwrap());
        }
        let mut bs = Session::load_batch(gpu(), &dir, DType::F32, 32, prompts.len()).unwrap();
        let mut samplers: Vec<Sampler> = prompts.iter().map(|_| Sampler::new(SamplerConfig::default())).collect();
        let batched = generate_batch(&mut bs, &prompts, 6, &mut samplers, &[], 2).unwrap();
        for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
            assert_eq!(a.tokens, b.tokens, "{name} prompt {i}: batched tokens");
            for (k, (x, y)) in a.logprobs.iter().zip(&b.logprobs).enumerate() {
                assert!((x.logprob - y.logprob).abs() < 1e-4, "{name} prompt {i} step {k}: {x:?} vs {y:?}");
            }
        }
        assert!(bs.forward(&[1]).is_err(), "single-sequence forward on a batched session");
    }
}

/// Continuous batching: sequences join a running batch between steps (each at its own position), leave when
/// done, and a freed slot takes a new sequence over stale keys; every sequence's greedy tokens and
/// log-probabilities equal its run alone. The second prompt shares a prefix with the first, so its prefill
/// reuses the single-sequence cache.
#[test]
fn continuous_batching_equals_one_by_one() {
    use wgpu_llm::session::TokenLogprob;
    for name in ["tiny-llama", "tiny-gpt2", "tiny-qwen2"] {
        let (dir, _) = fixture(name);
        // (prompt, tokens to generate, the step at which it arrives)
        let jobs: Vec<(Vec<u32>, usize, usize)> = vec![
            (vec![5, 9, 13], 4, 0),
            (vec![5, 9, 13, 40, 41, 7, 7, 63, 1], 7, 1),
            (vec![30, 22, 18, 11, 3], 6, 3),
            (vec![2, 8], 5, 5),
        ];
        let mut s = Session::load(gpu(), &dir, DType::F32, 32).unwrap();
        let mut alone = vec![];
        for (p, n, _) in &jobs {
            s.reset();
            let mut sampler = Sampler::new(SamplerConfig::default());
            alone.push(generate(&mut s, p, *n, &mut sampler, &[], 0, &mut |_| true).unwrap());
        }
        s.reset();
        s.open_slots(3).unwrap();
        let mut out: Vec<Vec<(u32, f32)>> = vec![vec![]; jobs.len()];
        let mut running: Vec<(usize, usize)> = vec![]; // (job, slot)
        let pick = |logits: &[f32]| {
            let t = Sampler::new(SamplerConfig::default()).sample(logits, &[]);
            (t, TokenLogprob::new(logits, t, 0).logprob)
        };
        let mut step = 0;
        while out.iter().zip(&jobs).any(|(o, j)| o.len() < j.1) {
            for (j, (p, _, at)) in jobs.iter().enumerate() {
                if *at == step || (*at < step && out[j].is_empty() && !running.iter().any(|r| r.0 == j)) {
                    let Some(slot) = s.free_slot() else { continue };
                    let (logits, _) = s.prefill_slot(slot, p).unwrap();
                    out[j].push(pick(&logits));
                    running.push((j, slot));
                }
            }
            // Done sequences leave before the step.
            running.retain(|&(j, slot)| {
                let done = out[j].len() >= jobs[j].1;
                if done {
                    s.release_slot(slot);
                }
                !done
            });
            let toks: Vec<(usize, u32)> = running.iter().map(|&(j, slot)| (slot, out[j].last().unwrap().0)).collect();
            if !toks.is_empty() {
                let logits = s.step_slots(&toks).unwrap();
                for (&(j, _), l) in running.iter().zip(&logits) {
                    out[j].push(pick(l));
                }
            }
            step += 1;
            assert!(step < 50, "{name}: the schedule did not finish");
        }
        for (j, (a, got)) in alone.iter().zip(&out).enumerate() {
            let got_tokens: Vec<u32> = got.iter().map(|x| x.0).take(jobs[j].1).collect();
            assert_eq!(a.tokens, got_tokens, "{name} job {j}: tokens");
            for (k, (x, y)) in a.logprobs.iter().zip(got).enumerate() {
                assert!((x.logprob - y.1).abs() < 1e-4, "{name} job {j} step {k}: {} vs {}", x.logprob, y.1);
            }
        }
        for (_, slot) in running {
            s.release_slot(slot);
        }
        assert!(s.step_slots(&[(0, 1)]).is_err(), "{name}: stepping a free slot");
    }
}

/// Sentence-transformers pooling as the folder's modules.json / 1_Pooling config say: modes concatenated
/// in its order (cls, max, mean, mean·√len), normalisation only when listed; absent config = mean + norm.
#[test]
fn pooling_follows_the_sentence_transformers_config() {
    use wgpu_llm::session::encoder::Pooling;
    let h = [1.0f32, -2.0, 3.0, 4.0, 5.0, -6.0]; // 3 tokens × 2 dims
    let dir = std::env::temp_dir().join(format!("wgpu-llm-pooling-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    assert_eq!(Pooling::from_folder(&dir).unwrap(), Pooling::default());
    std::fs::write(
        dir.join("modules.json"),
        r#"[{"idx":0,"path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"pooling_mode_cls_token": true, "pooling_mode_max_tokens": true, "pooling_mode_mean_tokens": true,
            "pooling_mode_mean_sqrt_len_tokens": true}"#,
    )
    .unwrap();
    let p = Pooling::from_folder(&dir).unwrap();
    assert!(p.cls && p.max && p.mean && p.mean_sqrt_len && !p.normalize);
    let s3 = 3f32.sqrt();
    let want = [1.0, -2.0, 5.0, 4.0, 3.0, -4.0 / 3.0, 9.0 / s3, -4.0 / s3];
    let got = p.pool(&h, 2);
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
    std::fs::write(dir.join("1_Pooling/config.json"), r#"{"pooling_mode_cls_token": true}"#).unwrap();
    std::fs::write(
        dir.join("modules.json"),
        r#"[{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
    )
    .unwrap();
    let p = Pooling::from_folder(&dir).unwrap();
    let got = p.pool(&h, 2);
    let n = 5f32.sqrt();
    assert!((got[0] - 1.0 / n).abs() < 1e-6 && (got[1] + 2.0 / n).abs() < 1e-6, "{got:?}");
    std::fs::write(dir.join("1_Pooling/config.json"), r#"{"pooling_mode_weightedmean_tokens": true}"#).unwrap();
    assert!(Pooling::from_folder(&dir).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
