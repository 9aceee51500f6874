//! Tokenizer tests on vocabularies built here: a byte-level BPE in GGUF-metadata form and as a tokenizer.json, a
//! SentencePiece BPE with byte fallback; encode/decode round trips, special tokens, digit splitting, UTF-8
//! streaming, eos sets, chat templates and the errors for missing or corrupt sources.

#[allow(dead_code)]
#[path = "loader/gguf_writer.rs"]
mod gguf_writer;

use std::collections::BTreeMap;
use std::path::PathBuf;

use wgpu_llm::loader::MetaValue;
use wgpu_llm::tokenizer::{ChatTemplate, Tokenizer};

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + \
                      '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// GPT-2's byte → printable char map (`bytes_to_unicode`).
fn byte_chars() -> Vec<char> {
    let mut n = 0;
    (0u32..256)
        .map(|b| {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            if printable {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            }
        })
        .collect()
}

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const MERGES: [&str; 11] = ["Ġ t", "h e", "Ġt he", "l l", "e ll", "H ell", "Hell o", "Ġ w", "o r", "Ġw or", "1 2"];

/// Tokens and merges of a tiny byte-level BPE: three control tokens, the 256 byte symbols, then one token per
/// merge. Ids: specials 0–2, byte b at 3 + b, merged tokens from 259 on.
fn byte_level_vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    let mut types = vec![3; 3];
    tokens.extend(byte_chars().into_iter().map(String::from));
    types.extend(std::iter::repeat_n(1, 256));
    for m in MERGES {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    (tokens, types, MERGES.iter().map(|s| s.to_string()).collect())
}

fn strs(v: &[String]) -> MetaValue {
    MetaValue::Array(v.iter().map(|s| MetaValue::Str(s.clone())).collect())
}

fn gpt2_meta(pre: &str) -> BTreeMap<String, MetaValue> {
    let (tokens, types, merges) = byte_level_vocab();
    let mut m = BTreeMap::new();
    m.insert("tokenizer.ggml.model".into(), MetaValue::Str("gpt2".into()));
    m.insert("tokenizer.ggml.pre".into(), MetaValue::Str(pre.into()));
    m.insert("tokenizer.ggml.tokens".into(), strs(&tokens));
    m.insert("tokenizer.ggml.token_type".into(), MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()));
    m.insert("tokenizer.ggml.merges".into(), strs(&merges));
    m.insert("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(1));
    m.insert("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(2));
    m.insert("tokenizer.chat_template".into(), MetaValue::Str(CHATML.into()));
    m
}

fn gpt2(pre: &str) -> Tokenizer {
    Tokenizer::from_gguf_metadata(&gpt2_meta(pre), "test.gguf").unwrap()
}

fn byte_id(b: u8) -> u32 {
    3 + b as u32
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-tok-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn byte_level_merges_and_round_trip() {
    let tok = gpt2("default");
    let id = |t: &str| tok.token_to_id(t).unwrap();
    assert_eq!(
        tok.encode("Hello the world", false).unwrap(),
        vec![id("Hello"), id("Ġthe"), id("Ġwor"), byte_id(b'l'), byte_id(b'd')]
    );
    assert_eq!(tok.id_to_token(id("Ġthe")).as_deref(), Some("Ġthe"));
    assert_eq!(tok.vocab_size(), 3 + 256 + MERGES.len());
    for text in ["Hello the world", "  two  spaces\n\ttab", "naïve café ½ 😀 日本語", "12345", "", "a\r\nb"] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false), text, "round trip of {text:?} via {ids:?}");
    }
}

#[test]
fn special_tokens_in_text_are_single_ids() {
    let tok = gpt2("smollm");
    let ids = tok.encode("<|im_start|>user\nHello<|im_end|>", false).unwrap();
    let nl = byte_id(b'\n');
    let user: Vec<u32> = "user".bytes().map(byte_id).collect();
    let mut want = vec![1];
    want.extend(user);
    want.extend([nl, tok.token_to_id("Hello").unwrap(), 2]);
    assert_eq!(ids, want);
    assert!(tok.is_special(1) && tok.is_special(2) && !tok.is_special(nl));
    assert_eq!(tok.decode(&ids, false), "<|im_start|>user\nHello<|im_end|>");
    assert_eq!(tok.decode(&ids, true), "user\nHello");
    // A special token's text split by other text is not the special token.
    assert!(!tok.encode("<|im_sta rt|>", false).unwrap().contains(&1));
}

