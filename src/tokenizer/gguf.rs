//! The GGUF source: a `tokenizers::Tokenizer` rebuilt from `tokenizer.ggml.*` metadata the way `transformers`'
//! converters build a `tokenizer.json`, so ids match the original Hugging Face tokenizer.
//!
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokens` + `merges`; the pre-tokenizer's split regex is
//!   chosen by `tokenizer.ggml.pre` (`default`/`gpt2`, `smollm`/`starcoder`/`refact` = every digit alone then
//!   GPT-2's regex, `llama3`/`llama-bpe`, `qwen2`); a missing `pre` means `default`, as in llama.cpp.
//! - `tokenizer.ggml.model = "llama"`: SentencePiece BPE. Merges are derived from `scores` like
//!   `transformers`' `SentencePieceExtractor` (every split of a piece into two pieces, highest score first), with
//!   `<0xXX>` byte fallback and `▁` for spaces, a `▁` prepended when `add_space_prefix` (default true).
//!
//! Token types (`token_type`): 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte. Unknown and
//! control tokens become added special tokens, user-defined ones added plain tokens: all three are matched whole in
//! the text. `add_bos_token` defaults to true for `llama` and false for `gpt2` (llama.cpp's defaults).

use std::collections::BTreeMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::Parts;
use crate::error::{Error, Result};
use crate::loader::MetaValue;

/// Llama 3's: case-insensitive contractions, numbers in groups of up to three.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: Llama 3's with single digits.
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;
const TYPE_BYTE: i64 = 6;

/// Typed access to the metadata; every error names the source and the key.
struct Meta<'a> {
    meta: &'a BTreeMap<String, MetaValue>,
    source: &'a str,
}

impl<'a> Meta<'a> {
    fn err(&self, key: &str, detail: impl std::fmt::Display) -> Error {
        Error::Format { file: self.source.to_string(), detail: format!("GGUF key {key}: {detail}") }
    }
    fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(v) => {
                v.as_str().map(Some).ok_or_else(|| self.err(key, format!("expected a string, found {}", v.type_name())))
            }
        }
    }
    fn u32(&self, key: &str) -> Result<Option<u32>> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64().and_then(|x| u32::try_from(x).ok()) {
                Some(x) => Ok(Some(x)),
                // llama.cpp writes -1 for "none" in some files.
                None if v.as_i64().is_some_and(|x| x < 0) => Ok(None),
                None => Err(self.err(key, format!("expected a token id, found {v:?}"))),
            },
        }
    }
    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(v) => {
                v.as_bool().map(Some).ok_or_else(|| self.err(key, format!("expected a bool, found {}", v.type_name())))
            }
        }
    }
    fn array(&self, key: &str) -> Result<Option<&'a [MetaValue]>> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected an array, found {}", v.type_name()))),
        }
    }
    fn strings(&self, key: &str) -> Result<Option<Vec<&'a str>>> {
        let Some(arr) = self.array(key)? else { return Ok(None) };
        let out = arr.iter().enumerate().map(|(i, v)| {
            v.as_str().ok_or_else(|| self.err(key, format!("element {i} is a {}, not a string", v.type_name())))
        });
        out.collect::<Result<Vec<_>>>().map(Some)
    }
}

/// Builds the tokenizer described by the `tokenizer.ggml.*` keys of `meta`.
pub(crate) fn build(meta: &BTreeMap<String, MetaValue>, source: &str) -> Result<Parts> {
    let m = Meta { meta, source };
    let model = m.str("tokenizer.ggml.model")?.ok_or_else(|| {
        m.err(
            "tokenizer.ggml.model",
            "missing: the file carries no tokenizer (no tokenizer.ggml.* keys); use the model's tokenizer.json instead",
        )
    })?;
    let tokens = m.strings("tokenizer.ggml.tokens")?.ok_or_else(|| m.err("tokenizer.ggml.tokens", "missing"))?;
    if tokens.is_empty() {
        return Err(m.err("tokenizer.ggml.tokens", "empty vocabulary"));
    }
    let types = match m.array("tokenizer.ggml.token_type")? {
        Some(arr) if arr.len() == tokens.len() => arr.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        Some(arr) => {
            let detail = format!("{} entries for {} tokens", arr.len(), tokens.len());
            return Err(m.err("tokenizer.ggml.token_type", detail));
        }
        None => vec![1; tokens.len()],
    };
    let id = |key: &str| -> Result<Option<u32>> {
        match m.u32(key)? {
            Some(i) if i as usize >= tokens.len() => {
                Err(m.err(key, format!("id {i} is outside the vocabulary of {}", tokens.len())))
            }
            other => Ok(other),
        }
    };
    let bos_id = id("tokenizer.ggml.bos_token_id")?;
    let eos_id = id("tokenizer.ggml.eos_token_id")?;
    let unk_id = id("tokenizer.ggml.unknown_token_id")?;
    let extra_eos: Vec<u32> =
        [id("tokenizer.ggml.eot_token_id")?, id("tokenizer.ggml.eom_token_id")?].into_iter().flatten().collect();

    let (mut tk, default_add_bos) = match model {
        "gpt2" => (byte_level_bpe(&m, &tokens)?, false),
        "llama" => (sentencepiece_bpe(&m, &tokens, &types, unk_id)?, true),
        other => {
            let detail = format!("tokenizer model {other:?} is not supported (supported: \"gpt2\", \"llama\")");
            return Err(m.err("tokenizer.ggml.model", detail));
        }
    };

    // Unknown, control and user-defined tokens are matched whole in the text, before pre-tokenization.
    let mut added = Vec::new();
    for (i, (&tok, &ty)) in tokens.iter().zip(&types).enumerate() {
        let special = match ty {
            TYPE_UNKNOWN | TYPE_CONTROL => true,
            TYPE_USER_DEFINED => false,
            _ => continue,
        };
        // A token stored twice keeps its first id, so an added token must not claim a later duplicate.
        if tk.token_to_id(tok) == Some(i as u32) {
            added.push(AddedToken::from(tok, special).normalized(false));
        }
    }
    tk.add_tokens(added)
        .map_err(|e| m.err("tokenizer.ggml.token_type", format!("cannot add the special tokens: {e}")))?;

    let add_bos = m.bool("tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos);
    let add_eos = m.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    if add_bos || add_eos {
        let mut single = Vec::new();
        let mut pair = Vec::new();
        let mut specials = Vec::new();
        if add_bos {
            let bos =
                bos_id.ok_or_else(|| m.err("tokenizer.ggml.bos_token_id", "missing but add_bos_token is true"))?;
            single.push(tokens[bos as usize].to_string());
            pair.push(tokens[bos as usize].to_string());
            specials.push((tokens[bos as usize].to_string(), bos));
        }
        single.push("$A".to_string());
        pair.push("$A".to_string());
        pair.push("$B:1".to_string());
        if add_eos {
            let eos =
                eos_id.ok_or_else(|| m.err("tokenizer.ggml.eos_token_id", "missing but add_eos_token is true"))?;
            single.push(tokens[eos as usize].to_string());
            specials.push((tokens[eos as usize].to_string(), eos));
        }
        specials.dedup();
        let processor = TemplateProcessing::builder()
            .try_single(single)
            .and_then(|b| b.try_pair(pair))
            .map_err(|e| m.err("tokenizer.ggml.add_bos_token", format!("cannot build the bos/eos template: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| m.err("tokenizer.ggml.add_bos_token", format!("cannot build the bos/eos template: {e}")))?;
        tk.with_post_processor(Some(processor));
    }

    let template = m.str("tokenizer.chat_template")?.map(str::to_string);
    Ok(Parts { tk, bos_id, eos_id, extra_eos, template, source: source.to_string() })
}

/// Vocabulary map of `tokens`; a token stored twice keeps its first id.
fn vocab_of(tokens: &[&str]) -> Vocab {
    let mut vocab = Vocab::default();
    for (i, &t) in tokens.iter().enumerate() {
        vocab.entry(t.to_string()).or_insert(i as u32);
    }
    vocab
}

/// GPT-2 style byte-level BPE with the pre-tokenizer named by `tokenizer.ggml.pre`.
fn byte_level_bpe(m: &Meta, tokens: &[&str]) -> Result<tokenizers::Tokenizer> {
    const MERGES: &str = "tokenizer.ggml.merges";
    let merge_lines =
        m.strings(MERGES)?.ok_or_else(|| m.err(MERGES, "missing (a \"gpt2\" tokenizer needs its merges)"))?;
    let mut merges = Vec::with_capacity(merge_lines.len());
    for (i, line) in merge_lines.iter().enumerate() {
        let (a, b) =
            line.split_once(' ').ok_or_else(|| m.err(MERGES, format!("entry {i} {line:?} is not \"left right\"")))?;
        merges.push((a.to_string(), b.to_string()));
    }
    let pre = m.str("tokenizer.ggml.pre")?.unwrap_or("default");
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| m.err("tokenizer.ggml.pre", format!("regex of {pre:?} does not compile: {e}")))?;
        Ok(split.into())
    };
    // ByteLevel with use_regex applies GPT-2's regex itself (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
    // ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`); after a Split it only maps bytes to their printable stand-ins.
    let (pre_tokenizer, normalizer, ignore_merges): (PreTokenizerWrapper, Option<NormalizerWrapper>, bool) = match pre {
        "default" | "gpt2" => (ByteLevel::new(false, true, true).into(), None, false),
        "smollm" | "starcoder" | "refact" => {
            let seq = vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()];
            (PreSequence::new(seq).into(), None, false)
        }
        "llama3" | "llama-bpe" => (
            PreSequence::new(vec![split(LLAMA3_PATTERN)?, ByteLevel::new(false, true, false).into()]).into(),
            None,
            true,
        ),
        "qwen2" => {
            let seq = PreSequence::new(vec![split(QWEN2_PATTERN)?, ByteLevel::new(false, true, false).into()]);
            (seq.into(), Some(NFC.into()), false)
        }
        other => {
            let detail = format!(
                "pre-tokenizer {other:?} is not supported (supported: default, gpt2, smollm, starcoder, refact, llama3, llama-bpe, qwen2)"
            );
            return Err(m.err("tokenizer.ggml.pre", detail));
        }
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_of(tokens), merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| m.err(MERGES, format!("cannot build the BPE model: {e}")))?;
    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(pre_tokenizer));
    if let Some(n) = normalizer {
        tk.with_normalizer(Some(n)).map_err(|e| m.err("tokenizer.ggml.pre", e))?;
    }
    tk.with_decoder(Some(ByteLevel::default()));
    Ok(tk)
}

