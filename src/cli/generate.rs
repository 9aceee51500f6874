//! `generate`, `chat` and `tokenize`: text in, streamed text out, over a `Session`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::model_path::resolve;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::Precision;
use crate::sample::{Sampler, SamplerConfig};
use crate::session::{generate, Session};
use crate::tensor::DType;
use crate::tokenizer::Tokenizer;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A .gguf file, a Hugging Face model folder, or a known model name (default: smollm2, fetched on first use).
    #[arg(short, long)]
    pub model: Option<String>,
    /// Weights and activations: f32, f16, int8 (int8 linear weights quantized on load, float activations)
    /// or w8a8 (int8 weights, activations quantized per block on the fly; int8 dot products where the
    /// adapter's tier has them). Default: the fastest float the adapter's tier supports, or a quantized
    /// checkpoint's own scheme.
    #[arg(long)]
    pub dtype: Option<String>,
    /// With --dtype int8|w8a8: comma-separated fragments of linear layer names that keep float weights
    /// (default: lm_head, the output head; `none` quantizes every linear layer).
    #[arg(long)]
    pub keep: Option<String>,
    /// Context (KV cache) length.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// A LoRA adapter folder (PEFT's format, as `finetune --task lm` writes it), merged into the weights on load.
    #[arg(long)]
    pub lora: Option<PathBuf>,
    /// generate and chat: skip the warm-up at load (a throwaway 16-token prefill and decode step that makes
    /// the driver compile its pipelines before the first prompt, so that its first token comes sooner).
    #[arg(long)]
    pub no_warmup: bool,
}

impl ModelArgs {
    pub fn precision(&self, gpu: &Gpu) -> Result<Precision> {
        // f16 wherever the adapter has it: it halves the bytes each decode step reads and the memory, and on
        // a CPU adapter (llvmpipe) the texture GEMMs read eight f16 values a texel against four f32 ones, at
        // the same perplexity (README, "Measurements behind the design").
        let float = if gpu.caps().f16 { DType::F16 } else { DType::F32 };
        match self.dtype.as_deref() {
            None => Ok(float.into()),
            Some(d) => parse_precision(d, float, self.keep.as_deref()),
        }
    }
    pub fn path(&self) -> Result<PathBuf> {
        resolve(self.model.as_deref())
    }
    /// The model with its adapter, if any, in `batch` sequences.
    pub fn session<'g>(&self, gpu: &'g Gpu, path: &std::path::Path, batch: usize) -> Result<Session<'g>> {
        let adapter = self.lora.as_deref().map(crate::train::lora::Adapter::load).transpose()?;
        Session::load_adapted(gpu, path, self.precision(gpu)?, self.ctx, batch, adapter.as_ref())
    }
}

/// `--dtype` as every model command takes it; int8 schemes compute in `float`.
pub fn parse_precision(d: &str, float: DType, keep: Option<&str>) -> Result<Precision> {
    Precision::parse(d, float, keep)
}

#[derive(Args, Clone)]
pub struct SampleArgs {
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SampleArgs {
    pub fn sampler(&self) -> Result<Sampler> {
        let bad = |flag: &str, v: f32, want: &str| Err(Error::Other(format!("{flag} {v}: must be {want}")));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("--temperature", self.temperature, "≥ 0 (0 = greedy)");
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad("--top-p", self.top_p, "in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("--min-p", self.min_p, "in [0, 1]");
        }
        // The penalty divides positive logits and multiplies negative ones: 0 or less would reward repeats.
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("--repetition-penalty", self.repetition_penalty, "> 0 (1 = off)");
        }
        Ok(Sampler::new(SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
        }))
    }
}

/// The model, its tokenizer and path, warmed up unless `--no-warmup`; the warm-up's seconds (0 without).
fn open<'g>(gpu: &'g Gpu, m: &ModelArgs) -> Result<(Session<'g>, Tokenizer, PathBuf, f64)> {
    let path = m.path()?;
    let tok = Tokenizer::from_path(&path)?;
    let mut s = m.session(gpu, &path, 1)?;
    let warmup = if m.no_warmup { 0.0 } else { s.warm_up()? };
    Ok((s, tok, path, warmup))
}

