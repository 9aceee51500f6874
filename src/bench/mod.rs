//! The headless benchmark runner shared by `benches/` and `wgpu-llm bench`.

use crate::error::Result;
use crate::gpu::Gpu;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub name: String,
}

pub fn kernels(_gpu: &Gpu, _filter: Option<&str>, _reps: usize) -> Result<Vec<Row>> {
    Ok(vec![])
}

pub fn print(_gpu: &Gpu, _rows: &[Row], _json: bool) {}
