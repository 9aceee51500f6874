//! The Hugging Face source: `tokenizer.json` (read by the `tokenizers` crate as is), with the bos/eos tokens and
//! chat template of `tokenizer_config.json` (or `chat_template.jinja`) and the eos ids of `generation_config.json`.

use std::path::Path;

use serde_json::Value;

use super::{file_err, Parts};
use crate::error::{Error, Result};

/// Reads `tokenizer.json` at `path` and the optional config files beside it.
/// What the tokenizers crate trusts in a template post-processor (alone or inside a Sequence) and panics on in
/// `encode` otherwise (found by `scripts/fuzz.sh`, tests/fuzz_regressions/tokenizer/): every special token a
/// template names is in its `special_tokens` (`no entry found for key`), the single-sequence template uses
/// sequence A only (`index out of bounds`), and each special token has as many ids as tokens. The crate reads
/// post-processors by their shape, whatever their "type" says, so the checks go by shape too.
fn check_templates(pp: &serde_json::Value) -> std::result::Result<(), String> {
    if let Some(list) = pp.get("processors").and_then(|p| p.as_array()) {
        list.iter().try_for_each(check_templates)?;
    }
    let known = pp.get("special_tokens").and_then(|s| s.as_object());
    for (name, tok) in known.into_iter().flatten() {
        let len = |k: &str| tok.get(k).and_then(|v| v.as_array()).map(Vec::len);
        if len("ids") != len("tokens") {
            return Err(format!("post_processor.special_tokens.{name}: ids and tokens differ in length"));
        }
    }
    for part in ["single", "pair"] {
        for piece in pp.get(part).and_then(|p| p.as_array()).into_iter().flatten() {
            if part == "single" && piece.get("Sequence").and_then(|s| s.get("id")).and_then(|i| i.as_str()) == Some("B")
            {
                return Err("post_processor.single uses sequence B: a single sequence is A".into());
            }
            let Some(id) = piece.get("SpecialToken").and_then(|s| s.get("id")).and_then(|i| i.as_str()) else {
                continue;
            };
            if !known.is_some_and(|k| k.contains_key(id)) {
                return Err(format!(
                    "post_processor.{part} names the special token {id:?}, which post_processor.special_tokens lacks"
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn load_dir_files(path: &Path) -> Result<Parts> {
    let tokenizer_json = std::fs::read_to_string(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let config = read_optional(&dir.join("tokenizer_config.json"))?;
    let generation = read_optional(&dir.join("generation_config.json"))?;
    let jinja = read_optional(&dir.join("chat_template.jinja"))?;
    let mut parts = from_strings(
        &tokenizer_json,
        config.as_deref(),
        generation.as_deref(),
        jinja.as_deref(),
        &path.display().to_string(),
        &|name| dir.join(name).display().to_string(),
    )?;
    parts.source = path.display().to_string();
    Ok(parts)
}

/// The tokenizer from file contents; `source` names the tokenizer.json in errors and `sibling` the path of a
/// config file beside it.
pub(crate) fn from_strings(
    tokenizer_json: &str,
    tokenizer_config: Option<&str>,
    generation_config: Option<&str>,
    chat_template_jinja: Option<&str>,
    source: &str,
    sibling: &dyn Fn(&str) -> String,
) -> Result<Parts> {
    let err = |detail: String| Error::Format { file: source.to_string(), detail };
    let config_err = |detail: String| Error::Format { file: sibling("tokenizer_config.json"), detail };
    // JSON first, then the tokenizer from the parsed value: the tokenizers crate panics (`expect("Helper")`)
    // when its streaming parser meets a syntax error inside some sections (found by `scripts/fuzz.sh`,
    // tests/fuzz_regressions/tokenizer/); a syntax error is now ours to report.
    let value: serde_json::Value =
        serde_json::from_str(tokenizer_json).map_err(|e| err(format!("not a valid tokenizer.json (not JSON: {e})")))?;
    check_templates(&value["post_processor"]).map_err(err)?;
    let mut tk: tokenizers::Tokenizer =
        serde_json::from_value(value).map_err(|e| err(format!("not a valid tokenizer.json: {e}")))?;
    // `encode` gives a text's ids: padding and truncation (all-MiniLM's tokenizer.json pads to 128) belong to
    // the batching code, which knows the model's limits.
    tk.with_padding(None);
    tk.with_truncation(None).map_err(|e| err(format!("cannot turn truncation off: {e}")))?;

    let config = parse_json(tokenizer_config).map_err(config_err)?;
    let generation = parse_json(generation_config)
        .map_err(|detail| Error::Format { file: sibling("generation_config.json"), detail })?;

    let token_id = |key: &str| -> std::result::Result<Option<u32>, String> {
        let Some(v) = config.as_ref().and_then(|c| c.get(key)) else { return Ok(None) };
        let content = match v {
            Value::Null => return Ok(None),
            Value::String(s) => s.as_str(),
            Value::Object(o) => o.get("content").and_then(Value::as_str).unwrap_or(""),
            _ => return Err(format!("{key} is neither a string nor a token")),
        };
        tk.token_to_id(content)
            .map(Some)
            .ok_or_else(|| format!("{key} {content:?} is not in the vocabulary of {source}"))
    };
    let gen_ids = |key: &str| -> Vec<u32> {
        match generation.as_ref().and_then(|g| g.get(key)) {
            Some(Value::Number(n)) => n.as_u64().map(|v| v as u32).into_iter().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).map(|v| v as u32).collect(),
            _ => Vec::new(),
        }
    };

    let gen_eos = gen_ids("eos_token_id");
    let bos_id = token_id("bos_token").map_err(config_err)?.or_else(|| gen_ids("bos_token_id").first().copied());
    let eos_id = token_id("eos_token").map_err(config_err)?.or_else(|| gen_eos.first().copied());

    let template = match chat_template_jinja {
        Some(t) => Some(t.to_string()),
        None => match config.as_ref().and_then(|c| c.get("chat_template")) {
            Some(v) => template_of(v).map_err(config_err)?,
            None => None,
        },
    };

    Ok(Parts { tk, bos_id, eos_id, extra_eos: gen_eos, template, source: source.to_string() })
}

/// A config's `chat_template`: a string, or a list of `{name, template}` of which `default` is used.
fn template_of(v: &Value) -> std::result::Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Array(list) => {
            let named = |name: &str| {
                list.iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
                    .and_then(|t| t.get("template"))
            };
            match named("default").and_then(Value::as_str) {
                Some(s) => Ok(Some(s.to_string())),
                None => Err("chat_template list has no \"default\" entry".to_string()),
            }
        }
        _ => Err("chat_template is neither a string nor a list".to_string()),
    }
}

fn parse_json(text: Option<&str>) -> std::result::Result<Option<Value>, String> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        Ok(_) => Err("not a JSON object".to_string()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// The contents of a file that may be absent; any other read error is an error.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_err(path, format!("cannot read: {e}"))),
    }
}