/// SentencePiece BPE (`transformers`' legacy Llama conversion): `▁` for spaces (one prepended to each text
/// segment when `add_space_prefix`), byte fallback, merges ranked by the merged piece's score.
fn sentencepiece_bpe(m: &Meta, tokens: &[&str], types: &[i64], unk_id: Option<u32>) -> Result<tokenizers::Tokenizer> {
    const SCORES: &str = "tokenizer.ggml.scores";
    let scores: Vec<f32> = match m.array(SCORES)? {
        Some(arr) if arr.len() == tokens.len() => arr.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
        Some(arr) => return Err(m.err(SCORES, format!("{} entries for {} tokens", arr.len(), tokens.len()))),
        None => return Err(m.err(SCORES, "missing (a \"llama\" tokenizer ranks its merges by score)")),
    };
    let vocab = vocab_of(tokens);
    let merges = sentencepiece_merges(tokens, &scores, &vocab);
    let byte_fallback = types.contains(&TYPE_BYTE);
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(byte_fallback).fuse_unk(true);
    if let Some(unk) = unk_id {
        builder = builder.unk_token(tokens[unk as usize].to_string());
    }
    let bpe = builder.build().map_err(|e| m.err(SCORES, format!("cannot build the BPE model: {e}")))?;
    let add_space_prefix = m.bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(true);

    let mut tk = tokenizers::Tokenizer::new(bpe);
    let replace = |from: &str, to: &str| {
        Replace::new(from, to).map_err(|e| m.err("tokenizer.ggml.model", format!("cannot build the normalizer: {e}")))
    };
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        norm.push(Prepend::new("▁".to_string()).into());
    }
    norm.push(replace(" ", "▁")?.into());
    let normalizer = tokenizers::normalizers::Sequence::new(norm);
    tk.with_normalizer(Some(normalizer)).map_err(|e| m.err("tokenizer.ggml.model", e))?;

    let mut dec: Vec<DecoderWrapper> = vec![replace("▁", " ")?.into(), ByteFallback::new().into(), Fuse::new().into()];
    if add_space_prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    tk.with_decoder(Some(DecoderSequence::new(dec)));
    Ok(tk)
}

