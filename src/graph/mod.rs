//! The graph: SSA values, each made by one op from earlier values, with shape and dtype inferred when the op
//! is added. Model code writes against `GraphBuilder`; nothing here touches the GPU.

mod op;
mod shape;

pub use op::{adamw_parts, qglu_parts, qlinear_add_parts, Act, ActQuant, AdamWSpec, AttnSpec, Op, Scalar};
pub use shape::infer as infer_shape;

use crate::error::{Error, Result};
use crate::tensor::DType;

/// A value in a graph (the output of node `.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Named values worth reading besides the outputs (each linear layer's input; see `GraphBuilder::tap`).
    pub taps: Vec<(String, ValueId)>,
    /// Params stored as the row-wise concatenation of several checkpoint tensors (a decoder's q, k and v
    /// projections as one weight): loaders read the parts, exporters write them (`GraphBuilder::fused_param`).
    pub fused: Vec<Fused>,
}

/// A param made of checkpoint tensors stacked along dim 0: `parts` in order, each with its own (checkpoint)
/// name and shape; the param's rows are theirs, one after another.
#[derive(Clone, Debug)]
pub struct Fused {
    pub name: String,
    pub parts: Vec<(String, Vec<usize>)>,
}

impl Graph {
    pub fn node(&self, v: ValueId) -> &Node {
        &self.nodes[v.0]
    }
    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.nodes[v.0].shape
    }
    pub fn dtype(&self, v: ValueId) -> DType {
        self.nodes[v.0].dtype
    }
    /// The leaf named `name` (input, param or state).
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.nodes.iter().position(|n| leaf_name(&n.op) == Some(name)).map(ValueId)
    }
    /// The parts of a fused param (`None` for a param read as it is).
    pub fn parts_of(&self, name: &str) -> Option<&Fused> {
        self.fused.iter().find(|f| f.name == name)
    }
    /// All params (trainable leaves) in creation order.
    pub fn params(&self) -> Vec<ValueId> {
        (0..self.nodes.len()).filter(|&i| matches!(self.nodes[i].op, Op::Param { .. })).map(ValueId).collect()
    }
}

/// The name of a leaf op.
pub fn leaf_name(op: &Op) -> Option<&str> {
    match op {
        Op::Input { name } | Op::Param { name } | Op::State { name } => Some(name),
        _ => None,
    }
}

/// Builds a graph op by op, checking shapes and dtypes as it goes.
#[derive(Default)]
pub struct GraphBuilder {
    pub graph: Graph,
    /// Backward rules write the input gradient of y = x·Wᵀ (a 2-D W) as dY·(Wᵀ)ᵀ: W transposed once, then the
    /// x·Wᵀ product, instead of the plain dY·W. Set for adapters that read weights through textures
    /// (`Caps::texture_reads`), where x·Wᵀ runs as a texture GEMM several times faster than dY·W's storage
    /// kernel (SmolLM2 LoRA step on llvmpipe: `bench train --recipe smollm2-lora`).
    pub grad_through_transpose: bool,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn finish(self) -> Graph {
        self.graph
    }
    pub fn shape(&self, v: ValueId) -> &[usize] {
        self.graph.shape(v)
    }
    pub fn dtype(&self, v: ValueId) -> DType {
        self.graph.dtype(v)
    }