#[test]
fn smollm_splits_every_digit() {
    let (d1, d2, d3) = (byte_id(b'1'), byte_id(b'2'), byte_id(b'3'));
    let twelve = gpt2("default").token_to_id("12").unwrap();
    assert_eq!(gpt2("default").encode("123", false).unwrap(), vec![twelve, d3]);
    assert_eq!(gpt2("gpt2").encode("123", false).unwrap(), vec![twelve, d3]);
    assert_eq!(gpt2("smollm").encode("123", false).unwrap(), vec![d1, d2, d3]);
    assert_eq!(gpt2("smollm").encode("a12", false).unwrap(), vec![byte_id(b'a'), d1, d2]);
    // Llama 3 groups digits by three, before the merges apply.
    assert_eq!(gpt2("llama3").encode("1234", false).unwrap(), vec![twelve, d3, byte_id(b'4')]);
    assert_eq!(gpt2("qwen2").encode("12", false).unwrap(), vec![d1, d2]);
}

#[test]
fn bos_is_added_only_when_asked() {
    let mut meta = gpt2_meta("smollm");
    assert_eq!(gpt2("smollm").encode("Hello", true).unwrap(), gpt2("smollm").encode("Hello", false).unwrap());
    meta.insert("tokenizer.ggml.add_bos_token".into(), MetaValue::Bool(true));
    let tok = Tokenizer::from_gguf_metadata(&meta, "test.gguf").unwrap();
    let hello = tok.token_to_id("Hello").unwrap();
    assert_eq!(tok.encode("Hello", true).unwrap(), vec![1, hello]);
    assert_eq!(tok.encode("Hello", false).unwrap(), vec![hello]);
    assert_eq!(tok.bos_id(), Some(1));
}

#[test]
fn eos_set_has_eos_and_end_tokens() {
    let tok = gpt2("smollm");
    assert_eq!(tok.eos_id(), Some(2));
    assert_eq!(tok.eos_ids().iter().copied().collect::<Vec<_>>(), vec![0, 2]);
    assert!(tok.is_eos(0) && tok.is_eos(2) && !tok.is_eos(1));
}

#[test]
fn stream_holds_back_split_characters() {
    let tok = gpt2("smollm");
    let text = "Hello 😀 the é";
    let ids = tok.encode(text, false).unwrap();
    let emoji: Vec<u32> = "😀".bytes().map(byte_id).collect();
    assert!(ids.windows(4).any(|w| w == emoji.as_slice()), "the emoji should be four byte tokens: {ids:?}");
    let mut stream = tok.stream_decoder(false);
    let mut out = String::new();
    for &id in &ids {
        if let Some(piece) = stream.step(id) {
            assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} carries a replacement character");
            out.push_str(&piece);
        }
    }
    assert!(!stream.has_pending());
    assert_eq!(out + &stream.flush(), text);

    // The first three bytes of the emoji give nothing; the fourth gives it whole.
    let mut stream = tok.stream_decoder(false);
    assert_eq!(stream.step(tok.token_to_id("Hello").unwrap()).as_deref(), Some("Hello"));
    assert_eq!(stream.step(byte_id(b' ')).as_deref(), Some(" "));
    for &b in &emoji[..3] {
        assert_eq!(stream.step(b), None);
    }
    assert_eq!(stream.step(emoji[3]).as_deref(), Some("😀"));
    // An unfinished character at the end comes out by flush, lossy.
    assert_eq!(stream.step(emoji[0]), None);
    assert_eq!(stream.flush(), "\u{FFFD}");
}

#[test]
fn stream_skips_special_tokens() {
    let tok = gpt2("smollm");
    let ids = tok.encode("<|im_start|>Hello the<|im_end|>", false).unwrap();
    let mut stream = tok.stream_decoder(true);
    assert_eq!(stream.extend(&ids) + &stream.flush(), "Hello the");
}

