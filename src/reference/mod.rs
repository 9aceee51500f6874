//! The CPU reference: a plain f64 implementation of every op, forward and backward (one file per kernel
//! family, llm.c style functions with their dims spelled out), and an interpreter that runs a whole `Graph`.
//! GPU results are tested against it; backward rules are tested against its finite differences.

pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod position;
pub mod qmatmul;
pub mod softmax;

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::graph::{Graph, Op, Scalar, ValueId};
use crate::tensor::{DType, HostData, HostTensor};

/// A value inside the interpreter: data widened to f64 (ids and targets are exact in f64).
#[derive(Clone, Debug)]
pub struct Val {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<f64>,
}

impl Val {
    pub fn from_host(t: &HostTensor) -> Self {
        let data = match &t.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::U32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        };
        Val { shape: t.shape.clone(), dtype: t.dtype, data }
    }
    pub fn to_host(&self) -> HostTensor {
        let data = match self.dtype {
            DType::F32 | DType::F16 => HostData::F32(self.data.iter().map(|&x| x as f32).collect()),
            DType::U32 => HostData::U32(self.data.iter().map(|&x| x as u32).collect()),
            DType::I32 => HostData::I32(self.data.iter().map(|&x| x as i32).collect()),
        };
        HostTensor { shape: self.shape.clone(), dtype: self.dtype, data }
    }
}

/// Runtime scalars of one run.
pub type Vars = HashMap<String, u32>;

/// Resolve a scalar or fail naming it.
pub fn scalar(s: &Scalar, vars: &Vars, op: &Op) -> Result<u32> {
    s.resolve(&|n| vars.get(n).copied())
        .ok_or_else(|| Error::Run(format!("op {} needs the runtime scalar {s:?}, which was not set", op.name())))
}

/// Evaluate one non-leaf, non-in-place op.
pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], vars: &Vars) -> Result<Vec<f64>> {
    match op {
        Op::Add
        | Op::Mul
        | Op::Scale { .. }
        | Op::Unary { .. }
        | Op::Dropout { .. }
        | Op::UnaryBackward { .. }
        | Op::SumRows
        | Op::Cast { .. }
        | Op::Dequantize { .. }
        | Op::Permute0213
        | Op::CacheWrite { .. }
        | Op::CacheWriteAt => elementwise::eval(op, ins, out_shape, vars),
        Op::Reshape { .. } => Ok(ins[0].data.clone()),
        Op::MatMul { .. } | Op::Glu { .. } => matmul::eval(op, ins, out_shape, vars),
        Op::LinearF32 => matmul::eval(&Op::MatMul { ta: false, tb: true }, ins, out_shape, vars),
        Op::LinearAdd => {
            let y = matmul::eval(&Op::MatMul { ta: false, tb: true }, &ins[..2], out_shape, vars)?;
            Ok(y.iter().zip(&ins[2].data).map(|(y, r)| y + r).collect())
        }
        Op::QMatMul { .. } => qmatmul::eval(op, ins, out_shape, vars),
        Op::QGlu { act, quant } => {
            let q = Op::QMatMul { act: *quant };
            let (gate, up) = crate::graph::qglu_parts(ins);
            let g = qmatmul::eval(&q, &gate, out_shape, vars)?;
            let u = qmatmul::eval(&q, &up, out_shape, vars)?;
            Ok(g.iter().zip(&u).map(|(g, u)| elementwise::act_forward(*act, *g) * u).collect())
        }
        Op::QLinearAdd { act } => {
            let (product, r) = crate::graph::qlinear_add_parts(ins);
            let y = qmatmul::eval(&Op::QMatMul { act: *act }, &product, out_shape, vars)?;
            Ok(y.iter().zip(&r.data).map(|(y, r)| y + r).collect())
        }
        Op::LayerNorm { .. }
        | Op::LayerNormGradX { .. }
        | Op::RmsNorm { .. }
        | Op::RmsNormGradX { .. }
        | Op::NormGradGamma { .. } => norm::eval(op, ins, out_shape, vars),
        Op::Softmax { .. } | Op::SoftmaxBackward => softmax::eval(op, ins, out_shape, vars),
        Op::Attention(_)
        | Op::AttentionWeights(_)
        | Op::AttentionGradQ(_)
        | Op::AttentionGradK(_)
        | Op::AttentionGradV(_) => attention::eval(op, ins, out_shape, vars),
        Op::Rope { .. } | Op::RopeAt { .. } | Op::AddSinusoidal { .. } => position::eval(op, ins, out_shape, vars),
        Op::Embedding | Op::EmbeddingBackward { .. } => embedding::eval(op, ins, out_shape, vars),
        Op::CrossEntropy { .. } | Op::CrossEntropyBackward { .. } => loss::eval(op, ins, out_shape, vars),
        Op::AdamW(_) => Err(Error::Run("adamw is evaluated by the interpreter (it updates state)".into())),
        Op::RopeQkvCache { .. } => {
            Err(Error::Run("rope_qkv_cache is evaluated by the interpreter (it updates state)".into()))
        }
        Op::SumSquares => optim::eval(op, ins, out_shape, vars),
        Op::Input { .. } | Op::Param { .. } | Op::State { .. } | Op::Fill { .. } => {
            Err(Error::Run("leaves are not evaluated".into()))
        }
    }
}

