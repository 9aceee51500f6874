//! GPU timings from the same dispatch list: `time_passes` records N compute passes and times each, with
//! timestamp writes where the adapter has TIMESTAMP_QUERY, else one submission per pass timed by the wall
//! clock. `Plan::profile` times each dispatch of a plan this way; the benchmark times whole kernels with it.

use std::time::Instant;

use super::Plan;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::HostTensor;

#[derive(Clone, Debug, serde::Serialize)]
pub struct OpTiming {
    pub op: String,
    pub kernel: String,
    pub micros: f64,
    /// "timestamp" or "wall".
    pub clock: &'static str,
}

/// Record `n` compute passes (`pre(i, encoder)` records what must precede pass i, such as copies, outside
/// the timing; `record(i, pass)` fills pass i) and return each pass's time in microseconds, with the clock
/// used.
pub(super) fn time_passes(
    gpu: &Gpu,
    n: usize,
    pre: &dyn Fn(usize, &mut wgpu::CommandEncoder),
    record: &dyn Fn(usize, &mut wgpu::ComputePass),
) -> Result<(Vec<f64>, &'static str)> {
    if n == 0 {
        return Ok((vec![], "wall"));
    }
    if !gpu.has_timestamps() {
        let mut out = vec![];
        for i in 0..n {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            pre(i, &mut enc);
            gpu.submit(enc.finish());
            let t0 = Instant::now();
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            record(i, &mut enc.begin_compute_pass(&Default::default()));
            gpu.submit(enc.finish());
            gpu.wait()?;
            out.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        return Ok((out, "wall"));
    }
    // A query set holds at most 4096 queries (wgpu's limit): time 2048 passes at a time, in order.
    const CHUNK: usize = 2048;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - start);
        out.extend(time_chunk(gpu, len, &|i, enc| pre(start + i, enc), &|i, pass| record(start + i, pass))?);
    }
    Ok((out, "timestamp"))
}

/// `time_passes` for at most 2048 passes with timestamp queries.
fn time_chunk(
    gpu: &Gpu,
    n: usize,
    pre: &dyn Fn(usize, &mut wgpu::CommandEncoder),
    record: &dyn Fn(usize, &mut wgpu::ComputePass),
) -> Result<Vec<f64>> {
    let q = (2 * n) as u32;
    let qs = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("pass timings"),
        ty: wgpu::QueryType::Timestamp,
        count: q,
    });
    let buffer = |usage| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: q as u64 * 8,
            usage,
            mapped_at_creation: false,
        })
    };
    let resolve = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
    let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    for i in 0..n as u32 {
        pre(i as usize, &mut enc);
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &qs,
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            }),
        });
        record(i as usize, &mut pass);
    }
    enc.resolve_query_set(&qs, 0..q, &resolve, 0);
    enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, q as u64 * 8);
    gpu.submit(enc.finish());
    let ts: Vec<u64> = bytemuck::pod_collect_to_vec(&gpu.map_read(&staging, q as u64 * 8)?);
    let period = gpu.queue.get_timestamp_period() as f64;
    Ok((0..n).map(|i| ts[2 * i + 1].saturating_sub(ts[2 * i]) as f64 * period / 1e3).collect())
}

impl Plan<'_> {
    /// Run once with a timing around every dispatch (not the staging copies before it). Returns one entry
    /// per dispatch, in order.
    pub fn profile(&mut self, inputs: &[(&str, &HostTensor)], vars: &[(&str, u32)]) -> Result<Vec<OpTiming>> {
        self.feed(inputs, vars)?;
        let steps: Vec<&super::Step> = self.steps.iter().filter(|s| !s.grid.contains(&0)).collect();
        let pre = |i: usize, enc: &mut wgpu::CommandEncoder| {
            for c in &steps[i].copies {
                c.texture.record_copy(enc, &c.buffer, c.bytes);
            }
        };
        let (micros, clock) = time_passes(self.gpu, steps.len(), &pre, &|i, pass| steps[i].record(pass))?;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        self.mem.record_twin_sync(&mut enc, &self.graph, &self.written_leaves);
        self.gpu.submit(enc.finish());
        Ok(steps
            .iter()
            .zip(micros)
            .map(|(s, micros)| OpTiming {
                op: self.graph.nodes[s.node].op.name().to_string(),
                kernel: s.pipeline.key.clone(),
                micros,
                clock,
            })
            .collect())
    }
}
