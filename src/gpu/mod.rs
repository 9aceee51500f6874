//! The GPU runtime: adapter choice, device with the adapter's real limits and the optional features the kernels
//! use, the capability tier, buffers and readback, and the pipeline / bind-group-layout caches. Only `gpu`,
//! `kernels` and `exec` name wgpu types.

mod adapter;
pub mod disk_cache;
mod pipeline;

pub use adapter::{list_adapters, AdapterReport};
pub use pipeline::Pipeline;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::kernels::matmul::Kernel;
use crate::kernels::{BindKind, Caps};

/// What the kernels may use, in increasing order; the running tier is the lower of what the adapter offers
/// and what was asked for, so every lower tier is testable on any adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// f32 storage and arithmetic only.
    F32,
    /// + f16 storage (`SHADER_F16`).
    F16,
    /// + subgroup operations (`SUBGROUP`).
    Subgroups,
    /// + packed int8 dot products (`dot4I8Packed`, native).
    Int8Dot,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::F32 => "f32",
            Tier::F16 => "f16",
            Tier::Subgroups => "subgroups",
            Tier::Int8Dot => "int8dot",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Tier::F32),
            "f16" => Ok(Tier::F16),
            "subgroups" | "subgroup" => Ok(Tier::Subgroups),
            "int8" | "int8dot" => Ok(Tier::Int8Dot),
            _ => Err(Error::Other(format!("unknown tier {s:?} (f32, f16, subgroups, int8dot)"))),
        }
    }
}

/// How to pick and open the device. `Default` reads `WGPU_LLM_ADAPTER` and `WGPU_LLM_BACKEND`.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name.
    pub adapter: Option<String>,
    /// vulkan, metal, dx12 or gl.
    pub backend: Option<String>,
    /// Force the tier down.
    pub tier: Option<Tier>,
    /// Force the max storage binding size down (bytes), to exercise sharded tensors.
    pub max_binding: Option<u64>,
    /// Read operands through textures and uniforms (`Caps::texture_reads`; default: on CPU adapters only;
    /// env `WGPU_LLM_TEXTURE_WEIGHTS=0|1`, the name kept from when only weights went that way).
    pub texture_reads: Option<bool>,
    /// Force one matmul kernel for every product (env `WGPU_LLM_MATMUL=tiled|gemv|baseline|texture`; a debug
    /// and benchmarking aid, shown by `devices`).
    pub matmul: Kernel,
    /// Storage GEMVs keep gemv_vec4 where gemv_rows4 would serve (env `WGPU_LLM_GEMV=vec4`).
    pub gemv_vec4: bool,
    /// Allocate at most this many bytes of GPU buffers (env `WGPU_LLM_MEMORY_BUDGET`, bytes or with a K/M/G
    /// suffix): beyond it an allocation is an error naming what asked, as a device out of memory would be.
    pub memory_budget: Option<u64>,
    /// A folder for wgpu's pipeline cache, read at open and written when pipelines were created (env
    /// `WGPU_LLM_PIPELINE_CACHE`; the CLI's default is `pipelines` in the model cache, `off` for none).
    pub pipeline_cache: Option<std::path::PathBuf>,
}

/// `WGPU_LLM_PIPELINE_CACHE`: a folder, `off` for none, or `unset` when it is unset or empty.
pub fn pipeline_cache_from_env(unset: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    match std::env::var_os("WGPU_LLM_PIPELINE_CACHE").filter(|d| !d.is_empty()) {
        Some(d) if d == "off" => None,
        Some(d) => Some(d.into()),
        None => unset,
    }
}

/// `WGPU_LLM_MEMORY_BUDGET`'s format: bytes, or a number with a K, M or G suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| (n * mul as f64) as u64)
        .ok_or_else(|| Error::Other(format!("{s:?} is not a byte count (e.g. 512M, 2G, 1048576)")))
}

impl GpuOptions {
    /// Whether a device of this type reads weights through textures: the option, else on CPU adapters only
    /// (where a texel fetch costs a fraction of a storage load).
    pub fn texture_reads_on(&self, device_type: wgpu::DeviceType) -> bool {
        self.texture_reads.unwrap_or(device_type == wgpu::DeviceType::Cpu)
    }
}

impl Default for GpuOptions {
    fn default() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
        GpuOptions {
            adapter: env("WGPU_LLM_ADAPTER"),
            backend: env("WGPU_LLM_BACKEND"),
            tier: env("WGPU_LLM_TIER").and_then(|t| Tier::parse(&t).ok()),
            max_binding: None,
            texture_reads: env("WGPU_LLM_TEXTURE_WEIGHTS").map(|v| v != "0"),
            // An unknown value is an error at the CLI (`GpuArgs::options`); here it means the table's choice.
            matmul: env("WGPU_LLM_MATMUL").and_then(|k| Kernel::parse(&k).ok()).unwrap_or_default(),
            gemv_vec4: env("WGPU_LLM_GEMV").as_deref() == Some("vec4"),
            memory_budget: env("WGPU_LLM_MEMORY_BUDGET").and_then(|b| parse_bytes(&b).ok()),
            pipeline_cache: pipeline_cache_from_env(None),
        }
    }
}

