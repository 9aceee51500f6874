//! Static int8 calibration: the largest |x| each linear layer sees at its input, per block of 32 input
//! channels, over calibration text run through the float model on the GPU. The static activation scale of
//! a block is that maximum / 127 (`quant::block_scale`), so no calibration value clips.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::exec::Plan;
use crate::graph::{Graph, ValueId};
use crate::quant::{block_scale, BLOCK};

/// The distinct values the graph's taps name (layers sharing an input share a value).
pub fn tap_outputs(graph: &Graph) -> Vec<ValueId> {
    let mut v: Vec<ValueId> = graph.taps.iter().map(|t| t.1).collect();
    v.sort();
    v.dedup();
    v
}

/// Running per-block maxima of |x| by layer name, and the token rows seen.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    pub maxima: BTreeMap<String, Vec<f32>>,
    pub rows: usize,
}

impl Calibration {
    /// Run a plan compiled with `tap_outputs` as its first outputs and fold in the rows `real(row)` says are tokens
    /// (not padding).
    pub fn observe_run(
        &mut self,
        plan: &mut Plan,
        feeds: &[(&str, &crate::tensor::HostTensor)],
        vars: &[(&str, u32)],
        real: &dyn Fn(usize) -> bool,
    ) -> Result<()> {
        let graph = plan.graph().clone();
        let values = tap_outputs(&graph);
        let outs = plan.run(feeds, vars)?;
        let mut rows = None;
        for (name, v) in &graph.taps {
            let i = values.iter().position(|x| x == v).expect("every tap is an output");
            let x = outs[i].to_f32();
            let k = *graph.shape(*v).last().unwrap_or(&1);
            if !k.is_multiple_of(BLOCK) {
                continue; // a layer that cannot run int8 needs no scales
            }
            let m = self.maxima.entry(name.clone()).or_insert_with(|| vec![0.0; k / BLOCK]);
            if m.len() != k / BLOCK {
                return Err(Error::Run(format!("calibration of {name}: width {k} changed between runs")));
            }
            rows.get_or_insert_with(|| (0..x.len() / k).filter(|&r| real(r)).count());
            for (_, row) in x.chunks(k).enumerate().filter(|(r, _)| real(*r)) {
                for (b, blk) in row.chunks(BLOCK).enumerate() {
                    m[b] = blk.iter().fold(m[b], |a, v| a.max(v.abs()));
                }
            }
        }
        self.rows += rows.unwrap_or(0);
        Ok(())
    }

    /// The static activation scales of each layer: block maximum / 127 (a block never seen non-zero gets
    /// the smallest positive scale, so it quantizes to zeros instead of dividing by zero).
    pub fn scales(&self) -> BTreeMap<String, Vec<f32>> {
        self.maxima
            .iter()
            .map(|(n, m)| (n.clone(), m.iter().map(|&a| block_scale(a).max(f32::MIN_POSITIVE)).collect()))
            .collect()
    }
}
