//! GPT-2. Paper: "Language Models are Unsupervised Multitask Learners" (Radford et al., 2019); reference
//! implementation: transformers' `modeling_gpt2.py`. Learned positions, pre-LN blocks (LayerNorm → attention →
//! add, LayerNorm → GELU (tanh form) MLP → add), a final LayerNorm and the head tied to the token embedding.
//! Checkpoints store Conv1D weights as [in, out], so the linears run as x·W (`MatMul { tb: false }`); the fused
//! c_attn [C, 3C] is split into q, k and v when loaded. Same step-graph contract as `llama::build`, plus an input
//! `pos_ids` [1, t].

use super::{layernorm, ConfigSource};
use crate::error::{Error, Result};
use crate::graph::{Act, GraphBuilder, Op, ValueId};
use crate::loader::WeightStore;
use crate::tensor::{DType, HostTensor};

#[derive(Clone, Debug)]
pub struct Config {
    pub hidden: usize,
    pub n_layers: usize,
    pub n_head: usize,
    pub inner: usize,
    pub vocab: usize,
    pub max_pos: usize,
    pub eps: f32,
    /// "transformer." or "" (the hub's gpt2 checkpoint has no prefix).
    pub prefix: String,
}

impl Config {
    pub fn from_source(src: &ConfigSource, store: &WeightStore) -> Result<Self> {
        let hidden = src.req("n_embd", "embedding_length")?;
        let prefix = if store.contains("transformer.wte.weight") { "transformer." } else { "" }.to_string();
        let n_head = src.req("n_head", "attention.head_count")?;
        src.check_divides(hidden, n_head, "n_embd / n_head")?;
        Ok(Config {
            hidden,
            n_layers: src.req("n_layer", "block_count")?,
            n_head,
            inner: src.size("n_inner", "feed_forward_length")?.unwrap_or(4 * hidden),
            vocab: src.req("vocab_size", "vocab_size")?,
            max_pos: src.req("n_positions", "context_length")?,
            eps: src.num("layer_norm_epsilon", "attention.layer_norm_epsilon").unwrap_or(1e-5) as f32,
            prefix,
        })
    }
}

fn conv1d(g: &mut GraphBuilder, name: &str, x: ValueId, inp: usize, out: usize, dt: DType) -> Result<ValueId> {
    let w = g.param(&format!("{name}.weight"), &[inp, out], dt)?;
    let b = g.param(&format!("{name}.bias"), &[out], dt)?;
    let y = g.matmul(x, w, false, false)?;
    g.add(y, b)
}

/// As `llama::build_batch` (GPT-2 keeps float weights: its Conv1D layout is [in, out]); `pos_ids` [b, t]
/// gives each token its learned position.
pub fn build(cfg: &Config, s: super::StepShape, prec: &super::Precision) -> Result<super::StepGraph> {
    let super::StepShape { b, t, rows, max_seq, positions } = s;
    let dt = prec.dtype;
    let mut g = GraphBuilder::new();
    let (c, p) = (cfg.hidden, cfg.prefix.as_str());
    let hd = c / cfg.n_head;
    let ids = g.input(super::step_names::IDS, &[b, t], DType::U32)?;
    let pos_ids = g.input(super::step_names::POS_IDS, &[b, t], DType::U32)?;
    let last = g.input(super::step_names::LAST, &[rows], DType::U32)?;
    let (seq_pos, mask) = super::position_inputs(&mut g, b, max_seq, positions, dt)?;
    let wte = g.param(&format!("{p}wte.weight"), &[cfg.vocab, c], dt)?;
    let wpe = g.param(&format!("{p}wpe.weight"), &[cfg.max_pos, c], dt)?;
    let x = g.op(Op::Embedding, &[wte, ids])?;
    let xp = g.op(Op::Embedding, &[wpe, pos_ids])?;
    let mut x = g.add(x, xp)?;
    for l in 0..cfg.n_layers {
        let lp = format!("{p}h.{l}");
        let h = layernorm(&mut g, &format!("{lp}.ln_1"), x, c, cfg.eps, dt)?;
        let heads = |g: &mut GraphBuilder, y: ValueId| super::split_heads(g, y, cfg.n_head, hd);
        let q = conv1d(&mut g, &format!("{lp}.attn.q"), h, c, c, dt)?;
        let k = conv1d(&mut g, &format!("{lp}.attn.k"), h, c, c, dt)?;
        let v = conv1d(&mut g, &format!("{lp}.attn.v"), h, c, c, dt)?;
        let (q, k, v) = (heads(&mut g, q)?, heads(&mut g, k)?, heads(&mut g, v)?);
        let a = super::cached_attention(&mut g, l, [q, k, v], max_seq, mask, seq_pos)?;
        let a = conv1d(&mut g, &format!("{lp}.attn.c_proj"), a, c, c, dt)?;
        x = g.add(x, a)?;
        let h = layernorm(&mut g, &format!("{lp}.ln_2"), x, c, cfg.eps, dt)?;
        let m = conv1d(&mut g, &format!("{lp}.mlp.c_fc"), h, c, cfg.inner, dt)?;
        let m = g.act(m, Act::GeluTanh)?;
        let m = conv1d(&mut g, &format!("{lp}.mlp.c_proj"), m, cfg.inner, c, dt)?;
        x = g.add(x, m)?;
    }
    let x = g.reshape(x, &[b * t, c])?;
    let x = g.op(Op::Embedding, &[x, last])?;
    let x = layernorm(&mut g, &format!("{p}ln_f"), x, c, cfg.eps, dt)?;
    let logits = g.op(Op::LinearF32, &[x, wte])?;
    Ok(super::StepGraph { graph: g.finish(), logits })
}

