//! BERT encoders: all-MiniLM-L6-v2 and other sentence-transformers models, and sequence classification.
//! Paper: "BERT: Pre-training of Deep Bidirectional Transformers" (Devlin et al., 2018); reference
//! implementation: transformers' `modeling_bert.py`. Word + position + token-type embeddings, post-LN encoder
//! layers (attention → add → LayerNorm, GELU MLP → add → LayerNorm), bidirectional attention with a key
//! padding mask. The pooler (tanh(W·h_CLS + b)) and the classifier are a few hundred multiply-adds per
//! sentence and run on the host over the [CLS] row the GPU returns.

use super::{layernorm, ConfigSource, Linear};
use crate::error::{Error, Result};
use crate::graph::{Act, GraphBuilder, Op, ValueId};
use crate::loader::WeightStore;
use crate::tensor::DType;

#[derive(Clone, Debug)]
pub struct Config {
    pub hidden: usize,
    pub n_layers: usize,
    pub n_head: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_pos: usize,
    pub type_vocab: usize,
    pub ln_eps: f32,
    /// "bert." when the checkpoint is a BertFor… model, "" for a bare BertModel.
    pub prefix: String,
    /// Class names of a sequence-classification head, in id order (empty without one).
    pub labels: Vec<String>,
}

impl Config {
    pub fn from_source(src: &ConfigSource, store: &WeightStore) -> Result<Self> {
        let ConfigSource::Json(v) = src else {
            return Err(Error::Unsupported {
                op: "bert".into(),
                detail: "BERT is read from Hugging Face folders".into(),
            });
        };
        if let Some(act) = v["hidden_act"].as_str().filter(|a| *a != "gelu") {
            return Err(Error::Unsupported { op: "bert".into(), detail: format!("hidden_act {act:?} (only gelu)") });
        }
        let prefix = if store.contains("bert.embeddings.word_embeddings.weight") { "bert." } else { "" }.to_string();
        let n = if store.contains("classifier.weight") { store.entry("classifier.weight")?.shape[0] } else { 0 };
        let labels = super::labels_from_config(v, n);
        let (hidden, n_head) = (src.req("hidden_size", "")?, src.req("num_attention_heads", "")?);
        src.check_divides(hidden, n_head, "hidden_size / num_attention_heads")?;
        Ok(Config {
            hidden,
            n_layers: src.req("num_hidden_layers", "")?,
            n_head,
            intermediate: src.req("intermediate_size", "")?,
            vocab: src.req("vocab_size", "")?,
            max_pos: src.req("max_position_embeddings", "")?,
            type_vocab: src.size("type_vocab_size", "")?.unwrap_or(2),
            ln_eps: src.num("layer_norm_eps", "").unwrap_or(1e-12) as f32,
            prefix,
            labels,
        })
    }
}

pub struct EncoderGraph {
    pub graph: crate::graph::Graph,
    /// The last hidden state [B, T, C].
    pub hidden: ValueId,
}

/// Inputs: `ids`, `type_ids`, `pos_ids` [B, T] (u32) and `mask` [B, T] (f32, 1 = token, 0 = padding).
pub fn build(cfg: &Config, b: usize, t: usize, prec: &super::Precision) -> Result<EncoderGraph> {
    let mut g = GraphBuilder::new();
    let x = build_into(&mut g, cfg, b, t, prec, None)?;
    let hidden = if prec.dtype == DType::F32 { x } else { g.op(Op::Cast { to: DType::F32 }, &[x])? };
    Ok(EncoderGraph { graph: g.finish(), hidden })
}

/// Dropout while training: transformers' `hidden_dropout_prob` after the embeddings' LayerNorm and after
/// each layer's attention output and MLP output projections (before their residual adds). Each dropout op
/// gets its own seed (`seed` + its index) and draws a new mask each step from the runtime scalar "step".
/// `attn` is transformers' `attention_probs_dropout_prob`: with it, attention is built from its probabilities
/// (`models::attention_with_dropout`) instead of the fused op.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f32,
    pub seed: u32,
    /// Dropout on the attention probabilities (0: none).
    pub attn: f32,
}

impl Dropout {
    /// `apply` when there is a dropout (training), `x` itself otherwise.
    pub fn maybe(d: Option<Dropout>, g: &mut GraphBuilder, x: ValueId, k: &mut u32) -> Result<ValueId> {
        match d {
            Some(d) => d.apply(g, x, k),
            None => Ok(x),
        }
    }

    /// Apply to `x` as the `k`-th dropout op of the graph (a no-op for p = 0).
    pub fn apply(&self, g: &mut GraphBuilder, x: ValueId, k: &mut u32) -> Result<ValueId> {
        if self.p == 0.0 {
            return Ok(x);
        }
        *k += 1;
        let seed = self.seed.wrapping_mul(0x9E37_79B9).wrapping_add(*k);
        g.op(Op::Dropout { p: self.p, seed, step: crate::graph::Scalar::var("step") }, &[x])
    }
}

