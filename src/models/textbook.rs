//! The textbook Transformer encoder: "Attention Is All You Need" (Vaswani et al., 2017), as PyTorch's
//! `nn.TransformerEncoder` implements it (the reference for the test fixture): token embedding × √d_model plus
//! sinusoidal positions, then post-LN layers (self-attention → add → LayerNorm, ReLU feed-forward → add →
//! LayerNorm). Built from a small config.json (`model_type: "textbook_transformer"`); PyTorch's fused
//! `in_proj` [3C, C] is split into q, k and v when loaded.

use super::{layernorm, ConfigSource, Linear};
use crate::error::{Error, Result};
use crate::graph::{Act, GraphBuilder, Op, Scalar, ValueId};
use crate::loader::WeightStore;
use crate::tensor::{DType, HostTensor};

#[derive(Clone, Debug)]
pub struct Config {
    pub vocab: usize,
    pub d_model: usize,
    pub n_head: usize,
    pub ff: usize,
    pub n_layers: usize,
    pub max_len: usize,
    pub eps: f32,
    pub scale_embedding: bool,
}

impl Config {
    pub fn from_source(src: &ConfigSource) -> Result<Self> {
        let scale = match src {
            ConfigSource::Json(v) => v["scale_embedding"].as_bool().unwrap_or(true),
            ConfigSource::Gguf(_) => true,
        };
        let cfg = Config {
            vocab: src.req("vocab_size", "")?,
            d_model: src.req("d_model", "")?,
            n_head: src.req("nhead", "")?,
            ff: src.req("dim_feedforward", "")?,
            n_layers: src.req("num_layers", "")?,
            max_len: src.size("max_len", "")?.unwrap_or(512),
            eps: src.num("layer_norm_eps", "").unwrap_or(1e-5) as f32,
            scale_embedding: scale,
        };
        if cfg.n_head == 0 || !cfg.d_model.is_multiple_of(cfg.n_head) {
            return Err(Error::Format {
                file: "config.json".into(),
                detail: "d_model must be a multiple of nhead".into(),
            });
        }
        Ok(cfg)
    }
}

/// Inputs `ids` [B, T] (u32) and `mask` [B, T] (1 = token, 0 = padding); returns the last hidden state.
pub fn build(cfg: &Config, b: usize, t: usize, prec: &super::Precision) -> Result<(crate::graph::Graph, ValueId)> {
    let mut g = GraphBuilder::new();
    let x = build_into(&mut g, cfg, b, t, prec, None)?;
    Ok((g.finish(), x))
}

/// The encoder into `g` (its inputs, params and ops); returns the last hidden state [B, T, C]. With
/// `dropout` (training), PyTorch's `TransformerEncoderLayer` dropouts: on the attention probabilities (`attn`),
/// after the attention block, inside the feed-forward after the ReLU, and after it.
pub fn build_into(
    g: &mut GraphBuilder,
    cfg: &Config,
    b: usize,
    t: usize,
    prec: &super::Precision,
    dropout: Option<super::bert::Dropout>,
) -> Result<ValueId> {
    if t > cfg.max_len {
        return Err(Error::Run(format!("{t} tokens exceed the model's {} positions", cfg.max_len)));
    }
    let dt = prec.dtype;
    let (c, h) = (cfg.d_model, cfg.n_head);
    let mut n_drop = 0u32;
    let drop = |g: &mut GraphBuilder, x: ValueId, k: &mut u32| super::bert::Dropout::maybe(dropout, g, x, k);
    let attn_drop = dropout.filter(|d| d.attn > 0.0).map(|d| super::bert::Dropout { p: d.attn, ..d });
    let ids = g.input("ids", &[b, t], DType::U32)?;
    let mask = g.input("mask", &[b, t], dt)?;
    let embed = g.param("embed.weight", &[cfg.vocab, c], dt)?;
    let mut x = g.op(Op::Embedding, &[embed, ids])?;
    if cfg.scale_embedding {
        x = g.scale(x, (c as f32).sqrt())?;
    }
    let mut x = g.op(Op::AddSinusoidal { offset: Scalar::Const(0) }, &[x])?;
    for l in 0..cfg.n_layers {
        let p = format!("encoder.layers.{l}");
        let lin =
            |g: &mut GraphBuilder, n: &str, o: usize, i: usize| Linear::new(g, &format!("{p}.{n}"), o, i, true, prec);
        let q = lin(g, "self_attn.q", c, c)?.forward(g, x)?;
        let k = lin(g, "self_attn.k", c, c)?.forward(g, x)?;
        let v = lin(g, "self_attn.v", c, c)?.forward(g, x)?;
        let a = super::encoder_attention(g, [q, k, v], mask, h, attn_drop, &mut n_drop)?;
        let a = lin(g, "self_attn.out_proj", c, c)?.forward(g, a)?;
        let a = drop(g, a, &mut n_drop)?;
        let a = g.add(x, a)?;
        x = layernorm(g, &format!("{p}.norm1"), a, c, cfg.eps, dt)?;
        let f = lin(g, "linear1", cfg.ff, c)?.forward(g, x)?;
        let f = g.act(f, Act::Relu)?;
        let f = drop(g, f, &mut n_drop)?;
        let f = lin(g, "linear2", c, cfg.ff)?.forward(g, f)?;
        let f = drop(g, f, &mut n_drop)?;
        let f = g.add(x, f)?;
        x = layernorm(g, &format!("{p}.norm2"), f, c, cfg.eps, dt)?;
    }
    Ok(x)
}

