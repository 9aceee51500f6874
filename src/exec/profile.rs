//! Per-op GPU timings from the same dispatch list: each dispatch in its own compute pass with timestamp
//! writes where the adapter has TIMESTAMP_QUERY, else one submission per dispatch timed by the wall clock.

use std::time::Instant;

use super::Plan;
use crate::error::{Error, Result};
use crate::tensor::HostTensor;

#[derive(Clone, Debug, serde::Serialize)]
pub struct OpTiming {
    pub op: String,
    pub kernel: String,
    pub micros: f64,
    /// "timestamp" or "wall".
    pub clock: &'static str,
}

impl Plan<'_> {
    /// Run once with a timing around every dispatch. Returns one entry per dispatch, in order.
    pub fn profile(&mut self, inputs: &[(&str, &HostTensor)], vars: &[(&str, u32)]) -> Result<Vec<OpTiming>> {
        self.feed(inputs, vars)?;
        let steps: Vec<usize> = (0..self.steps.len()).filter(|&i| !self.steps[i].grid.contains(&0)).collect();
        let gpu = self.gpu;
        let name = |i: usize| {
            let s = &self.steps[i];
            (self.graph.nodes[s.node].op.name().to_string(), s.pipeline.key.clone())
        };
        if !gpu.has_timestamps() || steps.is_empty() {
            let mut out = vec![];
            for &i in &steps {
                let s = &self.steps[i];
                let t0 = Instant::now();
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&s.pipeline.pipeline);
                    pass.set_bind_group(0, &s.bind_group, &[]);
                    pass.dispatch_workgroups(s.grid[0], s.grid[1], s.grid[2]);
                }
                gpu.queue.submit([enc.finish()]);
                gpu.wait()?;
                let (op, kernel) = name(i);
                out.push(OpTiming { op, kernel, micros: t0.elapsed().as_secs_f64() * 1e6, clock: "wall" });
            }
            return Ok(out);
        }
        let n = (steps.len() * 2) as u32;
        let qs = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("op timings"),
            ty: wgpu::QueryType::Timestamp,
            count: n,
        });
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: n as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps staging"),
            size: n as u64 * 8,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (k, &i) in steps.iter().enumerate() {
            let s = &self.steps[i];
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &qs,
                    beginning_of_pass_write_index: Some(2 * k as u32),
                    end_of_pass_write_index: Some(2 * k as u32 + 1),
                }),
            });
            pass.set_pipeline(&s.pipeline.pipeline);
            pass.set_bind_group(0, &s.bind_group, &[]);
            pass.dispatch_workgroups(s.grid[0], s.grid[1], s.grid[2]);
        }
        enc.resolve_query_set(&qs, 0..n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, n as u64 * 8);
        gpu.queue.submit([enc.finish()]);
        let bytes = gpu.map_read(&staging, n as u64 * 8)?;
        let ts: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let period = gpu.queue.get_timestamp_period() as f64;
        let mut out = vec![];
        for (k, &i) in steps.iter().enumerate() {
            let (op, kernel) = name(i);
            let dt = ts[2 * k + 1].wrapping_sub(ts[2 * k]);
            if dt > 1 << 62 {
                return Err(Error::Gpu { context: "timestamps".into(), message: "end before start".into() });
            }
            out.push(OpTiming { op, kernel, micros: dt as f64 * period / 1e3, clock: "timestamp" });
        }
        Ok(out)
    }
}
