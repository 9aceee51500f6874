//! Export: a model written back as a Hugging Face folder reloads to the same outputs; GGUF sources get a
//! synthesized config.json and a metadata-only tokenizer.gguf; an existing output is refused and a failed
//! write leaves nothing behind.

use std::path::Path;

use wgpu_llm::loader::{self, GgufTensor, MetaValue, SourceDType};
use wgpu_llm::models::llama::gguf_name;
use wgpu_llm::session::encoder::Encoder;
use wgpu_llm::session::Session;
use wgpu_llm::tensor::DType;
use wgpu_llm::tokenizer::Tokenizer;
use wgpu_llm::tools::export::{model_tensors, write_model_folder, ExportTensor};

use super::common::gpu;
use super::{fixture, TempDir};

const IDS: [u32; 7] = [1, 5, 9, 20, 33, 7, 63];

/// The logits of every position, token by token from an empty cache.
fn logits(dir: &Path) -> Vec<Vec<f32>> {
    let mut s = Session::load(gpu(), dir, DType::F32, 16).unwrap();
    IDS.iter().map(|&id| s.forward(&[id]).unwrap()).collect()
}

fn export(src: &Path, out: &Path) {
    let m = model_tensors(src).unwrap();
    write_model_folder(out, src, &m.config, &m.tensors, false).unwrap();
}

#[test]
fn exported_decoders_give_the_same_logits() {
    let tmp = TempDir::new("decoders");
    for name in ["tiny-llama", "tiny-qwen2", "tiny-gpt2"] {
        let out = tmp.path(name);
        export(&fixture(name), &out);
        assert_eq!(logits(&out), logits(&fixture(name)), "{name}");
        if name == "tiny-gpt2" {
            // The split q/k/v go back into the checkpoint's fused c_attn.
            let store = loader::open(&out).unwrap();
            assert!(store.contains("h.0.attn.c_attn.weight") || store.contains("transformer.h.0.attn.c_attn.weight"));
            assert!(!store.names().any(|n| n.contains(".attn.q.")));
        }
    }
    assert_eq!(tmp.names(), ["tiny-gpt2", "tiny-llama", "tiny-qwen2"], "no temporaries left");
}

#[test]
fn exported_bert_keeps_pooler_and_classifier() {
    let tmp = TempDir::new("bert");
    let out = tmp.path("bert");
    export(&fixture("tiny-bert-cls"), &out);
    let batch = vec![vec![2u32, 7, 9, 3], vec![2, 40, 3]];
    let mut a = Encoder::load(gpu(), &fixture("tiny-bert-cls"), DType::F32).unwrap();
    let mut b = Encoder::load(gpu(), &out, DType::F32).unwrap();
    assert_eq!(a.classify(&batch, None).unwrap(), b.classify(&batch, None).unwrap());
    assert_eq!(b.cfg.labels, a.cfg.labels);
}

/// llama.cpp's q/k row order: permuted row h·hd + 2j + i = Hugging Face row h·hd + i·hd/2 + j.
fn permute_qk(w: &[f32], n_head: usize, rows: usize) -> Vec<f32> {
    let (cols, hd) = (w.len() / rows, rows / n_head);
    let mut out = Vec::with_capacity(w.len());
    for h in 0..n_head {
        for j in 0..hd / 2 {
            for i in 0..2 {
                let r = h * hd + i * hd / 2 + j;
                out.extend_from_slice(&w[r * cols..(r + 1) * cols]);
            }
        }
    }
    out
}

/// GPT-2's byte → printable char map, for a byte-level vocabulary.
fn byte_chars() -> Vec<String> {
    let mut n = 0;
    (0u32..256)
        .map(|b| {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let c = if printable {
                b
            } else {
                n += 1;
                255 + n
            };
            char::from_u32(c).unwrap().to_string()
        })
        .collect()
}

const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";

