//! Model architectures, one file each, built against `GraphBuilder` (no GPU calls), sharing the layers here.

pub mod arch;
pub mod bert;
pub mod gpt2;
pub mod llama;
pub mod textbook;

use std::path::Path;

use crate::error::{Error, Result};
use crate::graph::{Act, ActQuant, GraphBuilder, Op, ValueId};
use crate::loader::{MetaValue, SourceDType, WeightStore};
use crate::quant::QTensor;
use crate::tensor::{DType, HostTensor};

/// Where a model's configuration comes from: a Hugging Face config.json, or GGUF metadata.
pub enum ConfigSource {
    Json(serde_json::Value),
    Gguf(std::collections::BTreeMap<String, MetaValue>),
}

impl ConfigSource {
    /// config.json beside the weights (a folder, or the folder of a .safetensors file), else the GGUF metadata.
    pub fn find(path: &Path, store: &WeightStore) -> Result<Self> {
        let dir =
            if path.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
        let cfg = dir.join("config.json");
        if store.metadata().contains_key("general.architecture") {
            return Ok(ConfigSource::Gguf(store.metadata().clone()));
        }
        let text = std::fs::read_to_string(&cfg)
            .map_err(|e| Error::Format { file: cfg.display().to_string(), detail: format!("cannot read: {e}") })?;
        let v = serde_json::from_str(&text)
            .map_err(|e| Error::Format { file: cfg.display().to_string(), detail: format!("not JSON: {e}") })?;
        Ok(ConfigSource::Json(v))
    }

    /// The architecture name: config.json `model_type`, or GGUF `general.architecture`.
    pub fn architecture(&self) -> Result<String> {
        match self {
            ConfigSource::Json(v) => v["model_type"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::Format { file: "config.json".into(), detail: "no model_type".into() }),
            ConfigSource::Gguf(m) => m
                .get("general.architecture")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| Error::Format { file: "gguf".into(), detail: "no general.architecture".into() }),
        }
    }

    /// A number by its config.json key or GGUF key (`{arch}.` prefixed).
    pub fn num(&self, json_key: &str, gguf_key: &str) -> Option<f64> {
        match self {
            ConfigSource::Json(v) => v[json_key].as_f64(),
            ConfigSource::Gguf(m) => {
                let arch = m.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("");
                m.get(&format!("{arch}.{gguf_key}")).and_then(|v| v.as_f64())
            }
        }
    }

    fn file(&self) -> String {
        match self {
            ConfigSource::Json(_) => "config.json".into(),
            ConfigSource::Gguf(_) => "gguf metadata".into(),
        }
    }

    /// A size by its keys (None when absent): a whole number from 1 to 2³¹. Zero, negative, fractional or
    /// absurd values are an error naming the key (a zero head count would divide by zero, a zero context
    /// underflow).
    pub fn size(&self, json_key: &str, gguf_key: &str) -> Result<Option<usize>> {
        let Some(x) = self.num(json_key, gguf_key) else { return Ok(None) };
        if !(x >= 1.0 && x <= (1u64 << 31) as f64 && x.fract() == 0.0) {
            return Err(Error::Format {
                file: self.file(),
                detail: format!("{} = {x}: must be a whole number from 1 to 2^31", self.key_name(json_key, gguf_key)),
            });
        }
        Ok(Some(x as usize))
    }

    /// A required size (`size`, and missing is an error).
    pub fn req(&self, json_key: &str, gguf_key: &str) -> Result<usize> {
        self.size(json_key, gguf_key)?.ok_or_else(|| Error::Format {
            file: self.file(),
            detail: format!("missing {}", self.key_name(json_key, gguf_key)),
        })
    }

    fn key_name(&self, json_key: &str, gguf_key: &str) -> String {
        match self {
            ConfigSource::Json(_) => json_key.into(),
            ConfigSource::Gguf(_) => gguf_key.into(),
        }
    }

    /// An error unless `n` divides `total` (`what` names both, e.g. "hidden_size / num_attention_heads").
    pub fn check_divides(&self, total: usize, n: usize, what: &str) -> Result<()> {
        if n == 0 || !total.is_multiple_of(n) {
            return Err(Error::Format {
                file: self.file(),
                detail: format!("{what}: {total} is not a multiple of {n}"),
            });
        }
        Ok(())
    }
}

/// [B, T, n·hd] → heads [B, n, T, hd]. With one token (decode) the two layouts are the same bytes, so it
/// is a reshape and costs no dispatch.
pub fn split_heads(g: &mut GraphBuilder, y: ValueId, n: usize, hd: usize) -> Result<ValueId> {
    let (b, t) = (g.shape(y)[0], g.shape(y)[1]);
    if t == 1 {
        return g.reshape(y, &[b, n, 1, hd]);
    }
    let r = g.reshape(y, &[b, t, n, hd])?;
    g.op(Op::Permute0213, &[r])
}

