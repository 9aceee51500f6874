//! Experiment (`cargo run --release --example uniform_bench [dispatch|read|gemm|fmt|gemv]`): what reads cost
//! on llvmpipe (Mesa 22.3), and what a dispatch costs. Mesa 22's llvmpipe compiles
//!   - a storage-buffer (and workgroup-memory) load into a loop over the 8 SIMD lanes with a branch each;
//!   - a texel fetch and a uniform-buffer load at a varying offset into gathers (straight-line code);
//!   - a uniform-buffer load into one scalar load and a broadcast only when the offset is a constant or
//!     comes from push constants (`nir_src_is_always_uniform`): a loop counter is not, so a window of A in
//!     a uniform buffer is gathered like a texel. Unrolling the k loop to make the offsets constant was
//!     tried: one 16×1 pipeline at k = 576 compiled for more than 11 minutes and was abandoned.
//!
//! Sections:
//!   - dispatch: empty dispatches in one pass (about 50 µs each), with and without a buffer hazard;
//!   - read: 256 vec4 reads per lane from a cache-resident 64 KiB source, as texels, uniform or storage;
//!   - gemm: y = x·Wᵀ, 256×576 by 1536×576 with A through a uniform-buffer window of rows (one dispatch
//!     per window, an offset into one buffer), against examples/gemm_tex_bench's texture kernel;
//!   - fmt: decode GEMVs with the weights as rgba32float, rgba16float, f16 packed eight to an rgba32uint
//!     texel (h8) or int8 sixteen to a texel with block scales; the row from a texture or a uniform buffer;
//!   - gemv: the f32 GEMV with 1–8 columns a lane.
use std::time::Instant;
use wgpu::util::DeviceExt;

const TW: u32 = 4096;

/// A from a uniform window: rows row0 .. row0 + rows of the window (p.x = first row of the window in y,
/// p.y = the element offset of that row inside the binding). Workgroup 64 lanes along columns, each lane
/// c columns; every lane of a workgroup shares the r rows i0 .. i0 + r - 1 (uniform loads).
fn gemm_ubo_src(r: usize, c: usize) -> String {
    let mut s = String::from(
        "struct P { row0: u32, off4: u32, k4: u32, n: u32 }\n\
         @group(0) @binding(0) var<uniform> ua: array<vec4<f32>, 4096>;\n@group(0) @binding(1) var tb: texture_2d<f32>;\n\
         @group(0) @binding(2) var<storage, read_write> y: array<f32>;\n@group(0) @binding(3) var<uniform> p: P;\n",
    );
    s += "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {\n";
    s += &format!("    let j0 = (wid.x * 64u + lid.x) * {c}u;\n    let i0 = wid.y * {r}u;\n");
    s += "    let k4 = p.k4;\n    let n = p.n;\n";
    for i in 0..r {
        s += &format!("    let ra{i} = p.off4 + (i0 + {i}u) * k4;\n");
        for j in 0..c {
            s += &format!("    var c{i}_{j} = 0.0;\n");
        }
    }
    s += "    for (var k = 0u; k < k4; k++) {\n";
    for j in 0..c {
        s += &format!("        let b{j} = textureLoad(tb, vec2<u32>(k, j0 + {j}u), 0);\n");
    }
    for i in 0..r {
        s += &format!("        let a{i} = ua[ra{i} + k];\n");
        for j in 0..c {
            s += &format!("        c{i}_{j} += dot(a{i}, b{j});\n");
        }
    }
    s += "    }\n";
    for i in 0..r {
        for j in 0..c {
            s += &format!("    y[(p.row0 + i0 + {i}u) * n + j0 + {j}u] = c{i}_{j};\n");
        }
    }
    s += "}\n";
    s
}

