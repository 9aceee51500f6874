//! Model architectures, one file each, built against `GraphBuilder` (no GPU calls), sharing the layers here.

pub mod bert;
pub mod gpt2;
pub mod llama;
pub mod textbook;

use std::path::Path;

use crate::error::{Error, Result};
use crate::graph::{GraphBuilder, ValueId};
use crate::loader::{MetaValue, WeightStore};
use crate::tensor::DType;

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

    pub fn req(&self, json_key: &str, gguf_key: &str) -> Result<usize> {
        self.num(json_key, gguf_key).map(|x| x as usize).ok_or_else(|| Error::Format {
            file: match self {
                ConfigSource::Json(_) => "config.json".into(),
                ConfigSource::Gguf(_) => "gguf metadata".into(),
            },
            detail: format!("missing {json_key} / {gguf_key}"),
        })
    }
}

/// Causal self-attention of a decode/prefill step through the KV cache: k and v ([1, Hkv, t, D], after any
/// rotary) are written into the state leaves `cache.{layer}.k` / `.v` ([1, Hkv, max_seq, D]) at the runtime
/// position `pos`, and q ([1, Hq, t, D]) attends over the first `len` cached positions. Returns [1, t, Hq·D].
pub fn cached_attention(g: &mut GraphBuilder, layer: usize, qkv: [ValueId; 3], max_seq: usize) -> Result<ValueId> {
    use crate::graph::{AttnSpec, Op, Scalar};
    let [q, k, v] = qkv;
    let (qs, ks) = (g.shape(q).to_vec(), g.shape(k).to_vec());
    let (n_head, t, hd, n_kv) = (qs[1], qs[2], qs[3], ks[1]);
    let dt = g.dtype(q);
    let pos = Scalar::var("pos");
    let kc = g.state(&format!("cache.{layer}.k"), &[1, n_kv, max_seq, hd], dt)?;
    let vc = g.state(&format!("cache.{layer}.v"), &[1, n_kv, max_seq, hd], dt)?;
    let kc = g.op(Op::CacheWrite { offset: pos.clone() }, &[kc, k])?;
    let vc = g.op(Op::CacheWrite { offset: pos.clone() }, &[vc, v])?;
    let spec = AttnSpec {
        causal: true,
        scale: 1.0 / (hd as f32).sqrt(),
        mask: false,
        q_offset: pos,
        kv_len: Scalar::var("len"),
    };
    let a = g.op(Op::Attention(spec), &[q, kc, vc])?;
    let a = g.op(Op::Permute0213, &[a])?;
    g.reshape(a, &[1, t, n_head * hd])
}

/// Bidirectional multi-head attention over a padded batch: q, k, v [B, T, C] (after their projections) →
/// [B, T, C] before the output projection; `mask` [B, T] is 1 for tokens, 0 for padding.
pub fn encoder_attention(g: &mut GraphBuilder, qkv: [ValueId; 3], mask: ValueId, n_head: usize) -> Result<ValueId> {
    use crate::graph::{AttnSpec, Op, Scalar};
    let s = g.shape(qkv[0]).to_vec();
    let (b, t, c) = (s[0], s[1], s[2]);
    let d = c / n_head;
    let mut heads = [qkv[0]; 3];
    for (i, &y) in qkv.iter().enumerate() {
        let r = g.reshape(y, &[b, t, n_head, d])?;
        heads[i] = g.op(Op::Permute0213, &[r])?;
    }
    let spec = AttnSpec {
        causal: false,
        scale: 1.0 / (d as f32).sqrt(),
        mask: true,
        q_offset: Scalar::Const(0),
        kv_len: Scalar::Const(t as u32),
    };
    let a = g.op(Op::Attention(spec), &[heads[0], heads[1], heads[2], mask])?;
    let a = g.op(Op::Permute0213, &[a])?;
    g.reshape(a, &[b, t, c])
}

/// LayerNorm with the params `{name}.weight` and `{name}.bias` of width `c`.
pub fn layernorm(g: &mut GraphBuilder, name: &str, x: ValueId, c: usize, eps: f32, dt: DType) -> Result<ValueId> {
    let w = g.param(&format!("{name}.weight"), &[c], dt)?;
    let b = g.param(&format!("{name}.bias"), &[c], dt)?;
    g.layernorm(x, w, b, eps)
}

/// A checkpoint tensor as f32, after checking it has the shape the model needs.
pub fn load_checked(store: &WeightStore, name: &str, shape: &[usize]) -> Result<crate::tensor::HostTensor> {
    let e = store.entry(name)?;
    if e.shape != shape {
        return Err(Error::Shape {
            op: format!("load {name}"),
            detail: format!("the file has {:?}, the model needs {shape:?}", e.shape),
            shapes: vec![e.shape.clone(), shape.to_vec()],
        });
    }
    crate::tensor::HostTensor::f32(shape, store.to_f32(name)?)
}

/// A linear layer y = x·Wᵀ (+ b), W [out, in] as in every checkpoint.
pub struct Linear {
    pub w: ValueId,
    pub b: Option<ValueId>,
}

impl Linear {
    pub fn new(g: &mut GraphBuilder, name: &str, out: usize, inp: usize, bias: bool, dt: DType) -> Result<Self> {
        let w = g.param(&format!("{name}.weight"), &[out, inp], dt)?;
        let b = if bias { Some(g.param(&format!("{name}.bias"), &[out], dt)?) } else { None };
        Ok(Linear { w, b })
    }
    pub fn forward(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId> {
        g.linear(x, self.w, self.b)
    }
}