/// Heads [B, n, T, hd] → [B, T, n·hd] (the inverse of `split_heads`; a reshape for one token).
pub fn merge_heads(g: &mut GraphBuilder, a: ValueId) -> Result<ValueId> {
    let s = g.shape(a).to_vec();
    let (b, n, t, hd) = (s[0], s[1], s[2], s[3]);
    let a = if t == 1 { a } else { g.op(Op::Permute0213, &[a])? };
    g.reshape(a, &[b, t, n * hd])
}

/// Causal self-attention of a decode/prefill step through the KV cache: k and v ([B, Hkv, t, D], after any
/// rotary) are written into the state leaves `cache.{layer}.k` / `.v` ([B, Hkv, max_seq, D]) at the runtime
/// position `pos`, and q ([B, Hq, t, D]) attends over the first `len` cached positions, hiding the keys
/// `mask` ([B, max_seq], 0 = padding) marks, if given. Returns [B, t, Hq·D].
pub fn cached_attention(
    g: &mut GraphBuilder,
    layer: usize,
    qkv: [ValueId; 3],
    max_seq: usize,
    mask: Option<ValueId>,
    seq_pos: Option<ValueId>,
) -> Result<ValueId> {
    use crate::graph::Scalar;
    let [q, k, v] = qkv;
    let (qs, ks) = (g.shape(q).to_vec(), g.shape(k).to_vec());
    let (b, hd, n_kv) = (qs[0], qs[3], ks[1]);
    let [kc, vc] = kv_cache(g, layer, [b, n_kv, max_seq, hd], g.dtype(q), seq_pos.is_some())?;
    let (kc, vc) = match seq_pos {
        Some(p) => (g.op(Op::CacheWriteAt, &[kc, k, p])?, g.op(Op::CacheWriteAt, &[vc, v, p])?),
        None => (
            g.op(Op::CacheWrite { offset: Scalar::var(step_names::POS) }, &[kc, k])?,
            g.op(Op::CacheWrite { offset: Scalar::var(step_names::POS) }, &[vc, v])?,
        ),
    };
    attend_cache(g, q, [kc, vc], mask)
}

/// A layer's KV cache states [B, Hkv, Smax, D]: `cache.{layer}.k/v`, or `slots.{layer}.k/v` for sequences
/// at their own positions (`Positions::PerSequence`), which keep their own cache.
fn kv_cache(g: &mut GraphBuilder, layer: usize, shape: [usize; 4], dt: DType, per_seq: bool) -> Result<[ValueId; 2]> {
    let cache = if per_seq { "slots" } else { "cache" };
    Ok([g.state(&format!("{cache}.{layer}.k"), &shape, dt)?, g.state(&format!("{cache}.{layer}.v"), &shape, dt)?])
}

/// Causal attention of q (at the runtime position `pos`) over the first `len` rows of the cache, heads merged.
fn attend_cache(g: &mut GraphBuilder, q: ValueId, [kc, vc]: [ValueId; 2], mask: Option<ValueId>) -> Result<ValueId> {
    use crate::graph::{AttnSpec, Scalar};
    let spec = AttnSpec {
        causal: true,
        scale: 1.0 / (g.shape(q)[3] as f32).sqrt(),
        mask: mask.is_some(),
        q_offset: Scalar::var(step_names::POS),
        kv_len: Scalar::var(step_names::LEN),
    };
    let ins: Vec<ValueId> = [q, kc, vc].into_iter().chain(mask).collect();
    let a = g.op(Op::Attention(spec), &ins)?;
    merge_heads(g, a)
}

/// `cached_attention` for a decoder whose q, k and v come from one packed projection `qkv`
/// [B, T, (Hq + 2·Hkv)·D] with rotary positions (`theta`, or the frequency table `freq`): one
/// `Op::RopeQkvCache` rotates q and k and writes k and v into the cache, then the attention reads them.
#[allow(clippy::too_many_arguments)]
pub fn rotary_cached_attention(
    g: &mut GraphBuilder,
    layer: usize,
    qkv: ValueId,
    (q_heads, kv_heads, hd): (usize, usize, usize),
    (theta, freq): (f32, Option<ValueId>),
    max_seq: usize,
    mask: Option<ValueId>,
    seq_pos: Option<ValueId>,
) -> Result<ValueId> {
    let b = g.shape(qkv)[0];
    let [kc, vc] = kv_cache(g, layer, [b, kv_heads, max_seq, hd], g.dtype(qkv), seq_pos.is_some())?;
    let pos = crate::graph::Scalar::var(step_names::POS);
    let op = Op::RopeQkvCache { theta, offset: pos, q_heads, at: seq_pos.is_some() };
    let ins: Vec<ValueId> = [qkv, kc, vc].into_iter().chain(seq_pos).chain(freq).collect();
    let q = g.op(op, &ins)?;
    attend_cache(g, q, [kc, vc], mask)
}

