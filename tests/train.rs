//! Training against PyTorch: one finetuning step of the tiny BERT classifier (tests/fixtures/tiny-bert-cls)
//! gives transformers' loss, logits and gradients of every parameter, and one AdamW step its parameters
//! (fixtures from scripts/make_train_fixtures.py); and the CLI's finetune → evaluate → classify loop.

#[path = "kernels/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::gpu;
use wgpu_llm::exec::Plan;
use wgpu_llm::graph::Op;
use wgpu_llm::loader::WeightStore;
use wgpu_llm::models::{bert, ConfigSource};
use wgpu_llm::tensor::HostTensor;
use wgpu_llm::train::classifier::{batch_feeds, step_graph, HeadKind, TrainSpec};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// max |got − want| over max |want| (0 when both are 0).
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max(w.abs() as f64));
    let worst = got.iter().zip(want).fold(0f64, |m, (&g, &w)| m.max((g as f64 - w as f64).abs()));
    if scale == 0.0 {
        worst
    } else {
        worst / scale
    }
}

fn open(p: &Path) -> WeightStore {
    wgpu_llm::loader::open(p).unwrap()
}

/// One step of `head` (with `clip`: gradients clipped by that global norm, compared with the `tag` files).
fn check_step(head: HeadKind, clip: Option<f32>, tag: &str) {
    let dir = fixtures().join("tiny-bert-cls");
    let fx = fixtures().join("tiny-bert-cls-step");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let name = head.name();
    let store = open(&dir);
    let cfg = bert::Config::from_source(&ConfigSource::find(&dir, &store).unwrap(), &store).unwrap();
    let spec = TrainSpec {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        dropout: 0.0,
        attention_dropout: 0.0,
        seed: 1,
        max_grad_norm: clip,
        grad_through_transpose: gpu().texture_reads, // as Classifier::open sets it
    };
    // Four rows for three sequences: the padding row of a last partial batch must change nothing.
    let (b, t) = (4, 16);
    let sg = step_graph(
        &wgpu_llm::train::classifier::Encoder::Bert(cfg.clone()),
        head,
        3,
        b,
        t,
        Some(&spec),
        wgpu_llm::train::Accum::Off,
    )
    .unwrap();
    let mut outs = vec![sg.loss, sg.logits];
    outs.extend(&sg.grads);
    let mut plan = Plan::compile(gpu(), &sg.graph, &outs).unwrap();
    for node in &sg.graph.nodes {
        if let Op::Param { name } = &node.op {
            plan.set(name, &HostTensor::f32(&node.shape, store.to_f32(name).unwrap()).unwrap()).unwrap();
        }
    }
    let seqs: Vec<Vec<u32>> = exp["seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect();
    let labels: Vec<usize> = exp["labels"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let feeds = batch_feeds(&seqs, &labels, b, t, head).unwrap();
    let feeds: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, v)| (*n, v)).collect();
    let got = plan.run(&feeds, &[("lr", 1e-3f32.to_bits()), ("step", 1)]).unwrap();

    let want = &exp["heads"][name];
    let loss = got[0].to_f32()[0] as f64;
    assert!((loss - want["loss"].as_f64().unwrap()).abs() < 1e-5, "{name}: loss {loss} vs {}", want["loss"]);
    let want_logits: Vec<f32> = want["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>())
        .collect();
    let logits = got[1].to_f32();
    assert!(rel_err(&logits[..9], &want_logits) < 1e-4, "{name}: logits {logits:?} vs {want_logits:?}");

    let grads = open(&fx.join(format!("{name}_grads.safetensors")));
    let after = open(&fx.join(format!("{tag}_after.safetensors")));
    let mut checked = 0;
    for (i, (pname, _)) in sg.params.iter().enumerate() {
        let g = got[2 + i].to_f32();
        let w = grads.to_f32(pname).unwrap_or_else(|e| panic!("{name}: PyTorch has no gradient of {pname}: {e}"));
        let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        if scale < 1e-6 {
            // A gradient that is zero in exact arithmetic (attention's key bias: softmax ignores a constant
            // added to a row) is rounding noise in both; Adam's first step turns noise into ±lr, so only
            // the gradient's smallness is compared.
            assert!(g.iter().all(|x| x.abs() < 1e-6), "{name}: gradient of {pname} should vanish: {g:?}");
            continue;
        }
        let e = rel_err(&g, &w);
        assert!(e < 1e-4, "{name}: gradient of {pname} differs from PyTorch's by {e:e} (relative to its largest)");
        let p = plan.read(pname).unwrap().to_f32();
        let w = after.to_f32(pname).unwrap();
        let e = rel_err(&p, &w);
        assert!(e < 1e-5, "{name}: {pname} after one AdamW step differs from PyTorch's by {e:e}");
        checked += 1;
    }
    assert_eq!(sg.params.len(), grads.len(), "{name}: every parameter PyTorch trained is trained here");
    assert!(checked + 2 * cfg.n_layers >= grads.len(), "{name}: only the key biases may be skipped");
}

#[test]
fn pooler_head_step_equals_pytorch() {
    check_step(HeadKind::Pooler, None, "pooler");
}

#[test]
fn clipped_step_equals_pytorch() {
    check_step(HeadKind::Pooler, Some(1.0), "pooler_clip");
}

#[test]
fn mean_head_step_equals_pytorch() {
    check_step(HeadKind::Mean, None, "mean");
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-llm")).args(args).output().expect("the binary runs")
}

/// The tiny classifier with the fixture tokenizer, as a model folder in a fresh temporary folder.
fn tiny_model(tag: &str) -> (PathBuf, PathBuf) {
    let tmp = std::env::temp_dir().join(format!("wgpu-llm-finetune-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let model = tmp.join("model");
    common::tiny_classifier(&model);
    (tmp, model)
}

fn data(f: &str) -> String {
    fixtures().join("tiny-bert-cls-data").join(f).display().to_string()
}

/// `steps` steps of `train` from config `c` on corpus `d` into `out`: batches of 2 × 16, one evaluation
/// batch half-way and at the end.
fn train_briefly(c: &str, d: &str, out: &str, steps: usize, extra: &[&str]) -> std::process::Output {
    let (steps, every) = (steps.to_string(), (steps / 2).max(1).to_string());
    let mut a = vec!["train", "--config", c, "--data", d, "-o", out, "--steps", &steps, "--batch-size", "2"];
    a.extend(["--seq-len", "16", "--eval-every", &every, "--eval-batches", "1"]);
    a.extend(extra);
    cli(&a)
}

fn json_lines(o: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// finetune → evaluate → classify through the CLI: the training loss falls, the best epoch by validation
/// loss is written as a classifier folder, evaluate on the validation set reproduces that epoch's accuracy,
/// classify gives a label of the folder's id2label with probabilities summing to 1; the same seed repeats
/// the losses exactly (dropout on).
#[test]
fn finetune_evaluate_classify() {
    let (tmp, model) = tiny_model("loop");
    let out = tmp.join("out");
    let (m, o) = (model.display().to_string(), out.display().to_string());
    let (train, val) = (data("train.tsv"), data("val.tsv"));
    let args = [
        "finetune",
        "-m",
        &m,
        "--data",
        &train,
        "--val",
        &val,
        "--epochs",
        "5",
        "--lr",
        "1e-3",
        "--batch-size",
        "8",
        "--max-length",
        "16",
        "--dropout",
        "0",
        "--seed",
        "1",
        "-o",
        &o,
        "--json",
        "--attention-dropout",
        "0",
    ];
    let epochs = json_lines(&cli(&args));
    assert_eq!(epochs.len(), 5);
    // --grad-accum: batches of 4, two to a step, follow batches of 8 (48 examples: the same eight a step).
    let accum_out = tmp.join("accum").display().to_string();
    let mut a = args.to_vec();
    a[12] = "4"; // --batch-size
    a[20] = &accum_out;
    a.extend(["--grad-accum", "2"]);
    for (x, y) in epochs.iter().zip(&json_lines(&cli(&a))) {
        let (p, q) = (x["val_loss"].as_f64().unwrap(), y["val_loss"].as_f64().unwrap());
        assert!((p - q).abs() < 1e-4 * p, "epoch {}: val loss {p} (batch 8) vs {q} (4 × 2)", x["epoch"]);
    }
    let loss = |e: &serde_json::Value| e["train_loss"].as_f64().unwrap();
    assert!(loss(&epochs[4]) < 0.85 * loss(&epochs[0]), "the training loss did not fall: {epochs:?}");
    let best = epochs.iter().rfind(|e| e["saved"].as_bool().unwrap()).unwrap().clone();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["id2label"]["2"], "positive");
    assert_eq!(cfg["wgpu_llm_head"], "pooler");
    assert!(out.join("tokenizer.json").exists() && out.join("model.safetensors").exists());

    let ev = &json_lines(&cli(&["evaluate", "-m", &o, "--data", &val, "--json"]))[0];
    assert!(
        (ev["accuracy"].as_f64().unwrap() - best["val_accuracy"].as_f64().unwrap()).abs() < 1e-12,
        "{ev} vs {best}"
    );
    assert!((ev["loss"].as_f64().unwrap() - best["val_loss"].as_f64().unwrap()).abs() < 1e-5, "{ev} vs {best}");
    assert_eq!(ev["confusion"].as_array().unwrap().len(), 3);

    // Batched by length, answered in the texts' order.
    let texts = ["a good day, a very good day indeed, all of it", "this is bad", "fine"];
    let cl = json_lines(&cli(&["classify", "-m", &o, "--json", texts[0], texts[1], texts[2]]));
    assert_eq!(cl.iter().map(|r| r["text"].as_str().unwrap()).collect::<Vec<_>>(), texts);
    for r in &cl {
        let p: f64 = r["probabilities"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-9, "{r}");
        assert!(["negative", "neutral", "positive"].contains(&r["label"].as_str().unwrap()), "{r}");
    }

    // Same seed, same losses (dropout on: the mask comes from the seed and the step), with and without
    // --group-by-length.
    let twice: Vec<Vec<f64>> = (0..4)
        .map(|k| {
            let o = tmp.join(format!("again{k}")).display().to_string();
            let mut a = vec![
                "finetune",
                "-m",
                &m,
                "--data",
                &train,
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--max-length",
                "16",
                "--dropout",
                "0.1",
                "--seed",
                "7",
                "-o",
                &o,
                "--json",
            ];
            if k >= 2 {
                a.push("--group-by-length");
            }
            json_lines(&cli(&a)).iter().map(loss).collect()
        })
        .collect();
    assert_eq!(twice[0], twice[1]);
    assert_eq!(twice[2], twice[3]);
    assert!(twice[2][0].is_finite() && twice[2][0] > 0.0, "{twice:?}");
    std::fs::remove_dir_all(&tmp).ok();
}

/// Bad data and arguments are errors naming the file, line and field, before any GPU work, and leave
/// nothing in OUT.
#[test]
fn finetune_bad_input_is_a_clear_error() {
    let (tmp, model) = tiny_model("bad");
    let m = model.display().to_string();
    let write = |name: &str, text: &str| {
        let p = tmp.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let out = tmp.join("out");
    let o = out.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![write("a.tsv", "words\tlabel\nhi\tpositive\n")], "no column \"text\""),
        (
            vec![
                write("b.tsv", "text\tlabel\nhi\tpositive\nho\tangry\n"),
                "--labels".into(),
                "negative,neutral,positive".into(),
            ],
            "line 3: unknown label \"angry\"",
        ),
        (vec![write("c.tsv", "text\tlabel\n")], "has no examples"),
        (vec![write("d.jsonl", "{\"text\": [1], \"label\": 0}\n")], "line 1: column \"text\" is not text"),
        (
            vec![write("e.tsv", "text\tlabel\nhi\tyes\nho\tno\n")],
            "the checkpoint's classifier has 3 labels, the data 2",
        ),
        (vec![data("train.tsv"), "--head".into(), "max".into()], "--head max"),
        (vec![data("train.tsv"), "--lr".into(), "0".into()], "--lr 0"),
        (vec![data("train.tsv"), "--betas".into(), "0.9".into()], "--betas"),
    ];
    for (extra, want) in cases {
        let mut args: Vec<String> = ["finetune", "-m", &m, "-o", &o, "--data"].iter().map(|s| s.to_string()).collect();
        args.extend(extra);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = cli(&a);
        let e = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && e.contains(want), "{a:?}: {e}");
        assert!(!e.contains("panicked"), "{a:?}: {e}");
        assert!(!out.exists(), "{a:?} left {}", out.display());
    }
    std::fs::remove_dir_all(&tmp).ok();
}

/// 50 steps of a character-level GPT-2 from PyTorch's initial weights on PyTorch's batches (warmup then
/// cosine schedule, weight decay with its exclusions, clipping by global norm): the loss at every step
/// equals PyTorch's within 1e-3 (fixture tests/fixtures/tiny-gpt2-train from scripts/make_train_fixtures.py).
#[test]
fn char_gpt_50_steps_follow_pytorch() {
    use wgpu_llm::models::gpt2;
    use wgpu_llm::train::lm;
    use wgpu_llm::train::schedule::{Kind, Schedule};
    let dir = fixtures().join("tiny-gpt2-train");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let store = open(&dir);
    let cfg = gpt2::Config::from_source(&ConfigSource::find(&dir, &store).unwrap(), &store).unwrap();
    let (b, t) = (4, 16);
    let opts = lm::Options {
        config: dir.join("config.json"),
        data: vec![],
        out: std::env::temp_dir(),
        steps: 50,
        batch: b,
        seq_len: t,
        schedule: Schedule { kind: Kind::Cosine, peak: 1e-3, warmup: 5, total: 50, min_lr: 1e-4 },
        weight_decay: 0.1,
        betas: (0.9, 0.99),
        grad_clip: Some(1.0),
        grad_accum: 1,
        dropout: None,
        eval_every: 1000,
        eval_batches: 1,
        seed: 0,
        save_every: 0,
        resume: None,
        stop: None,
        tokenizer: wgpu_llm::train::vocab::Spec::Char,
    };
    let lg = lm::lm_graph(&lm::TrainConfig::Gpt2(cfg.clone()), b, t, Some((&opts, 0.0)), wgpu_llm::train::Accum::Off)
        .unwrap();
    let mut plan = Plan::compile(gpu(), &lg.graph, &[lg.loss]).unwrap();
    for node in &lg.graph.nodes {
        if let Op::Param { name } = &node.op {
            plan.set(name, &gpt2::load_param(&cfg, &store, name, &node.shape).unwrap()).unwrap();
        }
    }
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let pos = HostTensor::u32(&[b, t], pos).unwrap();
    let want = exp["losses"].as_array().unwrap();
    for (s, batch) in exp["batches"].as_array().unwrap().iter().enumerate() {
        let windows: Vec<Vec<u32>> = batch
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
            .collect();
        let ids: Vec<u32> = windows.iter().flat_map(|w| w[..t].to_vec()).collect();
        let tgt: Vec<i32> = windows.iter().flat_map(|w| w[1..].iter().map(|&x| x as i32).collect::<Vec<_>>()).collect();
        let (ids, tgt) = (HostTensor::u32(&[b, t], ids).unwrap(), HostTensor::i32(&[b * t], tgt).unwrap());
        let step = s + 1;
        let lr = opts.schedule.at(step);
        let got = plan
            .run(&[("ids", &ids), ("pos_ids", &pos), ("targets", &tgt)], &[("lr", lr.to_bits()), ("step", step as u32)])
            .unwrap()[0]
            .to_f32()[0] as f64;
        let w = want[s].as_f64().unwrap();
        assert!((got - w).abs() < 1e-3, "step {step}: loss {got} vs PyTorch {w}");
    }
}

/// `train` from the CLI: a character GPT-2 on a small text, the losses fall, OUT holds a GPT-2 folder (with
/// tokenizer.json, train_log.jsonl, loss.svg) that `generate` loads; a config with an unknown field, a zero
/// size, or an unbuilt tokenizer is a clear error before any GPU work.
#[test]
fn train_char_gpt_from_the_cli() {
    let tmp = std::env::temp_dir().join(format!("wgpu-llm-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let text: String = (0..60).map(|i| format!("the cat sat on the mat {i}. the dog sat on the log.\n")).collect();
    let data = tmp.join("corpus.txt");
    std::fs::write(&data, text).unwrap();
    let cfg = tmp.join("config.json");
    std::fs::write(&cfg, r#"{"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 32}"#)
        .unwrap();
    let out = tmp.join("out");
    let (c, d, o) = (cfg.display().to_string(), data.display().to_string(), out.display().to_string());
    let args = [
        "train",
        "--config",
        &c,
        "--data",
        &d,
        "-o",
        &o,
        "--steps",
        "40",
        "--batch-size",
        "4",
        "--seq-len",
        "16",
        "--eval-every",
        "20",
        "--eval-batches",
        "2",
        "--lr",
        "3e-3",
        "--json",
    ];
    let points = json_lines(&cli(&args));
    assert_eq!(points.len(), 2);
    assert!(points[1]["val_loss"].as_f64().unwrap() < points[0]["val_loss"].as_f64().unwrap(), "{points:?}");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl", "loss.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let svg = std::fs::read_to_string(out.join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("validation"));
    let g = cli(&["generate", "-m", &o, "-p", "the cat", "-n", "8", "--json"]);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let v: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
    assert!(v["text"].is_string(), "{v}");

    // --grad-accum: 2 batches of 2 windows per step follow the same losses as batches of 4 (the same windows,
    // drawn in the same order; every window learns as many tokens), with clipping on. (The mean training loss
    // between evaluations follows the weights step by step; the validation loss is not compared: it
    // averages --eval-batches batches of --batch-size windows, so the two runs see different windows.)
    let run = |batch: &str, accum: &str, dir: &str| {
        let o = tmp.join(dir).display().to_string();
        let mut a = args.to_vec();
        a[6] = &o;
        a[10] = batch;
        a.extend(["--grad-accum", accum, "--grad-clip", "1.0"]);
        json_lines(&cli(&a))
    };
    let (whole, micro) = (run("4", "1", "whole"), run("2", "2", "micro"));
    for (w, m) in whole.iter().zip(&micro) {
        let (a, b) = (w["train_loss"].as_f64().unwrap(), m["train_loss"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4 * a, "train loss at step {}: {a} (batch 4) vs {b} (2 × 2)", w["step"]);
    }

    // --resume: 20 steps, then 20 more from the checkpoint, give the uninterrupted run's losses at step 40
    // (weights, AdamW's moments and step, the data position and the loss sum since the last evaluation all
    // come back).
    let resume = |dir: &str, steps: &str, from: Option<&str>| {
        let o = tmp.join(dir).display().to_string();
        let mut a = args.to_vec();
        a[6] = &o;
        a[8] = steps;
        a.extend(["--save-every", "10"]);
        if let Some(f) = from {
            a.extend(["--resume", f]);
        }
        json_lines(&cli(&a))
    };
    let straight = resume("straight", "40", None);
    let first = resume("first", "20", None);
    assert_eq!(first.len(), 1);
    let ck = tmp.join("first/checkpoint").display().to_string();
    let rest = resume("rest", "40", Some(&ck));
    assert_eq!(rest.len(), 1, "only the evaluations after the checkpoint: {rest:?}");
    for k in ["train_loss", "val_loss"] {
        let (a, b) = (straight[1][k].as_f64().unwrap(), rest[0][k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5 * a, "{k} at step 40: {a} uninterrupted vs {b} resumed");
    }
    assert_eq!(straight[0]["val_loss"], first[0]["val_loss"]);
    // The resumed run's log holds the whole run.
    let log = std::fs::read_to_string(tmp.join("rest/train_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    // Ctrl-C finishes the step, writes a checkpoint and exits.
    #[cfg(unix)]
    {
        use std::io::BufRead;
        let o = tmp.join("interrupted").display().to_string();
        let mut a = args.to_vec();
        a[6] = &o;
        a[8] = "100000";
        a[14] = "10"; // --eval-every
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-llm"))
            .args(a)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.next().is_some_and(|l| l.is_ok()), "no evaluation before the interrupt");
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("interrupted after step"), "{err}");
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.join("interrupted/checkpoint/trainer_state.json")).unwrap(),
        )
        .unwrap();
        let step = state["step"].as_u64().unwrap();
        assert!((10..100000).contains(&step), "{state}");
    }

    // A checkpoint of another model is refused before anything is written.
    std::fs::write(&cfg, r#"{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32}"#)
        .unwrap();
    let bad_out = tmp.join("bad-resume").display().to_string();
    let mut a = args.to_vec();
    a[6] = &bad_out;
    a.extend(["--resume", &ck]);
    let r = cli(&a);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("another model"), "{r:?}");
    assert!(!tmp.join("bad-resume").exists());

    for (config, want) in [
        (r#"{"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 32, "n_heads": 4}"#, "unknown field \"n_heads\""),
        (r#"{"n_embd": 32, "n_layer": 2, "n_head": 0, "n_positions": 32}"#, "n_head = 0"),
        (r#"{"model_type": "bert", "n_embd": 32}"#, "model_type \"bert\""),
        (r#"{"model_type": "llama", "n_embd": 32}"#, "unknown field \"n_embd\""),
        (r#"{"model_type": "llama", "hidden_size": 32, "num_attention_heads": 0}"#, "num_attention_heads = 0"),
    ] {
        std::fs::write(&cfg, config).unwrap();
        let bad = tmp.join("bad");
        let r = cli(&["train", "--config", &c, "--data", &d, "-o", &bad.display().to_string(), "--steps", "2"]);
        let e = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && e.contains(want), "{config}: {e}");
        assert!(!bad.exists());
    }
    let r = cli(&["train", "--config", &c, "--data", &d, "-o", &o, "--tokenizer", "bpe:100"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("--tokenizer bpe:100: a byte-level BPE needs at least 258"));

    // A Llama from a LlamaConfig: the loss falls, the folder is a LlamaForCausalLM that generate runs.
    std::fs::write(
        &cfg,
        r#"{"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32}"#,
    )
    .unwrap();
    let llama = tmp.join("llama").display().to_string();
    let mut a = args.to_vec();
    a[6] = &llama;
    let points = json_lines(&cli(&a));
    assert_eq!(points.len(), 2);
    assert!(points[1]["val_loss"].as_f64().unwrap() < points[0]["val_loss"].as_f64().unwrap(), "{points:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("llama/config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    let st = wgpu_llm::loader::open(tmp.join("llama/model.safetensors")).unwrap();
    assert!(st.contains("model.layers.1.mlp.down_proj.weight") && st.contains("lm_head.weight"));
    let g = cli(&["generate", "-m", &llama, "-p", "the cat", "-n", "4", "--json"]);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));

    // A byte-level BPE trained on the data: the folder's tokenizer.json is that BPE, config.json's vocabulary
    // its size, and generate decodes through it.
    std::fs::write(&cfg, r#"{"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 32}"#)
        .unwrap();
    let bpe = tmp.join("bpe").display().to_string();
    let r = train_briefly(&c, &d, &bpe, 6, &["--tokenizer", "bpe:300", "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let tj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("bpe/tokenizer.json")).unwrap()).unwrap();
    assert_eq!(tj["model"]["type"], "BPE");
    assert_eq!(tj["pre_tokenizer"]["type"], "ByteLevel");
    let merges = tj["model"]["merges"].as_array().unwrap().len();
    assert!(merges > 0, "the trainer learned no merges");
    let size = tj["model"]["vocab"].as_object().unwrap().len() + tj["added_tokens"].as_array().unwrap().len();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("bpe/config.json")).unwrap()).unwrap();
    assert!(config["vocab_size"].as_u64().unwrap() as usize >= size.min(300) - 1, "{config} vs {size}");
    let g = cli(&["generate", "-m", &bpe, "-p", "the cat", "-n", "4", "--json"]);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    // A model's own tokenizer.json, reused (the tiny ChatML character tokenizer of the LoRA fixtures).
    let fx = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama-lora");
    let reuse = tmp.join("reuse").display().to_string();
    let r = train_briefly(&c, &d, &reuse, 2, &["--tokenizer", fx.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let json = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(json(tmp.join("reuse/tokenizer.json")), json(fx.join("tokenizer.json")));
    std::fs::remove_dir_all(&tmp).ok();
}

/// The gradient of every parameter of the tiny Llama (grouped-query heads, rotary positions, SwiGLU) and
/// the tiny GPT-2 (fused c_attn, tied head) on one batch with ignored targets equals PyTorch's within 1e-4
/// relative, and the loss within 1e-5 (fixtures: `scripts/make_train_fixtures.py`, decoder-grads/).
#[test]
fn decoder_gradients_equal_pytorchs() {
    use wgpu_llm::autodiff::backward;
    use wgpu_llm::graph::GraphBuilder;
    use wgpu_llm::models::{gpt2, llama, Precision};
    use wgpu_llm::tensor::DType;
    for name in ["llama", "gpt2"] {
        let fx = fixtures().join("decoder-grads").join(name);
        let exp: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(exp["model"].as_str().unwrap());
        let store = open(&dir);
        let src = ConfigSource::find(&dir, &store).unwrap();
        let ids: Vec<Vec<u32>> = serde_json::from_value(exp["ids"].clone()).unwrap();
        let targets: Vec<i32> = serde_json::from_value(exp["targets"].clone()).unwrap();
        let (b, t) = (ids.len(), ids[0].len());
        let mut g = GraphBuilder::new();
        let (llama_cfg, gpt2_cfg) = if name == "llama" {
            (Some(llama::Config::from_source(&src, &store).unwrap()), None)
        } else {
            (None, Some(gpt2::Config::from_source(&src, &store).unwrap()))
        };
        let logits = match (&llama_cfg, &gpt2_cfg) {
            (Some(c), _) => llama::build_train(&mut g, c, b, t, &Precision::from(DType::F32), None, None),
            (_, Some(c)) => gpt2::build_train(&mut g, c, b, t, None),
            _ => unreachable!(),
        }
        .unwrap();
        let tgt = g.input("targets", &[b * t], DType::I32).unwrap();
        let loss = g.cross_entropy(logits, tgt).unwrap();
        let params = g.graph.params();
        let grads = backward(&mut g, loss, &params).unwrap();
        let graph = g.finish();
        let mut outs = vec![loss];
        outs.extend(&grads);
        let mut plan = Plan::compile(gpu(), &graph, &outs).unwrap();
        let load = |n: &str, s: &[usize]| match (&llama_cfg, &gpt2_cfg) {
            (Some(c), _) => llama::load_param(c, &store, n, s),
            (_, Some(c)) => gpt2::load_param(c, &store, n, s),
            _ => unreachable!(),
        };
        wgpu_llm::models::upload_params(&graph, &store, &load, &mut |n, v| plan.set(n, v)).unwrap();
        let flat: Vec<u32> = ids.concat();
        let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let (ids_t, pos_t) = (HostTensor::u32(&[b, t], flat).unwrap(), HostTensor::u32(&[b, t], pos).unwrap());
        let tgt_t = HostTensor::i32(&[b * t], targets).unwrap();
        let mut feeds = vec![("ids", &ids_t), ("targets", &tgt_t)];
        if name == "gpt2" {
            feeds.push(("pos_ids", &pos_t));
        }
        let got = plan.run(&feeds, &[]).unwrap();
        let want_loss = exp["loss"].as_f64().unwrap();
        let l = got[0].to_f32()[0] as f64;
        assert!((l - want_loss).abs() < 1e-5 * want_loss, "{name}: loss {l} vs PyTorch {want_loss}");
        // Our gradients by graph name; GPT-2's q, k, v fused back into c_attn's layout.
        let by_name: std::collections::HashMap<String, Vec<f32>> = params
            .iter()
            .enumerate()
            .map(|(i, &p)| (wgpu_llm::graph::leaf_name(&graph.node(p).op).unwrap().to_string(), got[i + 1].to_f32()))
            .collect();
        let ours: Vec<(String, Vec<f32>)> = match &gpt2_cfg {
            Some(c) => gpt2::checkpoint_tensors(c, &graph, &|n| Ok(by_name[n].clone()))
                .unwrap()
                .into_iter()
                .map(|(n, _, v)| (n, v))
                .collect(),
            None => by_name.into_iter().collect(),
        };
        let torch = open(&fx.join("grads.safetensors"));
        assert_eq!(ours.len(), torch.names().count(), "{name}: parameters with a gradient");
        for (n, v) in &ours {
            let e = rel_err(v, &torch.to_f32(n).unwrap());
            assert!(e < 1e-4, "{name} {n}: gradient relative error {e:.2e} against PyTorch");
        }
    }
}

/// `finetune --from-scratch`: the textbook Transformer (post-LN, ReLU, sinusoidal positions) with a mean
/// head, its vocabulary a byte-level BPE trained on the training texts, learns the tiny sentiment set (the
/// training loss falls); the folder holds PyTorch's names (fused in_proj), the config and the tokenizer,
/// and evaluate and classify load it (evaluate reproduces the saved epoch's validation loss). A config with
/// an unknown field and the pooler head are errors before any GPU work, with nothing written.
#[test]
fn finetune_from_scratch_textbook_classifier() {
    let tmp = std::env::temp_dir().join(format!("wgpu-llm-textbook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let config = tmp.join("textbook.json");
    std::fs::write(&config, r#"{"d_model": 32, "nhead": 4, "dim_feedforward": 64, "num_layers": 2, "max_len": 32}"#)
        .unwrap();
    let (c, out) = (config.display().to_string(), tmp.join("out"));
    let o = out.display().to_string();
    let (train, val) = (data("train.tsv"), data("val.tsv"));
    let base = ["finetune", "--from-scratch", &c, "--data", &train, "--val", &val, "--batch-size", "8"];
    let run = |extra: &[&str]| cli(&[&base[..], extra].concat());
    let epochs = json_lines(&run(&["--epochs", "6", "--lr", "3e-3", "--tokenizer", "bpe:300", "-o", &o, "--json"]));
    let loss = |e: &serde_json::Value| e["train_loss"].as_f64().unwrap();
    assert!(loss(&epochs[5]) < 0.8 * loss(&epochs[0]), "the training loss did not fall: {epochs:?}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "textbook_transformer");
    assert_eq!((cfg["wgpu_llm_head"].as_str(), cfg["vocab_size"].as_u64()), (Some("mean"), Some(300)));
    assert_eq!(cfg["id2label"]["0"], "negative");
    let st = open(&out.join("model.safetensors"));
    assert!(st.contains("encoder.layers.1.self_attn.in_proj_weight") && st.contains("classifier.weight"));
    let best = epochs.iter().rfind(|e| e["saved"].as_bool().unwrap()).unwrap().clone();
    let ev = &json_lines(&cli(&["evaluate", "-m", &o, "--data", &val, "--json"]))[0];
    assert!((ev["loss"].as_f64().unwrap() - best["val_loss"].as_f64().unwrap()).abs() < 1e-5, "{ev} vs {best}");
    let cl = json_lines(&cli(&["classify", "-m", &o, "--json", "a good day"]));
    assert!(["negative", "neutral", "positive"].contains(&cl[0]["label"].as_str().unwrap()), "{cl:?}");

    let bad_out = tmp.join("bad").display().to_string();
    std::fs::write(&config, r#"{"d_model": 32, "nhead": 4, "dim_feedforward": 64, "num_layers": 2, "heads": 3}"#)
        .unwrap();
    let e = run(&["-o", &bad_out]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && msg.contains("textbook.json") && msg.contains("\"heads\""), "{msg}");
    let e = run(&["--head", "pooler", "-o", &bad_out]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && msg.contains("no pooler"), "{msg}");
    assert!(!tmp.join("bad").exists());
    let _ = std::fs::remove_dir_all(&tmp);
}
