//! Texture twins of weight leaves. On the software adapter (llvmpipe) every storage-buffer load runs a loop
//! over the SIMD lanes with a bounds check and a branch per lane, while texel fetches are gathered in
//! straight-line code: `examples/texel_bench` reads the same bytes 6–14× faster through a texture. A twin
//! is a 2-D texture holding a leaf's bytes in row-major order, `TEXTURE_WIDTH` texels a row (the last row
//! partly used); a kernel binding the leaf as a texture (`BindKind::TextureU32x4` / `TextureF32`) reads
//! texel t at (t % TEXTURE_WIDTH, t / TEXTURE_WIDTH).
//!
//! A twin is filled from the leaf's buffer when it is made, rewritten whenever the leaf is uploaded
//! (`MemoryPlan::upload`), and copied again from the buffer at the end of every run of a plan that writes the
//! leaf in place (an optimizer step; `MemoryPlan::record_twin_sync`), so a plan sharing the twin never reads
//! it stale. Twins hold float weights for decode GEMVs and int8 weights for every int8 product; a binding of a
//! twin kind on a value that is not a single-buffer leaf is staged instead (below).
//!
//! Staged textures (`BindKind::StagedF32x4` / `StagedF16x4`) use the same layout for any value, leaf or
//! intermediate: the plan copies the value's buffer in right before the dispatch, every run (the copy's
//! speed: README, "Measurements behind the design"), so they are never stale and cost one texture per size
//! instead of a second copy of every weight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::BindKind;

/// Texels per texture row (the kernels' prelude gives the shaders the same constant).
pub use crate::kernels::TEXTURE_WIDTH;

#[derive(Clone, Debug)]
pub struct Twin {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    pub kind: BindKind,
    /// Bytes per texel, and texels in use.
    texel: u64,
    texels: u64,
}

/// Twins by leaf name (shared by the plans over one `SharedLeaves`).
pub type Twins = Arc<Mutex<HashMap<String, Twin>>>;

/// The texture format of a texture binding and its texel size in bytes.
pub fn format(kind: BindKind) -> Option<(wgpu::TextureFormat, u64)> {
    match kind {
        BindKind::TextureU32x4 | BindKind::StagedU32x4 => Some((wgpu::TextureFormat::Rgba32Uint, 16)),
        BindKind::TextureF32 | BindKind::StagedF32 => Some((wgpu::TextureFormat::R32Float, 4)),
        BindKind::StagedF32x4 | BindKind::TextureF32x4 => Some((wgpu::TextureFormat::Rgba32Float, 16)),
        BindKind::StagedF16x4 | BindKind::TextureF16x4 => Some((wgpu::TextureFormat::Rgba16Float, 8)),
        _ => None,
    }
}

/// Rows a twin of `bytes` needs (None: not whole texels).
pub fn rows_for(kind: BindKind, bytes: u64) -> Option<u64> {
    let (_, texel) = format(kind)?;
    bytes.is_multiple_of(texel).then(|| (bytes / texel).div_ceil(TEXTURE_WIDTH as u64).max(1))
}

impl Twin {
    /// An empty twin for `bytes` of leaf `name`.
    pub fn new(gpu: &Gpu, name: &str, kind: BindKind, bytes: u64) -> Result<Twin> {
        let (fmt, texel) =
            format(kind).ok_or_else(|| Error::Graph(format!("{name}: {kind:?} is not a texture binding")))?;
        let rows = rows_for(kind, bytes)
            .ok_or_else(|| Error::Graph(format!("{name}: {bytes} bytes are not whole {texel}-byte texels")))?;
        let limit = gpu.limits.max_texture_dimension_2d as u64;
        if rows > limit {
            return Err(Error::TooLarge {
                tensor: name.into(),
                bytes,
                limit: limit * TEXTURE_WIDTH as u64 * texel,
                what: "max_texture_dimension_2d (as a texture twin)".into(),
                hint: String::new(),
            });
        }
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(&format!("{name} texture")),
            size: wgpu::Extent3d { width: TEXTURE_WIDTH, height: rows as u32, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: fmt,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        Ok(Twin { texture, view, kind, texel, texels: bytes / texel })
    }

    pub fn bytes(&self) -> u64 {
        self.texels * self.texel
    }

    /// The copies that fill the first `texels` texels: (first texel, texture origin row, width in texels,
    /// rows).
    fn pieces(texels: u64) -> Vec<(u64, u32, u32, u32)> {
        let w = TEXTURE_WIDTH as u64;
        let (full, rem) = (texels / w, texels % w);
        let mut v = vec![];
        if full > 0 {
            v.push((0, 0, TEXTURE_WIDTH, full as u32));
        }
        if rem > 0 {
            v.push((full * w, full as u32, rem as u32, 1));
        }
        v
    }

    fn dest(&self, row: u32) -> wgpu::TexelCopyTextureInfo<'_> {
        wgpu::TexelCopyTextureInfo {
            texture: &self.texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x: 0, y: row, z: 0 },
            aspect: wgpu::TextureAspect::All,
        }
    }

    /// Copy the leaf's buffer in (for a twin made after the leaf was uploaded).
    pub fn copy_from(&self, gpu: &Gpu, buffer: &wgpu::Buffer) {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        self.record_copy(&mut enc, buffer, self.bytes());
        gpu.submit(enc.finish());
    }

    /// Record the copy of the first `bytes` of `buffer` (whole texels, at most the texture's capacity) into
    /// the texture.
    pub fn record_copy(&self, enc: &mut wgpu::CommandEncoder, buffer: &wgpu::Buffer, bytes: u64) {
        for (t0, row, width, rows) in Self::pieces(bytes / self.texel) {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: t0 * self.texel,
                        // A whole texture row is 4096 texels: a multiple of 256 bytes, as copies need.
                        bytes_per_row: Some(TEXTURE_WIDTH * self.texel as u32),
                        rows_per_image: Some(rows),
                    },
                },
                self.dest(row),
                wgpu::Extent3d { width, height: rows, depth_or_array_layers: 1 },
            );
        }
    }
}