/// A tiny SentencePiece BPE: `<unk> <s> </s>`, 256 byte tokens, then pieces with scores.
fn spm_meta() -> BTreeMap<String, MetaValue> {
    let pieces: [(&str, f32); 12] = [
        ("▁", -1.0),
        ("H", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("w", -2.0),
        ("▁H", -3.0),
        ("ll", -4.0),
        ("▁He", -5.0),
        ("▁Hell", -6.0),
        ("▁Hello", -7.0),
        ("▁w", -8.0),
    ];
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].iter().map(|s| s.to_string()).collect();
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (p, s) in pieces {
        tokens.push(p.to_string());
        types.push(1);
        scores.push(s);
    }
    let mut m = BTreeMap::new();
    m.insert("tokenizer.ggml.model".into(), MetaValue::Str("llama".into()));
    m.insert("tokenizer.ggml.tokens".into(), strs(&tokens));
    m.insert("tokenizer.ggml.token_type".into(), MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()));
    m.insert("tokenizer.ggml.scores".into(), MetaValue::Array(scores.into_iter().map(MetaValue::F32).collect()));
    m.insert("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(1));
    m.insert("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(2));
    m.insert("tokenizer.ggml.unknown_token_id".into(), MetaValue::U32(0));
    m
}

#[test]
fn sentencepiece_with_byte_fallback() {
    let tok = Tokenizer::from_gguf_metadata(&spm_meta(), "spm.gguf").unwrap();
    let id = |t: &str| tok.token_to_id(t).unwrap();
    // add_bos_token defaults to true for "llama"; a space prefix is added.
    assert_eq!(tok.encode("Hello", true).unwrap(), vec![1, id("▁Hello")]);
    let ids = tok.encode("Hello wé", false).unwrap();
    assert_eq!(ids, vec![id("▁Hello"), id("▁w"), id("<0xC3>"), id("<0xA9>")]);
    assert_eq!(tok.decode(&ids, false), "Hello wé");
    assert_eq!(tok.decode(&tok.encode("Hello", true).unwrap(), true), "Hello");
    let mut stream = tok.stream_decoder(true);
    let pieces: Vec<Option<String>> = ids.iter().map(|&i| stream.step(i)).collect();
    assert_eq!(pieces, vec![Some("Hello".into()), Some(" w".into()), None, Some("é".into())]);
    assert_eq!(tok.eos_ids().iter().copied().collect::<Vec<_>>(), vec![2]);
    assert!(tok.chat_template().is_fallback());
}

/// The byte-level vocabulary as a Hugging Face tokenizer.json.
fn tokenizer_json() -> String {
    let (tokens, _, merges) = byte_level_vocab();
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
    let added: Vec<serde_json::Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    })
    .to_string()
}