/// Several prompts as one batch (`session::batch`): each prompt's text (cut at a stop string) in order, or
/// a JSON array of {prompt_tokens, tokens, text}, with the batch's timings.
pub fn run_generate_batch(
    gpu: &Gpu,
    m: &ModelArgs,
    sa: &SampleArgs,
    prompts: &[String],
    n: usize,
    json: bool,
    stops: &[String],
) -> Result<()> {
    let mut samplers: Vec<_> = prompts.iter().map(|_| sa.sampler()).collect::<Result<_>>()?;
    let path = m.path()?;
    let tok = Tokenizer::from_path(&path)?;
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| tok.encode(p, true)).collect::<Result<_>>()?;
    if let Some(i) = ids.iter().position(|t| t.is_empty()) {
        return Err(Error::Other(format!("prompt {} is empty: it encodes to no tokens", i + 1)));
    }
    let mut s = m.session(gpu, &path, prompts.len())?;
    let eos: Vec<u32> = tok.eos_ids().iter().copied().collect();
    let gens = crate::session::batch::generate_batch(&mut s, &ids, n, &mut samplers, &eos, 0)?;
    let mut items = vec![];
    for (i, g) in gens.iter().enumerate() {
        let mut text = tok.decode(&g.tokens, true);
        if let Some(cut) = cut_at_stop(&text, stops) {
            text.truncate(cut);
        }
        if json {
            items.push(serde_json::json!({"prompt_tokens": ids[i], "tokens": g.tokens, "text": text}));
        } else {
            println!("[{i}] {}{text}", prompts[i]);
        }
    }
    let t = &gens[0].timings;
    if json {
        let v = serde_json::json!({"results": items, "timings": t, "dtype": s.prec.name(), "adapter": gpu.info.name,
            "batch": prompts.len()});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        eprintln!(
            "[{} prompts: {} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s (batch), {}, {}]",
            prompts.len(),
            t.prompt_tokens,
            t.prefill_tokens_per_sec,
            t.generated_tokens,
            t.decode_tokens_per_sec,
            s.prec.name(),
            gpu.info.name
        );
    }
    Ok(())
}

/// Stop strings: cut the text at the first one and report whether one was found.
fn cut_at_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

#[allow(clippy::too_many_arguments)]
pub fn run_generate(
    gpu: &Gpu,
    m: &ModelArgs,
    sa: &SampleArgs,
    prompt: &str,
    n: usize,
    json: bool,
    top_logprobs: usize,
    stops: &[String],
) -> Result<()> {
    let mut sampler = sa.sampler()?;
    let (mut s, tok, _, warmup) = open(gpu, m)?;
    let ids = tok.encode(prompt, true)?;
    if ids.is_empty() {
        return Err(Error::Other(
            "the prompt is empty: it encodes to no tokens, so there is nothing to continue".into(),
        ));
    }
    let eos: Vec<u32> = tok.eos_ids().iter().copied().collect();
    let mut dec = tok.stream_decoder(true);
    let mut text = String::new();
    let mut stdout = std::io::stdout();
    let g = generate(&mut s, &ids, n, &mut sampler, &eos, top_logprobs, &mut |id| {
        if let Some(piece) = dec.step(id) {
            let before = text.len();
            text.push_str(&piece);
            if let Some(cut) = cut_at_stop(&text, stops) {
                if !json {
                    print!("{}", &text[before.min(cut)..cut]);
                }
                text.truncate(cut);
                return false;
            }
            if !json {
                print!("{piece}");
                let _ = stdout.flush();
            }
        }
        true
    })?;
    if cut_at_stop(&text, stops).is_none() {
        let rest = dec.flush();
        if !json {
            print!("{rest}");
        }
        text.push_str(&rest);
    }
    if json {
        let logprobs: Vec<serde_json::Value> = g
            .logprobs
            .iter()
            .take(g.tokens.len())
            .map(|l| {
                serde_json::json!({
                    "token": l.token, "logprob": l.logprob,
                    "top": l.top.iter().map(|(t, p)| serde_json::json!({"token": t, "logprob": p})).collect::<Vec<_>>()
                })
            })
            .collect();
        let v = serde_json::json!({
            "prompt_tokens": ids, "tokens": g.tokens, "text": text, "logprobs": logprobs,
            "timings": g.timings, "dtype": s.prec.name(), "adapter": gpu.info.name,
            "decode_dispatches_per_token": s.decode_dispatches(),
            "load_secs": s.load_secs, "warmup_secs": warmup,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!();
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s, first token after {:.2} s, {}, {}]",
            g.timings.prompt_tokens,
            g.timings.prefill_tokens_per_sec,
            g.timings.generated_tokens,
            g.timings.decode_tokens_per_sec,
            g.timings.time_to_first_token_secs,
            s.prec.name(),
            gpu.info.name
        );
    }
    Ok(())
}

