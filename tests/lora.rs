//! LoRA finetuning of decoders against PEFT + PyTorch (fixtures from scripts/make_lora_fixtures.py on
//! tests/fixtures/tiny-llama): one AdamW step from PEFT's adapter gives PEFT's loss and adapter; PEFT's
//! adapter file loads (merged on load) and gives the merged model's logits; ours writes PEFT's names; the
//! assistant-only label mask; bad data, targets and adapters are clear errors.

#[path = "kernels/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::gpu;
use wgpu_llm::session::Session;
use wgpu_llm::tensor::DType;
use wgpu_llm::tokenizer::Tokenizer;
use wgpu_llm::train::lora::{Adapter, LoraConfig};
use wgpu_llm::train::sft::{LmTrainer, Options};
use wgpu_llm::train::sft_data::{self, Sequence, IGNORE};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// max |got − want| over max |want|.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max(w.abs() as f64));
    let worst = got.iter().zip(want).fold(0f64, |m, (&g, &w)| m.max((g as f64 - w as f64).abs()));
    worst / scale.max(1e-30)
}

fn lora_qv(dropout: f32) -> LoraConfig {
    LoraConfig { r: 4, alpha: 8.0, dropout, targets: vec!["q_proj".into(), "v_proj".into()], rslora: false }
}

fn options(out: PathBuf) -> Options {
    Options {
        model: fixtures().join("tiny-llama"),
        lora: Some(lora_qv(0.0)),
        base: Default::default(),
        epochs: 1,
        lr: 1e-2,
        batch: 2,
        max_length: 16,
        warmup_ratio: 0.0,
        weight_decay: 0.01,
        betas: (0.9, 0.999),
        grad_clip: None,
        grad_accum: 1,
        seed: 3,
        out,
    }
}

