//! The vocabulary of a model trained from scratch (`train --tokenizer`): characters of the data (`char`), a
//! byte-level BPE trained on the data by the tokenizers crate's trainer (`bpe:N`, GPT-2's scheme), or an
//! existing model's tokenizer.json. Each is written into the trained model's folder as tokenizer.json.

use std::path::Path;

use super::lm::CharVocab;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// What `--tokenizer` asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Char,
    /// A byte-level BPE of this many tokens (the 256 bytes and `<|endoftext|>` included).
    Bpe(usize),
    /// The tokenizer.json of this model folder.
    Model(std::path::PathBuf),
}

impl Spec {
    /// `char`, `bpe:N` or a model folder (already resolved from a known name by the caller).
    pub fn parse(s: &str, resolve: &dyn Fn(&str) -> Result<std::path::PathBuf>) -> Result<Spec> {
        match s {
            "char" => Ok(Spec::Char),
            _ if s.starts_with("bpe:") => {
                let n: usize =
                    s[4..].parse().map_err(|_| Error::Other(format!("--tokenizer {s}: bpe:N needs a number")))?;
                if n < 258 {
                    return Err(Error::Other(format!(
                        "--tokenizer {s}: a byte-level BPE needs at least 258 tokens (256 bytes, <|endoftext|>, one merge)"
                    )));
                }
                Ok(Spec::Bpe(n))
            }
            _ => Ok(Spec::Model(resolve(s)?)),
        }
    }
}

/// A built vocabulary: its size, the ids of a text, and its tokenizer.json.
pub enum Vocab {
    Char(CharVocab),
    Json { json: serde_json::Value, tok: Tokenizer },
}

impl Vocab {
    pub fn build(spec: &Spec, text: &str) -> Result<Vocab> {
        match spec {
            Spec::Char => Ok(Vocab::Char(CharVocab::build(text))),
            Spec::Bpe(n) => Self::from_json(train_bpe(text, *n)?, "the trained BPE"),
            Spec::Model(dir) => {
                let path = dir.join("tokenizer.json");
                let text = std::fs::read_to_string(&path).map_err(|e| Error::Format {
                    file: path.display().to_string(),
                    detail: format!("--tokenizer needs a model folder with a tokenizer.json ({e})"),
                })?;
                let json = serde_json::from_str(&text).map_err(|e| Error::Format {
                    file: path.display().to_string(),
                    detail: format!("not JSON: {e}"),
                })?;
                Self::from_json(json, &path.display().to_string())
            }
        }
    }

    fn from_json(json: serde_json::Value, source: &str) -> Result<Vocab> {
        let tok = Tokenizer::from_hf_json(&json.to_string(), None, None, source)?;
        Ok(Vocab::Json { json, tok })
    }

    pub fn size(&self) -> usize {
        match self {
            Vocab::Char(c) => c.chars.len(),
            Vocab::Json { tok, .. } => tok.vocab_size(),
        }
    }

    /// The ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Vocab::Char(c) => c.encode(text),
            Vocab::Json { tok, .. } => tok.encode(text, false),
        }
    }

    pub fn tokenizer_json(&self) -> serde_json::Value {
        match self {
            Vocab::Char(c) => c.tokenizer_json(),
            Vocab::Json { json, .. } => json.clone(),
        }
    }
}

/// GPT-2's byte-level BPE trained on `text`'s lines: `n` tokens in all (the 256 byte symbols and
/// `<|endoftext|>` first, then merges by frequency).
fn train_bpe(text: &str, n: usize) -> Result<serde_json::Value> {
    use tokenizers::models::bpe::{BpeTrainer, BPE};
    use tokenizers::models::TrainerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::AddedToken;
    let err = |e: tokenizers::Error| Error::Other(format!("training the BPE tokenizer: {e}"));
    let mut tk = tokenizers::Tokenizer::new(BPE::default());
    tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tk.with_decoder(Some(ByteLevel::default()));
    tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
    let trainer = BpeTrainer::builder()
        .vocab_size(n)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tk.train(&mut trainer, text.lines()).map_err(err)?;
    let s = tk.to_string(false).map_err(err)?;
    serde_json::from_str(&s).map_err(|e| Error::Other(format!("the trained tokenizer's JSON: {e}")))
}

/// The folder a model's name or path resolves to must hold a tokenizer.json (a GGUF file keeps its vocabulary
/// inside).
pub fn check_model_dir(dir: &Path) -> Result<()> {
    if dir.join("tokenizer.json").is_file() {
        Ok(())
    } else {
        Err(Error::Other(format!("--tokenizer {}: not a model folder with a tokenizer.json", dir.display())))
    }
}