/// One param's value: q/k/v come out of the fused c_attn ([C, 3C] weight, [3C] bias) by columns.
pub fn load_param(cfg: &Config, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
    for (k, part) in ["q", "k", "v"].iter().enumerate() {
        let Some(stem) = name
            .strip_suffix(&format!(".attn.{part}.weight"))
            .or_else(|| name.strip_suffix(&format!(".attn.{part}.bias")))
        else {
            continue;
        };
        let is_w = name.ends_with("weight");
        let src = format!("{stem}.attn.c_attn.{}", if is_w { "weight" } else { "bias" });
        let data = store.to_f32(&src)?;
        let c = cfg.hidden;
        let cols = 3 * c;
        if data.len() != if is_w { c * cols } else { cols } {
            return Err(Error::Shape {
                op: format!("load {src}"),
                detail: format!("expected [{c}, {cols}]"),
                shapes: vec![],
            });
        }
        let out: Vec<f32> = if is_w {
            (0..c).flat_map(|r| data[r * cols + k * c..r * cols + (k + 1) * c].to_vec()).collect()
        } else {
            data[k * c..(k + 1) * c].to_vec()
        };
        return HostTensor::f32(shape, out);
    }
    super::load_checked(store, name, shape)
}

/// The training graph of a whole sequence (no KV cache): inputs `ids` and `pos_ids` [B, T] (u32); returns
/// the logits [B·T, V] of every position. Full causal self-attention; hidden dropout (after the embeddings
/// and after each block's attention and MLP projections, as transformers' `resid_pdrop`/`embd_pdrop`) when
/// `dropout` is given. Parameter names and layouts are the inference graph's (q, k and v apart).
pub fn build_train(
    g: &mut GraphBuilder,
    cfg: &Config,
    b: usize,
    t: usize,
    dropout: Option<super::bert::Dropout>,
) -> Result<ValueId> {
    use crate::graph::AttnSpec;
    if t > cfg.max_pos {
        return Err(Error::Run(format!("sequences of {t} tokens exceed the model's {} positions", cfg.max_pos)));
    }
    let dt = DType::F32;
    let (c, p) = (cfg.hidden, cfg.prefix.as_str());
    let hd = c / cfg.n_head;
    let mut k = 0u32;
    let mut drop = |g: &mut GraphBuilder, x: ValueId| super::bert::Dropout::maybe(dropout, g, x, &mut k);
    let ids = g.input(super::step_names::IDS, &[b, t], DType::U32)?;
    let pos_ids = g.input(super::step_names::POS_IDS, &[b, t], DType::U32)?;
    let wte = g.param(&format!("{p}wte.weight"), &[cfg.vocab, c], dt)?;
    let wpe = g.param(&format!("{p}wpe.weight"), &[cfg.max_pos, c], dt)?;
    let x = g.op(Op::Embedding, &[wte, ids])?;
    let xp = g.op(Op::Embedding, &[wpe, pos_ids])?;
    let x = g.add(x, xp)?;
    let mut x = drop(g, x)?;
    let spec = AttnSpec::whole_causal(t, hd);
    for l in 0..cfg.n_layers {
        let lp = format!("{p}h.{l}");
        let h = layernorm(g, &format!("{lp}.ln_1"), x, c, cfg.eps, dt)?;
        let q = conv1d(g, &format!("{lp}.attn.q"), h, c, c, dt)?;
        let kk = conv1d(g, &format!("{lp}.attn.k"), h, c, c, dt)?;
        let v = conv1d(g, &format!("{lp}.attn.v"), h, c, c, dt)?;
        let heads = [q, kk, v].map(|y| super::split_heads(g, y, cfg.n_head, hd));
        let [q, kk, v] = heads;
        let a = g.op(Op::Attention(spec.clone()), &[q?, kk?, v?])?;
        let a = super::merge_heads(g, a)?;
        let a = conv1d(g, &format!("{lp}.attn.c_proj"), a, c, c, dt)?;
        let a = drop(g, a)?;
        x = g.add(x, a)?;
        let h = layernorm(g, &format!("{lp}.ln_2"), x, c, cfg.eps, dt)?;
        let m = conv1d(g, &format!("{lp}.mlp.c_fc"), h, c, cfg.inner, dt)?;
        let m = g.act(m, Act::GeluTanh)?;
        let m = conv1d(g, &format!("{lp}.mlp.c_proj"), m, cfg.inner, c, dt)?;
        let m = drop(g, m)?;
        x = g.add(x, m)?;
    }
    let x = layernorm(g, &format!("{p}ln_f"), x, c, cfg.eps, dt)?;
    let x = g.reshape(x, &[b * t, c])?;
    g.linear(x, wte, None)
}

