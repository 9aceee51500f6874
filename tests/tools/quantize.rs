//! `quantize`: int8 folders (weight-only, dynamic, static) load directly and track transformers' logits;
//! static calibration's block maxima equal the CPU reference's layer inputs; bad input writes nothing;
//! int8 checkpoints with missing scales or a foreign scheme are clear errors.

use std::collections::HashMap;

use wgpu_llm::graph::ActQuant;
use wgpu_llm::models::ConfigSource;
use wgpu_llm::session::calibrate::Calibration;
use wgpu_llm::session::{Arch, Session};
use wgpu_llm::tensor::{DType, HostTensor};
use wgpu_llm::tools::quantize::{quantize_model, CalibrationText};

use super::common::gpu;
use super::{cli, fixture, model_with_tokenizer, stderr, TempDir};

fn open_gpu() -> wgpu_llm::error::Result<wgpu_llm::gpu::Gpu> {
    wgpu_llm::gpu::Gpu::new(&Default::default())
}

fn expected() -> (Vec<u32>, Vec<f32>) {
    let text = std::fs::read_to_string(fixture("tiny-llama").join("expected.json")).unwrap();
    let exp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = exp["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let logits = exp["logits"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().clone());
    (ids, logits.map(|x| x.as_f64().unwrap() as f32).collect())
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    err / want.iter().map(|w| (*w as f64).powi(2)).sum::<f64>()
}

const CALIB: &str = "w5 w9 w13 w2 w40 w41 w7 w7 w63 w1 w30 w22 w18 w11 w3 w50 w44 w27 w8 w16 w60 w12";

#[test]
fn quantized_folders_load_and_track_transformers() {
    let dir = TempDir::new("quantize");
    let model = model_with_tokenizer(&dir, "tiny-llama");
    let calib = dir.path("calib.txt");
    std::fs::write(&calib, CALIB).unwrap();
    let (input, want) = expected();
    for (mode, budget) in [(ActQuant::None, 1e-3), (ActQuant::Dynamic, 3e-3), (ActQuant::Static, 3e-2)] {
        let out = dir.path(&format!("q-{}", mode.name()));
        let c = (mode == ActQuant::Static).then_some(CalibrationText {
            file: &calib,
            samples: 4,
            len: 8,
            percentile: 100.0,
            smooth: None,
            dynamic: None,
        });
        let r = quantize_model(&open_gpu, &model, &out, mode, vec![], c, false).unwrap();
        assert!(r.bytes < r.f32_bytes && !r.layers.is_empty(), "{r:?}");
        let store = wgpu_llm::loader::open(&out).unwrap();
        let e = store.entry("model.layers.0.self_attn.q_proj.weight").unwrap();
        assert_eq!(e.dtype, wgpu_llm::loader::SourceDType::I8);
        assert!(store.contains("model.layers.0.self_attn.q_proj.weight_scale"));
        assert_eq!(store.contains("model.layers.0.self_attn.q_proj.input_scale"), mode == ActQuant::Static);
        // The folder carries its scheme: a plain f32 load runs it.
        let mut s = Session::load(gpu(), &out, DType::F32, 64).unwrap();
        assert_eq!(s.prec.int8, Some(mode));
        let got: Vec<f32> = input.iter().flat_map(|&id| s.forward(&[id]).unwrap()).collect();
        let e = nmse(&got, &want);
        assert!(e < budget, "{}: logits NMSE {e:e} ≥ {budget:e}", mode.name());
    }
}

/// The GPU calibration's per-block maxima equal those of the layer inputs the CPU reference computes for the
/// same window.
#[test]
fn calibration_maxima_match_the_reference() {
    let dir = fixture("tiny-llama");
    let ids: Vec<u32> = (0..11).map(|i| (i * 7 + 3) % 64).collect();
    let t = ids.len();
    let mut s = Session::load(gpu(), &dir, DType::F32, 16).unwrap();
    let mut cal = Calibration::default();
    s.calibrate(&ids, &mut cal).unwrap();
    assert_eq!(cal.rows, t);
    let store = wgpu_llm::loader::open(&dir).unwrap();
    let arch = Arch::from_source(&ConfigSource::find(&dir, &store).unwrap(), &store).unwrap();
    // Calibration runs every position through the head (an int8 head's scales cover all of them).
    let step = arch.build(t, t, 16, &DType::F32.into()).unwrap();
    let mut leaves = arch.load_params(&store, &step.graph).unwrap();
    leaves.insert("ids".into(), HostTensor::u32(&[1, t], ids.clone()).unwrap());
    leaves.insert("last".into(), HostTensor::u32(&[t], (0..t as u32).collect()).unwrap());
    let vars = HashMap::from([("pos".to_string(), 0), ("len".to_string(), t as u32)]);
    let taps: Vec<_> = step.graph.taps.iter().map(|x| x.1).collect();
    let outs = wgpu_llm::reference::run_graph(&step.graph, &mut leaves, &vars, &taps).unwrap();
    let mut checked = 0;
    for ((name, _), x) in step.graph.taps.iter().zip(&outs) {
        let k = *x.shape.last().unwrap();
        if k % 32 != 0 {
            continue;
        }
        let x = x.to_f32();
        let got = &cal.maxima[name];
        for (b, g) in got.iter().enumerate() {
            let w = x.chunks(k).flat_map(|r| r[b * 32..(b + 1) * 32].to_vec()).fold(0f32, |a, v| a.max(v.abs()));
            assert!((g - w).abs() <= 1e-4 * w.max(1.0), "{name} block {b}: GPU max {g} vs reference {w}");
            checked += 1;
        }
    }
    assert!(checked > 4, "only {checked} blocks checked");
    assert!(cal.maxima.contains_key("lm_head"), "the head's input was not calibrated");
}

/// Layers named by `dynamic` in a static scheme keep no calibrated scale and quantize per token; the
/// folder records them and loads with them.
#[test]
fn static_folders_keep_dynamic_layers_per_token() {
    let dir = TempDir::new("quantize-mixed");
    let model = model_with_tokenizer(&dir, "tiny-llama");
    let calib = dir.path("calib.txt");
    std::fs::write(&calib, CALIB).unwrap();
    let out = dir.path("q");
    let dynamic = Some(vec!["o_proj".to_string()]);
    let c = CalibrationText { file: &calib, samples: 4, len: 8, percentile: 100.0, smooth: None, dynamic };
    let r = quantize_model(&open_gpu, &model, &out, ActQuant::Static, vec![], Some(c), false).unwrap();
    assert_eq!(r.dynamic, vec!["o_proj"]);
    // Calibrated layers report how much coarser their static scales round than per-token ones (≥ 1).
    let noise = |n: &str| r.layers.iter().find(|l| l.name == n).unwrap().act_noise_ratio;
    assert!(noise("model.layers.0.self_attn.q_proj").is_some_and(|x| x >= 1.0 - 1e-9), "{r:?}");
    assert_eq!(noise("model.layers.0.self_attn.o_proj"), None);
    let store = wgpu_llm::loader::open(&out).unwrap();
    assert!(store.contains("model.layers.0.self_attn.q_proj.input_scale"));
    assert!(!store.contains("model.layers.0.self_attn.o_proj.input_scale"));
    let mut s = Session::load(gpu(), &out, DType::F32, 64).unwrap();
    assert_eq!(s.prec.dynamic, vec!["o_proj"]);
    assert_eq!(s.prec.int8_for("model.layers.1.self_attn.o_proj", 32), Some(ActQuant::Dynamic));
    assert_eq!(s.prec.int8_for("model.layers.1.self_attn.v_proj", 32), Some(ActQuant::Static));
    let (input, want) = expected();
    let got: Vec<f32> = input.iter().flat_map(|&id| s.forward(&[id]).unwrap()).collect();
    let e = nmse(&got, &want);
    assert!(e < 3e-2, "logits NMSE {e:e}");
}

/// Smoothing folds its factors into norms and producer rows: the float model computes the same logits
/// (grouped-query attention, q/k/v biases and an int8 head's norm included), and the factors follow
/// s = max|x|^α / max|W|^(1−α).
#[test]
fn smoothing_leaves_the_float_model_unchanged() {
    use wgpu_llm::tools::export::{model_tensors, write_model_folder};
    use wgpu_llm::tools::smooth;
    for fixture_name in ["tiny-llama", "tiny-qwen2"] {
        let dir = TempDir::new("smooth");
        let model = model_with_tokenizer(&dir, fixture_name);
        let mut m = model_tensors(&model).unwrap();
        let head = m.tensors.iter().any(|t| t.name == "lm_head.weight");
        let groups = smooth::llama_groups(&m.config, &m.tensors, true).unwrap();
        assert_eq!(groups.len(), 4 * 2 + usize::from(head), "{fixture_name}");
        let mut seed = 0x9e37_79b9u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32
        };
        let mut act = std::collections::BTreeMap::new();
        for g in &groups {
            for c in &g.consumers {
                act.insert(c.clone(), (0..g.map.len()).map(|_| 0.1 + 10.0 * rnd()).collect::<Vec<f32>>());
            }
        }
        let before = act.clone();
        let ids = [1u32, 5, 9, 13, 2, 40, 41, 7];
        let logits = |path: &std::path::Path| {
            let mut s = Session::load(gpu(), path, DType::F32, 16).unwrap();
            ids.iter().flat_map(|&id| s.forward(&[id]).unwrap()).collect::<Vec<f32>>()
        };
        let want = logits(&model);
        for g in &groups {
            let s = smooth::factors(g, &act, &m.tensors, 0.5).unwrap();
            // The first channel's factor by hand.
            let p0: Vec<usize> = (0..g.map.len()).filter(|&c| g.map[c] == 0).collect();
            let a = g.consumers.iter().flat_map(|c| p0.iter().map(|&ch| act[c][ch])).fold(0f32, f32::max);
            let mut w = 0f32;
            for c in &g.consumers {
                let t = m.tensors.iter().find(|t| t.name == format!("{c}.weight")).unwrap();
                let k = t.shape[1];
                for row in t.to_f32().chunks(k) {
                    w = p0.iter().fold(w, |w, &ch| w.max(row[ch].abs()));
                }
            }
            let s0 = (a / w).sqrt();
            assert!((s[0] - s0).abs() <= 1e-5 * s0, "{fixture_name} {:?}: s0 {} vs {s0}", g.producer, s[0]);
            smooth::apply(g, &s, &mut m.tensors, &mut act).unwrap();
            // The consumers' calibrated maxima are divided by the factors.
            let c = &g.consumers[0];
            assert!((act[c][p0[0]] * s[0] - before[c][p0[0]]).abs() <= 1e-5 * before[c][p0[0]]);
        }
        let out = dir.path("smoothed");
        write_model_folder(&out, &model, &m.config, &m.tensors, false).unwrap();
        let got = logits(&out);
        let e = nmse(&got, &want);
        assert!(e < 1e-10, "{fixture_name}: smoothed float logits NMSE {e:e}");
        // And the weights did change.
        let w0 = model_tensors(&model).unwrap().tensors;
        let changed = m.tensors.iter().zip(&w0).filter(|(a, b)| a.to_f32() != b.to_f32()).count();
        assert!(changed > 10, "{fixture_name}: only {changed} tensors changed");
    }
}