/// Merges of a SentencePiece vocabulary, as `transformers`' `SentencePieceExtractor` derives them: for every
/// piece, each split into two pieces that are both in the vocabulary (ordered by their ids), then all of them by
/// the merged piece's score, highest first (ties: longer left part, then longer right part, then order found).
fn sentencepiece_merges(tokens: &[&str], scores: &[f32], vocab: &Vocab) -> Vec<(String, String)> {
    let mut merges: Vec<(u32, u32, f32)> = Vec::new();
    for (i, &piece) in tokens.iter().enumerate() {
        if vocab.get(piece) != Some(&(i as u32)) {
            continue; // a duplicate: the first copy already contributed
        }
        let start = merges.len();
        for (cut, _) in piece.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (vocab.get(&piece[..cut]), vocab.get(&piece[cut..])) {
                merges.push((l, r, scores[i]));
            }
        }
        merges[start..].sort_by_key(|&(l, r, _)| (l, r));
    }
    // Python's len(): characters, not bytes.
    let len = |id: u32| tokens[id as usize].chars().count();
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2).then_with(|| len(b.0).cmp(&len(a.0))).then_with(|| len(b.1).cmp(&len(a.1)))
    });
    merges.into_iter().map(|(l, r, _)| (tokens[l as usize].to_string(), tokens[r as usize].to_string())).collect()
}
