//! Text ↔ token ids: a `Tokenizer` built from a Hugging Face `tokenizer.json` folder or from GGUF metadata
//! (`tokenizer.ggml.*`), its end-of-generation set, streaming detokenization and the model's chat template.
//!
//! Both sources become one `tokenizers::Tokenizer` (the HF crate), so encoding rules are HF's own: a GGUF vocab
//! is rebuilt the way `transformers`' converters build a `tokenizer.json` (byte-level BPE for `gpt2`, BPE with
//! score-ordered merges and byte fallback for `llama`/SentencePiece). Special tokens written in the text
//! (`<|im_start|>`) are matched before the pre-tokenizer runs and come out as single ids. `encode` never pads or
//! truncates (a tokenizer.json's padding/truncation settings are dropped): batching code owns sequence lengths.
//!
//! Regexes run on `fancy-regex` (pure Rust, look-arounds included) rather than Oniguruma (a C library).

mod gguf;
mod hf;
mod stream;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::loader::{MetaValue, WeightStore};

pub use stream::StreamDecoder;
pub use template::ChatTemplate;

/// Special tokens that end a turn in the common chat formats; when one is a special token of the vocabulary and
/// the chat template writes it (or it is the model's end-of-text), generation stops on it as on the eos id.
const END_OF_TURN_TOKENS: &[&str] =
    &["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "</s>"];

/// A text ↔ ids tokenizer with its special ids and chat template. Cloning is cheap (shared).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

struct Inner {
    tk: tokenizers::Tokenizer,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eos_ids: BTreeSet<u32>,
    template: ChatTemplate,
    source: String,
}

/// What a source contributes besides the `tokenizers::Tokenizer` itself.
pub(crate) struct Parts {
    pub tk: tokenizers::Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// Extra end-of-generation ids named by the source (generation_config.json, GGUF eot/eom ids).
    pub extra_eos: Vec<u32>,
    /// The model's own template source, if it has one.
    pub template: Option<String>,
    pub source: String,
}

impl Tokenizer {
    /// Opens a tokenizer from a path: a `.gguf` file (its `tokenizer.ggml.*` metadata), a `tokenizer.json`, or a
    /// folder holding `tokenizer.json` (Hugging Face layout), else `tokenizer.gguf` (an exported GGUF model's
    /// tokenizer metadata), else exactly one `.gguf` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            if path.join("tokenizer.json").is_file() {
                return Self::from_hf_dir(path);
            }
            // A folder exported from a GGUF model keeps the tokenizer as a metadata-only tokenizer.gguf.
            if path.join("tokenizer.gguf").is_file() {
                return Self::from_gguf(path.join("tokenizer.gguf"));
            }
            let ggufs = gguf_files_in(path)?;
            return match ggufs.as_slice() {
                [one] => Self::from_gguf(one),
                [] => Err(file_err(path, "folder holds neither tokenizer.json nor a .gguf file")),
                _ => Err(file_err(path, "folder holds no tokenizer.json and several .gguf files: name one")),
            };
        }
        let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            return Self::from_gguf(path);
        }
        Self::from_tokenizer_json(path)
    }

    /// A Hugging Face model folder: `tokenizer.json`, plus `tokenizer_config.json` (chat template, bos/eos),
    /// `chat_template.jinja` and `generation_config.json` (eos ids) when present.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_tokenizer_json(dir.as_ref().join("tokenizer.json"))
    }

    /// A `tokenizer.json` file; its sibling config files are read as in `from_hf_dir`.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::from_parts(hf::load_dir_files(path.as_ref())?))
    }

    /// The tokenizer described by in-memory Hugging Face files; `source` names them in errors.
    pub fn from_hf_json(
        tokenizer_json: &str,
        tokenizer_config: Option<&str>,
        generation_config: Option<&str>,
        source: &str,
    ) -> Result<Self> {
        let sibling = |name: &str| format!("{name} (beside {source})");
        Ok(Self::from_parts(hf::from_strings(
            tokenizer_json,
            tokenizer_config,
            generation_config,
            None,
            source,
            &sibling,
        )?))
    }

    /// The tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let store = crate::loader::open(path)?;
        Self::from_gguf_metadata(store.metadata(), &path.display().to_string())
    }

    /// The tokenizer of an opened GGUF store.
    pub fn from_store(store: &WeightStore) -> Result<Self> {
        let source = store.entries().next().map(|e| store.path_of(e).display().to_string());
        Self::from_gguf_metadata(store.metadata(), source.as_deref().unwrap_or("GGUF metadata"))
    }

    /// The tokenizer described by GGUF `tokenizer.ggml.*` keys; `source` (usually the file's path) names it in
    /// errors.
    pub fn from_gguf_metadata(meta: &BTreeMap<String, MetaValue>, source: &str) -> Result<Self> {
        Ok(Self::from_parts(gguf::build(meta, source)?))
    }

    fn from_parts(parts: Parts) -> Self {
        let Parts { tk, bos_id, eos_id, extra_eos, template, source } = parts;
        let template = match template {
            Some(src) => {
                ChatTemplate::new(&src, token_text(&tk, bos_id), token_text(&tk, eos_id)).unwrap_or_else(|e| {
                    log::warn!("{source}: chat template does not compile ({e}); using ChatML instead");
                    ChatTemplate::chatml()
                })
            }
            None => ChatTemplate::chatml(),
        };
        let mut eos_ids: BTreeSet<u32> = eos_id.into_iter().chain(extra_eos).collect();
        let added = tk.get_added_vocabulary().get_added_tokens_decoder();
        for &name in END_OF_TURN_TOKENS {
            let Some(id) = tk.token_to_id(name) else { continue };
            let special = added.get(&id).is_some_and(|t| t.special);
            // End-of-text tokens always end generation; end-of-turn tokens when the template writes them.
            let implied =
                name.contains("end_of_text") || name.contains("endoftext") || template.source().contains(name);
            if special && implied {
                eos_ids.insert(id);
            }
        }
        Tokenizer { inner: Arc::new(Inner { tk, bos_id, eos_id, eos_ids, template, source }) }
    }

    /// Token ids of `text`. Special tokens written in the text become their single ids; `add_special` adds what
    /// the model adds around a sequence (bos, or BERT's `[CLS]` … `[SEP]`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.tk.encode_fast(text, add_special).map_err(|e| self.err(format!("encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`; with `skip_special` special tokens are left out. Unknown ids are skipped; bytes that do
    /// not form whole UTF-8 characters come out as U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        match self.inner.tk.decode(ids, skip_special) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("{}: decode failed ({e}); joining raw tokens", self.inner.source);
                ids.iter().filter_map(|&id| self.id_to_token(id)).collect()
            }
        }
    }

    /// A decoder that turns ids into text as they are generated (see `StreamDecoder`).
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder {
        StreamDecoder::new(self.clone(), skip_special)
    }

    /// The id of a token written as it is stored in the vocabulary (`"Ġthe"`, `"<|im_end|>"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.tk.token_to_id(token)
    }

    /// The stored form of a token (`"Ġthe"`, `"▁the"`, `"<0x0A>"`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.tk.id_to_token(id)
    }

    /// Whether `id` is a special (control) token, which `decode(.., true)` leaves out.
    pub fn is_special(&self, id: u32) -> bool {
        self.inner.tk.get_added_vocabulary().get_added_tokens_decoder().get(&id).is_some_and(|t| t.special)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }

    /// The model's declared end-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos_id
    }

    /// Every id that ends generation: the eos id, ids listed by generation_config.json or GGUF eot/eom keys, and
    /// end-of-turn special tokens (`<|im_end|>`, `<|eot_id|>`, …) that the chat template writes.
    pub fn eos_ids(&self) -> &BTreeSet<u32> {
        &self.inner.eos_ids
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.inner.eos_ids.contains(&id)
    }

    /// Number of ids, added tokens included (the largest id + 1 for a dense vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.inner.tk.get_vocab_size(true)
    }

    /// The model's chat template, or ChatML when it has none (`ChatTemplate::is_fallback`).
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.inner.template
    }

    /// Renders `messages` (role, content) with the chat template.
    pub fn apply_chat_template<R: AsRef<str>, C: AsRef<str>>(
        &self,
        messages: &[(R, C)],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.inner.template.render(messages, add_generation_prompt)
    }

    /// The file (or description) the tokenizer came from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The underlying Hugging Face tokenizer, for what this wrapper does not expose.
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner.tk
    }

    fn err(&self, detail: String) -> Error {
        Error::Format { file: self.inner.source.clone(), detail }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.inner.source)
            .field("vocab_size", &self.vocab_size())
            .field("bos_id", &self.inner.bos_id)
            .field("eos_ids", &self.inner.eos_ids)
            .field("chat_template_fallback", &self.inner.template.is_fallback())
            .finish()
    }
}

fn token_text(tk: &tokenizers::Tokenizer, id: Option<u32>) -> String {
    id.and_then(|id| tk.id_to_token(id)).unwrap_or_default()
}

pub(crate) fn file_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Format { file: path.display().to_string(), detail: detail.into() }
}

fn gguf_files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| file_err(dir, format!("cannot list folder: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let p = entry.map_err(|e| file_err(dir, format!("cannot list folder: {e}")))?.path();
        if p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