#[test]
fn bad_input_writes_nothing() {
    let dir = TempDir::new("quantize-bad");
    let model = model_with_tokenizer(&dir, "tiny-llama");
    let m = model.to_str().unwrap();
    let out = dir.path("out");
    let o = out.to_str().unwrap();
    std::fs::write(dir.path("empty.txt"), "  \n").unwrap();
    std::fs::write(dir.path("binary.bin"), [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
    let (empty, binary) = (dir.path("empty.txt"), dir.path("binary.bin"));
    let (empty, binary) = (empty.to_str().unwrap(), binary.to_str().unwrap());
    let before = dir.names();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--mode", "static"], "calibration"),
        (vec!["--mode", "static", "--calibration", empty], "empty"),
        (vec!["--mode", "static", "--calibration", binary], "UTF-8"),
        (vec!["--mode", "int4"], "int4"),
        (vec!["--mode", "dynamic", "--keep", "proj,lm_head"], "no linear layer"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["quantize", "-m", m, "-o", o];
        args.extend(&extra);
        let r = cli(&args);
        let e = stderr(&r);
        assert!(!r.status.success() && e.contains(needle), "{extra:?}: {e}");
        assert_eq!(dir.names(), before, "{extra:?} left files behind");
    }
    // An existing output is refused without --overwrite.
    std::fs::create_dir(&out).unwrap();
    let r = cli(&["quantize", "-m", m, "-o", o]);
    assert!(!r.status.success() && stderr(&r).contains("exists"), "{}", stderr(&r));
    assert!(cli(&["quantize", "-m", m, "-o", o, "--overwrite"]).status.success());
}

#[test]
fn broken_int8_checkpoints_are_clear_errors() {
    let dir = TempDir::new("quantize-broken");
    let model = model_with_tokenizer(&dir, "tiny-llama");
    let out = dir.path("q");
    quantize_model(&open_gpu, &model, &out, ActQuant::Dynamic, vec![], None, false).unwrap();
    // A foreign scheme.
    let cfg_path = out.join("config.json");
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&good).unwrap();
    cfg["quantization_config"]["quant_method"] = "gptq".into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = Session::load(gpu(), &out, DType::F32, 16).err().unwrap().to_string();
    assert!(e.contains("gptq"), "{e}");
    // Static scheme without the calibrated scales.
    cfg["quantization_config"]["quant_method"] = wgpu_llm::quant::METHOD.into();
    cfg["quantization_config"]["activations"] = "static".into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = Session::load(gpu(), &out, DType::F32, 16).err().unwrap().to_string();
    assert!(e.contains("input_scale"), "{e}");
    // An int8 weight whose block scales are missing: rewrite the file without one scale tensor.
    std::fs::write(&cfg_path, &good).unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let drop = "model.layers.1.mlp.up_proj.weight_scale";
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| n != drop).collect();
    safetensors::serialize_to_file(kept, None, &out.join("model.safetensors")).unwrap();
    let e = Session::load(gpu(), &out, DType::F32, 16).err().unwrap().to_string();
    assert!(e.contains(drop), "{e}");
}

