//! Llama-family decoders: Llama 2/3, TinyLlama, SmolLM2, Mistral-style configs, and Qwen2 (q/k/v biases).
//! Paper: "LLaMA: Open and Efficient Foundation Language Models" (Touvron et al., 2023); reference
//! implementation: transformers' `modeling_llama.py` / `modeling_qwen2.py`. RMSNorm, rotary embeddings
//! (half-split pairs), SwiGLU MLP, grouped-query attention, optional tied embeddings.
//!
//! One graph serves prefill and decode: `t` new tokens at runtime position `pos`, written into a KV cache of
//! `max_seq` positions (state leaves `cache.{layer}.k` / `.v`), attending over the first `pos + t` keys.
//! Only the last position's logits leave the GPU.

use super::{ConfigSource, Linear, Precision};
use crate::error::{Error, Result};
use crate::graph::{GraphBuilder, Op, Scalar, ValueId};
use crate::loader::WeightStore;
use crate::tensor::{DType, HostTensor};

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: String,
    pub hidden: usize,
    pub n_layers: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    pub tie_embeddings: bool,
    pub qkv_bias: bool,
    pub max_pos: usize,
    /// A scaled RoPE (config.json `rope_scaling`, or GGUF `rope_freqs.weight` / `rope.scaling.*`).
    pub rope_scaling: Option<RopeScaling>,
}

/// The RoPE scaling variants, as transformers' `ROPE_INIT_FUNCTIONS` compute their inverse frequencies.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor` (= every frequency divided by it).
    Linear { factor: f32 },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 { factor: f32, low_freq_factor: f32, high_freq_factor: f32, original_max: f32 },
    /// Per-frequency divisors (llama.cpp writes Llama 3's as the tensor `rope_freqs.weight`).
    Factors(Vec<f32>),
    /// The inverse frequencies themselves, as an exported checkpoint stores them (`ROPE_TABLE`).
    Table(Vec<f32>),
}

impl RopeScaling {
    /// From config.json's `rope_scaling` (None for absent, null or "default").
    pub fn from_json(v: &serde_json::Value) -> Result<Option<Self>> {
        let Some(s) = v.get("rope_scaling").filter(|s| !s.is_null()) else { return Ok(None) };
        let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(|t| t.as_str()).unwrap_or("default");
        let num = |k: &str| -> Result<f32> {
            s[k].as_f64().map(|x| x as f32).ok_or_else(|| Error::Format {
                file: "config.json".into(),
                detail: format!("rope_scaling {kind:?} needs a number {k:?}: {s}"),
            })
        };
        match kind {
            "default" => Ok(None),
            "linear" => Ok(Some(RopeScaling::Linear { factor: num("factor")? })),
            "llama3" => Ok(Some(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max: num("original_max_position_embeddings")?,
            })),
            other => Err(Error::Unsupported {
                op: "rope".into(),
                detail: format!("rope_scaling type {other:?} is not supported (default, linear, llama3)"),
            }),
        }
    }

    /// The scaled inverse frequencies from the plain ones (transformers' formulas, in f64, then f32).
    pub fn apply(&self, inv_freq: &[f64]) -> Result<Vec<f32>> {
        let out: Vec<f64> = match self {
            RopeScaling::Linear { factor } => inv_freq.iter().map(|f| f / *factor as f64).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max } => {
                let (factor, lo, hi, old) =
                    (*factor as f64, *low_freq_factor as f64, *high_freq_factor as f64, *original_max as f64);
                let (low_wavelen, high_wavelen) = (old / lo, old / hi);
                inv_freq
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - lo) / (hi - lo);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            RopeScaling::Factors(d) => {
                if d.len() != inv_freq.len() {
                    return Err(Error::Shape {
                        op: "rope".into(),
                        detail: format!("{} frequency factors for {} frequencies", d.len(), inv_freq.len()),
                        shapes: vec![],
                    });
                }
                inv_freq.iter().zip(d).map(|(f, d)| f / *d as f64).collect()
            }
            RopeScaling::Table(t) => {
                if t.len() != inv_freq.len() {
                    return Err(Error::Shape {
                        op: "rope".into(),
                        detail: format!("a table of {} frequencies for {}", t.len(), inv_freq.len()),
                        shapes: vec![],
                    });
                }
                return Ok(t.clone());
            }
        };
        Ok(out.into_iter().map(|f| f as f32).collect())
    }
}