/// The encoder into `g`: its inputs, params and ops; returns the last hidden state [B, T, C] in the
/// precision's dtype.
pub fn build_into(
    g: &mut GraphBuilder,
    cfg: &Config,
    b: usize,
    t: usize,
    prec: &super::Precision,
    dropout: Option<Dropout>,
) -> Result<ValueId> {
    let dt = prec.dtype;
    let (c, p) = (cfg.hidden, cfg.prefix.as_str());
    if t > cfg.max_pos {
        return Err(Error::Run(format!("{t} tokens exceed the model's {} positions", cfg.max_pos)));
    }
    let mut n_drop = 0u32;
    let drop = |g: &mut GraphBuilder, x: ValueId, k: &mut u32| Dropout::maybe(dropout, g, x, k);
    let ids = g.input("ids", &[b, t], DType::U32)?;
    let type_ids = g.input("type_ids", &[b, t], DType::U32)?;
    let pos_ids = g.input("pos_ids", &[b, t], DType::U32)?;
    let mask = g.input("mask", &[b, t], dt)?;
    let e = |g: &mut GraphBuilder, n: &str, rows: usize| g.param(&format!("{p}embeddings.{n}.weight"), &[rows, c], dt);
    let (we, pe, te) = (
        e(g, "word_embeddings", cfg.vocab)?,
        e(g, "position_embeddings", cfg.max_pos)?,
        e(g, "token_type_embeddings", cfg.type_vocab)?,
    );
    let x = g.op(Op::Embedding, &[we, ids])?;
    let xp = g.op(Op::Embedding, &[pe, pos_ids])?;
    let xt = g.op(Op::Embedding, &[te, type_ids])?;
    let x = g.add(x, xp)?;
    let x = g.add(x, xt)?;
    let x = layernorm(g, &format!("{p}embeddings.LayerNorm"), x, c, cfg.ln_eps, dt)?;
    let mut x = drop(g, x, &mut n_drop)?;
    let h = cfg.n_head;
    for l in 0..cfg.n_layers {
        let lp = format!("{p}encoder.layer.{l}");
        let lin =
            |g: &mut GraphBuilder, n: &str, o: usize, i: usize| Linear::new(g, &format!("{lp}.{n}"), o, i, true, prec);
        let (q, k, v) = (
            lin(g, "attention.self.query", c, c)?,
            lin(g, "attention.self.key", c, c)?,
            lin(g, "attention.self.value", c, c)?,
        );
        let qh = q.forward(g, x)?;
        let kh = k.forward(g, x)?;
        let vh = v.forward(g, x)?;
        let attn_drop = dropout.filter(|d| d.attn > 0.0).map(|d| Dropout { p: d.attn, ..d });
        let a = super::encoder_attention(g, [qh, kh, vh], mask, h, attn_drop, &mut n_drop)?;
        let a = lin(g, "attention.output.dense", c, c)?.forward(g, a)?;
        let a = drop(g, a, &mut n_drop)?;
        let a = g.add(x, a)?;
        x = layernorm(g, &format!("{lp}.attention.output.LayerNorm"), a, c, cfg.ln_eps, dt)?;
        let m = lin(g, "intermediate.dense", cfg.intermediate, c)?.forward(g, x)?;
        let m = g.act(m, Act::GeluErf)?;
        let m = lin(g, "output.dense", c, cfg.intermediate)?.forward(g, m)?;
        let m = drop(g, m, &mut n_drop)?;
        let m = g.add(x, m)?;
        x = layernorm(g, &format!("{lp}.output.LayerNorm"), m, c, cfg.ln_eps, dt)?;
    }
    Ok(x)
}

/// The pooler and classifier on the host: logits = W_c·tanh(W_p·h_cls + b_p) + b_c.
pub struct Head {
    pool_w: Vec<f32>,
    pool_b: Vec<f32>,
    cls: Option<(Vec<f32>, Vec<f32>)>,
    c: usize,
}

impl Head {
    pub fn load(cfg: &Config, store: &WeightStore) -> Result<Option<Head>> {
        let p = &cfg.prefix;
        if !store.contains(&format!("{p}pooler.dense.weight")) {
            return Ok(None);
        }
        let cls = if store.contains("classifier.weight") {
            Some((store.to_f32("classifier.weight")?, store.to_f32("classifier.bias")?))
        } else {
            None
        };
        Ok(Some(Head {
            pool_w: store.to_f32(&format!("{p}pooler.dense.weight"))?,
            pool_b: store.to_f32(&format!("{p}pooler.dense.bias"))?,
            cls,
            c: cfg.hidden,
        }))
    }

    fn affine(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
        b.iter()
            .enumerate()
            .map(|(o, &bo)| bo + w[o * x.len()..(o + 1) * x.len()].iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
            .collect()
    }

    /// tanh(W·h_cls + b).
    pub fn pool(&self, cls_row: &[f32]) -> Vec<f32> {
        debug_assert_eq!(cls_row.len(), self.c);
        Self::affine(&self.pool_w, &self.pool_b, cls_row).into_iter().map(f32::tanh).collect()
    }

    /// Classifier logits, when the checkpoint has a classification head.
    pub fn classify(&self, cls_row: &[f32]) -> Option<Vec<f32>> {
        let pooled = self.pool(cls_row);
        self.cls.as_ref().map(|(w, b)| Self::affine(w, b, &pooled))
    }
}