/// A BERT folder quantized with static scales (calibrated through the encoder) embeds like the float model.
#[test]
fn static_bert_folder_embeds_like_the_float_model() {
    use wgpu_llm::session::encoder::Encoder;
    let dir = TempDir::new("quantize-bert");
    let m = model_with_tokenizer(&dir, "tiny-bert");
    let calib = dir.path("calib.txt");
    std::fs::write(&calib, format!("{CALIB}\nw3 w4 w5 w6\n\nw60 w61 w62 w63 w1\n")).unwrap();
    let out = dir.path("q");
    let c = CalibrationText { file: &calib, samples: 8, len: 8, percentile: 100.0, smooth: None, dynamic: None };
    let r = quantize_model(&open_gpu, &m, &out, ActQuant::Static, vec![], Some(c), false).unwrap();
    assert!(r.calibration_tokens > 20, "{r:?}");
    let batch = vec![vec![1, 5, 9, 13, 2], vec![1, 40, 41, 2]];
    let want = Encoder::load(gpu(), &m, DType::F32).unwrap().embed(&batch).unwrap();
    let mut enc = Encoder::load(gpu(), &out, DType::F32).unwrap();
    assert_eq!(enc.prec.int8, Some(ActQuant::Static));
    for (g, w) in enc.embed(&batch).unwrap().iter().zip(&want) {
        let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum(); // both L2-normalised
        assert!(cos > 0.995, "static int8 BERT embedding cosine {cos}");
    }
}