#[test]
fn tokenizer_json_folder_matches_gguf_build() {
    let dir = tmp_dir("hf");
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    let config = serde_json::json!({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
        "chat_template": CHATML});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("generation_config.json"), r#"{"eos_token_id": [2, 0], "bos_token_id": 1}"#).unwrap();
    let hf = Tokenizer::from_path(&dir).unwrap();
    let gg = gpt2("smollm");
    for text in ["<|im_start|>user\nHello the world 123<|im_end|>", "naïve 😀\n\n  x", "12 the"] {
        assert_eq!(hf.encode(text, true).unwrap(), gg.encode(text, true).unwrap(), "{text:?}");
    }
    assert_eq!((hf.bos_id(), hf.eos_id()), (Some(1), Some(2)));
    assert_eq!(hf.eos_ids(), gg.eos_ids());
    let msgs = [("user", "Hi")];
    assert_eq!(hf.apply_chat_template(&msgs, true).unwrap(), gg.apply_chat_template(&msgs, true).unwrap());
    assert!(!hf.chat_template().is_fallback());

    // The same through a GGUF file on disk.
    let mut w = gguf_writer::GgufWriter::new();
    for (k, v) in gpt2_meta("smollm") {
        w.kv(&k, v);
    }
    let path = dir.join("model.gguf");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let from_file = Tokenizer::from_path(&path).unwrap();
    assert_eq!(from_file.encode("Hello 123", false).unwrap(), gg.encode("Hello 123", false).unwrap());
    assert!(from_file.source().ends_with("model.gguf"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn chatml_rendering() {
    let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
    let with_system = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")];
    assert_eq!(
        t.render(&with_system, true).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(t.render(&[("user", "Hi")], false).unwrap(), "<|im_start|>user\nHi<|im_end|>\n");
    let fallback = ChatTemplate::chatml();
    assert!(fallback.is_fallback() && !t.is_fallback());
    assert_eq!(fallback.render(&with_system, true).unwrap(), t.render(&with_system, true).unwrap());
}

#[test]
fn template_features_used_by_hf_templates() {
    // SmolLM2's template: a default system message when none is given.
    let smol = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are SmolLM<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    let t = ChatTemplate::new(smol, "", "").unwrap();
    assert_eq!(
        t.render(&[("user", "Hi")], true).unwrap(),
        "<|im_start|>system\nYou are SmolLM<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&[("system", "S"), ("user", "Hi")], false).unwrap(),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );

    // trim_blocks / lstrip_blocks as transformers sets them, bos_token, .strip(), tojson, loop controls.
    let src = "{{ bos_token }}\n{% for m in messages %}\n    {% if m['role'] == 'skip' %}{% continue %}{% endif %}\n[{{ m['content'].strip() }}]\n{% endfor %}\n{{ messages[0] | tojson }}\n";
    let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
    assert_eq!(
        t.render(&[("user", "  a\"é\n "), ("skip", "x"), ("user", "b")], false).unwrap(),
        "<s>\n[a\"é]\n[b]\n{\"role\": \"user\", \"content\": \"  a\\\"é\\n \"}"
    );

    let err =
        ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap().render(&[("u", "x")], false);
    assert!(err.unwrap_err().to_string().contains("no system role"));
    assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    let date =
        ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", "", "").unwrap().render(&[("u", "x")], false).unwrap();
    assert!(date.len() == 10 && date.starts_with("20"), "{date}");
}

#[test]
fn errors_name_the_file_and_key() {
    let msg = |r: Result<Tokenizer, wgpu_llm::Error>| r.unwrap_err().to_string();
    let mut m = gpt2_meta("smollm");
    m.remove("tokenizer.ggml.model");
    let e = msg(Tokenizer::from_gguf_metadata(&m, "x.gguf"));
    assert!(e.contains("x.gguf") && e.contains("tokenizer.ggml.model") && e.contains("no tokenizer"), "{e}");
    let e = msg(Tokenizer::from_gguf_metadata(&BTreeMap::new(), "empty.gguf"));
    assert!(e.contains("empty.gguf") && e.contains("tokenizer.ggml.model"), "{e}");
    m.insert("tokenizer.ggml.model".into(), MetaValue::Str("bert".into()));
    assert!(msg(Tokenizer::from_gguf_metadata(&m, "x.gguf")).contains("\"bert\""));
    let e = msg(Tokenizer::from_gguf_metadata(&gpt2_meta("falcon9"), "x.gguf"));
    assert!(e.contains("tokenizer.ggml.pre") && e.contains("falcon9"), "{e}");
    let mut m = gpt2_meta("default");
    m.insert("tokenizer.ggml.merges".into(), strs(&["Ġ zz".to_string()]));
    assert!(msg(Tokenizer::from_gguf_metadata(&m, "x.gguf")).contains("tokenizer.ggml.merges"));
    m.remove("tokenizer.ggml.merges");
    assert!(msg(Tokenizer::from_gguf_metadata(&m, "x.gguf")).contains("tokenizer.ggml.merges"));
    let mut m = gpt2_meta("default");
    m.insert("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(99_999));
    assert!(msg(Tokenizer::from_gguf_metadata(&m, "x.gguf")).contains("tokenizer.ggml.eos_token_id"));
    let mut m = spm_meta();
    m.remove("tokenizer.ggml.scores");
    assert!(msg(Tokenizer::from_gguf_metadata(&m, "x.gguf")).contains("tokenizer.ggml.scores"));

    let dir = tmp_dir("bad");
    let e = msg(Tokenizer::from_path(dir.join("tokenizer.json")));
    assert!(e.contains("tokenizer.json") && e.contains("cannot read"), "{e}");
    std::fs::write(dir.join("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": 3").unwrap();
    let e = msg(Tokenizer::from_path(&dir));
    assert!(e.contains("tokenizer.json") && e.contains("not a valid tokenizer.json"), "{e}");
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), "{not json").unwrap();
    let e = msg(Tokenizer::from_path(&dir));
    assert!(e.contains("tokenizer_config.json") && e.contains("not valid JSON"), "{e}");
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"eos_token": "<|nope|>"}"#).unwrap();
    let e = msg(Tokenizer::from_path(&dir));
    assert!(e.contains("tokenizer_config.json") && e.contains("<|nope|>"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    let empty = tmp_dir("empty");
    assert!(msg(Tokenizer::from_path(&empty)).contains("neither tokenizer.json nor a .gguf"));
    std::fs::remove_dir_all(&empty).ok();
}

#[test]
fn in_memory_hf_files_and_template_list() {
    let config = serde_json::json!({"eos_token": "<|im_end|>", "chat_template": [
        {"name": "tool_use", "template": "{{ 'tools' }}"}, {"name": "default", "template": CHATML}]});
    let tok = Tokenizer::from_hf_json(&tokenizer_json(), Some(&config.to_string()), None, "mem").unwrap();
    assert_eq!(tok.apply_chat_template(&[("user", "Hi")], false).unwrap(), "<|im_start|>user\nHi<|im_end|>\n");
    assert_eq!(tok.eos_ids().iter().copied().collect::<Vec<_>>(), vec![0, 2]);
    // No config at all: no bos/eos, ChatML stated as a fallback, end-of-text still ends generation.
    let bare = Tokenizer::from_hf_json(&tokenizer_json(), None, None, "mem").unwrap();
    assert!(bare.chat_template().is_fallback() && bare.bos_id().is_none() && bare.eos_id().is_none());
    assert!(bare.is_eos(0));
    let e = Tokenizer::from_hf_json(&tokenizer_json(), Some("[1]"), None, "mem").unwrap_err().to_string();
    assert!(e.contains("tokenizer_config.json (beside mem)") && e.contains("not a JSON object"), "{e}");
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tokenizer>();
    send_sync::<wgpu_llm::tokenizer::StreamDecoder>();
}