/// `x` in f32 (a cast where it is not already).
pub fn widen(g: &mut GraphBuilder, x: ValueId) -> Result<ValueId> {
    match g.dtype(x) {
        DType::F32 => Ok(x),
        _ => g.op(Op::Cast { to: DType::F32 }, &[x]),
    }
}

/// The geometry of a decoder step graph: `b` sequences of `t` new tokens each, logits for `rows` of the b·t
/// positions (the input `last` names them), a KV cache of `max_seq` positions, and where the sequences are in
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepShape {
    pub b: usize,
    pub t: usize,
    pub rows: usize,
    pub max_seq: usize,
    pub positions: Positions,
}

/// Where the sequences of a step graph are in their KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// Every sequence's new tokens start at the runtime scalar `pos` (one sequence, or a batch stepping in
    /// lockstep whose left padding the input `mask` hides): the cache `cache.{layer}.k/v`.
    Shared,
    /// Each sequence at its own position, the input `seq_pos` [B] (u32): continuous batching, where sequences
    /// of different lengths decode together. Its own cache `slots.{layer}.k/v` (so it can share weights with
    /// a single-sequence session's plans); the input `mask` [B, max_seq] gives each sequence's cached keys,
    /// and the runtime scalars `pos`/`len` are the largest position and that + 1.
    PerSequence,
}

/// The inputs of a step graph that say where its tokens are: `seq_pos` for `Positions::PerSequence`, and the
/// key `mask` [b, max_seq] whenever sequences step together or at their own positions.
pub fn position_inputs(
    g: &mut GraphBuilder,
    b: usize,
    max_seq: usize,
    positions: Positions,
    dt: DType,
) -> Result<(Option<ValueId>, Option<ValueId>)> {
    let seq_pos = match positions {
        Positions::PerSequence => Some(g.input(step_names::SEQ_POS, &[b], DType::U32)?),
        Positions::Shared => None,
    };
    let mask = match b > 1 || seq_pos.is_some() {
        true => Some(g.input(step_names::MASK, &[b, max_seq], dt)?),
        false => None,
    };
    Ok((seq_pos, mask))
}

/// Bidirectional multi-head attention over a padded batch: q, k, v [B, T, C] (after their projections) →
/// [B, T, C] before the output projection; `mask` [B, T] is 1 for tokens, 0 for padding.
pub fn encoder_attention(
    g: &mut GraphBuilder,
    qkv: [ValueId; 3],
    mask: ValueId,
    n_head: usize,
    dropout: Option<bert::Dropout>,
    k_drop: &mut u32,
) -> Result<ValueId> {
    use crate::graph::{AttnSpec, Scalar};
    let s = g.shape(qkv[0]).to_vec();
    let (t, c) = (s[1], s[2]);
    let d = c / n_head;
    let mut heads = [qkv[0]; 3];
    for (i, &y) in qkv.iter().enumerate() {
        heads[i] = split_heads(g, y, n_head, d)?;
    }
    let spec = AttnSpec {
        causal: false,
        scale: 1.0 / (d as f32).sqrt(),
        mask: true,
        q_offset: Scalar::Const(0),
        kv_len: Scalar::Const(t as u32),
    };
    let a = attention_with_dropout(g, spec, &[heads[0], heads[1], heads[2], mask], dropout, k_drop)?;
    merge_heads(g, a)
}

/// Attention (q, k, v, [mask]) → [B, H, T, D]: the fused op, or with a dropout on the probabilities
/// (training), P = AttentionWeights, dropout(P)·V, whose backward goes through P (`autodiff`).
pub fn attention_with_dropout(
    g: &mut GraphBuilder,
    spec: crate::graph::AttnSpec,
    ins: &[ValueId],
    dropout: Option<bert::Dropout>,
    k_drop: &mut u32,
) -> Result<ValueId> {
    match dropout.filter(|d| d.p > 0.0) {
        Some(d) => {
            let p = g.op(Op::AttentionWeights(spec), ins)?;
            let p = d.apply(g, p, k_drop)?;
            g.matmul(p, ins[2], false, false)
        }
        None => g.op(Op::Attention(spec), ins),
    }
}

/// LayerNorm with the params `{name}.weight` and `{name}.bias` of width `c`.
pub fn layernorm(g: &mut GraphBuilder, name: &str, x: ValueId, c: usize, eps: f32, dt: DType) -> Result<ValueId> {
    let w = g.param(&format!("{name}.weight"), &[c], dt)?;
    let b = g.param(&format!("{name}.bias"), &[c], dt)?;
    g.layernorm(x, w, b, eps)
}

