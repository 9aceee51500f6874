//! wgpu-llm: a GPU compute-shader Transformer engine. WGSL kernels (shaders/) dispatched by a graph executor
//! on wgpu, with autodiff, so the same code runs inference and training on Vulkan, Metal, DX12 or GL.
//!
//! Layers, bottom up: `gpu` (adapter, device, tiers, buffers, pipeline cache) → `kernels` (WGSL families and
//! their lowering) → `exec` (Plan: memory plan, one command buffer per run) ← `graph` (ops, shapes, builder)
//! ← `autodiff` (backward rules) — with `reference`, a plain CPU implementation of every op, beside them.

pub mod autodiff;
pub mod bench;
pub mod cli;
pub mod error;
pub mod exec;
#[doc(hidden)]
pub mod fuzzing;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod loader;
pub mod models;
pub mod optim;
pub mod quant;
pub mod reference;
pub mod sample;
pub mod serve;
pub mod session;
pub mod tensor;
pub mod tokenizer;
pub mod tools;
pub mod train;

pub use error::{Error, Result};
