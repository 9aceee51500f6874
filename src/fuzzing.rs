//! The bodies of the fuzz targets (fuzz/fuzz_targets/*.rs, run by scripts/fuzz.sh with cargo fuzz) and of
//! their regression tests (tests/fuzz_regressions.rs on stable, over tests/fuzz_regressions/TARGET/*): each
//! takes arbitrary bytes as a file of its format, and must return (an error is fine) without a panic, a hang
//! or an allocation beyond a bound taken from the input's size. Files go to a per-process scratch folder,
//! since the readers take paths (and map them).

use std::path::{Path, PathBuf};

use crate::loader::WeightStore;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("safetensors_index", safetensors_index),
    ("config", config),
    ("tokenizer", tokenizer),
    ("template", template),
    ("int8", int8),
    ("data", data),
    ("serve_body", serve_body),
];

/// The per-process scratch folder: in memory (/dev/shm) where there is one, since a disk write that stalls
/// under I/O load would pass for a hang of the reader.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let d = base.join(format!("wgpu-llm-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

fn write(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("the scratch folder is writable");
    p
}

/// Read every tensor of a store as f32 when its values fit a bound from the file's size (a tensor's f32
/// values take at most 32 times the bytes of its 4-bit blocks).
fn read_all(store: &WeightStore, file_len: usize) {
    for name in store.names().map(str::to_string).collect::<Vec<_>>() {
        let Ok(e) = store.entry(&name) else { continue };
        let numel: usize = e.shape.iter().product();
        if numel.saturating_mul(4) <= file_len.saturating_mul(32) + 4096 {
            let _ = store.to_f32(&name);
        }
    }
}

/// A GGUF file: header, metadata of every type, tensor infos, offsets, alignment; then its config, its
/// tokenizer (GGUF vocabularies and merges) and every tensor's values.
pub fn gguf(data: &[u8]) {
    let p = write("model.gguf", data);
    let Ok(store) = crate::loader::open(&p) else { return };
    read_all(&store, data.len());
    if let Ok(src) = crate::models::ConfigSource::find(&p, &store) {
        let _ = crate::session::Arch::from_source(&src, &store);
    }
    if let Ok(tok) = crate::tokenizer::Tokenizer::from_store(&store) {
        if let Ok(ids) = tok.encode("Hello, world! <|im_start|>user\n", true) {
            let _ = tok.decode(&ids, false);
        }
        let _ = tok.apply_chat_template(&[("user", "hi")], true);
    }
}

/// A safetensors file: header length, JSON header, dtypes, shapes and data offsets.
pub fn safetensors(data: &[u8]) {
    let p = write("model.safetensors", data);
    if let Ok(store) = crate::loader::open(&p) {
        read_all(&store, data.len());
    }
}

/// A sharded checkpoint's index (model.safetensors.index.json) over two small valid shards.
pub fn safetensors_index(data: &[u8]) {
    let dir = scratch().join("sharded");
    let _ = std::fs::create_dir_all(&dir);
    for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
        let p = dir.join(shard);
        if !p.exists() {
            let t = crate::tools::export::ExportTensor::f32("w", &[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
            let _ = crate::tools::export::write_safetensors(&p, &[t]);
        }
    }
    let _ = std::fs::write(dir.join("model.safetensors.index.json"), data);
    if let Ok(store) = crate::loader::open(&dir) {
        read_all(&store, 64);
    }
}

/// config.json → every model config (Llama/Qwen2, GPT-2, BERT), the int8 checkpoint scheme and labels.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else { return };
    let src = crate::models::ConfigSource::Json(v);
    let store = empty_store();
    let _ = crate::session::Arch::from_source(&src, &store);
    let _ = crate::models::bert::Config::from_source(&src, &store);
    let _ = crate::models::checkpoint_int8(&src);
}

fn empty_store() -> WeightStore {
    let p = scratch().join("empty.safetensors");
    if !p.exists() {
        let t = crate::tools::export::ExportTensor::f32("unused", &[1], vec![0.0]);
        let _ = crate::tools::export::write_safetensors(&p, &[t]);
    }
    crate::loader::open(&p).expect("a valid one-tensor file")
}

