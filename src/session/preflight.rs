//! The pre-flight memory plan: what a decoder needs on the GPU at a precision and context, computed from its
//! graphs without a device (`exec::estimate`), so that a model that cannot fit is an error before anything is
//! allocated, naming what is needed and the flags that lower it (`inspect MODEL --memory`).

use std::path::Path;

use serde::Serialize;

use super::Arch;
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::models::{ConfigSource, Precision};

#[derive(Clone, Debug, Serialize)]
pub struct MemoryPlan {
    pub precision: String,
    pub ctx: usize,
    /// Every weight as it is uploaded (int8 packed with its scales).
    pub weights: u64,
    /// The KV cache at `ctx` positions.
    pub kv_cache: u64,
    /// The decode step's activations (transient pool).
    pub decode_activations: u64,
    /// The largest prefill's activations (a prompt of `ctx` tokens: attention scores grow with ctx²).
    pub prefill_activations: u64,
    /// The largest single tensor (name, bytes): it must fit one buffer (`max_buffer_size`).
    pub largest_tensor: (String, u64),
    /// weights + KV cache + the decode and largest prefill pools.
    pub total: u64,
}

impl MemoryPlan {
    /// The plan of the model at `path` in `prec` with a context of `ctx` tokens (capped at the model's).
    pub fn of(path: &Path, prec: &Precision, ctx: usize) -> Result<MemoryPlan> {
        let store = crate::loader::open(path)?;
        let src = ConfigSource::find(path, &store)?;
        let cfg = Arch::from_source(&src, &store)?;
        let mut prec = prec.clone();
        prec.adopt_checkpoint(&src)?;
        Self::for_arch(&cfg, &prec, ctx)
    }

    pub fn for_arch(cfg: &Arch, prec: &Precision, ctx: usize) -> Result<MemoryPlan> {
        let ctx = ctx.min(cfg.max_pos()).max(1);
        let decode = cfg.build(1, 1, ctx, prec)?;
        let (mut weights, mut kv, mut largest) = (0u64, 0u64, (String::new(), 0u64));
        for node in &decode.graph.nodes {
            let bytes = (node.shape.iter().product::<usize>() * node.dtype.size()) as u64;
            match &node.op {
                Op::Param { .. } => weights += bytes,
                Op::State { .. } => kv += bytes,
                _ => continue,
            }
            if bytes > largest.1 {
                largest = (crate::graph::leaf_name(&node.op).unwrap_or_default().to_string(), bytes);
            }
        }
        let (_, decode_activations) = crate::exec::estimate(&decode.graph, &[decode.logits])?;
        let prefill = cfg.build(ctx, 1, ctx, prec)?;
        let (_, prefill_activations) = crate::exec::estimate(&prefill.graph, &[prefill.logits])?;
        Ok(MemoryPlan {
            precision: prec.name(),
            ctx,
            weights,
            kv_cache: kv,
            decode_activations,
            prefill_activations,
            largest_tensor: largest,
            total: weights + kv + decode_activations + prefill_activations,
        })
    }

    /// An error when the plan exceeds `available` bytes, saying what is needed and what lowers it.
    pub fn check(&self, available: u64, what: &str) -> Result<()> {
        if self.total <= available {
            return Ok(());
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        Err(Error::TooLarge {
            tensor: "the model".into(),
            bytes: self.total,
            limit: available,
            what: format!(
                "{what}; weights {:.1} MiB, KV cache {:.1} MiB at --ctx {}, activations {:.1} MiB",
                mib(self.weights),
                mib(self.kv_cache),
                self.ctx,
                mib(self.decode_activations + self.prefill_activations)
            ),
            hint: "; lower --ctx (the KV cache and the largest prefill shrink with it) or use --dtype f16 / int8"
                .into(),
        })
    }
}