/// A checkpoint tensor as f32, after checking it has the shape the model needs. An int8 weight of a quantized
/// checkpoint is dequantized with its `{name}_scale`.
pub fn load_checked(store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
    let e = store.entry(name)?;
    if e.shape != shape {
        return Err(Error::Shape {
            op: format!("load {name}"),
            detail: format!("the file has {:?}, the model needs {shape:?}", e.shape),
            shapes: vec![e.shape.clone(), shape.to_vec()],
        });
    }
    if e.dtype == SourceDType::I8 {
        let q = stored_int8(store, name, shape)?;
        return HostTensor::f32(shape, q.dequantize());
    }
    HostTensor::f32(shape, store.to_f32(name)?)
}

/// The int8 weight `name` [rows, cols] of a quantized checkpoint with its block scales `{name}_scale`.
fn stored_int8(store: &WeightStore, name: &str, shape: &[usize]) -> Result<QTensor> {
    let e = store.entry(name)?;
    let scale_name = format!("{name}_scale");
    let file = store.path_of(e).display().to_string();
    if !store.contains(&scale_name) {
        return Err(Error::Format { file, detail: format!("int8 tensor {name} has no block scales {scale_name}") });
    }
    let (rows, cols) = match shape {
        [r, c] => (*r, *c),
        _ => return Err(Error::Format { file, detail: format!("int8 tensor {name} is not 2-D: {shape:?}") }),
    };
    let q = store.bytes(name)?.iter().map(|&b| b as i8).collect();
    QTensor::from_parts(rows, cols, q, store.to_f32(&scale_name)?)
        .map_err(|e| Error::Format { file, detail: format!("{scale_name}: {e}") })
}

/// The int8 scheme an int8 checkpoint's config records (`Precision`'s int8 fields).
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Scheme {
    pub act: ActQuant,
    pub keep: Vec<String>,
    pub dynamic: Vec<String>,
}

