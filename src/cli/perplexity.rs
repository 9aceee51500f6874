//! `wgpu-llm perplexity`: perplexity of a text file in sliding windows (see `session::perplexity`).

use std::path::Path;

use super::generate::ModelArgs;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::session::perplexity::{perplexity, windows};
use crate::tokenizer::Tokenizer;

pub struct Args<'a> {
    pub model: ModelArgs,
    pub file: &'a Path,
    pub stride: Option<usize>,
    pub max_tokens: Option<usize>,
    pub json: bool,
}

/// The text of `file`: it must be non-empty UTF-8.
fn read_text(file: &Path) -> Result<String> {
    let bytes = std::fs::read(file).map_err(|e| Error::Other(format!("{}: cannot read: {e}", file.display())))?;
    let text =
        String::from_utf8(bytes).map_err(|e| Error::Other(format!("{}: not UTF-8 text ({e})", file.display())))?;
    if text.trim().is_empty() {
        return Err(Error::Other(format!("{}: the file is empty", file.display())));
    }
    Ok(text)
}

pub fn run(open_gpu: &dyn Fn() -> Result<Gpu>, a: Args) -> Result<()> {
    let ctx = a.model.ctx;
    let stride = a.stride.unwrap_or(ctx);
    windows(0, ctx, stride)?; // the flags, before any work
    let text = read_text(a.file)?;
    let path = a.model.path()?;
    let tok = Tokenizer::from_path(&path)?;
    let mut ids = tok.encode(&text, true)?;
    let total = ids.len();
    if let Some(max) = a.max_tokens {
        ids.truncate(max);
    }
    let gpu = open_gpu()?;
    let mut s = ModelArgs { ctx, ..a.model.clone() }.session(&gpu, &path, 1)?;
    if s.max_seq < ctx {
        return Err(Error::Other(format!("--ctx {ctx} exceeds the model's {} positions", s.max_seq)));
    }
    let p = perplexity(&mut s, &ids, ctx, stride)?;
    let prefix = ids.len() < total;
    if a.json {
        let mut v = serde_json::to_value(&p).unwrap_or_default();
        v["model"] = path.display().to_string().into();
        v["file"] = a.file.display().to_string().into();
        v["precision"] = s.prec.name().into();
        v["adapter"] = gpu.info.name.clone().into();
        v["text_tokens"] = total.into();
        v["prefix_only"] = prefix.into();
        println!("{v}");
        return Ok(());
    }
    println!("perplexity {:.4} (mean NLL {:.4} nats)", p.ppl, p.nll);
    println!(
        "  {} tokens scored in {} windows (ctx {}, stride {}) | {:.1} tokens/s | {} on {}",
        p.tokens_scored,
        p.windows,
        p.ctx,
        p.stride,
        p.tokens_per_sec,
        s.prec.name(),
        gpu.info.name
    );
    if prefix {
        println!("  measured on the first {} of the text's {total} tokens (--max-tokens)", ids.len());
    }
    Ok(())
}
