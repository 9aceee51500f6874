//! Experiment (`cargo run --release --example texel_bench`): on llvmpipe, are weight reads through a texture
//! (textureLoad of rgba32uint) faster than through a storage buffer (array<vec4<u32>>)? llvmpipe (Mesa 22.x)
//! turns every storage-buffer load into a loop over the SIMD lanes with a bounds check and a branch per
//! lane, while texel fetches and uniform-buffer loads are gathered in straight-line code.
//!   - from_buffer / from_texture: the same 32 MiB read once, 16 bytes a load, each invocation a contiguous
//!     run of texels xored into one word.
//!   - gemv_*: a W8A8 GEMV of the int8 head's shape (49,152 rows × 576 int8, one invocation a row) with the
//!     weights in a buffer or a texture and the packed activation row in a storage or a uniform buffer.
use std::time::Instant;

const W: u32 = 4096; // texels per row
const H: u32 = 512; // rows: W·H·16 B = 32 MiB
const PER: u32 = 64; // texels per invocation
const GEMV_ROWS: u32 = 49152; // the head's rows, 36 texels (576 int8) each

const SRC: &str = r#"
@group(0) @binding(0) var<storage, read> buf: array<vec4<u32>>;
@group(0) @binding(1) var tex: texture_2d<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
const W: u32 = 4096u;
const PER: u32 = 64u;
@compute @workgroup_size(64)
fn from_buffer(@builtin(global_invocation_id) gid: vec3<u32>) {
    let base = gid.x * PER;
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < PER; i++) { acc ^= buf[base + i]; }
    out[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
@compute @workgroup_size(64)
fn from_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    let base = gid.x * PER;
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < PER; i++) {
        let t = base + i;
        acc ^= textureLoad(tex, vec2<u32>(t % W, t / W), 0);
    }
    out[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
// A W8A8 GEMV of the int8 head's shape: 49,152 rows of 576 int8 weights (36 texels a row), the packed int8
// activation row read from a storage buffer in both; one invocation per output row.
@group(0) @binding(3) var<storage, read> act: array<vec4<u32>>;
const ROW: u32 = 36u;
@compute @workgroup_size(64)
fn gemv_buffer(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = 0;
    for (var j = 0u; j < ROW; j++) {
        let w = buf[gid.x * ROW + j];
        let x = act[j];
        acc += dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
    }
    out[gid.x] = u32(acc);
}
@compute @workgroup_size(64)
fn gemv_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = 0;
    for (var j = 0u; j < ROW; j++) {
        let t = gid.x * ROW + j;
        let w = textureLoad(tex, vec2<u32>(t % W, t / W), 0);
        let x = act[j];
        acc += dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
    }
    out[gid.x] = u32(acc);
}
// The same with the activation row in a uniform buffer (llvmpipe gathers uniform-buffer loads in straight
// code; storage loads run a loop over the lanes).
@group(0) @binding(4) var<uniform> act_u: array<vec4<u32>, 36>;
@compute @workgroup_size(64)
fn gemv_texture_uniform(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = 0;
    for (var j = 0u; j < ROW; j++) {
        let t = gid.x * ROW + j;
        let w = textureLoad(tex, vec2<u32>(t % W, t / W), 0);
        let x = act_u[j];
        acc += dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
    }
    out[gid.x] = u32(acc);
}
@compute @workgroup_size(64)
fn gemv_buffer_uniform(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = 0;
    for (var j = 0u; j < ROW; j++) {
        let w = buf[gid.x * ROW + j];
        let x = act_u[j];
        acc += dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
    }
    out[gid.x] = u32(acc);
}
"#;

fn main() -> wgpu_llm::error::Result<()> {
    let gpu = wgpu_llm::gpu::Gpu::new(&Default::default())?;
    let (d, q) = (&gpu.device, &gpu.queue);
    println!("adapter: {} (max 2-D texture {} texels a side)", gpu.info.name, gpu.limits.max_texture_dimension_2d);
    let n = (W * H) as usize;
    let data: Vec<u32> = (0..4 * n as u32).map(|i| i.wrapping_mul(2654435761)).collect();
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let buf = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes.len() as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    q.write_buffer(&buf, 0, bytes);
    let size = wgpu::Extent3d { width: W, height: H, depth_or_array_layers: 1 };
    let tex = d.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Uint,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    q.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &tex,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(W * 16), rows_per_image: Some(H) },
        size,
    );
    let invocations = (n as u32) / PER;
    let out = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: invocations.max(GEMV_ROWS) as u64 * 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let act = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 36 * 16,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    q.write_buffer(&act, 0, &bytes[..36 * 16]);
    let act_u = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 36 * 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    q.write_buffer(&act_u, 0, &bytes[..36 * 16]);
    let view = tex.create_view(&Default::default());
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(SRC.into()),
    });
    let bgl = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Uint,
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 2,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: false },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 4,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 3,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
        ],
    });
    let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &bgl,
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&view) },
            wgpu::BindGroupEntry { binding: 2, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: act.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 4, resource: act_u.as_entire_binding() },
        ],
    });
    let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: None,
        bind_group_layouts: &[Some(&bgl)],
        immediate_size: 0,
    });
    let stream = (invocations / 64, bytes.len() as f64);
    let gemv = (GEMV_ROWS / 64, GEMV_ROWS as f64 * 576.0);
    let runs = [
        ("from_buffer", stream),
        ("from_texture", stream),
        ("gemv_buffer", gemv),
        ("gemv_texture", gemv),
        ("gemv_texture_uniform", gemv),
        ("gemv_buffer_uniform", gemv),
        ("from_buffer", stream),
        ("from_texture", stream),
        ("gemv_buffer", gemv),
        ("gemv_texture", gemv),
        ("gemv_texture_uniform", gemv),
        ("gemv_buffer_uniform", gemv),
    ];
    for (entry, (groups, read)) in runs {
        let p = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let mut best = f64::MAX;
        for _ in 0..4 {
            let mut enc = d.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            }
            let t = Instant::now();
            q.submit([enc.finish()]);
            d.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{entry:22} {:8.2} ms  {:6.2} GB/s of weights", best * 1e3, read / best / 1e9);
    }
    Ok(())
}
