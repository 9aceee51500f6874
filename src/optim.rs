//! Optimizers as graph ops plus their state: AdamW appends one in-place update per parameter, with its
//! moments as State leaves named `<param>.adam_m` / `<param>.adam_v`.

use crate::error::Result;
use crate::graph::{leaf_name, AdamWSpec, GraphBuilder, Op, ValueId};

/// Append AdamW updates of `params` by `grads` (same order). The step counter is `spec.step`, normally the
/// runtime scalar "step" (1, 2, …) so one Plan serves every step. `norm2`: the squared global gradient
/// norm, when `spec` clips by it.
pub fn adamw(
    b: &mut GraphBuilder,
    params: &[ValueId],
    grads: &[ValueId],
    spec: &AdamWSpec,
    norm2: Option<ValueId>,
) -> Result<Vec<ValueId>> {
    let mut outs = vec![];
    for (&p, &g) in params.iter().zip(grads) {
        let name = leaf_name(&b.graph.node(p).op).unwrap_or("param").to_string();
        let shape = b.shape(p).to_vec();
        let m = b.state(&format!("{name}.adam_m"), &shape, b.dtype(p))?;
        let v = b.state(&format!("{name}.adam_v"), &shape, b.dtype(p))?;
        let mut ins = vec![p, g, m, v];
        ins.extend(norm2);
        outs.push(b.op(Op::AdamW(spec.clone()), &ins)?);
    }
    Ok(outs)
}
