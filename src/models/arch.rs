//! The decoder architectures in one place. `Decoder` is everything the engine asks of one — its config
//! (read and validated by its constructor), its step graphs, its parameters by checkpoint name (Hugging Face
//! ↔ GGUF), the tensors an export writes and its quantization defaults — and `REGISTRY` maps each
//! `model_type` (config.json) or `general.architecture` (GGUF) to its family. Adding a decoder is one module
//! implementing `Decoder` and one `REGISTRY` row; the session, the tools and the trainers ask `Arch`.

use std::fmt::Debug;
use std::sync::Arc;

use super::{gpt2, llama, ConfigSource, Named, Positions, Precision, StepGraph, StepShape};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loader::WeightStore;
use crate::tensor::HostTensor;

/// One decoder architecture with its config.
pub trait Decoder: Debug + Send + Sync {
    fn vocab(&self) -> usize;
    fn max_pos(&self) -> usize;
    /// The step graph of `s` (see `llama::build_batch` for its inputs and outputs).
    fn build(&self, s: StepShape, prec: &Precision) -> Result<StepGraph>;
    /// One param of a step graph from the checkpoint (renames, fused splits, GGUF row order undone), as f32.
    fn load_param(&self, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor>;
    /// The checkpoint's tensors behind `graph`'s params, in Hugging Face names and layouts, as f32: what an
    /// export writes (fused params as their parts).
    fn checkpoint_tensors(&self, graph: &Graph, store: &WeightStore) -> Result<Vec<Named>>;
    /// The Llama-family config, where the architecture is one (LoRA adapters and GGUF export need it).
    fn llama(&self) -> Option<&llama::Config> {
        None
    }
}

/// A family of decoders: the `model_type`s it serves, its constructor and its quantization defaults.
pub struct Family {
    pub model_types: &'static [&'static str],
    pub open: fn(&ConfigSource, &WeightStore) -> Result<Arc<dyn Decoder>>,
    /// Linear layers a static int8 scheme quantizes per token by default (`quantize --mode static`).
    pub dynamic: &'static [&'static str],
    /// Whether SmoothQuant's groups (a norm feeding projections) are known for it (`quantize --smooth`).
    pub smoothable: bool,
}

impl Family {
    /// Whether this is the Llama family (`llama::Config` reads its configs).
    pub fn llama_family(&self) -> bool {
        self.model_types.contains(&"llama")
    }
}

/// Every decoder the engine runs.
pub const REGISTRY: &[Family] = &[
    Family {
        model_types: &["llama", "qwen2", "mistral"],
        open: |src, store| Ok(Arc::new(llama::Config::from_source(src, store)?)),
        // silu(gate) ⊙ up is heavy-tailed per token: one calibrated scale per block cost SmolLM2-135M 40–150×
        // the rounding noise of per-token scales (issue 4's note); smoothing did not recover it.
        dynamic: &["mlp.down_proj"],
        smoothable: true,
    },
    Family {
        model_types: &["gpt2"],
        open: |src, store| Ok(Arc::new(gpt2::Config::from_source(src, store)?)),
        dynamic: &[],
        smoothable: false,
    },
];

/// The family serving `model_type`.
pub fn family(model_type: &str) -> Option<&'static Family> {
    REGISTRY.iter().find(|f| f.model_types.contains(&model_type))
}

/// A decoder opened from a checkpoint: its family's constructor behind one handle.
#[derive(Clone, Debug)]
pub struct Arch {
    pub model_type: String,
    decoder: Arc<dyn Decoder>,
}

impl Arch {
    pub fn from_source(src: &ConfigSource, store: &WeightStore) -> Result<Self> {
        let model_type = src.architecture()?;
        let Some(f) = family(&model_type) else {
            let detail = match model_type.as_str() {
                "bert" => "this is a BERT encoder: embed and classify run it; generate, chat and perplexity need a \
                           causal language model"
                    .to_string(),
                other => format!(
                    "unknown architecture {other:?} (decoders: {})",
                    REGISTRY.iter().flat_map(|f| f.model_types.iter().copied()).collect::<Vec<_>>().join(", ")
                ),
            };
            return Err(Error::Unsupported { op: "model".into(), detail });
        };
        Ok(Arch { decoder: (f.open)(src, store)?, model_type })
    }
    /// The step graph over `t` tokens with logits for `rows` of them.
    pub fn build(&self, t: usize, rows: usize, max_seq: usize, prec: &Precision) -> Result<StepGraph> {
        self.build_batch(1, t, rows, max_seq, prec)
    }
    /// The step graph of `b` sequences stepping together (see `llama::build_batch`).
    pub fn build_batch(&self, b: usize, t: usize, rows: usize, max_seq: usize, prec: &Precision) -> Result<StepGraph> {
        self.decoder.build(StepShape { b, t, rows, max_seq, positions: Positions::Shared }, prec)
    }
    /// The decode step of `b` sequences each at its own position (`Positions::PerSequence`: continuous
    /// batching, `Session::open_slots`).
    pub fn build_slots(&self, b: usize, max_seq: usize, prec: &Precision) -> Result<StepGraph> {
        self.decoder.build(StepShape { b, t: 1, rows: b, max_seq, positions: Positions::PerSequence }, prec)
    }
    pub fn load_param(&self, store: &WeightStore, name: &str, shape: &[usize]) -> Result<HostTensor> {
        self.decoder.load_param(store, name, shape)
    }
    /// Every param of `graph` (a step graph of this architecture) by name, read from `store` as a session
    /// uploads them (fused params stacked from their parts, int8 weights quantized): the leaves of
    /// `reference::run_graph`.
    pub fn load_params(
        &self,
        store: &WeightStore,
        graph: &Graph,
    ) -> Result<std::collections::HashMap<String, HostTensor>> {
        let mut leaves = std::collections::HashMap::new();
        let load = |name: &str, shape: &[usize]| self.load_param(store, name, shape);
        super::upload_params(graph, store, &load, &mut |name, t| {
            leaves.insert(name.to_string(), t.clone());
            Ok(())
        })?;
        Ok(leaves)
    }
    pub fn checkpoint_tensors(&self, graph: &Graph, store: &WeightStore) -> Result<Vec<Named>> {
        self.decoder.checkpoint_tensors(graph, store)
    }
    pub fn vocab(&self) -> usize {
        self.decoder.vocab()
    }
    pub fn max_pos(&self) -> usize {
        self.decoder.max_pos()
    }
    pub fn llama(&self) -> Option<&llama::Config> {
        self.decoder.llama()
    }
}

/// Each param of `graph` through `load`, as f32, fused params as their parts (`GraphBuilder::fused_param`).
pub fn each_param(graph: &Graph, load: impl Fn(&str, &[usize]) -> Result<HostTensor>) -> Result<Vec<Named>> {
    let mut out = vec![];
    for node in &graph.nodes {
        let crate::graph::Op::Param { name } = &node.op else { continue };
        match graph.parts_of(name) {
            Some(f) => {
                for (part, shape) in &f.parts {
                    out.push((part.clone(), shape.clone(), load(part, shape)?.to_f32()));
                }
            }
            None => out.push((name.clone(), node.shape.clone(), load(name, &node.shape)?.to_f32())),
        }
    }
    Ok(out)
}