fn batch(exp: &serde_json::Value) -> Vec<Sequence> {
    let rows = |k: &str| -> Vec<Vec<i64>> { serde_json::from_value(exp[k].clone()).unwrap() };
    rows("ids")
        .iter()
        .zip(rows("labels"))
        .map(|(ids, labels)| Sequence {
            ids: ids.iter().map(|&i| i as u32).collect(),
            labels: labels.iter().map(|&l| l as i32).collect(),
        })
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgpu-llm-lora-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn one_step_from_pefts_adapter_gives_pefts_loss_and_adapter() {
    let fx = fixtures().join("tiny-llama-lora");
    let exp = json(&fx.join("expected.json"));
    let init = Adapter::load(&fx.join("peft_init")).unwrap();
    assert_eq!(init.config, lora_qv(0.0));
    let gpu = gpu();
    let out = temp("step");
    let opts = options(out.clone());
    let mut tr = LmTrainer::open(gpu, &opts, Some(init)).unwrap();
    let seqs = batch(&exp);
    let refs: Vec<&Sequence> = seqs.iter().collect();
    // The loss before the step, with dropout off, is PEFT's forward.
    let before = tr.eval_batch(&refs, 16).unwrap();
    let want = exp["loss_init"].as_f64().unwrap();
    assert!((before as f64 - want).abs() < 1e-5 * want, "loss {before} vs PEFT {want}");
    let loss = tr.train_step(&refs, 16, 1e-2, 1).unwrap();
    assert!((loss as f64 - want).abs() < 1e-5 * want, "step loss {loss} vs PEFT {want}");
    // Only the adapter trains: 2 layers × (q, v) × (A, B).
    assert_eq!(tr.trainable.len(), 8, "{:?}", tr.trainable);
    assert!(tr.trainable.iter().all(|(n, _)| n.contains(".lora_")));
    let after = wgpu_llm::loader::open(fx.join("peft_after.safetensors")).unwrap();
    for (name, _) in &tr.trainable {
        let peft = format!("base_model.model.{name}");
        let e = rel_err(&tr.read(name).unwrap().to_f32(), &after.to_f32(&peft).unwrap());
        assert!(e < 1e-5, "{name}: relative error {e:.2e} against PEFT's step");
    }
    let fp = tr.footprint();
    assert_eq!(fp.trainable_params, 2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4));
    assert!(fp.total_params > fp.trainable_params);
    // The loss after the step, as PEFT's.
    let want_after = exp["loss_after"].as_f64().unwrap();
    let got_after = tr.eval_batch(&refs, 16).unwrap() as f64;
    assert!((got_after - want_after).abs() < 1e-4 * want_after, "loss after {got_after} vs PEFT {want_after}");
    // Written with PEFT's names and config; read back identically.
    tr.save(&out).unwrap();
    let st = wgpu_llm::loader::open(out.join("adapter_model.safetensors")).unwrap();
    let names: Vec<&str> = st.names().collect();
    assert!(names.contains(&"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), "{names:?}");
    let cfg = json(&out.join("adapter_config.json"));
    assert_eq!(
        (cfg["peft_type"].as_str(), cfg["r"].as_u64(), cfg["lora_alpha"].as_f64()),
        (Some("LORA"), Some(4), Some(8.0))
    );
    let back = Adapter::load(&out).unwrap();
    for (layer, (a, b)) in &back.layers {
        assert_eq!(a.to_f32(), tr.read(&format!("{layer}.lora_A.weight")).unwrap().to_f32());
        assert_eq!(b.to_f32(), tr.read(&format!("{layer}.lora_B.weight")).unwrap().to_f32());
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// Gradient accumulation: micro-batches of one sequence, 2 and 3 to a step (first, added, last), give the
/// adapter of one step over all of them as one batch (their sequences learn as many tokens each, so the
/// mean of the micro-batches' mean losses is the batch's mean loss), with weight decay and clipping.
#[test]
fn accumulated_micro_batches_equal_one_batch() {
    let exp = json(&fixtures().join("tiny-llama-lora").join("expected.json"));
    let s0 = batch(&exp).remove(0);
    // Two more sequences with other ids and the same learned positions.
    let other = |mul: u32, add: u32| {
        let ids: Vec<u32> = s0.ids.iter().map(|&i| (i * mul + add) % 64).collect();
        let labels = s0.labels.iter().zip(&ids).map(|(&l, &i)| if l == -100 { -100 } else { i as i32 }).collect();
        Sequence { ids, labels }
    };
    let seqs = [s0.clone(), other(7, 3), other(5, 11)];
    for n in [2usize, 3] {
        let opts = |batch, grad_accum| Options { batch, grad_accum, grad_clip: Some(0.5), ..options(temp("accum")) };
        let mut whole = LmTrainer::open(gpu(), &opts(n, 1), None).unwrap();
        let all: Vec<&Sequence> = seqs[..n].iter().collect();
        let want = whole.train_step(&all, 16, 1e-2, 1).unwrap();
        let mut micro = LmTrainer::open(gpu(), &opts(1, n), None).unwrap();
        let mut losses = 0.0;
        for (i, s) in seqs[..n].iter().enumerate() {
            losses += micro.micro_step(&[s], 16, 1e-2, 1, wgpu_llm::train::Accum::of(i, n)).unwrap();
        }
        let got = losses / n as f32;
        assert!((got - want).abs() < 1e-5 * want.abs(), "{n} micro-batches: loss {got} vs {want}");
        for (name, _) in &whole.trainable {
            let (w, m) = (whole.read(name).unwrap().to_f32(), micro.read(name).unwrap().to_f32());
            let e = rel_err(&m, &w);
            assert!(e < 1e-5, "{n} micro-batches, {name}: relative error {e:.2e}");
        }
        // And the step changed the adapter (B starts at zero).
        let b = micro.read("model.layers.0.self_attn.q_proj.lora_B.weight").unwrap().to_f32();
        assert!(b.iter().any(|&x| x != 0.0));
    }
}

#[test]
fn a_fresh_adapter_starts_at_the_base_model() {
    // B = 0: step 0 is the base model exactly; a dropout on the LoRA input changes nothing then either.
    let fx = fixtures().join("tiny-llama-lora");
    let exp = json(&fx.join("expected.json"));
    let gpu = gpu();
    let seqs = batch(&exp);
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let mut full = options(temp("fresh"));
    full.lora = None;
    let mut base = LmTrainer::open(gpu, &full, None).unwrap();
    let want = base.eval_batch(&refs, 16).unwrap();
    let mut o = options(temp("fresh"));
    o.lora = Some(lora_qv(0.1));
    let mut tr = LmTrainer::open(gpu, &o, None).unwrap();
    assert_eq!(tr.eval_batch(&refs, 16).unwrap(), want);
    let first = tr.train_step(&refs, 16, 1e-2, 1).unwrap();
    assert!((first - want).abs() < 1e-6 * want, "{first} vs {want}");
    // A is Kaiming-uniform within ±1/√in, B is zero.
    let a = tr.read("model.layers.0.self_attn.q_proj.lora_A.weight").unwrap().to_f32();
    assert!(a.iter().all(|x| x.abs() <= 1.0 / (32f32).sqrt()) && a.iter().any(|&x| x != 0.0));
    // Full finetuning trains every weight (and not the adapter): 2 layers' 9 tensors + embed, norm, head.
    let _ = base.train_step(&refs, 16, 1e-3, 1).unwrap();
    assert_eq!(base.trainable.len(), 2 * 9 + 3);
}

#[test]
fn pefts_adapter_file_gives_the_merged_models_logits() {
    let fx = fixtures().join("tiny-llama-lora");
    let exp = json(&fx.join("expected.json"));
    let merged: Vec<f32> = serde_json::from_value(json(&fx.join("merged_logits.json"))).unwrap();
    let unmerged: Vec<f32> = serde_json::from_value(exp["logits_init"].clone()).unwrap();
    let adapter = Adapter::load(&fx.join("peft_init")).unwrap();
    let gpu = gpu();
    let mut s = Session::load_adapted(gpu, &fixtures().join("tiny-llama"), DType::F32, 16, 1, Some(&adapter)).unwrap();
    let ids: Vec<u32> = batch(&exp)[0].ids.clone();
    let v = 64;
    let mut got = vec![];
    for &id in &ids {
        got.extend(s.forward(&[id]).unwrap());
    }
    let e = rel_err(&got, &merged[..ids.len() * v]);
    assert!(e < 1e-4, "merged logits: relative error {e:.2e}");
    let e = rel_err(&got, &unmerged[..ids.len() * v]);
    assert!(e < 1e-4, "PEFT's unmerged logits: relative error {e:.2e}");
    // And the base model differs (the adapter did something).
    let mut base = Session::load(gpu, &fixtures().join("tiny-llama"), DType::F32, 16).unwrap();
    let b0 = base.forward(&ids[..1]).unwrap();
    assert!(rel_err(&b0, &merged[..v]) > 1e-3);
}

fn tiny_tokenizer() -> Tokenizer {
    Tokenizer::from_hf_dir(fixtures().join("tiny-llama-lora")).unwrap()
}

#[test]
fn labels_cover_exactly_the_assistant_replies() {
    let tok = tiny_tokenizer();
    let conv = serde_json::json!({"messages": [
        {"role": "system", "content": "be brief."},
        {"role": "user", "content": "who are you?"},
        {"role": "assistant", "content": "i am quill."},
        {"role": "user", "content": "who made you?"},
        {"role": "assistant", "content": "larkspur labs."}
    ]});
    let r = sft_data::render(&tok, &conv, false).unwrap();
    // The template's own spans: each reply, with its end-of-turn markup, after "<|im_start|>assistant\n".
    let mut spans = vec![];
    let mut from = 0;
    for reply in ["i am quill.", "larkspur labs."] {
        let turn = format!("<|im_start|>assistant\n{reply}<|im_end|>\n");
        let at = r.text[from..].find(&turn).unwrap() + from;
        let start = at + "<|im_start|>assistant\n".len();
        spans.push(start..at + turn.len());
        from = at + turn.len();
    }
    assert_eq!(r.spans, spans);
    let s = sft_data::encode(&tok, &r, 1000).unwrap();
    let enc = tok.hf().encode(r.text.as_str(), false).unwrap();
    assert_eq!(s.ids, enc.get_ids());
    let mut learned = String::new();
    for (i, &(a, b)) in enc.get_offsets().iter().enumerate() {
        let inside = spans.iter().any(|sp| sp.contains(&a));
        assert_eq!(s.labels[i] != IGNORE, inside, "token {i} {:?}", &r.text[a..b]);
        if inside {
            assert_eq!(s.labels[i], s.ids[i] as i32);
            learned += &r.text[a..b];
        }
    }
    assert_eq!(learned, "i am quill.<|im_end|>\nlarkspur labs.<|im_end|>\n");
    // --train-on-prompt learns everything; a prompt/completion pair only the completion (and eos).
    let all = sft_data::encode(&tok, &sft_data::render(&tok, &conv, true).unwrap(), 1000).unwrap();
    assert_eq!(all.learned(), all.ids.len());
    let pc = serde_json::json!({"prompt": "q: hi\na:", "completion": " hello"});
    let s = sft_data::encode(&tok, &sft_data::render(&tok, &pc, false).unwrap(), 1000).unwrap();
    let text: String =
        s.ids.iter().zip(&s.labels).filter(|(_, &l)| l != IGNORE).map(|(&i, _)| tok.decode(&[i], false)).collect();
    assert_eq!(text, " hello<|im_end|>");
    // Targets are the labels shifted by one.
    assert_eq!(s.targets()[..s.ids.len() - 1], s.labels[1..]);
}

#[test]
fn bad_data_targets_and_adapters_are_clear_errors() {
    let tok = tiny_tokenizer();
    let dir = temp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let data = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        sft_data::read_jsonl(&p, &tok, 64, false).map(|_| ()).unwrap_err().to_string()
    };
    let e = data("a.jsonl", "{\"text\": \"hi\"}\n[1, 2]\n");
    assert!(e.contains("a.jsonl:2") && e.contains("not a JSON object"), "{e}");
    let e = data("b.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
    assert!(e.contains("b.jsonl:1") && e.contains("no assistant turn"), "{e}");
    let e = data("c.jsonl", "{\"prompt\": \"hi\"}\n");
    assert!(e.contains("c.jsonl:1") && e.contains("completion"), "{e}");
    let gpu = gpu();
    let mut o = options(dir.join("out"));
    o.lora = Some(LoraConfig { targets: vec!["qkv_proj".into()], ..lora_qv(0.0) });
    let e = LmTrainer::open(gpu, &o, None).err().unwrap().to_string();
    assert!(e.contains("qkv_proj") && e.contains("matches no layer"), "{e}");
    // An adapter for another model: a layer it lacks, or other shapes.
    let mut a = Adapter::load(&fixtures().join("tiny-llama-lora/peft_init")).unwrap();
    let (l, ab) = a.layers.pop_first().unwrap();
    a.layers.insert(l.replace("layers.0", "layers.7"), ab.clone());
    let e = Session::load_adapted(gpu, &fixtures().join("tiny-llama"), DType::F32, 16, 1, Some(&a)).err().unwrap();
    assert!(e.to_string().contains("layers.7") && e.to_string().contains("another model"), "{e}");
    let mut a = Adapter::load(&fixtures().join("tiny-llama-lora/peft_init")).unwrap();
    let first = a.layers.keys().next().unwrap().clone();
    let wide = wgpu_llm::tensor::HostTensor::f32(&[4, 48], vec![0.0; 4 * 48]).unwrap();
    a.layers.get_mut(&first).unwrap().0 = wide;
    let e = Session::load_adapted(gpu, &fixtures().join("tiny-llama"), DType::F32, 16, 1, Some(&a)).err().unwrap();
    assert!(e.to_string().contains(&first) && e.to_string().contains("another model"), "{e}");
    // A PEFT config this engine does not compute.
    let cfgdir = dir.join("dora");
    std::fs::create_dir_all(&cfgdir).unwrap();
    std::fs::copy(
        fixtures().join("tiny-llama-lora/peft_init/adapter_model.safetensors"),
        cfgdir.join("adapter_model.safetensors"),
    )
    .unwrap();
    let mut cfg = json(&fixtures().join("tiny-llama-lora/peft_init/adapter_config.json"));
    cfg["use_dora"] = true.into();
    std::fs::write(cfgdir.join("adapter_config.json"), cfg.to_string()).unwrap();
    let e = Adapter::load(&cfgdir).unwrap_err().to_string();
    assert!(e.contains("use_dora"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-llm")).args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let o = cli(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn cli_finetunes_an_adapter_that_generate_perplexity_and_merge_take() {
    let dir = temp("cli");
    let model = dir.join("tiny");
    std::fs::create_dir_all(&model).unwrap();
    for (from, f) in [("tiny-llama", "config.json"), ("tiny-llama", "model.safetensors")]
        .into_iter()
        .chain(["tokenizer.json", "tokenizer_config.json"].map(|f| ("tiny-llama-lora", f)))
    {
        std::fs::copy(fixtures().join(from).join(f), model.join(f)).unwrap();
    }
    let data = fixtures().join("tiny-llama-lora/chat.jsonl");
    let (m, d, ad) = (model.to_str().unwrap(), data.to_str().unwrap(), dir.join("adapter"));
    let ad = ad.to_str().unwrap();
    let base = ["finetune", "--task", "lm", "-m", m, "--data", d, "--val", d, "--lr", "1e-2", "--lora-r", "4"];
    let out = ok(&[&base[..], &["--lora-alpha", "8", "--epochs", "3", "--json", "-o", ad]].concat());
    let epochs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(epochs.len(), 3);
    let val = |i: usize| epochs[i]["val_loss"].as_f64().unwrap();
    assert!(val(2) < val(0) - 0.2, "the validation loss falls: {out}");
    let cfg = json(&dir.join("adapter/adapter_config.json"));
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
    ok(&["generate", "-m", m, "--lora", ad, "-p", "who are you?", "-n", "4"]);
    // Merged on load (--lora) and merged into a folder give the same perplexity.
    let text = dir.join("q.txt");
    std::fs::write(&text, "who are you? i am quill, made by larkspur labs.").unwrap();
    let ppl = |args: &[&str]| -> f64 {
        let t = text.to_str().unwrap();
        let o = ok(&[args, &["--dtype", "f32", "--ctx", "64", "--json", "--file", t]].concat());
        serde_json::from_str::<serde_json::Value>(&o).unwrap()["ppl"].as_f64().unwrap()
    };
    let merged = dir.join("merged");
    ok(&["merge", "-m", m, "--lora", ad, "-o", merged.to_str().unwrap()]);
    let (with_lora, folded, plain) = (
        ppl(&["perplexity", "-m", m, "--lora", ad]),
        ppl(&["perplexity", "-m", merged.to_str().unwrap()]),
        ppl(&["perplexity", "-m", m]),
    );
    assert!((with_lora - folded).abs() < 1e-4 * folded, "{with_lora} vs {folded}");
    assert!(with_lora < plain, "the adapter learned the facts: {with_lora} vs base {plain}");
    // Bad targets are an error before any GPU work.
    let o = cli(&[&base[..], &["--lora-targets", "wq", "-o", ad]].concat());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("\"wq\"") && e.contains("matches no layer"), "{e}");
    // An int8 base from the CLI writes an adapter that loads; --full trains f32 weights, so no base dtype.
    let ad8 = dir.join("adapter-int8");
    let out =
        ok(&[&base[..], &["--base-dtype", "int8", "--epochs", "1", "--json", "-o", ad8.to_str().unwrap()]].concat());
    assert!(out.contains("train_loss"), "{out}");
    Adapter::load(&ad8).unwrap();
    let o = cli(&[&base[..], &["--base-dtype", "f16", "--full", "-o", ad]].concat());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--base-dtype") && e.contains("--full"), "{e}");
    let o = cli(&[&base[..], &["--base-dtype", "q4", "-o", ad]].concat());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("one of f32, f16, int8"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A LoRA step over a frozen f16 or int8 base equals the f32 step over the base rounded the same way: a
/// copy of the model whose linear weights are stored f32 but hold the f16 (int8: block-32 dequantized)
/// values. So the widening (`Op::Dequantize`), the weight-only int8 product and its backward are exact up
/// to f32 rounding; and the base's weights are stored in the smaller dtype on the GPU.
#[test]
fn a_frozen_f16_or_int8_base_trains_as_its_rounded_f32_copy() {
    use wgpu_llm::train::sft::Base;
    let fx = fixtures().join("tiny-llama-lora");
    let exp = json(&fx.join("expected.json"));
    let seqs = batch(&exp);
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let adapter = || Some(Adapter::load(&fx.join("peft_init")).unwrap());
    let f32_bytes = {
        let mut tr = LmTrainer::open(gpu(), &options(temp("base-f32")), adapter()).unwrap();
        tr.train_step(&refs, 16, 1e-2, 1).unwrap();
        tr.footprint().param_bytes
    };
    for base in [Base::F16, Base::Int8] {
        let prec = base.precision();
        let mut mt = wgpu_llm::tools::export::model_tensors(&fixtures().join("tiny-llama")).unwrap();
        let mut rounded = 0;
        for t in &mut mt.tensors {
            let Some(stem) = t.name.strip_suffix(".weight") else { continue };
            let (rows, cols) = (t.shape[0], *t.shape.last().unwrap());
            if !mt.linear.iter().any(|l| l == stem) || (base == Base::Int8 && prec.int8_for(stem, cols).is_none()) {
                continue;
            }
            let w = t.f32_mut().unwrap();
            *w = match base {
                Base::F16 => w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
                _ => wgpu_llm::quant::QTensor::quantize(w, rows, cols).unwrap().dequantize(),
            };
            rounded += 1;
        }
        // f16: all 14 projections and the head; int8: the 12 with 32 inputs (down_proj has 48; the head is kept).
        assert_eq!(rounded, if base == Base::F16 { 15 } else { 12 }, "{base:?}");
        let copy = temp(&format!("rounded-{}", base.name()));
        let src = fixtures().join("tiny-llama");
        wgpu_llm::tools::export::write_model_folder(&copy, &src, &mt.config, &mt.tensors, true).unwrap();
        let mut want =
            LmTrainer::open(gpu(), &Options { model: copy.clone(), ..options(temp("want")) }, adapter()).unwrap();
        let mut got = LmTrainer::open(gpu(), &Options { base, ..options(temp("got")) }, adapter()).unwrap();
        let (l0, w0) = (got.eval_batch(&refs, 16).unwrap(), want.eval_batch(&refs, 16).unwrap());
        assert!((l0 - w0).abs() < 1e-5 * w0, "{base:?}: loss {l0} vs the rounded f32 model's {w0}");
        got.train_step(&refs, 16, 1e-2, 1).unwrap();
        want.train_step(&refs, 16, 1e-2, 1).unwrap();
        for (name, _) in &want.trainable {
            let e = rel_err(&got.read(name).unwrap().to_f32(), &want.read(name).unwrap().to_f32());
            assert!(e < 1e-5, "{base:?} {name}: relative error {e:.2e}");
        }
        let fp = got.footprint();
        assert_eq!(fp.total_params, want.footprint().total_params, "{base:?}: parameters counted");
        // The head [64, 32] and per layer q, o [32, 32], k, v [16, 32], gate, up [48, 32], down [32, 48]: f16
        // saves two bytes of each of their 17,408 values; int8 stores the 12,288 of the 32-input ones in a
        // byte each plus an f32 scale per 32 (3 bytes − 1/8 saved a value).
        let saved = match base {
            Base::F16 => 2 * (2048 + 2 * 7680),
            _ => 3 * 12288 - 12288 / 8,
        };
        assert_eq!(f32_bytes - fp.param_bytes, saved as u64, "{base:?}: parameter bytes");
        let _ = std::fs::remove_dir_all(&copy);
    }
}