/// An open device and everything cached on it.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub tier: Tier,
    /// The largest tensor one storage binding may hold (bytes, a multiple of 4).
    pub max_binding: u64,
    /// Operands are read through textures and uniforms (`Caps::texture_reads`, `GpuOptions::texture_reads`).
    pub texture_reads: bool,
    pub matmul: Kernel,
    pub gemv_vec4: bool,
    pipelines: Mutex<HashMap<String, Arc<Pipeline>>>,
    layouts: Mutex<HashMap<Vec<BindKind>, Arc<wgpu::BindGroupLayout>>>,
    /// Errors wgpu reported outside any error scope, and why the device was lost: `check` turns them into
    /// an `Error` (wgpu's default handler would panic).
    faults: Arc<Mutex<Faults>>,
    memory_budget: Option<u64>,
    allocated: std::sync::atomic::AtomicU64,
    submissions: std::sync::atomic::AtomicU64,
    /// wgpu's pipeline cache and its file (`GpuOptions::pipeline_cache`), where the backend has one.
    disk_cache: Option<disk_cache::DiskCache>,
}

impl Drop for Gpu {
    fn drop(&mut self) {
        self.save_pipeline_cache();
    }
}

#[derive(Default)]
struct Faults {
    uncaptured: Vec<String>,
    lost: Option<String>,
}