/// An int8 checkpoint as `wgpu-llm quantize` writes it: the first line is config.json (its
/// `quantization_config`), the rest a safetensors file whose I8 tensors are read with their block scales
/// `{name}_scale` (shapes, block counts and the scale tensor's dtype all come from the file).
pub fn int8(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data[..split]) {
        let _ = crate::models::checkpoint_int8(&crate::models::ConfigSource::Json(v));
    }
    let body = data.get(split + 1..).unwrap_or_default();
    let p = write("int8.safetensors", body);
    let Ok(store) = crate::loader::open(&p) else { return };
    for name in store.names().map(str::to_string).collect::<Vec<_>>() {
        let Ok(e) = store.entry(&name) else { continue };
        if e.dtype == crate::loader::SourceDType::I8 && e.shape.iter().product::<usize>() <= body.len() {
            let shape = e.shape.clone();
            let _ = crate::models::load_checked(&store, &name, &shape);
        }
    }
}

/// tokenizer.json (any model type, normalizers, pre-tokenizers, added tokens) → encode and decode.
pub fn tokenizer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(tok) = crate::tokenizer::Tokenizer::from_hf_json(text, None, None, "fuzz") {
        if let Ok(ids) = tok.encode("Hello, world! ünïcödé 123", true) {
            let _ = tok.decode(&ids, true);
        }
    }
}

/// A chat template (Jinja) rendered with a short conversation: loops, recursion and huge outputs must stop.
pub fn template(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else { return };
    if let Ok(t) = crate::tokenizer::ChatTemplate::new(src, "<s>", "</s>") {
        let msgs = [("system", "be brief"), ("user", "hi"), ("assistant", "hello"), ("user", "bye")];
        let _ = t.render(&msgs, true);
        let _ = t.render(&msgs[..1], false);
    }
}

/// The training commands' data files: CSV, TSV and JSONL of labelled texts (the first byte picks the
/// format), and instruction JSONL through a ChatML template.
pub fn data(data: &[u8]) {
    let ext = ["csv", "tsv", "jsonl"][data.first().map_or(0, |b| *b as usize % 3)];
    let p = write(&format!("data.{ext}"), data.get(1..).unwrap_or_default());
    let cols = crate::train::data::Columns { text: "text", label: "label", labels: None };
    let _ = crate::train::data::read_labelled(&p, &cols);
    if ext == "jsonl" {
        let _ = crate::train::sft_data::read_jsonl(&p, chatml_tokenizer(), 64, false);
    }
}

/// An HTTP request body of `serve`: JSON, then the checks of /predict, /v1/chat/completions and
/// /v1/completions' generation fields.
pub fn serve_body(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = crate::serve::api::predict_texts(&v);
    let _ = crate::serve::api::chat_messages(&v);
    let _ = crate::serve::api::gen_params(&v, true);
    let _ = crate::serve::api::gen_params(&v, false);
}

fn chatml_tokenizer() -> &'static crate::tokenizer::Tokenizer {
    static TOK: std::sync::OnceLock<crate::tokenizer::Tokenizer> = std::sync::OnceLock::new();
    TOK.get_or_init(|| {
        let vocab: serde_json::Map<String, serde_json::Value> =
            (32u8..127).enumerate().map(|(i, c)| ((c as char).to_string(), i.into())).collect();
        let tj = serde_json::json!({
            "version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
            "post_processor": null, "decoder": {"type": "Fuse"},
            "model": {"type": "BPE", "vocab": vocab, "merges": [], "unk_token": null}
        });
        crate::tokenizer::Tokenizer::from_hf_json(&tj.to_string(), None, None, "fuzz ChatML")
            .expect("a valid character tokenizer")
    })
}

/// Run a target on a file (the regression tests and `scripts/fuzz.sh`'s replays).
pub fn run_file(target: &str, path: &Path) -> std::io::Result<()> {
    let data = std::fs::read(path)?;
    let f = TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .ok_or_else(|| std::io::Error::other(format!("no fuzz target {target}")))?;
    (f.1)(&data);
    Ok(())
}