/// tiny-llama as a GGUF file (GGUF names, q/k rows permuted as llama.cpp's converter does) with a byte-level
/// BPE tokenizer and a chat template in its metadata.
fn tiny_llama_gguf(path: &Path) {
    let src = loader::open(fixture("tiny-llama")).unwrap();
    let s = |x: &str| MetaValue::Str(x.into());
    let mut tokens = vec![s("<|endoftext|>"), s("<|im_start|>"), s("<|im_end|>")];
    let mut types = vec![MetaValue::I32(3); 3];
    tokens.extend(byte_chars().into_iter().map(MetaValue::Str));
    types.extend(std::iter::repeat_n(MetaValue::I32(1), 256));
    tokens.push(s("he"));
    types.push(MetaValue::I32(1));
    let kvs: Vec<(String, MetaValue)> = [
        ("general.architecture", s("llama")),
        ("general.name", s("tiny-llama")),
        ("llama.embedding_length", MetaValue::U32(32)),
        ("llama.block_count", MetaValue::U32(2)),
        ("llama.attention.head_count", MetaValue::U32(4)),
        ("llama.attention.head_count_kv", MetaValue::U32(2)),
        ("llama.attention.key_length", MetaValue::U32(8)),
        ("llama.feed_forward_length", MetaValue::U32(48)),
        ("llama.context_length", MetaValue::U32(64)),
        ("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5)),
        ("llama.rope.freq_base", MetaValue::F32(10000.0)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.tokens", MetaValue::Array(tokens)),
        ("tokenizer.ggml.token_type", MetaValue::Array(types)),
        ("tokenizer.ggml.merges", MetaValue::Array(vec![s("h e")])),
        ("tokenizer.ggml.bos_token_id", MetaValue::U32(1)),
        ("tokenizer.ggml.eos_token_id", MetaValue::U32(0)),
        ("tokenizer.chat_template", s(CHATML)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut data = vec![];
    for e in src.entries() {
        let mut w = src.to_f32(&e.name).unwrap();
        if e.name.contains("q_proj.weight") {
            w = permute_qk(&w, 4, e.shape[0]);
        } else if e.name.contains("k_proj.weight") {
            w = permute_qk(&w, 2, e.shape[0]);
        }
        data.push((gguf_name(&e.name), e.shape.clone(), w));
    }
    let tensors: Vec<GgufTensor> = data
        .iter()
        .map(|(n, shape, w)| GgufTensor { name: n, shape, dtype: SourceDType::F32, bytes: bytemuck::cast_slice(w) })
        .collect();
    loader::write_gguf(path, &kvs, &tensors).unwrap();
}

#[test]
fn exported_gguf_model_reloads_with_config_and_tokenizer() {
    let tmp = TempDir::new("gguf");
    let gguf = tmp.path("tiny.gguf");
    tiny_llama_gguf(&gguf);
    let want = logits(&fixture("tiny-llama"));
    assert_eq!(logits(&gguf), want, "the GGUF file itself");
    let out = tmp.path("out");
    export(&gguf, &out);
    assert_eq!(logits(&out), want, "the exported folder");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    for (k, v) in
        [("model_type", "\"llama\""), ("num_key_value_heads", "2"), ("head_dim", "8"), ("tie_word_embeddings", "false")]
    {
        assert_eq!(cfg[k].to_string(), v, "config.json {k}");
    }
    // The tokenizer, chat template and eos set come from tokenizer.gguf.
    let (a, b) = (Tokenizer::from_path(&gguf).unwrap(), Tokenizer::from_path(&out).unwrap());
    assert!(b.source().ends_with("tokenizer.gguf"), "{}", b.source());
    let text = "<|im_start|>hello the world";
    assert_eq!(a.encode(text, true).unwrap(), b.encode(text, true).unwrap());
    assert_eq!(a.eos_ids(), b.eos_ids());
    let msgs = [("user", "hi")];
    assert_eq!(a.apply_chat_template(&msgs, false).unwrap(), b.apply_chat_template(&msgs, false).unwrap());
    assert!(!b.chat_template().is_fallback());
}

#[test]
fn int8_tensors_are_written_and_dequantized_on_load() {
    use wgpu_llm::quant::QTensor;
    let tmp = TempDir::new("int8");
    let (rows, cols) = (4, 64);
    let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
    let q = QTensor::quantize(&w, rows, cols).unwrap();
    let tensors = vec![
        ExportTensor::i8("l.weight", &[rows, cols], q.q.clone()),
        ExportTensor::f32("l.weight_scale", &[rows, cols / 32], q.scales.clone()),
        ExportTensor::f16("n.weight", &[3], &[0.5, 1.0, -2.0]),
    ];
    let out = tmp.path("q");
    write_model_folder(&out, &fixture("tiny-llama"), &serde_json::json!({"model_type": "none"}), &tensors, false)
        .unwrap();
    let store = loader::open(&out).unwrap();
    assert_eq!(store.entry("l.weight").unwrap().dtype, SourceDType::I8);
    assert_eq!(store.entry("n.weight").unwrap().dtype, SourceDType::F16);
    let back = wgpu_llm::models::load_checked(&store, "l.weight", &[rows, cols]).unwrap().to_f32();
    assert_eq!(back, q.dequantize());
    assert_eq!(store.to_f32("n.weight").unwrap(), [0.5, 1.0, -2.0]);
}

#[test]
fn existing_output_is_refused_and_failed_writes_leave_nothing() {
    let tmp = TempDir::new("atomic");
    let src = fixture("tiny-llama");
    let m = model_tensors(&src).unwrap();
    let out = tmp.path("out");
    write_model_folder(&out, &src, &m.config, &m.tensors, false).unwrap();
    let e = write_model_folder(&out, &src, &m.config, &m.tensors, false).unwrap_err().to_string();
    assert!(e.contains("exists") && e.contains(&out.display().to_string()), "{e}");

    // A tensor whose values do not fill its shape fails mid-write: no output, no temporary, and an existing
    // output being overwritten survives intact.
    let mut bad = m.tensors.clone();
    bad.push(ExportTensor::f32("broken.weight", &[3, 3], vec![0.0; 8]));
    let e = write_model_folder(&tmp.path("new"), &src, &m.config, &bad, false).unwrap_err().to_string();
    assert!(e.contains("broken.weight"), "{e}");
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    write_model_folder(&out, &src, &m.config, &bad, true).unwrap_err();
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), before);
    assert_eq!(tmp.names(), ["out"]);

    // A tokenizer file that cannot be copied fails after model.safetensors is written.
    let odd = tmp.path("odd-source");
    std::fs::create_dir_all(odd.join("tokenizer.json")).unwrap();
    std::fs::copy(src.join("config.json"), odd.join("config.json")).unwrap();
    std::fs::copy(src.join("model.safetensors"), odd.join("model.safetensors")).unwrap();
    let e = write_model_folder(&tmp.path("new"), &odd, &m.config, &m.tensors, false).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    assert_eq!(tmp.names(), ["odd-source", "out"]);

    // overwrite replaces the folder.
    let pruned: Vec<ExportTensor> = m.tensors.iter().take(3).cloned().collect();
    write_model_folder(&out, &src, &m.config, &pruned, true).unwrap();
    assert_eq!(loader::open(&out).unwrap().len(), 3);
    assert_eq!(tmp.names(), ["odd-source", "out"]);
}