/// One param's value: `self_attn.{q,k,v}` are rows of PyTorch's fused `in_proj_weight` / `in_proj_bias`.
pub fn load_param(cfg: &Config, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
    for (k, part) in ["q", "k", "v"].iter().enumerate() {
        for (suffix, fused) in [("weight", "in_proj_weight"), ("bias", "in_proj_bias")] {
            if let Some(stem) = name.strip_suffix(&format!(".self_attn.{part}.{suffix}")) {
                let data = store.to_f32(&format!("{stem}.self_attn.{fused}"))?;
                let per = shape.iter().product::<usize>();
                if data.len() != 3 * per {
                    return Err(Error::Shape {
                        op: format!("load {stem}.self_attn.{fused}"),
                        detail: format!("expected 3 × {shape:?} values for d_model {}", cfg.d_model),
                        shapes: vec![],
                    });
                }
                return HostTensor::f32(shape, data[k * per..(k + 1) * per].to_vec());
            }
        }
    }
    super::load_checked(store, name, shape)
}

/// A fresh parameter as PyTorch initialises `nn.TransformerEncoderLayer` and `nn.Embedding`: q, k, v (rows of
/// `in_proj_weight`) Xavier-uniform over the fused [3C, C], their biases and `out_proj.bias` zero, other
/// linear layers Kaiming-uniform (bound 1/√in, for weights and biases), LayerNorm ones and zeros, the
/// embedding N(0, 1). Seeded per name.
pub fn init_param(cfg: &Config, name: &str, shape: &[usize], seed: u64) -> Result<HostTensor> {
    let n: usize = shape.iter().product();
    let salt = name.bytes().fold(seed, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
    let mut rng = crate::train::SplitMix(salt);
    let mut uniform =
        |bound: f64| -> Vec<f32> { (0..n).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32).collect() };
    let c = cfg.d_model as f64;
    let data = if name.contains(".norm") {
        vec![if name.ends_with(".weight") { 1.0 } else { 0.0 }; n]
    } else if name == "embed.weight" {
        crate::train::classifier::normal(n, 1.0, salt)
    } else if name.contains(".self_attn.") && name.ends_with(".bias") {
        vec![0.0; n]
    } else if name.contains(".self_attn.q.") || name.contains(".self_attn.k.") || name.contains(".self_attn.v.") {
        uniform((6.0 / (c + 3.0 * c)).sqrt())
    } else {
        // Linear's default: weights and biases U(±1/√in), in = the weight's second dim.
        let fan_in = match shape {
            [_, i] => *i,
            _ => {
                if name.contains("linear2") {
                    cfg.ff
                } else {
                    cfg.d_model
                }
            }
        };
        uniform(1.0 / (fan_in as f64).sqrt())
    };
    HostTensor::f32(shape, data)
}

/// Every parameter in PyTorch's naming (q, k and v fused back into `self_attn.in_proj_weight` [3C, C] and
/// `in_proj_bias` [3C], which `load_param` splits), from `get` by graph name.
pub fn checkpoint_tensors(
    graph: &crate::graph::Graph,
    get: &dyn Fn(&str) -> Result<Vec<f32>>,
) -> Result<Vec<super::Named>> {
    super::fused_qkv(graph, get, "self_attn", &|stem, part, q_shape, parts| {
        // q, k and v stacked by rows: [3C, C] and [3C].
        let mut shape = q_shape.to_vec();
        shape[0] *= 3;
        (format!("{stem}.self_attn.in_proj_{part}"), shape, parts.concat())
    })
}