/// GEMV, one row: each lane c columns; x from a texture (flattened layout) or a uniform buffer.
fn gemv_src(c: usize, uniform_x: bool) -> String {
    let mut s = String::from(
        "@group(0) @binding(1) var tb: texture_2d<f32>;\n@group(0) @binding(2) var<storage, read_write> y: array<f32>;\n",
    );
    if uniform_x {
        s += "@group(0) @binding(0) var<uniform> ux: array<vec4<f32>, 4096>;\nfn xv(t: u32) -> vec4<f32> { return ux[t]; }\n";
    } else {
        s += "@group(0) @binding(0) var tx: texture_2d<f32>;\nfn xv(t: u32) -> vec4<f32> { return textureLoad(tx, vec2<u32>(t % 4096u, t / 4096u), 0); }\n";
    }
    s += "fn wv(t: u32) -> vec4<f32> { return textureLoad(tb, vec2<u32>(t % 4096u, t / 4096u), 0); }\n";
    s += "const K4: u32 = 144u;\n";
    s += "@compute @workgroup_size(16)\nfn main(@builtin(global_invocation_id) gid: vec3<u32>) {\n";
    s += &format!("    let j0 = gid.x * {c}u;\n");
    for j in 0..c {
        s += &format!("    var c{j} = 0.0;\n    let r{j} = (j0 + {j}u) * K4;\n");
    }
    s += "    for (var k = 0u; k < K4; k++) {\n        let x = xv(k);\n";
    for j in 0..c {
        s += &format!("        c{j} += dot(x, wv(r{j} + k));\n");
    }
    s += "    }\n";
    for j in 0..c {
        s += &format!("    y[j0 + {j}u] = c{j};\n");
    }
    s += "}\n";
    s
}

/// A decode GEMV (one row x of k, n outputs) with weights in a flattened texture: `fmt` "f32" (rgba32float,
/// 4 weights a texel), "f16" (rgba16float, 4), "h8" (rgba32uint holding 8 f16), "i8" (rgba32uint holding
/// 16 int8, one f32 scale per 32 in an r32float texture); x from a texture or a uniform buffer; c columns
/// a lane.
fn gemv_fmt_src(fmt: &str, c: usize, uniform_x: bool, k: usize) -> String {
    let per = match fmt {
        "h8" => 8,
        "i8" => 16,
        _ => 4,
    };
    let kt = k / per;
    let mut s = String::new();
    s += if fmt == "h8" || fmt == "i8" {
        "@group(0) @binding(1) var tb: texture_2d<u32>;\n"
    } else {
        "@group(0) @binding(1) var tb: texture_2d<f32>;\n"
    };
    s += "@group(0) @binding(2) var<storage, read_write> y: array<f32>;\n@group(0) @binding(3) var ts: texture_2d<f32>;\n";
    if uniform_x {
        s += "@group(0) @binding(0) var<uniform> ux: array<vec4<f32>, 4096>;\nfn xv(t: u32) -> vec4<f32> { return ux[t]; }\n";
    } else {
        s += "@group(0) @binding(0) var tx: texture_2d<f32>;\nfn xv(t: u32) -> vec4<f32> { return textureLoad(tx, vec2<u32>(t % 4096u, t / 4096u), 0); }\n";
    }
    s += "fn wv(t: u32) -> vec4<TY> { return textureLoad(tb, vec2<u32>(t % 4096u, t / 4096u), 0); }\n"
        .replace("TY", if per > 4 { "u32" } else { "f32" })
        .as_str();
    s += "fn sv(t: u32) -> f32 { return textureLoad(ts, vec2<u32>(t % 4096u, t / 4096u), 0).x; }\n";
    s += "fn i8x4(w: u32) -> vec4<f32> {\n    let v = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));\n    return vec4<f32>(v >> vec4<u32>(24u));\n}\n";
    s += "@compute @workgroup_size(16)\nfn main(@builtin(global_invocation_id) gid: vec3<u32>) {\n";
    s += &format!("    let j0 = gid.x * {c}u;\n");
    for j in 0..c {
        s += &format!("    var c{j} = 0.0;\n    var p{j} = 0.0;\n    let r{j} = (j0 + {j}u) * {kt}u;\n");
    }
    s += &format!("    for (var kk = 0u; kk < {kt}u; kk++) {{\n");
    for e in 0..per / 4 {
        s += &format!("        let x{e} = xv(kk * {}u + {e}u);\n", per / 4);
    }
    for j in 0..c {
        s += &format!("        let w{j} = wv(r{j} + kk);\n");
        s += &match fmt {
            "h8" => format!("        c{j} += dot(x0, vec4<f32>(unpack2x16float(w{j}.x), unpack2x16float(w{j}.y))) + dot(x1, vec4<f32>(unpack2x16float(w{j}.z), unpack2x16float(w{j}.w)));\n"),
            "i8" => format!("        p{j} += dot(x0, i8x4(w{j}.x)) + dot(x1, i8x4(w{j}.y)) + dot(x2, i8x4(w{j}.z)) + dot(x3, i8x4(w{j}.w));\n"),
            _ => format!("        c{j} += dot(x0, w{j});\n"),
        };
    }
    if fmt == "i8" {
        s += "        if ((kk & 1u) == 1u) {\n";
        for j in 0..c {
            s += &format!(
                "            c{j} += p{j} * sv((j0 + {j}u) * {}u + kk / 2u);\n            p{j} = 0.0;\n",
                k / 32
            );
        }
        s += "        }\n";
    }
    s += "    }\n";
    for j in 0..c {
        s += &format!("    y[j0 + {j}u] = c{j};\n");
    }
    s += "}\n";
    s
}

