//! Experiment (`cargo run --release --example gemm_tex_bench`): an f32 GEMM y = x·Wᵀ at SmolLM2's prefill
//! shape (256 × 576 by 1536 × 576) with both operands read through rgba32float textures (texel = 4
//! consecutive k), each invocation an R × C register tile, on llvmpipe. Compare with
//! `wgpu-llm bench kernels --filter matmul` (storage-buffer tiles).
use std::time::Instant;

fn src(r: usize, c: usize) -> String {
    let mut s = String::from(
        "@group(0) @binding(0) var ta: texture_2d<f32>;\n@group(0) @binding(1) var tb: texture_2d<f32>;\n\
         @group(0) @binding(2) var<storage, read_write> y: array<f32>;\n",
    );
    s += "@compute @workgroup_size(8, 8)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {\n";
    s += &format!("    let j0 = (wid.x * 8u + lid.x) * {c}u;\n    let i0 = (wid.y * 8u + lid.y) * {r}u;\n");
    s += "    let k4 = textureDimensions(ta).x;\n    let n = textureDimensions(tb).y;\n";
    for i in 0..r {
        for j in 0..c {
            s += &format!("    var c{i}_{j} = 0.0;\n");
        }
    }
    s += "    for (var k = 0u; k < k4; k++) {\n";
    for i in 0..r {
        s += &format!("        let a{i} = textureLoad(ta, vec2<u32>(k, i0 + {i}u), 0);\n");
    }
    for j in 0..c {
        s += &format!("        let b{j} = textureLoad(tb, vec2<u32>(k, j0 + {j}u), 0);\n");
    }
    for i in 0..r {
        for j in 0..c {
            s += &format!("        c{i}_{j} += dot(a{i}, b{j});\n");
        }
    }
    s += "    }\n";
    for i in 0..r {
        for j in 0..c {
            s += &format!("    y[(i0 + {i}u) * n + j0 + {j}u] = c{i}_{j};\n");
        }
    }
    s += "}\n";
    s
}

fn main() -> wgpu_llm::error::Result<()> {
    let gpu = wgpu_llm::gpu::Gpu::new(&Default::default())?;
    let (d, q) = (&gpu.device, &gpu.queue);
    let (m, k, n) = (256u32, 576u32, 1536u32);
    println!("adapter: {}; y = x·Wᵀ, {m}×{k} by {n}×{k}", gpu.info.name);
    let tex = |rows: u32, seed: u32| {
        let data: Vec<f32> =
            (0..rows * k).map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 1000.0 - 0.5).collect();
        let size = wgpu::Extent3d { width: k / 4, height: rows, depth_or_array_layers: 1 };
        let t = d.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        q.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &t,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(&data),
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(k * 4), rows_per_image: Some(rows) },
            size,
        );
        (t.create_view(&Default::default()), data)
    };
    let (va, xa) = tex(m, 1);
    let (vb, wb) = tex(n, 7);
    let y = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (m * n * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let rb = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (m * n * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    // What a buffer → texture copy of the weight costs (4096-texel rows, as exec::twins lays them out).
    {
        let bytes = (n * k * 4) as u64;
        let src = d.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        q.write_buffer(&src, 0, bytemuck::cast_slice(&wb));
        let rows = (bytes / 16).div_ceil(4096) as u32;
        let t = d.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size: wgpu::Extent3d { width: 4096, height: rows, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let full = (bytes / 16 / 4096) as u32;
        let mut best = f64::MAX;
        for _ in 0..4 {
            let mut enc = d.create_command_encoder(&Default::default());
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &src,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(4096 * 16),
                        rows_per_image: Some(full),
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &t,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d { width: 4096, height: full, depth_or_array_layers: 1 },
            );
            let t0 = Instant::now();
            q.submit([enc.finish()]);
            d.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).unwrap();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        let moved = full as f64 * 4096.0 * 16.0;
        println!("copy buffer → texture {:.1} MB: {:.2} ms ({:.1} GB/s)", moved / 1e6, best * 1e3, moved / best / 1e9);
    }
    let args: Vec<(usize, usize)> = std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('x').map(|(r, c)| (r.parse().unwrap(), c.parse().unwrap())))
        .collect();
    let tiles = if args.is_empty() { vec![(4, 4), (8, 4), (8, 8)] } else { args };
    for (r, c) in tiles {
        let t0 = Instant::now();
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(src(r, c).into()),
        });
        let p = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&va) },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vb) },
                wgpu::BindGroupEntry { binding: 2, resource: y.as_entire_binding() },
            ],
        });
        let mut best = f64::MAX;
        let mut compile = 0.0;
        for rep in 0..4 {
            let mut enc = d.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(n / (8 * c as u32), m / (8 * r as u32), 1);
            }
            if rep == 3 {
                enc.copy_buffer_to_buffer(&y, 0, &rb, 0, None);
            }
            let t = Instant::now();
            q.submit([enc.finish()]);
            d.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).unwrap();
            if rep == 0 {
                compile = t0.elapsed().as_secs_f64();
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        rb.slice(..).map_async(wgpu::MapMode::Read, |_| ());
        d.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).unwrap();
        let got: Vec<f32> = bytemuck::cast_slice(&rb.slice(..).get_mapped_range().expect("mapped")).to_vec();
        rb.unmap();
        let mut err = 0f32;
        for (i, j) in [(0usize, 0usize), (255, 1535), (17, 999), (128, 3)] {
            let want: f32 = (0..k as usize).map(|kk| xa[i * k as usize + kk] * wb[j * k as usize + kk]).sum();
            err = err.max((got[i * n as usize + j] - want).abs());
        }
        let flops = 2.0 * (m * n * k) as f64;
        println!(
            "tile {r:2}x{c:<2} {:8.2} ms {:6.2} GFLOP/s (first run incl. compile {:.1} s, max err {err:.1e})",
            best * 1e3,
            flops / best / 1e9,
            compile
        );
    }
    Ok(())
}