    fn leaf(&mut self, op: Op, shape: &[usize], dtype: DType) -> Result<ValueId> {
        let name = leaf_name(&op).unwrap_or_default().to_string();
        if leaf_name(&op).is_some() && self.graph.find(&name).is_some() {
            return Err(Error::Graph(format!("a leaf named {name:?} exists already")));
        }
        self.graph.nodes.push(Node { op, inputs: vec![], shape: shape.to_vec(), dtype });
        Ok(ValueId(self.graph.nodes.len() - 1))
    }
    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<ValueId> {
        self.leaf(Op::Input { name: name.into() }, shape, dtype)
    }
    pub fn param(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<ValueId> {
        self.leaf(Op::Param { name: name.into() }, shape, dtype)
    }
    /// A param of `shape` whose rows are the checkpoint tensors `parts` (name, shape) stacked in order; the
    /// parts' rows must add up to shape[0] (their shapes are the checkpoint's: an int8 param lists its parts'
    /// float shapes).
    pub fn fused_param(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        parts: Vec<(String, Vec<usize>)>,
    ) -> Result<ValueId> {
        let rows: usize = parts.iter().map(|(_, s)| s.first().copied().unwrap_or(0)).sum();
        if rows != shape.first().copied().unwrap_or(0) {
            return Err(Error::Graph(format!("fused param {name:?}: its parts have {rows} rows, it has {shape:?}")));
        }
        let v = self.param(name, shape, dtype)?;
        self.graph.fused.push(Fused { name: name.into(), parts });
        Ok(v)
    }
    pub fn state(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<ValueId> {
        self.leaf(Op::State { name: name.into() }, shape, dtype)
    }

    /// A constant tensor of one value.
    pub fn fill(&mut self, shape: &[usize], dtype: DType, value: f32) -> Result<ValueId> {
        self.leaf(Op::Fill { value }, shape, dtype)
    }

    /// Append any non-leaf op: shape and dtype are inferred (and checked) by `shape::infer`.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        if op.is_leaf() {
            return Err(Error::Graph("leaves are made with input/param/state".into()));
        }
        if let Some(bad) = inputs.iter().find(|v| v.0 >= self.graph.nodes.len()) {
            return Err(Error::Graph(format!("op {} uses value {} that does not exist", op.name(), bad.0)));
        }
        let ins: Vec<(&[usize], DType)> = inputs.iter().map(|&v| (self.graph.shape(v), self.graph.dtype(v))).collect();
        let (shape, dtype) = shape::infer(&op, &ins)?;
        self.graph.nodes.push(Node { op, inputs: inputs.to_vec(), shape, dtype });
        Ok(ValueId(self.graph.nodes.len() - 1))
    }

    // Convenience wrappers, named after the maths.
    pub fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op(Op::Add, &[a, b])
    }
    pub fn mul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op(Op::Mul, &[a, b])
    }
    pub fn scale(&mut self, a: ValueId, s: f32) -> Result<ValueId> {
        self.op(Op::Scale { s }, &[a])
    }
    pub fn act(&mut self, x: ValueId, act: Act) -> Result<ValueId> {
        self.op(Op::Unary { act }, &[x])
    }
    pub fn matmul(&mut self, a: ValueId, b: ValueId, ta: bool, tb: bool) -> Result<ValueId> {
        self.op(Op::MatMul { ta, tb }, &[a, b])
    }
    /// x·Wᵀ (+ bias): a Linear layer with W [out, in].
    pub fn linear(&mut self, x: ValueId, w: ValueId, bias: Option<ValueId>) -> Result<ValueId> {
        let y = self.matmul(x, w, false, true)?;
        match bias {
            Some(b) => self.add(y, b),
            None => Ok(y),
        }
    }
    pub fn reshape(&mut self, x: ValueId, shape: &[usize]) -> Result<ValueId> {
        self.op(Op::Reshape { shape: shape.to_vec() }, &[x])
    }
    pub fn layernorm(&mut self, x: ValueId, g: ValueId, b: ValueId, eps: f32) -> Result<ValueId> {
        self.op(Op::LayerNorm { eps }, &[x, g, b])
    }
    pub fn rmsnorm(&mut self, x: ValueId, g: ValueId, eps: f32) -> Result<ValueId> {
        self.op(Op::RmsNorm { eps }, &[x, g])
    }
    pub fn softmax(&mut self, x: ValueId, causal: bool) -> Result<ValueId> {
        self.op(Op::Softmax { causal }, &[x])
    }
    /// Record `v` under `name` (a layer's input): plans that want it (static calibration) list the graph's
    /// taps as outputs; others ignore them. A later tap of the same name replaces the earlier one.
    pub fn tap(&mut self, name: &str, v: ValueId) {
        self.graph.taps.retain(|(n, _)| n != name);
        self.graph.taps.push((name.to_string(), v));
    }
    pub fn cross_entropy(&mut self, logits: ValueId, targets: ValueId) -> Result<ValueId> {
        self.op(Op::CrossEntropy { ignore_index: -100 }, &[logits, targets])
    }
}