impl Gpu {
    /// Open the chosen adapter with its real limits and the optional features the kernels use.
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        let (adapter, lang) = adapter::choose(opts)?;
        let info = adapter.get_info();
        let avail = adapter.features();
        let wanted = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::IMMEDIATES
            | wgpu::Features::PIPELINE_CACHE;
        let features = avail & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgpu-llm"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device { adapter: info.name.clone(), reason: e.to_string() })?;
        let faults = Arc::new(Mutex::new(Faults::default()));
        let f = faults.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            if let Ok(mut f) = f.lock() {
                f.uncaptured.push(e.to_string());
            }
        }));
        let f = faults.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut f) = f.lock() {
                f.lost = Some(format!("{reason:?}: {message}"));
            }
        });
        let best = adapter::best_tier(features, &lang);
        let tier = opts.tier.map_or(best, |t| t.min(best));
        let hw_max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let max_binding = opts.max_binding.map_or(hw_max, |m| m.min(hw_max)) & !3;
        log::info!("adapter {} ({:?}), tier {}", info.name, info.backend, tier.name());
        let texture_reads = opts.texture_reads_on(info.device_type);
        let disk_cache =
            opts.pipeline_cache.as_deref().and_then(|dir| disk_cache::DiskCache::open(&device, &info, features, dir));
        Ok(Gpu {
            adapter,
            device,
            queue,
            info,
            limits,
            features,
            tier,
            max_binding,
            texture_reads,
            matmul: opts.matmul,
            gemv_vec4: opts.gemv_vec4,
            pipelines: Mutex::default(),
            layouts: Mutex::default(),
            faults,
            memory_budget: opts.memory_budget,
            submissions: Default::default(),
            allocated: Default::default(),
            disk_cache,
        })
    }

    /// Write the pipeline cache's file now if pipelines were created since it was read (also done on drop).
    pub fn save_pipeline_cache(&self) {
        if let Some(c) = &self.disk_cache {
            c.save();
        }
    }

    /// Whether this device persists a pipeline cache (the backend offers one and `GpuOptions::pipeline_cache`
    /// names a folder).
    pub fn has_pipeline_cache(&self) -> bool {
        self.disk_cache.is_some()
    }

    /// What the kernels may use at this tier.
    pub fn caps(&self) -> Caps {
        Caps {
            f16: self.tier >= Tier::F16 && self.features.contains(wgpu::Features::SHADER_F16),
            subgroups: self.tier >= Tier::Subgroups && self.features.contains(wgpu::Features::SUBGROUP),
            subgroup_min: self.info.subgroup_min_size,
            subgroup_max: self.info.subgroup_max_size,
            int8dot: self.tier >= Tier::Int8Dot,
            texture_reads: self.texture_reads,
            max_texture_rows: self.limits.max_texture_dimension_2d,
            max_uniform: self.limits.max_uniform_buffer_binding_size,
            max_storage_buffers: self.limits.max_storage_buffers_per_shader_stage,
            matmul: self.matmul,
            gemv_vec4: self.gemv_vec4,
        }
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// A storage buffer of `bytes` (rounded up to 4), usable as copy source and destination.
    pub fn buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        // On an adapter that reads weights through textures, a GEMV may bind any value as a 64 KiB uniform
        // array (kernels::matmul::uniform_row_source), so no buffer is smaller than that there.
        let least = if self.caps().texture_reads { crate::kernels::matmul::UNIFORM_ROW_BYTES } else { 4 };
        let size = bytes.max(least).next_multiple_of(4);
        if size > self.limits.max_buffer_size {
            return Err(Error::TooLarge {
                tensor: label.into(),
                bytes: size,
                limit: self.limits.max_buffer_size,
                what: "max_buffer_size".into(),
                hint: String::new(),
            });
        }
        self.reserve(label, size)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            // Uniform too: a kernel may read a small intermediate through the uniform path (`BindKind::Uniform`).
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu {
                context: format!("allocating {label} ({size} bytes, {} allocated before)", self.allocated_bytes()),
                message: e.to_string(),
            });
        }
        Ok(buf)
    }

    /// Count `bytes` against the memory budget (`GpuOptions::memory_budget`), or fail naming `what`.
    pub fn reserve(&self, what: &str, bytes: u64) -> Result<()> {
        use std::sync::atomic::Ordering;
        let before = self.allocated.fetch_add(bytes, Ordering::Relaxed);
        match self.memory_budget {
            Some(budget) if before + bytes > budget => {
                self.allocated.fetch_sub(bytes, Ordering::Relaxed);
                Err(Error::TooLarge {
                    tensor: what.into(),
                    bytes,
                    limit: budget.saturating_sub(before),
                    what: format!("the memory budget of {budget} bytes, {before} already allocated"),
                    hint: "; lower --ctx, the batch size, or use --dtype f16 / int8".into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The memory budget, if one was set (`GpuOptions::memory_budget`).
    pub fn memory_budget(&self) -> Option<u64> {
        self.memory_budget
    }

    /// GPU buffer bytes allocated through `buffer` so far (buffers dropped are not subtracted).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turn what wgpu reported outside an error scope (and a lost device) into an error naming `context`.
    pub fn check(&self, context: &str) -> Result<()> {
        let mut f =
            self.faults.lock().map_err(|_| Error::Gpu { context: context.into(), message: "poisoned".into() })?;
        if let Some(l) = &f.lost {
            return Err(Error::Gpu { context: context.into(), message: format!("the device was lost ({l})") });
        }
        if !f.uncaptured.is_empty() {
            let all = std::mem::take(&mut f.uncaptured).join("; ");
            return Err(Error::Gpu { context: context.into(), message: all });
        }
        Ok(())
    }

    /// Upload bytes into a buffer at an offset (padded to 4 bytes).
    pub fn write(&self, buf: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(buf, offset, bytes);
        } else {
            let mut v = bytes.to_vec();
            v.resize(bytes.len().next_multiple_of(4), 0);
            self.queue.write_buffer(buf, offset, &v);
        }
    }

    /// Copy `bytes` from a buffer back to the host (waits for the GPU).
    pub fn read(&self, buf: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.next_multiple_of(4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, size);
        self.submit(enc.finish());
        self.map_read(&staging, bytes)
    }

    /// Submit one command buffer (every submission of the engine goes through here, so it can be counted).
    pub fn submit(&self, commands: wgpu::CommandBuffer) {
        self.submissions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.queue.submit([commands]);
    }

    /// Command buffers submitted so far (`bench`: submissions per token).
    pub fn submissions(&self) -> u64 {
        self.submissions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Map a MAP_READ buffer and take its first `bytes`.
    pub fn map_read(&self, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| Error::Gpu { context: "readback".into(), message: e.to_string() })?
            .map_err(|e| Error::Gpu { context: "readback".into(), message: e.to_string() })?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu { context: "readback".into(), message: e.to_string() })?[..bytes as usize]
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// Block until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map(|_| ())
            .map_err(|e| Error::Gpu { context: "poll".into(), message: e.to_string() })?;
        self.check("waiting for the GPU")
    }

    /// The explicit bind group layout for an access signature: binding 0 is the uniform Params, then one
    /// binding per kind. Shared by every pipeline with the same signature.
    pub fn layout(&self, kinds: &[BindKind]) -> Arc<wgpu::BindGroupLayout> {
        let mut cache = self.layouts.lock().unwrap();
        cache
            .entry(kinds.to_vec())
            .or_insert_with(|| {
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                for (i, &kind) in kinds.iter().enumerate() {
                    let buffer =
                        |ty| wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None };
                    let texture = |sample_type| wgpu::BindingType::Texture {
                        sample_type,
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    };
                    let ty = match kind {
                        BindKind::Read => buffer(wgpu::BufferBindingType::Storage { read_only: true }),
                        BindKind::Write => buffer(wgpu::BufferBindingType::Storage { read_only: false }),
                        BindKind::Uniform => buffer(wgpu::BufferBindingType::Uniform),
                        BindKind::TextureU32x4 | BindKind::StagedU32x4 => texture(wgpu::TextureSampleType::Uint),
                        BindKind::TextureF32
                        | BindKind::TextureF32x4
                        | BindKind::TextureF16x4
                        | BindKind::StagedF32x4
                        | BindKind::StagedF16x4
                        | BindKind::StagedF32 => texture(wgpu::TextureSampleType::Float { filterable: false }),
                    };
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding: i as u32 + 1,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty,
                        count: None,
                    });
                }
                Arc::new(self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("wgpu-llm layout"),
                    entries: &entries,
                }))
            })
            .clone()
    }
}
