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
    let dt = prec.dtype;
    let mut g = GraphBuilder::new();
    let (c, h) = (cfg.d_model, cfg.n_head);
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
        let q = lin(&mut g, "self_attn.q", c, c)?.forward(&mut g, x)?;
        let k = lin(&mut g, "self_attn.k", c, c)?.forward(&mut g, x)?;
        let v = lin(&mut g, "self_attn.v", c, c)?.forward(&mut g, x)?;
        let a = super::encoder_attention(&mut g, [q, k, v], mask, h, None, &mut 0)?;
        let a = lin(&mut g, "self_attn.out_proj", c, c)?.forward(&mut g, a)?;
        let a = g.add(x, a)?;
        x = layernorm(&mut g, &format!("{p}.norm1"), a, c, cfg.eps, dt)?;
        let f = lin(&mut g, "linear1", cfg.ff, c)?.forward(&mut g, x)?;
        let f = g.act(f, Act::Relu)?;
        let f = lin(&mut g, "linear2", c, cfg.ff)?.forward(&mut g, f)?;
        let f = g.add(x, f)?;
        x = layernorm(&mut g, &format!("{p}.norm2"), f, c, cfg.eps, dt)?;
    }
    Ok((g.finish(), x))
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