/// The quantization scheme recorded in a checkpoint's config.json by `wgpu-llm quantize`
/// (`"quantization_config": {"quant_method": "wgpu-llm-int8", "activations": …, "keep": […]}`).
pub fn checkpoint_int8(src: &ConfigSource) -> Result<Option<Int8Scheme>> {
    let ConfigSource::Json(v) = src else { return Ok(None) };
    let Some(q) = v.get("quantization_config").filter(|q| !q.is_null()) else { return Ok(None) };
    let bad = |detail: String| Error::Format { file: "config.json".into(), detail };
    if q["quant_method"].as_str() != Some(crate::quant::METHOD) {
        return Err(bad(format!("quantization_config {q} is not a {} scheme", crate::quant::METHOD)));
    }
    let act = q["activations"].as_str().and_then(ActQuant::parse).ok_or_else(|| {
        bad(format!("quantization_config.activations {} is not weight-only|dynamic|static", q["activations"]))
    })?;
    let list = |k: &str| -> Vec<String> {
        q[k].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    Ok(Some(Int8Scheme { act, keep: list("keep"), dynamic: list("dynamic") }))
}

/// Upload every param of `graph` through `set` and return the bytes uploaded. Float params come from `load`
/// (the architecture's loader: renames, fused splits, GGUF row order). An int8 linear weight (`{stem}.weight`
/// u32 [out, in/4] with `{stem}.weight_scale`) is read as it is from an int8 checkpoint or quantized from the
/// float weight; static input scales must come from the checkpoint.
pub fn upload_params(
    graph: &crate::graph::Graph,
    store: &WeightStore,
    load: &dyn Fn(&str, &[usize]) -> Result<HostTensor>,
    set: &mut dyn FnMut(&str, &HostTensor) -> Result<()>,
) -> Result<u64> {
    let mut bytes = 0u64;
    for node in &graph.nodes {
        let Op::Param { name } = &node.op else { continue };
        if name.ends_with(".weight_scale") {
            continue; // uploaded with its weight
        }
        // A fused param (`GraphBuilder::fused_param`) is its parts, read one by one and stacked.
        let parts = match graph.parts_of(name) {
            Some(f) => f.parts.clone(),
            None if node.dtype == DType::U32 => vec![(name.clone(), vec![node.shape[0], node.shape[1] * 4])],
            None => vec![(name.clone(), node.shape.clone())],
        };
        if node.dtype == DType::U32 {
            let (rows, cols) = (node.shape[0], node.shape[1] * 4);
            let mut q = QTensor { rows: 0, cols, q: vec![], scales: vec![] };
            for (part, shape) in &parts {
                let stored = store.entry(part).is_ok_and(|e| e.dtype == SourceDType::I8);
                let p = if stored {
                    stored_int8(store, part, shape)?
                } else {
                    let t = load(part, shape)?;
                    match t.as_f32() {
                        Some(w) => QTensor::quantize(w, shape[0], cols)?,
                        None => QTensor::quantize(&t.to_f32(), shape[0], cols)?,
                    }
                };
                q.rows += p.rows;
                q.q.extend(p.q);
                q.scales.extend(p.scales);
            }
            bytes += q.bytes() as u64;
            set(name, &HostTensor::u32(&node.shape, q.packed())?)?;
            set(&format!("{name}_scale"), &HostTensor::f32(&[rows, cols / crate::quant::BLOCK], q.scales)?)?;
            continue;
        }
        let t = if name.ends_with(".input_scale") {
            if !store.contains(name) {
                return Err(Error::Format {
                    file: "model".into(),
                    detail: format!(
                        "static int8 needs calibrated activation scales and {name} is missing (make them with \
                         `wgpu-llm quantize --mode static`)"
                    ),
                });
            }
            load_checked(store, name, &node.shape)?
        } else if parts.len() == 1 && parts[0].0 == *name {
            load(name, &node.shape)?
        } else {
            let data: Vec<Vec<f32>> = parts.iter().map(|(p, s)| Ok(load(p, s)?.to_f32())).collect::<Result<_>>()?;
            HostTensor::f32(&node.shape, data.concat())?
        };
        bytes += (t.numel() * node.dtype.size()) as u64;
        set(name, &t)?;
    }
    Ok(bytes)
}

/// How a model's numbers are stored and computed: the float dtype of activations and float weights, and
/// whether the linear layers' weights are int8 (`quant`'s block-32 format) and how their inputs are treated.
#[derive(Clone, Debug, PartialEq)]
pub struct Precision {
    pub dtype: DType,
    /// `Some(act)`: linear weights are int8; `act` says whether activations stay float (weight-only) or are
    /// quantized per block on the fly (dynamic) or with calibrated scales (static).
    pub int8: Option<ActQuant>,
    /// Linear layers whose name contains one of these strings keep float weights (`DEFAULT_KEEP` unless
    /// chosen).
    pub keep: Vec<String>,
    /// Under static int8, linear layers whose name contains one of these strings quantize their inputs per
    /// token on the fly instead (inputs too heavy-tailed for one calibrated scale; `crate::tools::quantize`).
    pub dynamic: Vec<String>,
    /// The float dtype of the linear layers' weights when it differs from `dtype` (training's frozen f16
    /// base under f32 activations: each weight is widened right before its product, `Op::Dequantize`).
    pub weights: Option<DType>,
}

/// The names of a decoder step graph's inputs and runtime scalars: the builders declare them and `Step`
/// feeds them, so no other code spells them.
pub mod step_names {
    /// [b, t] u32 token ids.
    pub const IDS: &str = "ids";
    /// [rows] u32: the rows (of b·t) whose logits are wanted.
    pub const LAST: &str = "last";
    /// [b, t] u32 position ids (models with learned positions).
    pub const POS_IDS: &str = "pos_ids";
    /// [b] u32: each sequence's first position (`Positions::PerSequence`).
    pub const SEQ_POS: &str = "seq_pos";
    /// [b, max_seq] key mask, 1 where a sequence has a cached token.
    pub const MASK: &str = "mask";
    /// Runtime scalar: the cache position of the step's first token.
    pub const POS: &str = "pos";
    /// Runtime scalar: pos + t, the keys the step's queries may see.
    pub const LEN: &str = "len";
}

/// The inputs of one run of a decoder step graph, typed. `feeds` turns them into the plan's named inputs
/// (position ids only where the graph has them), `scalars` into its runtime scalars.
#[derive(Clone, Debug)]
pub struct Step {
    /// [b, t] token ids, row-major (padded rows included).
    pub ids: Vec<u32>,
    pub b: usize,
    pub t: usize,
    /// The rows (of b·t) whose logits are wanted.
    pub last: Vec<u32>,
    /// The cache position of the first new token (with `seq_pos`, the largest of them).
    pub pos: u32,
    /// Learned-position ids [b, t] where they are not pos + j (left-padded batches, slots).
    pub pos_ids: Option<Vec<u32>>,
    /// The key mask [b, max_seq] in the activations' dtype (batches and slots).
    pub mask: Option<HostTensor>,
    /// Each sequence's own first position [b] (continuous batching).
    pub seq_pos: Option<Vec<u32>>,
}

impl Step {
    /// One sequence of `ids` padded to `t` rows at position `pos`, with the logits of rows `last`.
    pub fn single(ids: &[u32], t: usize, last: Vec<u32>, pos: u32) -> Step {
        let mut ids = ids.to_vec();
        ids.resize(t, 0);
        Step { ids, b: 1, t, last, pos, pos_ids: None, mask: None, seq_pos: None }
    }

    /// The named inputs `graph` takes (a model with learned positions has `pos_ids`, clamped to its
    /// `max_pos` rows; padded rows are never read).
    pub fn feeds(&self, graph: &crate::graph::Graph, max_pos: usize) -> Result<Vec<(&'static str, HostTensor)>> {
        use step_names::*;
        let (b, t) = (self.b, self.t);
        let mut v = vec![(IDS, HostTensor::u32(&[b, t], self.ids.clone())?)];
        v.push((LAST, HostTensor::u32(&[self.last.len()], self.last.clone())?));
        if graph.find(POS_IDS).is_some() {
            let top = max_pos.max(1) as u32 - 1;
            let ids = match &self.pos_ids {
                Some(p) => p.iter().map(|&p| p.min(top)).collect(),
                None => (0..b).flat_map(|_| (0..t as u32).map(|j| (self.pos + j).min(top))).collect(),
            };
            v.push((POS_IDS, HostTensor::u32(&[b, t], ids)?));
        }
        if let Some(p) = &self.seq_pos {
            v.push((SEQ_POS, HostTensor::u32(&[b], p.clone())?));
        }
        if let Some(m) = &self.mask {
            v.push((MASK, m.clone()));
        }
        Ok(v)
    }

    /// The runtime scalars: `pos`, and `len` = pos + t.
    pub fn scalars(&self) -> [(&'static str, u32); 2] {
        [(step_names::POS, self.pos), (step_names::LEN, self.pos + self.t as u32)]
    }
}

/// A key mask [b, max_seq] in `dtype` (1.0 over `keep(i)`, the cached positions of sequence i).
pub fn key_mask(
    b: usize,
    max_seq: usize,
    dtype: DType,
    keep: impl Fn(usize) -> std::ops::Range<usize>,
) -> Result<HostTensor> {
    let mut mask = vec![0f32; b * max_seq];
    for i in 0..b {
        let r = keep(i);
        mask[i * max_seq + r.start.min(max_seq)..i * max_seq + r.end.min(max_seq)].fill(1.0);
    }
    match dtype {
        DType::F16 => HostTensor::f16(&[b, max_seq], mask),
        _ => HostTensor::f32(&[b, max_seq], mask),
    }
}

/// The graph of one forward step of a decoder (every architecture's `build`), with the values a session
/// needs.
pub struct StepGraph {
    pub graph: crate::graph::Graph,
    pub logits: ValueId,
}

/// A named tensor: (name, shape, values).
pub type Named = (String, Vec<usize>, Vec<f32>);

/// How a checkpoint fuses an attention block's q, k and v: (stem, "weight" or "bias", q's shape, [q, k, v]
/// values) → the fused tensor.
pub type FuseQkv<'a> = dyn Fn(&str, &str, &[usize], &[Vec<f32>]) -> Named + 'a;

/// Every param of `graph` (values from `get` by graph name) in a checkpoint that fuses the q, k and v params
/// of each `{stem}.{attn}.{q,k,v}.{weight,bias}` into one tensor (`fuse`); the rest as they are. GPT-2's
/// c_attn and PyTorch's in_proj.
pub fn fused_qkv(
    graph: &crate::graph::Graph,
    get: &dyn Fn(&str) -> Result<Vec<f32>>,
    attn: &str,
    fuse: &FuseQkv,
) -> Result<Vec<Named>> {
    let mut out = vec![];
    for node in &graph.nodes {
        let Op::Param { name } = &node.op else { continue };
        if name.contains(&format!(".{attn}.k.")) || name.contains(&format!(".{attn}.v.")) {
            continue;
        }
        let q = |part: &str| name.strip_suffix(&format!(".{attn}.q.{part}"));
        let Some((stem, part)) = q("weight").map(|s| (s, "weight")).or_else(|| q("bias").map(|s| (s, "bias"))) else {
            out.push((name.clone(), node.shape.clone(), get(name)?));
            continue;
        };
        let parts: Vec<Vec<f32>> =
            ["q", "k", "v"].iter().map(|x| get(&format!("{stem}.{attn}.{x}.{part}"))).collect::<Result<_>>()?;
        out.push(fuse(stem, part, &node.shape, &parts));
    }
    Ok(out)
}

/// A classifier's label names in id order from its config.json's `id2label` (`LABEL_i` where it names
/// none), for `n` classifier rows.
pub fn labels_from_config(config: &serde_json::Value, n: usize) -> Vec<String> {
    (0..n).map(|i| config["id2label"][i.to_string()].as_str().map_or(format!("LABEL_{i}"), str::to_string)).collect()
}

/// The linear layers that stay float under int8 unless the user says otherwise: the output head (the
/// embeddings and norms are not linear layers and always stay float).
pub const DEFAULT_KEEP: &[&str] = &["lm_head"];

/// `--keep` as the CLI takes it: comma-separated name fragments, `none` for the empty list, absent for the
/// default.
pub fn parse_keep(arg: Option<&str>) -> Vec<String> {
    match arg {
        None => DEFAULT_KEEP.iter().map(|s| s.to_string()).collect(),
        Some("none") | Some("") => vec![],
        Some(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
    }
}

impl From<DType> for Precision {
    fn from(dtype: DType) -> Self {
        Precision { dtype, int8: None, keep: vec![], dynamic: vec![], weights: None }
    }
}

impl Precision {
    /// `--dtype` as every model command takes it (f32, f16, int8 weight-only, w8a8 dynamic); int8 schemes
    /// compute in `float`, keeping the layers `keep` names (`parse_keep`).
    pub fn parse(d: &str, float: DType, keep: Option<&str>) -> Result<Precision> {
        let int8 =
            |act| Precision { dtype: float, int8: Some(act), keep: parse_keep(keep), dynamic: vec![], weights: None };
        match d {
            "f32" => Ok(DType::F32.into()),
            "f16" => Ok(DType::F16.into()),
            "int8" => Ok(int8(ActQuant::None)),
            "w8a8" => Ok(int8(ActQuant::Dynamic)),
            d => Err(Error::Other(format!("unknown --dtype {d:?} (f32, f16, int8, w8a8)"))),
        }
    }

    /// An int8 checkpoint runs its own scheme (`checkpoint_int8`) unless int8 was asked for explicitly.
    pub fn adopt_checkpoint(&mut self, src: &ConfigSource) -> Result<()> {
        if self.int8.is_none() {
            if let Some(q) = checkpoint_int8(src)? {
                self.int8 = Some(q.act);
                self.keep = q.keep;
                self.dynamic = q.dynamic;
            }
        }
        Ok(())
    }

    /// `f32`, `f16`, or `int8-{activations}/{float dtype}` (e.g. `int8-dynamic/f32`).
    pub fn name(&self) -> String {
        match self.int8 {
            None => self.dtype.name().to_string(),
            Some(act) => format!("int8-{}/{}", act.name(), self.dtype.name()),
        }
    }
    /// Whether the linear layer `name` with `inp` inputs runs int8 (and with which activations): int8 needs
    /// whole blocks of 32 along the input dim.
    pub fn int8_for(&self, name: &str, inp: usize) -> Option<ActQuant> {
        let act = self.int8?;
        let has = |list: &[String]| list.iter().any(|k| name.contains(k.as_str()));
        let act = if act == ActQuant::Static && has(&self.dynamic) { ActQuant::Dynamic } else { act };
        (!has(&self.keep) && inp.is_multiple_of(crate::quant::BLOCK)).then_some(act)
    }
}

/// A linear layer y = x·Wᵀ (+ b), W [out, in] as in every checkpoint. An int8 layer holds `{name}.weight` as
/// packed int8 (u32 [out, in/4]) with `{name}.weight_scale` (f32 [out, in/32]), plus `{name}.input_scale`
/// (f32 [in/32]) with static activation scales.
pub struct Linear {
    pub name: String,
    pub w: ValueId,
    pub b: Option<ValueId>,
    int8: Option<(ActQuant, ValueId, Option<ValueId>)>,
    /// The checkpoint's layers a fused layer stacks (`Linear::fused`); their names are the taps.
    parts: Vec<String>,
}

impl Linear {
    pub fn new(g: &mut GraphBuilder, name: &str, out: usize, inp: usize, bias: bool, prec: &Precision) -> Result<Self> {
        let dt = prec.dtype;
        let b = if bias { Some(g.param(&format!("{name}.bias"), &[out], dt)?) } else { None };
        let Some(act) = prec.int8_for(name, inp) else {
            let w = g.param(&format!("{name}.weight"), &[out, inp], prec.weights.unwrap_or(dt))?;
            return Ok(Linear { name: name.into(), w, b, int8: None, parts: vec![] });
        };
        let w = g.param(&format!("{name}.weight"), &[out, inp / 4], DType::U32)?;
        let ws = g.param(&format!("{name}.weight_scale"), &[out, inp / crate::quant::BLOCK], DType::F32)?;
        let xs = match act {
            ActQuant::Static => {
                Some(g.param(&format!("{name}.input_scale"), &[inp / crate::quant::BLOCK], DType::F32)?)
            }
            _ => None,
        };
        Ok(Linear { name: name.into(), w, b, int8: Some((act, ws, xs)), parts: vec![] })
    }

    /// The checkpoint's layers `parts` (name, out) that read the same input, as one layer `name` whose
    /// weight stacks theirs (outputs side by side): a decoder's q, k and v projections as one product. The
    /// params are `GraphBuilder::fused_param`s (loaders read the parts, exporters write them); the layer is
    /// int8 only if every part would be (else float, as a kept part asks), static input scales are the first
    /// part's (the parts share their input), and the parts' names are its taps.
    pub fn fused(
        g: &mut GraphBuilder,
        name: &str,
        parts: &[(String, usize)],
        inp: usize,
        bias: bool,
        prec: &Precision,
    ) -> Result<Self> {
        let dt = prec.dtype;
        let out: usize = parts.iter().map(|p| p.1).sum();
        let stacked = |suffix: &str, cols: &[usize]| -> Vec<(String, Vec<usize>)> {
            parts.iter().map(|(n, o)| (format!("{n}.{suffix}"), [&[*o][..], cols].concat())).collect()
        };
        let b = match bias {
            true => Some(g.fused_param(&format!("{name}.bias"), &[out], dt, stacked("bias", &[]))?),
            false => None,
        };
        let acts: Vec<Option<ActQuant>> = parts.iter().map(|(n, _)| prec.int8_for(n, inp)).collect();
        let names = parts.iter().map(|p| p.0.clone()).collect();
        let weights = stacked("weight", &[inp]);
        let Some(act) = acts.iter().all(|a| *a == acts[0]).then_some(acts[0]).flatten() else {
            let w = g.fused_param(&format!("{name}.weight"), &[out, inp], prec.weights.unwrap_or(dt), weights)?;
            return Ok(Linear { name: name.into(), w, b, int8: None, parts: names });
        };
        let w = g.fused_param(&format!("{name}.weight"), &[out, inp / 4], DType::U32, weights)?;
        let ws = g.param(&format!("{name}.weight_scale"), &[out, inp / crate::quant::BLOCK], DType::F32)?;
        let xs = match act {
            ActQuant::Static => {
                Some(g.param(&format!("{}.input_scale", parts[0].0), &[inp / crate::quant::BLOCK], DType::F32)?)
            }
            _ => None,
        };
        Ok(Linear { name: name.into(), w, b, int8: Some((act, ws, xs)), parts: names })
    }

    /// r + x·Wᵀ (+ b): the layer feeding a residual connection. A layer without bias adds into r in place
    /// (`Op::LinearAdd`, `Op::QLinearAdd` for int8: no dispatch for the add); others add as usual. r must not
    /// be read afterwards.
    pub fn forward_add(&self, g: &mut GraphBuilder, x: ValueId, r: ValueId) -> Result<ValueId> {
        if self.int8.is_none() && self.b.is_none() && g.dtype(self.w) == g.dtype(x) {
            self.tap(g, x);
            return g.op(Op::LinearAdd, &[x, self.w, r]);
        }
        if let (Some((act, ws, xs)), None) = (self.int8, self.b) {
            self.tap(g, x);
            let mut ins = vec![x, self.w, ws, r];
            ins.extend(xs);
            return g.op(Op::QLinearAdd { act }, &ins);
        }
        let y = self.forward(g, x)?;
        g.add(r, y)
    }

    /// The names this layer's input is recorded under: its own, or its parts'.
    fn tap(&self, g: &mut GraphBuilder, x: ValueId) {
        match self.parts.is_empty() {
            true => g.tap(&self.name, x),
            false => self.parts.iter().for_each(|p| g.tap(p, x)),
        }
    }

    /// act(gate(x)) ⊙ up(x): one Glu op when both are float without bias (decode runs it as one GEMV), else
    /// the two layers, the activation and the product. Both inputs are recorded as taps, as `forward` does.
    pub fn glu(g: &mut GraphBuilder, gate: &Linear, up: &Linear, x: ValueId, act: Act) -> Result<ValueId> {
        let plain = |l: &Linear| l.int8.is_none() && l.b.is_none() && g.dtype(l.w) == g.dtype(x);
        if plain(gate) && plain(up) {
            g.tap(&gate.name, x);
            g.tap(&up.name, x);
            return g.op(Op::Glu { act }, &[x, gate.w, up.w]);
        }
        // Both int8 alike, without static activation scales (each layer keeps its own calibrated ones, which
        // one shared rounding of the row could not honour): QGlu.
        if let (Some((quant, gs, None)), Some((uq, us, None)), None, None) = (gate.int8, up.int8, gate.b, up.b) {
            if quant == uq {
                g.tap(&gate.name, x);
                g.tap(&up.name, x);
                return g.op(Op::QGlu { act, quant }, &[x, gate.w, gs, up.w, us]);
            }
        }
        let a = gate.forward(g, x)?;
        let a = g.act(a, act)?;
        let u = up.forward(g, x)?;
        g.mul(a, u)
    }

    /// y = x·Wᵀ (+ b). The input is recorded as a tap named after the layer (static calibration reads it).
    pub fn forward(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId> {
        self.tap(g, x);
        let Some((act, ws, xs)) = self.int8 else {
            let w = if g.dtype(self.w) == g.dtype(x) {
                self.w
            } else {
                g.op(Op::Dequantize { transpose: false }, &[self.w])?
            };
            return g.linear(x, w, self.b);
        };
        let mut ins = vec![x, self.w, ws];
        ins.extend(xs);
        let y = g.op(Op::QMatMul { act }, &ins)?;
        match self.b {
            Some(b) => g.add(y, b),
            None => Ok(y),
        }
    }
}
