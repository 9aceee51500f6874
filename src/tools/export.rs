//! Model folders out: every float parameter of a model in Hugging Face naming (`model_tensors`), and a
//! Hugging Face folder written from such a list (`write_model_folder`: model.safetensors, config.json and the
//! tokenizer) that `Session::load`, `Encoder::load` and `Tokenizer::from_path` open directly. Used by
//! `wgpu-llm prune` and `wgpu-llm quantize` (int8 tensors with their `*_scale`).
//!
//! A folder is written whole or not at all: everything goes into a temporary sibling folder that is renamed
//! to the output path at the end, so a failed write leaves neither a half-written output nor the temporary.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::loader::{MetaValue, WeightStore};
use crate::models::{bert, load_checked, ConfigSource, Precision};
use crate::session::Arch;
use crate::tensor::DType;

/// The values of one tensor to write, in the dtype it is stored with.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    /// Int8 values (a quantized weight; its block scales are the F32 tensor `{name}_scale`).
    I8(Vec<i8>),
}

/// A named tensor to write; `shape` row-major, outermost first, as Hugging Face writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Payload,
}

impl ExportTensor {
    pub fn f32(name: &str, shape: &[usize], data: Vec<f32>) -> Self {
        ExportTensor { name: name.into(), shape: shape.to_vec(), data: Payload::F32(data) }
    }
    /// f32 values stored as f16 (rounded to nearest even).
    pub fn f16(name: &str, shape: &[usize], data: &[f32]) -> Self {
        let h = data.iter().map(|&x| half::f16::from_f32(x)).collect();
        ExportTensor { name: name.into(), shape: shape.to_vec(), data: Payload::F16(h) }
    }
    pub fn i8(name: &str, shape: &[usize], data: Vec<i8>) -> Self {
        ExportTensor { name: name.into(), shape: shape.to_vec(), data: Payload::I8(data) }
    }
    /// The float values (f16 widened; int8 as the raw integers).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Payload::F32(v) => v.clone(),
            Payload::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Payload::I8(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// The f32 values, when stored as f32 (for in-place edits such as pruning).
    pub fn f32_mut(&mut self) -> Option<&mut Vec<f32>> {
        match &mut self.data {
            Payload::F32(v) => Some(v),
            _ => None,
        }
    }
    fn view(&self) -> std::result::Result<TensorView<'_>, safetensors::SafeTensorError> {
        let (dtype, bytes): (Dtype, &[u8]) = match &self.data {
            Payload::F32(v) => (Dtype::F32, bytemuck::cast_slice(v)),
            Payload::F16(v) => (Dtype::F16, bytemuck::cast_slice(v)),
            Payload::I8(v) => (Dtype::I8, bytemuck::cast_slice(v)),
        };
        TensorView::new(dtype, self.shape.clone(), bytes)
    }
}

/// A model's parameters as Hugging Face names them, with the config.json that describes them.
pub struct ModelTensors {
    /// config.json: the source's own (less any `quantization_config`: the tensors are float), or one
    /// synthesized from GGUF metadata.
    pub config: Value,
    /// Every float parameter, in the order the model's graph creates them (then pooler and classifier).
    pub tensors: Vec<ExportTensor>,
    /// The linear layers (the graph's taps): `{name}.weight` is an [out, in] tensor of `tensors`.
    pub linear: Vec<String>,
}

/// Every float parameter of the model at `path` (a Llama/Qwen2 GGUF file or Hugging Face folder, GPT-2, BERT
/// with any pooler and classifier), read through the model's step graph so names, fused splits and GGUF row
/// order come out as in a Hugging Face checkpoint. Int8 checkpoints are dequantized.
pub fn model_tensors(path: &Path) -> Result<ModelTensors> {
    let store = crate::loader::open(path)?;
    let src = ConfigSource::find(path, &store)?;
    let f32_prec = Precision::from(DType::F32);
    let mut out = vec![];
    let graph = if src.architecture()? == "bert" {
        let cfg = bert::Config::from_source(&src, &store)?;
        let g = bert::build(&cfg, 1, 1, &f32_prec)?.graph;
        let params = crate::models::arch::each_param(&g, |name, shape| load_checked(&store, name, shape))?;
        out.extend(params.into_iter().map(|(name, shape, data)| ExportTensor::f32(&name, &shape, data)));
        let p = &cfg.prefix;
        for stem in [format!("{p}pooler.dense"), "classifier".to_string()] {
            for part in ["weight", "bias"] {
                let name = format!("{stem}.{part}");
                if store.contains(&name) {
                    let shape = store.entry(&name)?.shape.clone();
                    out.push(ExportTensor::f32(&name, &shape, load_checked(&store, &name, &shape)?.to_f32()));
                }
            }
        }
        g
    } else {
        let arch = Arch::from_source(&src, &store)?;
        let g = arch.build(1, 1, 1, &f32_prec)?.graph;
        for (name, shape, data) in arch.checkpoint_tensors(&g, &store)? {
            out.push(ExportTensor::f32(&name, &shape, data));
        }
        g
    };
    // GPT-2's Conv1D layers ([in, out] weights) are not `Linear`s and record no taps.
    // A tied head's input is tapped too, but its weight is the embedding table: not listed.
    let linear = graph
        .taps
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| out.iter().any(|t: &ExportTensor| t.name == format!("{n}.weight")))
        .collect();
    let config = match &src {
        ConfigSource::Json(v) => {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("quantization_config");
            }
            v
        }
        ConfigSource::Gguf(meta) => gguf_config(&src, &store, meta)?,
    };
    Ok(ModelTensors { config, tensors: out, linear })
}