impl Config {
    /// The scaled RoPE inverse-frequency table, when the model scales its RoPE.
    pub fn inv_freq(&self) -> Result<Option<Vec<f32>>> {
        let Some(s) = &self.rope_scaling else { return Ok(None) };
        let d = self.head_dim;
        let plain: Vec<f64> =
            (0..d / 2).map(|i| 1.0 / (self.rope_theta as f64).powf((2 * i) as f64 / d as f64)).collect();
        s.apply(&plain).map(Some)
    }
}

impl Config {
    pub fn from_source(src: &ConfigSource, store: &WeightStore) -> Result<Self> {
        let arch = src.architecture()?;
        if !super::arch::family(&arch).is_some_and(|f| f.llama_family()) {
            return Err(Error::Unsupported { op: "model".into(), detail: format!("unknown architecture {arch:?}") });
        }
        let rope_scaling = match src {
            _ if store.contains(ROPE_TABLE) => Some(RopeScaling::Table(store.to_f32(ROPE_TABLE)?)),
            ConfigSource::Json(v) => RopeScaling::from_json(v)?,
            ConfigSource::Gguf(m) => {
                let key = |k: &str| m.get(&format!("{arch}.rope.scaling.{k}"));
                if store.contains("rope_freqs.weight") {
                    Some(RopeScaling::Factors(store.to_f32("rope_freqs.weight")?))
                } else if key("type").and_then(|t| t.as_str()) == Some("linear") {
                    let factor = key("factor").and_then(|f| f.as_f64()).unwrap_or(1.0) as f32;
                    Some(RopeScaling::Linear { factor })
                } else {
                    None
                }
            }
        };
        let hidden = src.req("hidden_size", "embedding_length")?;
        let n_head = src.req("num_attention_heads", "attention.head_count")?;
        let n_kv_head = src.size("num_key_value_heads", "attention.head_count_kv")?.unwrap_or(n_head);
        src.check_divides(n_head, n_kv_head, "num_attention_heads / num_key_value_heads")?;
        let head_dim = match src.size("head_dim", "attention.key_length")? {
            Some(d) => d,
            None => {
                src.check_divides(hidden, n_head, "hidden_size / num_attention_heads")?;
                hidden / n_head
            }
        };
        let vocab = match src.size("vocab_size", "vocab_size")? {
            Some(v) => v,
            None => store.entry("token_embd.weight")?.shape[0],
        };
        let gguf = matches!(src, ConfigSource::Gguf(_));
        let tie_embeddings = if gguf {
            !store.contains("output.weight")
        } else {
            match src {
                ConfigSource::Json(v) => {
                    v["tie_word_embeddings"].as_bool().unwrap_or(!store.contains("lm_head.weight"))
                }
                _ => false,
            }
        };
        let qkv_bias = store.contains("model.layers.0.self_attn.q_proj.bias") || store.contains("blk.0.attn_q.bias");
        Ok(Config {
            arch,
            hidden,
            n_layers: src.req("num_hidden_layers", "block_count")?,
            n_head,
            n_kv_head,
            head_dim,
            intermediate: src.req("intermediate_size", "feed_forward_length")?,
            vocab,
            rms_eps: src.num("rms_norm_eps", "attention.layer_norm_rms_epsilon").unwrap_or(1e-6) as f32,
            rope_theta: src.num("rope_theta", "rope.freq_base").unwrap_or(10000.0) as f32,
            tie_embeddings,
            qkv_bias,
            max_pos: src.size("max_position_embeddings", "context_length")?.unwrap_or(2048),
            rope_scaling,
        })
    }
}

