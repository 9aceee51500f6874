//! Model tools end to end on the tiny fixtures: folder export (safetensors + config + tokenizer, from Hugging
//! Face folders and GGUF files; atomic writes), magnitude pruning (the maths against brute force, the CLI) and
//! sliding-window perplexity (GPU cross-entropy against the CPU reference). Run: `cargo test --test tools`.

#[path = "tools/batch_cli.rs"]
mod batch_cli;
#[path = "kernels/common.rs"]
mod common;
#[path = "tools/export.rs"]
mod export;
#[path = "tools/perplexity.rs"]
mod perplexity;
#[path = "tools/prune.rs"]
mod prune;
#[path = "tools/quantize.rs"]
mod quantize;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A fresh temporary folder per test, removed when dropped.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wgpu-llm-tools-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Names in the folder (to check nothing was left behind).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgpu-llm")).args(args).output().expect("the binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of the fixture `name` (config and weights) in `dir/model`, with `write_word_tokenizer`'s tokenizer.
pub fn model_with_tokenizer(dir: &TempDir, name: &str) -> PathBuf {
    let m = dir.path("model");
    std::fs::create_dir_all(&m).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), m.join(f)).unwrap();
    }
    write_word_tokenizer(&m);
    m
}

/// A word-level tokenizer.json over the tiny fixtures' 64 ids ("[UNK]" = 0, "w1" … "w63"), split on spaces.
pub fn write_word_tokenizer(dir: &Path) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for i in 1..64 {
        vocab.insert(format!("w{i}"), i.into());
    }
    let tj = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tj.to_string()).unwrap();
}
