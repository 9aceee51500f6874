//! Compute pipelines, compiled once and cached by (family, entry point, dtype variant, override values).
//! A WGSL compile or validation error is returned as an error naming the kernel, never a skipped op.

use std::sync::Arc;

use super::Gpu;
use crate::error::{Error, Result};
use crate::kernels::{prelude, BindKind, Dispatch};

/// A compiled pipeline and the bind group layout its bindings use.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: Arc<wgpu::BindGroupLayout>,
    pub key: String,
}

impl Gpu {
    /// The cache key of a dispatch's pipeline.
    pub fn pipeline_key(d: &Dispatch) -> String {
        let mut k = format!("{}:{}:{}", d.family, d.entry, d.dtype.name());
        for (n, v) in &d.overrides {
            k += &format!(":{n}={v}");
        }
        let kinds: String = d
            .bindings
            .iter()
            .map(|b| match b.kind {
                BindKind::Read => 'r',
                BindKind::Write => 'w',
                BindKind::Uniform => 'u',
                BindKind::TextureU32x4 => 't',
                BindKind::TextureF32 => 'f',
                BindKind::StagedF32x4 => 's',
                BindKind::StagedF16x4 => 'h',
                BindKind::StagedU32x4 => 'q',
                BindKind::TextureF32x4 => 'v',
                BindKind::TextureF16x4 => 'x',
                BindKind::StagedF32 => 'g',
            })
            .collect();
        k + ":" + &kinds
    }

    /// Create the pipelines of `dispatches` not made yet, each once, on up to as many threads as the machine
    /// has cores (wgpu's devices are shared between threads and its error scopes are per thread); the first
    /// error is returned.
    pub fn create_pipelines<'d>(&self, dispatches: impl Iterator<Item = &'d Dispatch>) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let todo: Vec<&Dispatch> = {
            let made = self.pipelines.lock().unwrap();
            dispatches
                .filter(|d| {
                    let key = Self::pipeline_key(d);
                    !made.contains_key(&key) && seen.insert(key)
                })
                .collect()
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(todo.len()).min(8);
        if threads < 2 {
            return todo.iter().try_for_each(|d| self.pipeline(d).map(drop));
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            match todo.get(i) {
                                Some(d) => self.pipeline(d).map(drop)?,
                                None => return Ok(()),
                            }
                        }
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    }

    /// The pipeline for a dispatch, compiling it on first use.
    pub fn pipeline(&self, d: &Dispatch) -> Result<Arc<Pipeline>> {
        let key = Self::pipeline_key(d);
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let variant = format!("{} variant, overrides {:?}", d.dtype.name(), d.overrides);
        let compile_err = |message: String| Error::Compile {
            kernel: d.family.into(),
            entry: d.entry.into(),
            variant: variant.clone(),
            message,
        };
        if d.dtype == crate::tensor::DType::F16 && !self.caps().f16 {
            return Err(compile_err("the f16 variant needs SHADER_F16, which this adapter/tier lacks".into()));
        }
        let source = format!("{}{}", prelude(d.dtype), d.source);
        if std::env::var_os("WGPU_LLM_DUMP_WGSL").is_some() {
            eprintln!("// ---- pipeline {key} ----\n{source}");
        }
        // Parse and validate with naga first: its messages carry line numbers and name the entry point.
        let module = naga::front::wgsl::parse_str(&source).map_err(|e| compile_err(e.emit_to_string(&source)))?;
        let kinds: Vec<BindKind> = d.bindings.iter().map(|b| b.kind).collect();
        let layout = self.layout(&kinds);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let shader = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&key),
            source: wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module)),
        });
        let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&key),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: Some(&pl),
            module: &shader,
            entry_point: Some(d.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &d.overrides.iter().map(|(n, v)| (*n, *v)).collect::<Vec<_>>(),
                zero_initialize_workgroup_memory: true,
            },
            cache: self.disk_cache.as_ref().map(|c| &c.cache),
        });
        if let Some(c) = &self.disk_cache {
            c.created();
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(compile_err(e.to_string()));
        }
        let p = Arc::new(Pipeline { pipeline, layout, key: key.clone() });
        self.pipelines.lock().unwrap().insert(key, p.clone());
        Ok(p)
    }

    /// How many pipelines have been compiled (decode must not add any).
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }
}
