//! Optimizers as graph ops plus their state: AdamW appends one in-place update of a group of parameters
//! (torch's param groups: one spec for all of them), with each param's moments as State leaves named
//! `<param>.adam_m` / `<param>.adam_v`.

use crate::error::{Error, Result};
use crate::graph::{leaf_name, AdamWSpec, GraphBuilder, Op, ValueId};

/// Append the AdamW update of the group `params` by `grads` (same order) as one op (a few dispatches). The
/// step counter is `spec.step`, normally the runtime scalar "step" (1, 2, …) so one Plan serves every step.
/// `norm2`: the squared global gradient norm, when `spec` clips by it. Returns the op's value (the first
/// param, updated).
pub fn adamw(
    b: &mut GraphBuilder,
    params: &[ValueId],
    grads: &[ValueId],
    spec: &AdamWSpec,
    norm2: Option<ValueId>,
) -> Result<ValueId> {
    if params.is_empty() || params.len() != grads.len() {
        return Err(Error::Graph(format!("adamw: {} params and {} gradients", params.len(), grads.len())));
    }
    let mut ins = vec![];
    for (&p, &g) in params.iter().zip(grads) {
        let name = leaf_name(&b.graph.node(p).op).unwrap_or("param").to_string();
        let shape = b.shape(p).to_vec();
        let m = b.state(&format!("{name}.adam_m"), &shape, b.dtype(p))?;
        let v = b.state(&format!("{name}.adam_v"), &shape, b.dtype(p))?;
        ins.extend([p, g, m, v]);
    }
    ins.extend(norm2);
    b.op(Op::AdamW(spec.clone()), &ins)
}