pub fn run_chat(
    gpu: &Gpu,
    m: &ModelArgs,
    sa: &SampleArgs,
    system: Option<&str>,
    n: usize,
    history_turns: Option<usize>,
) -> Result<()> {
    let mut sampler = sa.sampler()?;
    let (mut s, tok, path, _) = open(gpu, m)?;
    eprintln!(
        "chatting with {} ({}, {}). /reset clears the history, /exit quits.",
        path.display(),
        s.prec.name(),
        gpu.info.name
    );
    let eos: Vec<u32> = tok.eos_ids().iter().copied().collect();
    let mut history: Vec<(String, String)> = vec![];
    if let Some(sys) = system {
        history.push(("system".into(), sys.into()));
    }
    let base = history.clone();
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush().ok();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "/exit" | "/quit" => break,
            "/reset" => {
                history = base.clone();
                eprintln!("(history cleared)");
                continue;
            }
            "" => continue,
            _ => {}
        }
        history.push(("user".into(), line.into()));
        // --history-turns k: the system prompt, the last k − 1 exchanges and the new message.
        if let Some(k) = history_turns {
            while history.len() - base.len() > 2 * k - 1 {
                history.remove(base.len());
            }
        }
        // Re-render the conversation; drop the oldest turns until it fits the context with room to answer.
        let ids = loop {
            let text = tok.apply_chat_template(&history, true)?;
            let ids = tok.encode(&text, false)?;
            let keep = base.len();
            if ids.len() + n.min(256) <= s.max_seq || history.len() <= keep + 1 {
                break ids;
            }
            history.remove(keep);
        };
        // Only what follows the cached part of the conversation runs (usually the new turn).
        let keep = s.reuse_prefix(&ids);
        let mut dec = tok.stream_decoder(true);
        let mut reply = String::new();
        let room = n.min(s.max_seq.saturating_sub(ids.len()));
        generate(&mut s, &ids[keep..], room, &mut sampler, &eos, 0, &mut |id| {
            if let Some(p) = dec.step(id) {
                print!("{p}");
                std::io::stdout().flush().ok();
                reply.push_str(&p);
            }
            true
        })?;
        let rest = dec.flush();
        print!("{rest}");
        reply.push_str(&rest);
        println!();
        history.push(("assistant".into(), reply));
    }
    Ok(())
}

pub fn run_embed(gpu: &Gpu, m: &ModelArgs, file: Option<&Path>, texts: &[String], json: bool) -> Result<()> {
    use crate::session::encoder::Encoder;
    let mut texts = texts.to_vec();
    if let Some(f) = file {
        let body = std::fs::read_to_string(f).map_err(|e| Error::Other(format!("{}: {e}", f.display())))?;
        texts.extend(body.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    if texts.is_empty() {
        return Err(Error::Other("embed needs at least one text (arguments or --file)".into()));
    }
    let path = resolve(Some(m.model.as_deref().unwrap_or("minilm")))?;
    let tok = Tokenizer::from_path(&path)?;
    let mut enc = Encoder::load(gpu, &path, m.precision(gpu)?)?;
    let max = enc.cfg.max_pos.min(sentence_max_len(&path).unwrap_or(usize::MAX));
    let mut batch = vec![];
    for t in &texts {
        let mut ids = tok.encode(t, true)?;
        Encoder::truncate(&mut ids, max);
        batch.push(ids);
    }
    let t0 = std::time::Instant::now();
    let embs = enc.embed(&batch)?;
    let secs = t0.elapsed().as_secs_f64();
    if json {
        let v = serde_json::json!({"model": path.display().to_string(), "dtype": enc.prec.name(), "adapter": gpu.info.name,
            "sentences_per_sec": texts.len() as f64 / secs, "embeddings": embs});
        println!("{v}");
    } else {
        for (t, e) in texts.iter().zip(&embs) {
            let head: Vec<String> = e.iter().take(6).map(|x| format!("{x:.4}")).collect();
            println!("{} dims [{} …] {t:?}", e.len(), head.join(", "));
        }
        eprintln!("[{} sentences in {secs:.2} s, {}, {}]", texts.len(), enc.prec.name(), gpu.info.name);
    }
    Ok(())
}

/// sentence-transformers' `max_seq_length` (sentence_bert_config.json), when the folder has one.
fn sentence_max_len(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path.join("sentence_bert_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["max_seq_length"].as_u64().map(|x| x as usize)
}

pub fn run_tokenize(model: Option<&str>, text: &str, json: bool) -> Result<()> {
    let path = resolve(model)?;
    let tok = Tokenizer::from_path(&path)?;
    let ids = tok.encode(text, true)?;
    if json {
        let toks: Vec<String> = ids.iter().map(|&i| tok.id_to_token(i).unwrap_or_default()).collect();
        println!("{}", serde_json::json!({"ids": ids, "tokens": toks}));
    } else {
        for &i in &ids {
            println!("{i}\t{:?}", tok.id_to_token(i).unwrap_or_default());
        }
    }
    Ok(())
}
