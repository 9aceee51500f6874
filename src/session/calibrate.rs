//! Static int8 calibration: the largest |x| each linear layer sees at its input, per block of 32 input
//! channels and per token, over calibration text run through the float model on the GPU. The static
//! activation scale of a block is a high percentile of those per-token maxima / 127 (`quant::block_scale`):
//! at 100 no calibration value clips, but then the few tokens with massive activations (SmolLM2's first
//! token carries values in the thousands) set the scale for every token and round most of them to zero.

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
    /// Per layer and block, the largest |x| over every token.
    pub maxima: BTreeMap<String, Vec<f32>>,
    /// Per layer and block, each token's largest |x| (for percentiles).
    pub row_maxima: BTreeMap<String, Vec<Vec<f32>>>,
    /// Per layer and input channel, the largest |x| over every token (for smoothing: `crate::tools::smooth`).
    pub channel_maxima: BTreeMap<String, Vec<f32>>,
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
        let graph = plan.graph();
        let values = tap_outputs(graph);
        let taps: Vec<(String, ValueId, usize)> =
            graph.taps.iter().map(|(n, v)| (n.clone(), *v, *graph.shape(*v).last().unwrap_or(&1))).collect();
        let outs = plan.run(feeds, vars)?;
        let mut rows = None;
        for (name, v, k) in taps {
            let i = values.iter().position(|x| *x == v).expect("every tap is an output");
            let x = outs[i].to_f32();
            if !k.is_multiple_of(BLOCK) {
                continue; // a layer that cannot run int8 needs no scales
            }
            let m = self.maxima.entry(name.clone()).or_insert_with(|| vec![0.0; k / BLOCK]);
            if m.len() != k / BLOCK {
                return Err(Error::Run(format!("calibration of {name}: width {k} changed between runs")));
            }
            rows.get_or_insert_with(|| (0..x.len() / k).filter(|&r| real(r)).count());
            let per_row = self.row_maxima.entry(name.clone()).or_insert_with(|| vec![vec![]; k / BLOCK]);
            let ch = self.channel_maxima.entry(name.clone()).or_insert_with(|| vec![0.0; k]);
            for (_, row) in x.chunks(k).enumerate().filter(|(r, _)| real(*r)) {
                ch.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
                for (b, blk) in row.chunks(BLOCK).enumerate() {
                    let a = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
                    m[b] = m[b].max(a);
                    per_row[b].push(a);
                }
            }
        }
        self.rows += rows.unwrap_or(0);
        Ok(())
    }

    /// Static activation scales from per-channel maxima (the block maximum / 127), as `scales(100.0)` gives
    /// from the same calibration, for maxima that smoothing has rescaled.
    pub fn scales_from_channels(channels: &BTreeMap<String, Vec<f32>>) -> BTreeMap<String, Vec<f32>> {
        channels
            .iter()
            .map(|(n, ch)| {
                let s =
                    ch.chunks(BLOCK).map(|b| block_scale(b.iter().fold(0f32, |a, v| a.max(*v))).max(f32::MIN_POSITIVE));
                (n.clone(), s.collect())
            })
            .collect()
    }

    /// How much coarser `scales` (one layer's static scales) round the calibration tokens than per-token
    /// scales would: Σ over tokens and blocks of scale² / Σ (token's block max / 127)², the ratio of the
    /// rounding noise powers (1 for a layer whose every token reaches its block maxima).
    pub fn noise_ratio(&self, layer: &str, scales: &[f32]) -> Option<f64> {
        let rows = self.row_maxima.get(layer)?;
        let (mut stat, mut dynamic) = (0f64, 0f64);
        for (blk, s) in rows.iter().zip(scales) {
            stat += blk.len() as f64 * (*s as f64).powi(2);
            dynamic += blk.iter().map(|&m| (block_scale(m) as f64).powi(2)).sum::<f64>();
        }
        (dynamic > 0.0).then(|| stat / dynamic)
    }

    /// The static activation scales of each layer: the `percentile` (0 < p ≤ 100) of the tokens' block
    /// maxima, / 127; 100 is the block maximum. A block never seen non-zero gets the smallest positive
    /// scale, so it quantizes to zeros instead of dividing by zero.
    pub fn scales(&self, percentile: f64) -> BTreeMap<String, Vec<f32>> {
        let pick = |v: &[f32]| -> f32 {
            let mut s = v.to_vec();
            s.sort_by(f32::total_cmp);
            let i = ((percentile / 100.0 * s.len() as f64).ceil() as usize).clamp(1, s.len().max(1)) - 1;
            s.get(i).copied().unwrap_or(0.0)
        };
        self.row_maxima
            .iter()
            .map(|(n, blocks)| {
                (n.clone(), blocks.iter().map(|v| block_scale(pick(v)).max(f32::MIN_POSITIVE)).collect())
            })
            .collect()
    }
}