/// Run a graph on the CPU. `leaves` holds every input, param and state by name (state missing from it starts
/// as zeros); in-place ops (`CacheWrite`, `AdamW`) update the entries of `leaves`, as the GPU plan updates its
/// buffers. Returns the requested values.
pub fn run_graph(
    graph: &Graph,
    leaves: &mut HashMap<String, HostTensor>,
    vars: &Vars,
    outputs: &[ValueId],
) -> Result<Vec<HostTensor>> {
    let mut vals: Vec<Option<Val>> = vec![None; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        let v = match &node.op {
            Op::Fill { value } => Val {
                shape: node.shape.clone(),
                dtype: node.dtype,
                data: vec![*value as f64; node.shape.iter().product()],
            },
            Op::Input { name } | Op::Param { name } | Op::State { name } => match leaves.get(name) {
                Some(t) => {
                    if t.shape != node.shape {
                        return Err(Error::Run(format!(
                            "leaf {name}: given shape {:?}, graph says {:?}",
                            t.shape, node.shape
                        )));
                    }
                    let mut v = Val::from_host(t);
                    v.dtype = node.dtype;
                    v
                }
                None if matches!(node.op, Op::State { .. }) => {
                    Val { shape: node.shape.clone(), dtype: node.dtype, data: vec![0.0; node.shape.iter().product()] }
                }
                None => return Err(Error::Run(format!("leaf {name} was not given"))),
            },
            op => {
                let ins: Vec<&Val> = node.inputs.iter().map(|v| vals[v.0].as_ref().expect("topological")).collect();
                let data = match op {
                    Op::AdamW(spec) => {
                        let step = scalar(&spec.step, vars, op)?;
                        let spec = &spec.resolved(&|n| vars.get(n).copied()).ok_or_else(|| {
                            Error::Run(format!("adamw needs the runtime learning rate {:?}", spec.lr_var))
                        })?;
                        // Each (param, grad, m, v): m, v and params after the first written back here, the
                        // first param as the op's output (below).
                        let mut first = None;
                        for (k, [p, g, m, v]) in optim::groups(spec, &ins).into_iter().enumerate() {
                            let (p, m, v) = optim::adamw(spec, step, &p, &g, &m, &v);
                            for (j, d) in [(4 * k + 2, m), (4 * k + 3, v)] {
                                write_back(graph, node.inputs[j], &d, leaves);
                            }
                            match k {
                                0 => first = Some(p),
                                _ => write_back(graph, node.inputs[4 * k], &p, leaves),
                            }
                        }
                        first.expect("AdamW has a parameter")
                    }
                    Op::RopeQkvCache { .. } => {
                        // The caches' values are updated too: their readers hold the state leaves themselves.
                        let [q, kc, vc] = position::rope_qkv_cache(op, &ins, vars)?;
                        for (k, d) in [(1, kc), (2, vc)] {
                            write_back(graph, node.inputs[k], &d, leaves);
                            if let Some(v) = vals[node.inputs[k].0].as_mut() {
                                v.data = d;
                            }
                        }
                        q
                    }
                    _ => eval(op, &ins, &node.shape, vars)?,
                };
                if let Some(k) = op.aliases_input() {
                    if !matches!(op, Op::Reshape { .. }) {
                        write_back(graph, node.inputs[k], &data, leaves);
                    }
                }
                Val { shape: node.shape.clone(), dtype: node.dtype, data }
            }
        };
        vals[i] = Some(v);
    }
    outputs
        .iter()
        .map(|o| {
            vals.get(o.0)
                .and_then(|v| v.as_ref())
                .map(|v| v.to_host())
                .ok_or_else(|| Error::Run(format!("no value {}", o.0)))
        })
        .collect()
}

/// Store an in-place result into the leaf it updates (through any chain of aliasing ops).
fn write_back(graph: &Graph, mut v: ValueId, data: &[f64], leaves: &mut HashMap<String, HostTensor>) {
    while let Some(k) = graph.node(v).op.aliases_input() {
        v = graph.node(v).inputs[k];
    }
    let node = graph.node(v);
    if let Some(name) = crate::graph::leaf_name(&node.op) {
        let val = Val { shape: node.shape.clone(), dtype: node.dtype, data: data.to_vec() };
        leaves.insert(name.to_string(), val.to_host());
    }
}