struct Ctx {
    d: wgpu::Device,
    q: wgpu::Queue,
}

impl Ctx {
    fn texture(&self, width: u32, height: u32, data: &[f32]) -> wgpu::TextureView {
        let mut padded = data.to_vec();
        padded.resize((width * height * 4) as usize, 0.0);
        self.texture_of(width, height, bytemuck::cast_slice(&padded), wgpu::TextureFormat::Rgba32Float)
    }
    fn texture_of(&self, width: u32, height: u32, bytes: &[u8], format: wgpu::TextureFormat) -> wgpu::TextureView {
        let texel = format.block_copy_size(None).unwrap();
        let mut padded = bytes.to_vec();
        padded.resize((width * height * texel) as usize, 0);
        let size = wgpu::Extent3d { width, height, depth_or_array_layers: 1 };
        let t = self.d.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        self.q.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &t,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            &padded,
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(width * texel), rows_per_image: Some(height) },
            size,
        );
        t.create_view(&Default::default())
    }
    fn buffer(&self, data: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.d.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: data, usage })
    }
    fn pipeline(&self, src: &str) -> wgpu::ComputePipeline {
        let module = self.d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        self.d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        })
    }
    /// Best of `reps` runs of what `record` encodes, in seconds.
    fn time(&self, reps: usize, record: &dyn Fn(&mut wgpu::CommandEncoder)) -> f64 {
        let mut best = f64::MAX;
        for _ in 0..reps {
            let mut enc = self.d.create_command_encoder(&Default::default());
            record(&mut enc);
            let t = Instant::now();
            self.q.submit([enc.finish()]);
            self.d.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        best
    }
    fn read(&self, buf: &wgpu::Buffer, len: usize) -> Vec<f32> {
        let rb = self.d.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (len * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.d.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &rb, 0, None);
        self.q.submit([enc.finish()]);
        rb.slice(..).map_async(wgpu::MapMode::Read, |_| ());
        self.d.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).unwrap();
        let v = bytemuck::cast_slice(&rb.slice(..).get_mapped_range().expect("mapped")).to_vec();
        v
    }
}

fn rand(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 1000.0 - 0.5).collect()
}

