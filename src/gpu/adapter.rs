//! Adapter choice and description: the most capable adapter by default, or one picked by name or backend.

use serde::Serialize;

use super::Tier;
use crate::error::{Error, Result};

fn backends(name: Option<&str>) -> Result<wgpu::Backends> {
    Ok(match name.map(|s| s.to_ascii_lowercase()) {
        None => wgpu::Backends::all(),
        Some(s) => match s.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            _ => return Err(Error::Other(format!("unknown backend {s:?} (vulkan, metal, dx12, gl)"))),
        },
    })
}

fn instance(b: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = b;
    wgpu::Instance::new(desc)
}

/// The best tier an adapter supports with the features we enabled. `lang` is the instance's WGSL language
/// features: the int8 tier asks for `dot4I8Packed` (naga polyfills it where the hardware lacks it).
pub fn best_tier(features: wgpu::Features, lang: &wgpu::WgslLanguageFeatures) -> Tier {
    if !features.contains(wgpu::Features::SHADER_F16) {
        Tier::F32
    } else if !features.contains(wgpu::Features::SUBGROUP) {
        Tier::F16
    } else if lang.contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct) {
        Tier::Int8Dot
    } else {
        Tier::Subgroups
    }
}

/// Rank adapters: discrete > integrated > virtual > CPU > other, then the number of useful features.
fn score(a: &wgpu::Adapter) -> (u32, u32) {
    let t = match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 5,
        wgpu::DeviceType::IntegratedGpu => 4,
        wgpu::DeviceType::VirtualGpu => 3,
        wgpu::DeviceType::Cpu => 2,
        wgpu::DeviceType::Other => 1,
    };
    let f = a.features();
    let n = [wgpu::Features::SHADER_F16, wgpu::Features::SUBGROUP, wgpu::Features::TIMESTAMP_QUERY]
        .iter()
        .filter(|&&x| f.contains(x))
        .count() as u32;
    (t, n)
}

/// The chosen adapter with its instance's WGSL language features.
pub(super) fn choose(opts: &super::GpuOptions) -> Result<(wgpu::Adapter, wgpu::WgslLanguageFeatures)> {
    // Without a backend asked for, the primary backends (Vulkan, Metal, DX12) come first; GL only if none.
    let b = backends(opts.backend.as_deref())?;
    let inst = instance(if opts.backend.is_none() { wgpu::Backends::PRIMARY } else { b });
    let lang = inst.wgsl_language_features();
    let mut all = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    if all.is_empty() && opts.backend.is_none() {
        all = pollster::block_on(instance(b).enumerate_adapters(wgpu::Backends::all()));
    }
    if let Some(name) = &opts.adapter {
        let n = name.to_ascii_lowercase();
        all.retain(|a| a.get_info().name.to_ascii_lowercase().contains(&n));
    }
    all.sort_by_key(|a| std::cmp::Reverse(score(a)));
    all.into_iter().next().map(|a| (a, lang)).ok_or_else(|| {
        let mut what = String::new();
        if let Some(b) = &opts.backend {
            what += &format!(" for backend {b}");
        }
        if let Some(a) = &opts.adapter {
            what += &format!(" matching {a:?}");
        }
        what += " (on Linux without a GPU, install the software Vulkan driver: apt-get install mesa-vulkan-drivers libvulkan1)";
        Error::NoAdapter(what)
    })
}

/// One adapter as `wgpu-llm devices` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub tier: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
    pub immediates: bool,
    /// The kernel strategy a device opened on this adapter takes (`GpuOptions`, with the environment's
    /// overrides): weights and activations read through textures, a forced matmul kernel, gemv_vec4 kept.
    pub texture_reads: bool,
    pub matmul: String,
    pub gemv_vec4: bool,
}

/// Every adapter of the chosen backends.
pub fn list_adapters(backend: Option<&str>) -> Result<Vec<AdapterReport>> {
    let inst = instance(backends(backend)?);
    let lang = inst.wgsl_language_features();
    let all = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    let opts = super::GpuOptions::default();
    Ok(all
        .iter()
        .map(|a| {
            let i = a.get_info();
            let l = a.limits();
            let f = a.features();
            AdapterReport {
                name: i.name.clone(),
                backend: format!("{:?}", i.backend).to_lowercase(),
                device_type: format!("{:?}", i.device_type),
                driver: i.driver.clone(),
                driver_info: i.driver_info.clone(),
                tier: best_tier(f, &lang).name().into(),
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_buffer_size: l.max_buffer_size,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                subgroup_min_size: i.subgroup_min_size,
                subgroup_max_size: i.subgroup_max_size,
                f16: f.contains(wgpu::Features::SHADER_F16),
                subgroups: f.contains(wgpu::Features::SUBGROUP),
                timestamps: f.contains(wgpu::Features::TIMESTAMP_QUERY),
                immediates: f.contains(wgpu::Features::IMMEDIATES),
                texture_reads: opts.texture_reads_on(i.device_type),
                matmul: opts.matmul.name().into(),
                gemv_vec4: opts.gemv_vec4,
            }
        })
        .collect())
}