/// The param holding a scaled RoPE's inverse frequencies [head_dim/2] (not a checkpoint tensor).
pub const ROPE_TABLE: &str = "rope.inv_freq";

struct Layer {
    attn_norm: ValueId,
    o: Linear,
    mlp_norm: ValueId,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Build the step graph of `s.b` sequences of `s.t` tokens. Inputs: `ids` [b, t] (u32), `last` [rows] (u32:
/// the rows of the b·t whose logits are wanted, [t − 1] for generation, all of them for perplexity); logits are
/// [rows, vocab]. Runtime scalars: `pos` (the position of the first new token) and `len` (= pos + t). b > 1
/// adds the input `mask` [b, max_seq] (1 for the cache positions holding a sequence's tokens, 0 for its left
/// padding); `Positions::PerSequence` adds `seq_pos` (see `models::step_names`).
pub fn build_batch(cfg: &Config, s: super::StepShape, prec: &Precision) -> Result<super::StepGraph> {
    let super::StepShape { b, t, rows, max_seq, positions } = s;
    let dt = prec.dtype;
    let mut g = GraphBuilder::new();
    let (c, hd) = (cfg.hidden, cfg.head_dim);
    let ids = g.input(super::step_names::IDS, &[b, t], DType::U32)?;
    let last = g.input(super::step_names::LAST, &[rows], DType::U32)?;
    let (seq_pos, mask) = super::position_inputs(&mut g, b, max_seq, positions, dt)?;
    let embed = g.param("model.embed_tokens.weight", &[cfg.vocab, c], dt)?;
    let mut x = g.op(Op::Embedding, &[embed, ids])?;
    // A scaled RoPE reads its frequencies from a table (computed on load: `load_param`).
    let freq = match cfg.rope_scaling {
        Some(_) => Some(g.param(ROPE_TABLE, &[cfg.head_dim / 2], DType::F32)?),
        None => None,
    };
    for l in 0..cfg.n_layers {
        let p = format!("model.layers.{l}");
        let lin = |g: &mut GraphBuilder, n: &str, o: usize, i: usize, b: bool| {
            Linear::new(g, &format!("{p}.{n}"), o, i, b, prec)
        };
        let attn_norm = g.param(&format!("{p}.input_layernorm.weight"), &[c], dt)?;
        // q, k and v as one product (one weight stacking the three), rotated and cached by one op.
        let parts = [("q_proj", cfg.n_head), ("k_proj", cfg.n_kv_head), ("v_proj", cfg.n_kv_head)]
            .map(|(n, heads)| (format!("{p}.self_attn.{n}"), heads * hd));
        let qkv = Linear::fused(&mut g, &format!("{p}.self_attn.qkv_proj"), &parts, c, cfg.qkv_bias, prec)?;
        let ly = Layer {
            attn_norm,
            o: lin(&mut g, "self_attn.o_proj", c, cfg.n_head * hd, false)?,
            mlp_norm: g.param(&format!("{p}.post_attention_layernorm.weight"), &[c], dt)?,
            gate: lin(&mut g, "mlp.gate_proj", cfg.intermediate, c, false)?,
            up: lin(&mut g, "mlp.up_proj", cfg.intermediate, c, false)?,
            down: lin(&mut g, "mlp.down_proj", c, cfg.intermediate, false)?,
        };
        let h = g.rmsnorm(x, ly.attn_norm, cfg.rms_eps)?;
        let qkv = qkv.forward(&mut g, h)?;
        let heads = (cfg.n_head, cfg.n_kv_head, hd);
        let a = super::rotary_cached_attention(&mut g, l, qkv, heads, (cfg.rope_theta, freq), max_seq, mask, seq_pos)?;
        x = ly.o.forward_add(&mut g, a, x)?;
        let h = g.rmsnorm(x, ly.mlp_norm, cfg.rms_eps)?;
        let m = super::Linear::glu(&mut g, &ly.gate, &ly.up, h, crate::graph::Act::Silu)?;
        x = ly.down.forward_add(&mut g, m, x)?;
    }
    let norm = g.param("model.norm.weight", &[c], dt)?;
    // Only the last position goes through the head: gather its row (the embedding kernel on activations).
    let x = g.reshape(x, &[b * t, c])?;
    let x = g.op(Op::Embedding, &[x, last])?;
    let x = g.rmsnorm(x, norm, cfg.rms_eps)?;
    // The head: tied to the embedding table unless it runs int8 (then it is its own int8 copy of the table).
    let logits = if cfg.tie_embeddings && prec.int8_for("lm_head", c).is_none() {
        g.tap("lm_head", x); // the head's input, for calibrating an int8 head
        g.op(Op::LinearF32, &[x, embed])?
    } else {
        let logits = Linear::new(&mut g, "lm_head", cfg.vocab, c, false, prec)?.forward(&mut g, x)?;
        super::widen(&mut g, logits)?
    };
    Ok(super::StepGraph { graph: g.finish(), logits })
}

/// The training graph of whole sequences (no KV cache): input `ids` [B, T] (u32); returns the logits
/// [B·T, V] of every position, or with `rows = Some(r)` only of the r positions the input `rows` [r] (u32,
/// indices into B·T) names: the head (the largest product of a small model) runs only where a loss is taken. Full causal attention from position 0 (grouped-query heads as the model has
/// them). With `lora`, each target linear layer adds (alpha/r)·B·A·dropout(x) through the params
/// `{layer}.lora_A.weight` [r, in] and `{layer}.lora_B.weight` [out, r] (PEFT's LoRA); the base weights are
/// ordinary params in `prec` (the trainer decides which params train).
pub fn build_train(
    g: &mut GraphBuilder,
    cfg: &Config,
    b: usize,
    t: usize,
    prec: &Precision,
    lora: Option<(&crate::train::lora::LoraConfig, u32)>,
    rows: Option<usize>,
) -> Result<ValueId> {
    use crate::graph::AttnSpec;
    let dt = prec.dtype;
    let (c, hd) = (cfg.hidden, cfg.head_dim);
    let ids = g.input(super::step_names::IDS, &[b, t], DType::U32)?;
    let embed = g.param("model.embed_tokens.weight", &[cfg.vocab, c], dt)?;
    let mut x = g.op(Op::Embedding, &[embed, ids])?;
    let freq = match cfg.rope_scaling {
        Some(_) => Some(g.param(ROPE_TABLE, &[cfg.head_dim / 2], DType::F32)?),
        None => None,
    };
    let spec = AttnSpec::whole_causal(t, hd);
    let mut k_drop = 0u32;
    // A linear layer with its LoRA branch when it is a target.
    let mut proj = |g: &mut GraphBuilder, lin: &Linear, x: ValueId, out: usize, inp: usize| -> Result<ValueId> {
        let y = lin.forward(g, x)?;
        let Some((lc, seed)) = lora.filter(|(lc, _)| lc.targets_layer(&lin.name)) else { return Ok(y) };
        let a = g.param(&format!("{}.lora_A.weight", lin.name), &[lc.r, inp], DType::F32)?;
        let bm = g.param(&format!("{}.lora_B.weight", lin.name), &[out, lc.r], DType::F32)?;
        let drop = (lc.dropout > 0.0).then_some(super::bert::Dropout { p: lc.dropout, seed, attn: 0.0 });
        let xd = super::bert::Dropout::maybe(drop, g, x, &mut k_drop)?;
        let h = g.linear(xd, a, None)?;
        let d = g.linear(h, bm, None)?;
        let d = g.scale(d, lc.scale())?;
        g.add(y, d)
    };
    for l in 0..cfg.n_layers {
        let p = format!("model.layers.{l}");
        let lin = |g: &mut GraphBuilder, n: &str, o: usize, i: usize, b: bool| {
            Linear::new(g, &format!("{p}.{n}"), o, i, b, prec)
        };
        let (nq, nkv) = (cfg.n_head * hd, cfg.n_kv_head * hd);
        let attn_norm = g.param(&format!("{p}.input_layernorm.weight"), &[c], dt)?;
        let q = lin(g, "self_attn.q_proj", nq, c, cfg.qkv_bias)?;
        let k = lin(g, "self_attn.k_proj", nkv, c, cfg.qkv_bias)?;
        let v = lin(g, "self_attn.v_proj", nkv, c, cfg.qkv_bias)?;
        let ly = Layer {
            attn_norm,
            o: lin(g, "self_attn.o_proj", c, nq, false)?,
            mlp_norm: g.param(&format!("{p}.post_attention_layernorm.weight"), &[c], dt)?,
            gate: lin(g, "mlp.gate_proj", cfg.intermediate, c, false)?,
            up: lin(g, "mlp.up_proj", cfg.intermediate, c, false)?,
            down: lin(g, "mlp.down_proj", c, cfg.intermediate, false)?,
        };
        let h = g.rmsnorm(x, ly.attn_norm, cfg.rms_eps)?;
        let q = proj(g, &q, h, nq, c)?;
        let k = proj(g, &k, h, nkv, c)?;
        let v = proj(g, &v, h, nkv, c)?;
        let q = super::split_heads(g, q, cfg.n_head, hd)?;
        let k = super::split_heads(g, k, cfg.n_kv_head, hd)?;
        let v = super::split_heads(g, v, cfg.n_kv_head, hd)?;
        let rope = Op::Rope { theta: cfg.rope_theta, offset: Scalar::Const(0), inverse: false };
        let (qa, ka): (Vec<ValueId>, Vec<ValueId>) =
            (std::iter::once(q).chain(freq).collect(), std::iter::once(k).chain(freq).collect());
        let q = g.op(rope.clone(), &qa)?;
        let k = g.op(rope, &ka)?;
        // Grouped-query heads repeated to one kv head per query head (transformers' repeat_kv), so attention's
        // backward runs as batched matmuls (autodiff::attention_by_matmuls) instead of the fused per-row
        // kernels: SmolLM2's 30 layers took 40 s of a 77 s LoRA step there on llvmpipe.
        let groups = cfg.n_head / cfg.n_kv_head;
        let (k, v) = (repeat_kv(g, k, groups)?, repeat_kv(g, v, groups)?);
        let a = g.op(Op::Attention(spec.clone()), &[q, k, v])?;
        let a = super::merge_heads(g, a)?;
        let a = proj(g, &ly.o, a, c, nq)?;
        x = g.add(x, a)?;
        let h = g.rmsnorm(x, ly.mlp_norm, cfg.rms_eps)?;
        let adapted = |n: &Linear| lora.is_some_and(|(lc, _)| lc.targets_layer(&n.name));
        let m = if adapted(&ly.gate) || adapted(&ly.up) {
            let a = proj(g, &ly.gate, h, cfg.intermediate, c)?;
            let a = g.act(a, crate::graph::Act::Silu)?;
            let u = proj(g, &ly.up, h, cfg.intermediate, c)?;
            g.mul(a, u)?
        } else {
            super::Linear::glu(g, &ly.gate, &ly.up, h, crate::graph::Act::Silu)?
        };
        let m = proj(g, &ly.down, m, c, cfg.intermediate)?;
        x = g.add(x, m)?;
    }
    let norm = g.param("model.norm.weight", &[c], dt)?;
    let x = g.reshape(x, &[b * t, c])?;
    let x = match rows {
        Some(r) => {
            let idx = g.input("rows", &[r], DType::U32)?;
            g.op(Op::Embedding, &[x, idx])?
        }
        None => x,
    };
    let x = g.rmsnorm(x, norm, cfg.rms_eps)?;
    let logits = if cfg.tie_embeddings && prec.int8_for("lm_head", c).is_none() {
        g.linear(x, embed, None)?
    } else {
        Linear::new(g, "lm_head", cfg.vocab, c, false, prec)?.forward(g, x)?
    };
    if dt == DType::F32 {
        Ok(logits)
    } else {
        g.op(Op::Cast { to: DType::F32 }, &[logits])
    }
}

/// Heads [B, Hkv, T, D] → [B, Hkv·groups, T, D], each kv head repeated `groups` times in place (head
/// h·groups + j is kv head h): a batched product with a column of ones, whose backward sums the groups.
fn repeat_kv(g: &mut GraphBuilder, x: ValueId, groups: usize) -> Result<ValueId> {
    if groups == 1 {
        return Ok(x);
    }
    let s = g.shape(x).to_vec();
    let (b, h, t, d) = (s[0], s[1], s[2], s[3]);
    let flat = g.reshape(x, &[b * h, 1, t * d])?;
    let ones = g.fill(&[b * h, groups, 1], g.dtype(x), 1.0)?;
    let r = g.matmul(ones, flat, false, false)?;
    g.reshape(r, &[b, h * groups, t, d])
}

/// The linear layers of the model: name → [out, in] (what an adapter may target).
pub fn linear_layers(cfg: &Config) -> std::collections::BTreeMap<String, [usize; 2]> {
    let (c, nq, nkv, f) = (cfg.hidden, cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim, cfg.intermediate);
    let mut m = std::collections::BTreeMap::new();
    for l in 0..cfg.n_layers {
        for (n, shape) in [
            ("self_attn.q_proj", [nq, c]),
            ("self_attn.k_proj", [nkv, c]),
            ("self_attn.v_proj", [nkv, c]),
            ("self_attn.o_proj", [c, nq]),
            ("mlp.gate_proj", [f, c]),
            ("mlp.up_proj", [f, c]),
            ("mlp.down_proj", [c, f]),
        ] {
            m.insert(format!("model.layers.{l}.{n}"), shape);
        }
    }
    m
}

/// The GGUF name of a Hugging Face Llama tensor name.
pub fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let parts = [
        ("input_layernorm", "attn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    if let Some(rest) = hf.strip_prefix("model.layers.") {
        if let Some((l, tail)) = rest.split_once('.') {
            for (h, g) in parts {
                if let Some(suffix) = tail.strip_prefix(h) {
                    return format!("blk.{l}.{g}{suffix}");
                }
            }
        }
    }
    hf.to_string()
}

/// The value of one param from the store, as f32, undoing llama.cpp's q/k row permutation for GGUF files.
pub fn load_param(cfg: &Config, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
    if name == ROPE_TABLE {
        let f = cfg.inv_freq()?.ok_or_else(|| Error::Run("the RoPE table of a model without rope scaling".into()))?;
        return HostTensor::f32(shape, f);
    }
    let name = if name == "lm_head.weight" && cfg.tie_embeddings { "model.embed_tokens.weight" } else { name };
    let gguf = store.contains(&gguf_name(name)) && !store.contains(name);
    let src = if gguf { gguf_name(name) } else { name.to_string() };
    let mut t = super::load_checked(store, &src, shape)?;
    if gguf {
        let heads = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
            Some(cfg.n_head)
        } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
            Some(cfg.n_kv_head)
        } else {
            None
        };
        if let Some(h) = heads {
            let cols = if shape.len() == 2 { shape[1] } else { 1 };
            t = HostTensor::f32(shape, crate::loader::unpermute_qk(&t.to_f32(), h, shape[0], cols)?)?;
        }
    }
    Ok(t)
}

impl super::arch::Decoder for Config {
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn max_pos(&self) -> usize {
        self.max_pos
    }
    fn build(&self, s: super::StepShape, prec: &Precision) -> Result<super::StepGraph> {
        build_batch(self, s, prec)
    }
    fn load_param(&self, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
        load_param(self, store, name, shape)
    }
    fn checkpoint_tensors(&self, graph: &crate::graph::Graph, store: &WeightStore) -> Result<Vec<super::Named>> {
        super::arch::each_param(graph, |name, shape| load_param(self, store, name, shape))
    }
    fn llama(&self) -> Option<&Config> {
        Some(self)
    }
}