/// A Hugging Face config.json for a Llama-family GGUF file, with every key `llama::Config` reads.
fn gguf_config(
    src: &ConfigSource,
    store: &WeightStore,
    meta: &std::collections::BTreeMap<String, MetaValue>,
) -> Result<Value> {
    let arch = Arch::from_source(src, store)?;
    let Some(c) = arch.llama() else {
        return Err(Error::Unsupported {
            op: "export".into(),
            detail: "only Llama-family GGUF files can be exported (GPT-2 and BERT come from Hugging Face folders)"
                .into(),
        });
    };
    let class = match c.arch.as_str() {
        "qwen2" => "Qwen2ForCausalLM",
        "mistral" => "MistralForCausalLM",
        _ => "LlamaForCausalLM",
    };
    let id = |k: &str| meta.get(k).and_then(MetaValue::as_u64);
    let mut v = json!({
        "architectures": [class],
        "model_type": c.arch,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "intermediate_size": c.intermediate,
        "vocab_size": c.vocab,
        "rms_norm_eps": short(c.rms_eps),
        "rope_theta": short(c.rope_theta),
        "tie_word_embeddings": c.tie_embeddings,
        "max_position_embeddings": c.max_pos,
        "hidden_act": "silu",
        "attention_bias": c.qkv_bias,
        "torch_dtype": "float32",
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": id("tokenizer.ggml.eos_token_id"),
    });
    if let Some(name) = meta.get("general.name").and_then(MetaValue::as_str) {
        v["_name_or_path"] = name.into();
    }
    Ok(v)
}

/// An f32 as the shortest decimal that reads back to it (1e-5, not 9.999999747378752e-6).
fn short(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Tokenizer and sentence-transformers files copied from a Hugging Face source folder when present.
const HF_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "tokenizer.gguf",
];
const HF_DIRS: &[&str] = &["1_Pooling"];

/// Write `tensors` as `out`/model.safetensors with `config` as config.json, plus the tokenizer of `source`
/// (the model they came from): its Hugging Face tokenizer files, or a GGUF source's `tokenizer.*` metadata as
/// a metadata-only `tokenizer.gguf`. An existing `out` is an error unless `overwrite`; nothing is left behind
/// on failure.
pub fn write_model_folder(
    out: &Path,
    source: &Path,
    config: &Value,
    tensors: &[ExportTensor],
    overwrite: bool,
) -> Result<()> {
    write_folder(out, overwrite, &|dir| fill_folder(dir, source, config, tensors))
}

/// Write a folder crash-safely: `fill` writes into a temporary sibling, which is renamed to `out` only when
/// complete, so `out` is never a partial folder. An existing `out` is an error unless `overwrite` (then it is
/// replaced, and kept if the swap fails).
pub fn write_folder(out: &Path, overwrite: bool, fill: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
    let name = out.file_name().ok_or_else(|| out_err(out, "is not a folder name"))?.to_string_lossy().to_string();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(out_err(out, format!("its parent folder {} does not exist", parent.display())));
    }
    clean_stale(&parent, &name, out);
    let exists = out.symlink_metadata().is_ok();
    if exists && !overwrite {
        return Err(out_err(out, "exists already (choose another output, or overwrite it)"));
    }
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| out_err(&tmp, format!("cannot create: {e}")))?;
    if let Err(e) = fill(&tmp).and_then(|_| sync_tree(&tmp)) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Swap the complete folder in with one atomic exchange where the OS has it (Linux), so that a kill at any
    // point leaves either the old folder or the new one at `out`.
    if exists && exchange(&tmp, out).is_ok() {
        sync_dir(&parent);
        if let Err(e) = std::fs::remove_dir_all(&tmp) {
            log::warn!("{}: could not remove the replaced output: {e}", tmp.display());
        }
        return Ok(());
    }
    // Elsewhere rename() cannot replace a non-empty folder: move the old one aside first, and back if the swap
    // fails (a kill between the two renames leaves it at `.{name}.old-PID`, restored by the next write).
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if exists {
        if let Err(e) = std::fs::rename(out, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(out_err(out, format!("cannot replace: {e}")));
        }
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        let _ = std::fs::remove_dir_all(&tmp);
        if exists {
            let _ = std::fs::rename(&old, out);
        }
        return Err(out_err(out, format!("cannot move the written folder into place: {e}")));
    }
    sync_dir(&parent);
    if exists {
        let gone = if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) };
        if let Err(e) = gone {
            log::warn!("{}: could not remove the replaced output: {e}", old.display());
        }
    }
    Ok(())
}

/// Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); an error where unsupported.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (ca, cb) = (c(a)?, c(b)?);
        // SAFETY: both are valid NUL-terminated paths that outlive the call.
        let r =
            unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (a, b);
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What killed writers of `out` left beside it: their partial folders are removed (never taken for `out`),
/// and an old folder moved aside is put back when `out` itself is missing.
fn clean_stale(parent: &Path, name: &str, out: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else { return };
    for e in rd.flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        let p = e.path();
        if f.starts_with(&format!(".{name}.partial-")) {
            let _ = std::fs::remove_dir_all(&p);
        } else if f.starts_with(&format!(".{name}.old-")) {
            if out.symlink_metadata().is_err() {
                let _ = std::fs::rename(&p, out);
            } else {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
}

/// fsync every file under `dir` and the folders themselves, so that a folder renamed into place after this
/// is complete on disk even if the machine stops right after.
fn sync_tree(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| out_err(dir, format!("cannot list: {e}")))? {
        let p = e.map_err(|e| out_err(dir, e.to_string()))?.path();
        if p.is_dir() {
            sync_tree(&p)?;
        } else {
            std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(|e| out_err(&p, format!("cannot sync: {e}")))?;
        }
    }
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| out_err(dir, format!("cannot sync: {e}")))
}

/// `value` as pretty JSON in `path`.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| out_err(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| out_err(path, format!("cannot write: {e}")))
}

/// `tensors` as one safetensors file (names must be distinct), readable by all (the crate writes 0600).
pub fn write_safetensors(path: &Path, tensors: &[ExportTensor]) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    let mut seen = std::collections::BTreeSet::new();
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(out_err(path, format!("tensor {} is given twice", t.name)));
        }
        let v = t.view().map_err(|e| out_err(path, format!("tensor {} {:?}: {e}", t.name, t.shape)))?;
        views.push((t.name.as_str(), v));
    }
    safetensors::tensor::serialize_to_file(views, None, path)
        .map_err(|e| out_err(path, format!("cannot write: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| out_err(path, format!("cannot set permissions: {e}")))?;
    }
    Ok(())
}

fn out_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Format { file: path.display().to_string(), detail: detail.into() }
}

fn fill_folder(dir: &Path, source: &Path, config: &Value, tensors: &[ExportTensor]) -> Result<()> {
    write_json(&dir.join("config.json"), config)?;
    write_safetensors(&dir.join("model.safetensors"), tensors)?;
    copy_tokenizer(dir, source)
}

/// The tokenizer of `source` into `dir` (see `write_model_folder`).
fn copy_tokenizer(dir: &Path, source: &Path) -> Result<()> {
    let copy = |from: &Path, to: &Path| -> Result<()> {
        std::fs::copy(from, to).map(|_| ()).map_err(|e| out_err(to, format!("cannot copy {}: {e}", from.display())))
    };
    if source.is_file() && is_gguf(source)? {
        let store = crate::loader::open(source)?;
        let kvs: Vec<(String, MetaValue)> = store
            .metadata()
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if kvs.is_empty() {
            log::warn!("{}: no tokenizer metadata to export", source.display());
            return Ok(());
        }
        return crate::loader::write_gguf(&dir.join("tokenizer.gguf"), &kvs, &[]);
    }
    let src_dir = if source.is_dir() { source } else { source.parent().unwrap_or(Path::new(".")) };
    for f in HF_FILES {
        let from = src_dir.join(f);
        if from.exists() {
            copy(&from, &dir.join(f))?;
        }
    }
    for d in HF_DIRS {
        let from = src_dir.join(d);
        if !from.is_dir() {
            continue;
        }
        let to = dir.join(d);
        std::fs::create_dir(&to).map_err(|e| out_err(&to, format!("cannot create: {e}")))?;
        let entries = std::fs::read_dir(&from).map_err(|e| out_err(&from, format!("cannot list: {e}")))?;
        for e in entries {
            let p = e.map_err(|e| out_err(&from, format!("cannot list: {e}")))?.path();
            if p.is_file() {
                copy(&p, &to.join(p.file_name().unwrap_or_default()))?;
            }
        }
    }
    Ok(())
}

fn is_gguf(path: &Path) -> Result<bool> {
    use std::io::Read;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return Ok(true);
    }
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| out_err(path, format!("cannot open: {e}")))?;
    Ok(f.read_exact(&mut magic).is_ok() && &magic == b"GGUF")
}