fn main() -> wgpu_llm::error::Result<()> {
    let gpu = wgpu_llm::gpu::Gpu::new(&Default::default())?;
    let cx = Ctx { d: gpu.device.clone(), q: gpu.queue.clone() };
    let d = &cx.d;
    println!("adapter: {}", gpu.info.name);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| name.starts_with(a.as_str()));
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;

    // Empty dispatches.
    if want("dispatch") {
        let p = cx.pipeline("@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x == 0u) { y[0] += 1.0; } }\n");
        let ys: Vec<wgpu::Buffer> = (0..8).map(|_| cx.buffer(&[0u8; 256], storage)).collect();
        let bgs: Vec<wgpu::BindGroup> = ys
            .iter()
            .map(|y| {
                d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &p.get_bind_group_layout(0),
                    entries: &[wgpu::BindGroupEntry { binding: 0, resource: y.as_entire_binding() }],
                })
            })
            .collect();
        for (count, groups, distinct) in [(500u32, 64u32, 1usize), (500, 1, 1), (500, 64, 1), (500, 1, 8), (500, 64, 8)]
        {
            let t = cx.time(3, &|enc| {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                for i in 0..count {
                    pass.set_bind_group(0, &bgs[i as usize % distinct], &[]);
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            });
            println!(
                "dispatch: {count} × {groups} workgroups of 64, {distinct} buffer(s) in turn: {:.1} µs each",
                t / count as f64 * 1e6
            );
        }
        // A staged read as the decode GEMVs do it: copy a 2,304-byte row into a texture, then dispatch.
        let src = cx.buffer(&[0u8; 2304], wgpu::BufferUsages::COPY_SRC);
        let tex = d.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size: wgpu::Extent3d { width: 4096, height: 1, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let t = cx.time(3, &|enc| {
            for _ in 0..200 {
                enc.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer: &src,
                        layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: None, rows_per_image: None },
                    },
                    wgpu::TexelCopyTextureInfo {
                        texture: &tex,
                        mip_level: 0,
                        origin: wgpu::Origin3d::ZERO,
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::Extent3d { width: 144, height: 1, depth_or_array_layers: 1 },
                );
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bgs[0], &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        });
        println!(
            "dispatch: 200 × (copy a row into a texture, then a pass of one dispatch): {:.1} µs each",
            t / 200.0 * 1e6
        );
        let t = cx.time(3, &|enc| {
            for _ in 0..100 {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bgs[0], &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        });
        println!("dispatch: 100 passes of one dispatch: {:.1} µs each", t / 100.0 * 1e6);
    }

    // Raw read rates from a 64 KiB source (cache-resident): each lane its own address, 256 vec4 reads.
    if want("read") {
        let data = rand(16384, 9);
        let tex = cx.texture(TW, 1, &data);
        let ub = cx.buffer(bytemuck::cast_slice(&data), wgpu::BufferUsages::UNIFORM);
        let sb = cx.buffer(bytemuck::cast_slice(&data), storage);
        let out = cx.buffer(&vec![0u8; 64 * 4096 * 4], storage);
        for (name, decl, load) in [
            ("texture", "@group(0) @binding(0) var src: texture_2d<f32>;", "textureLoad(src, vec2<u32>(t, 0u), 0)"),
            ("uniform", "@group(0) @binding(0) var<uniform> src: array<vec4<f32>, 4096>;", "src[t]"),
            ("storage", "@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;", "src[t]"),
        ] {
            let text = format!(
                "{decl}\n@group(0) @binding(1) var<storage, read_write> out: array<f32>;\n\
                 @compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) g: vec3<u32>) {{\n\
                 var acc = vec4<f32>(0.0);\n    let base = (g.x * 37u) % 4096u;\n\
                 for (var k = 0u; k < 256u; k++) {{ let t = (base + k) & 4095u; acc += {load}; }}\n\
                 out[g.x] = acc.x + acc.y + acc.z + acc.w;\n}}\n"
            );
            let p = cx.pipeline(&text);
            let res = match name {
                "texture" => wgpu::BindingResource::TextureView(&tex),
                "uniform" => ub.as_entire_binding(),
                _ => sb.as_entire_binding(),
            };
            let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &p.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: res },
                    wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
                ],
            });
            let groups = 4096u32;
            let t = cx.time(3, &|enc| {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            });
            let reads = groups as f64 * 64.0 * 256.0;
            println!(
                "read {name}: {:.2} ms, {:.2} G vec4/s ({:.1} GB/s, {:.1} cycles a lane-read at 3 GHz × 2 cores)",
                t * 1e3,
                reads / t / 1e9,
                reads * 16.0 / t / 1e9,
                6e9 * t / reads
            );
        }
    }

    let (m, k, n) = (256u32, 576u32, 1536u32);
    let k4 = k / 4;
    let xa = rand((m * k) as usize, 1);
    let wb = rand((n * k) as usize, 7);
    let check = |got: &[f32], rows: &[(usize, usize)]| {
        let mut err = 0f32;
        for &(i, j) in rows {
            let want: f32 = (0..k as usize).map(|kk| xa[i * k as usize + kk] * wb[j * k as usize + kk]).sum();
            err = err.max((got[i * n as usize + j] - want).abs());
        }
        err
    };
    let flops = 2.0 * (m * n * k) as f64;
    let y = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (m * n * 4) as u64,
        usage: storage,
        mapped_at_creation: false,
    });
    let spots = [(0usize, 0usize), (255, 1535), (17, 999), (128, 3), (100, 1000)];
    if want("gemm") {
        // (gemm_tex's own scheme, A through a texture: examples/gemm_tex_bench.)
        let vb = cx.texture(k4, n, &wb);
        // One buffer holding all of A, bound 64 KiB at a time.
        let mut apad = xa.clone();
        apad.resize(apad.len() + 16384, 0.0);
        let ua = cx.buffer(bytemuck::cast_slice(&apad), wgpu::BufferUsages::UNIFORM);
        for (r, c) in [(16usize, 1usize), (16, 2), (8, 2), (8, 4), (4, 4), (24, 1), (12, 2)] {
            let p = cx.pipeline(&gemm_ubo_src(r, c));
            // Rows per window: a multiple of r that fits 64 KiB after the alignment slack.
            let per = ((16384 - 64) / k as usize / r * r) as u32;
            let windows: Vec<u32> = (0..m).step_by(per as usize).collect();
            let mut groups = Vec::new();
            for &row0 in &windows {
                let rows = per.min(m - row0);
                let byte = row0 * k * 4;
                let aligned = byte / 256 * 256;
                let pbuf =
                    cx.buffer(bytemuck::cast_slice(&[row0, (byte - aligned) / 16, k4, n]), wgpu::BufferUsages::UNIFORM);
                let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &p.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &ua,
                                offset: aligned as u64,
                                size: std::num::NonZeroU64::new(65536),
                            }),
                        },
                        wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vb) },
                        wgpu::BindGroupEntry { binding: 2, resource: y.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 3, resource: pbuf.as_entire_binding() },
                    ],
                });
                groups.push((bg, pbuf, rows.div_ceil(r as u32)));
            }
            let t = cx.time(3, &|enc| {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                for (bg, _, gy) in &groups {
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(n / (64 * c as u32), *gy, 1);
                }
            });
            let err = check(&cx.read(&y, (m * n) as usize), &spots);
            println!(
                "gemm ubo  {r:2}x{c}: {:7.2} ms {:6.2} GFLOP/s ({} dispatches, err {err:.1e})",
                t * 1e3,
                flops / t / 1e9,
                groups.len()
            );
        }
    }
    if want("fmt") {
        for (big, kk) in [(49152u32, 576u32), (1536, 576), (576, 1536)] {
            let w = rand((big * kk) as usize, 3);
            let x = rand(kk as usize, 5);
            let want_y: Vec<f32> =
                (0..big as usize).map(|j| (0..kk as usize).map(|t| x[t] * w[j * kk as usize + t]).sum()).collect();
            let vx = cx.texture(TW, (kk / 4).div_ceil(TW), &x);
            let mut xpad = x.clone();
            xpad.resize(16384, 0.0);
            let ux = cx.buffer(bytemuck::cast_slice(&xpad), wgpu::BufferUsages::UNIFORM);
            let yv = d.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: (big * 4) as u64,
                usage: storage,
                mapped_at_creation: false,
            });
            // int8 per 32 with a scale; f16 bits.
            let scales: Vec<f32> = w.chunks(32).map(|b| b.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0).collect();
            let q: Vec<i8> = w.iter().enumerate().map(|(i, v)| (v / scales[i / 32]).round() as i8).collect();
            let h: Vec<u16> = w.iter().map(|v| half::f16::from_f32(*v).to_bits()).collect();
            let vs = cx.texture_of(
                TW,
                (scales.len() as u32).div_ceil(TW),
                bytemuck::cast_slice(&scales),
                wgpu::TextureFormat::R32Float,
            );
            let bytes_of = |b: &[u8], per_texel: u32| {
                let texels = (b.len() as u32).div_ceil(per_texel);
                (texels, b.to_vec())
            };
            let variants: Vec<(&str, usize, bool)> = vec![
                ("f32", 4, false),
                ("f32", 4, true),
                ("f32", 8, true),
                ("f16", 4, false),
                ("h8", 4, false),
                ("h8", 4, true),
                ("h8", 8, true),
                ("i8", 4, false),
                ("i8", 4, true),
                ("i8", 8, true),
                ("i8", 2, true),
            ];
            for (fmt, c, uniform) in variants {
                let (texels, bytes, format) = match fmt {
                    "f32" => {
                        let (t, b) = bytes_of(bytemuck::cast_slice(&w), 16);
                        (t, b, wgpu::TextureFormat::Rgba32Float)
                    }
                    "f16" => {
                        let (t, b) = bytes_of(bytemuck::cast_slice(&h), 8);
                        (t, b, wgpu::TextureFormat::Rgba16Float)
                    }
                    "h8" => {
                        let (t, b) = bytes_of(bytemuck::cast_slice(&h), 16);
                        (t, b, wgpu::TextureFormat::Rgba32Uint)
                    }
                    _ => {
                        let (t, b) = bytes_of(bytemuck::cast_slice(&q), 16);
                        (t, b, wgpu::TextureFormat::Rgba32Uint)
                    }
                };
                let vb = cx.texture_of(TW, texels.div_ceil(TW), &bytes, format);
                let p = cx.pipeline(&gemv_fmt_src(fmt, c, uniform, kk as usize));
                let xres = if uniform { ux.as_entire_binding() } else { wgpu::BindingResource::TextureView(&vx) };
                let mut entries = vec![
                    wgpu::BindGroupEntry { binding: 0, resource: xres },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vb) },
                    wgpu::BindGroupEntry { binding: 2, resource: yv.as_entire_binding() },
                ];
                if fmt == "i8" {
                    entries
                        .push(wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&vs) });
                }
                let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &p.get_bind_group_layout(0),
                    entries: &entries,
                });
                // Many dispatches in one pass, as a decode step records them (a submission costs more than
                // a small GEMV).
                let reps = if big > 4096 { 2 } else { 40 };
                let t = cx.time(4, &|enc| {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&p);
                    pass.set_bind_group(0, &bg, &[]);
                    for _ in 0..reps {
                        pass.dispatch_workgroups(big / (16 * c as u32), 1, 1);
                    }
                }) / reps as f64;
                let got = cx.read(&yv, big as usize);
                let err = got.iter().zip(&want_y).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
                println!(
                    "gemv {kk}x{big:<5} {fmt:3} x {} {c} col/lane: {:7.3} ms {:5.2} GB/s {:5.2} Gweights/s (max err {err:.1e})",
                    if uniform { "uniform" } else { "texture" },
                    t * 1e3,
                    bytes.len() as f64 / t / 1e9,
                    (big * kk) as f64 / t / 1e9
                );
            }
        }
    }
    if want("gemv") {
        for big in [n, 49152] {
            let w = rand((big * k) as usize, 3);
            let texels = big * k4;
            let vb = cx.texture(TW, texels.div_ceil(TW), &w);
            let x = rand(k as usize, 5);
            let vx = cx.texture(TW, 1, &x);
            let mut xpad = x.clone();
            xpad.resize(16384, 0.0);
            let ux = cx.buffer(bytemuck::cast_slice(&xpad), wgpu::BufferUsages::UNIFORM);
            let yv = d.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: (big * 4) as u64,
                usage: storage,
                mapped_at_creation: false,
            });
            for (c, uniform) in [(4usize, false), (4, true), (1, true), (2, true), (8, true)] {
                let p = cx.pipeline(&gemv_src(c, uniform));
                let xres = if uniform { ux.as_entire_binding() } else { wgpu::BindingResource::TextureView(&vx) };
                let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &p.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: xres },
                        wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vb) },
                        wgpu::BindGroupEntry { binding: 2, resource: yv.as_entire_binding() },
                    ],
                });
                // Many dispatches in one pass, as a decode step records them (a submission costs more than
                // a small GEMV).
                let reps = if big > 4096 { 2 } else { 40 };
                let t = cx.time(4, &|enc| {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&p);
                    pass.set_bind_group(0, &bg, &[]);
                    for _ in 0..reps {
                        pass.dispatch_workgroups(big / (16 * c as u32), 1, 1);
                    }
                }) / reps as f64;
                let got = cx.read(&yv, big as usize);
                let mut err = 0f32;
                for j in [0usize, big as usize - 1, 777] {
                    let want: f32 = (0..k as usize).map(|kk| x[kk] * w[j * k as usize + kk]).sum();
                    err = err.max((got[j] - want).abs());
                }
                let bytes = (big * k * 4) as f64;
                println!(
                    "gemv 576x{big:<5} {} x, {c} col/lane: {:7.3} ms {:5.2} GB/s (err {err:.1e})",
                    if uniform { "uniform" } else { "texture" },
                    t * 1e3,
                    bytes / t / 1e9
                );
            }
        }
    }
    Ok(())
}
