//! Instruction data for finetuning a decoder (`finetune --task lm`): JSONL lines of `{"messages": [...]}`
//! (rendered with the model's chat template), `{"prompt", "completion"}` (joined as they are) or `{"text"}`.
//! Each line becomes token ids and labels: the id itself on the tokens to learn, -100 (cross-entropy's
//! ignore index) elsewhere. In a conversation only the assistant replies are learned (their text and the
//! template's end-of-turn markup after it, up to the next message); a completion only; a text all of it.

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// The ignore index of the loss.
pub const IGNORE: i32 = -100;

/// One training sequence: `labels[i]` is `ids[i]` where it is learned, `IGNORE` elsewhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub labels: Vec<i32>,
}

impl Sequence {
    /// The next-token targets: target i is label i + 1 (the last position predicts nothing).
    pub fn targets(&self) -> Vec<i32> {
        self.labels.iter().skip(1).copied().chain(std::iter::once(IGNORE)).collect()
    }
    /// How many positions carry a loss: the learned labels after the first (which nothing predicts).
    pub fn learned_targets(&self) -> usize {
        self.labels.iter().skip(1).filter(|&&l| l != IGNORE).count()
    }
    pub fn learned(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE).count()
    }
}

/// A line's text and the byte spans of it to learn; `add_special` when the tokenizer should add what it adds
/// around a sequence (a chat template writes its own).
pub struct Rendered {
    pub text: String,
    pub spans: Vec<Range<usize>>,
    pub add_special: bool,
}

/// Render one JSONL value. `train_on_prompt` learns every token.
pub fn render(tok: &Tokenizer, v: &serde_json::Value, train_on_prompt: bool) -> std::result::Result<Rendered, String> {
    let obj = v.as_object().ok_or("not a JSON object")?;
    let str_field = |k: &str| -> std::result::Result<Option<String>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{k:?} must be a string, not {other}")),
        }
    };
    let r = if let Some(m) = obj.get("messages") {
        let list = m.as_array().ok_or("\"messages\" must be a list")?;
        let mut msgs = vec![];
        for (i, m) in list.iter().enumerate() {
            let role = m["role"].as_str().ok_or(format!("message {i} has no \"role\" string"))?;
            let content = m["content"].as_str().ok_or(format!("message {i} has no \"content\" string"))?;
            msgs.push((role.to_string(), content.to_string()));
        }
        let render = |m: &[(String, String)], gen: bool| tok.apply_chat_template(m, gen).map_err(|e| e.to_string());
        let text = render(&msgs, false)?;
        let mut spans = vec![];
        for (i, (role, _)) in msgs.iter().enumerate() {
            if role != "assistant" {
                continue;
            }
            let before = render(&msgs[..i], true)?;
            let through = render(&msgs[..=i], false)?;
            if !through.starts_with(&before) || !text.starts_with(&through) {
                return Err("the chat template does not render a conversation as an extension of its beginning, \
                            so the assistant replies cannot be located"
                    .into());
            }
            spans.push(before.len()..through.len());
        }
        if spans.is_empty() {
            return Err("the conversation has no assistant turn: nothing to learn".into());
        }
        Rendered { text, spans, add_special: false }
    } else if let Some(p) = str_field("prompt")? {
        let c = str_field("completion")?.ok_or("a \"prompt\" needs a \"completion\"")?;
        let eos = tok.eos_id().and_then(|id| tok.id_to_token(id)).unwrap_or_default();
        let text = format!("{p}{c}{eos}");
        Rendered { spans: std::iter::once(p.len()..text.len()).collect(), text, add_special: true }
    } else if let Some(t) = str_field("text")? {
        let eos = tok.eos_id().and_then(|id| tok.id_to_token(id)).unwrap_or_default();
        let text = format!("{t}{eos}");
        Rendered { spans: std::iter::once(0..text.len()).collect(), text, add_special: true }
    } else {
        return Err("expected \"messages\", \"prompt\" + \"completion\", or \"text\"".into());
    };
    Ok(if train_on_prompt { Rendered { spans: std::iter::once(0..r.text.len()).collect(), ..r } } else { r })
}

/// Token ids and labels of a rendered line: a token is learned when its text starts inside a span. Cut to
/// `max_len` tokens.
pub fn encode(tok: &Tokenizer, r: &Rendered, max_len: usize) -> Result<Sequence> {
    let enc = tok
        .hf()
        .encode(r.text.as_str(), r.add_special)
        .map_err(|e| Error::Format { file: tok.source().into(), detail: format!("encode: {e}") })?;
    let mut ids = enc.get_ids().to_vec();
    let mut labels: Vec<i32> = enc
        .get_ids()
        .iter()
        .zip(enc.get_offsets())
        .map(|(&id, &(s, e))| {
            let inside = e > s && r.spans.iter().any(|sp| sp.contains(&s));
            if inside {
                id as i32
            } else {
                IGNORE
            }
        })
        .collect();
    ids.truncate(max_len);
    labels.truncate(max_len);
    Ok(Sequence { ids, labels })
}

/// Read a JSONL file into sequences. Every problem names the file and line, before any GPU work; lines whose
/// learned tokens all fall beyond `max_len` are dropped (and counted in the second value).
pub fn read_jsonl(
    path: &Path,
    tok: &Tokenizer,
    max_len: usize,
    train_on_prompt: bool,
) -> Result<(Vec<Sequence>, usize)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Format { file: path.display().to_string(), detail: format!("cannot read: {e}") })?;
    let (mut out, mut dropped) = (vec![], 0);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: String| Error::Format { file: format!("{}:{}", path.display(), i + 1), detail };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let r = render(tok, &v, train_on_prompt).map_err(bad)?;
        let s = encode(tok, &r, max_len)?;
        if s.learned_targets() == 0 {
            dropped += 1;
            continue;
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err(Error::Format {
            file: path.display().to_string(),
            detail: format!("no line has a token to learn within --max-length {max_len}"),
        });
    }
    Ok((out, dropped))
}