/// Every parameter of the graph in the checkpoint's layout: q, k and v fused back into c_attn ([C, 3C]
/// weight, [3C] bias), the rest as they are; `get` reads a parameter by its graph name.
pub fn checkpoint_tensors(
    cfg: &Config,
    graph: &crate::graph::Graph,
    get: &dyn Fn(&str) -> Result<Vec<f32>>,
) -> Result<Vec<super::Named>> {
    let c = cfg.hidden;
    super::fused_qkv(graph, get, "attn", &|stem, part, _, parts| {
        // Conv1D's weight is [C, 3C]: each row holds its q, k and v columns side by side.
        let (shape, data) = if part == "weight" {
            (
                vec![c, 3 * c],
                (0..c).flat_map(|r| parts.iter().flat_map(move |w| w[r * c..(r + 1) * c].to_vec())).collect(),
            )
        } else {
            (vec![3 * c], parts.concat())
        };
        (format!("{stem}.attn.c_attn.{part}"), shape, data)
    })
}

impl super::arch::Decoder for Config {
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn max_pos(&self) -> usize {
        self.max_pos
    }
    fn build(&self, s: super::StepShape, prec: &super::Precision) -> Result<super::StepGraph> {
        build(self, s, prec)
    }
    fn load_param(&self, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
        load_param(self, store, name, shape)
    }
    /// The graph's q/k/v (split on load) written back as the checkpoint's fused c_attn.
    fn checkpoint_tensors(&self, graph: &crate::graph::Graph, store: &WeightStore) -> Result<Vec<super::Named>> {
        let c = self.hidden;
        let read = |n: &str, shape: &[usize]| -> Result<super::Named> {
            Ok((n.to_string(), shape.to_vec(), super::load_checked(store, n, shape)?.to_f32()))
        };
        let mut out = vec![];
        for node in &graph.nodes {
            let Op::Param { name } = &node.op else { continue };
            if let Some(stem) = name.strip_suffix(".attn.q.weight") {
                out.push(read(&format!("{stem}.attn.c_attn.weight"), &[c, 3 * c])?);
            } else if let Some(stem) = name.strip_suffix(".attn.q.bias") {
                out.push(read(&format!("{stem}.attn.c_attn.bias"), &[3 * c])?);
            } else if !(name.contains(".attn.k.") || name.contains(".attn.v.")) {
                out.push(read(name, &node.shape)?);
            }
        }
        Ok(out)
    }
}
