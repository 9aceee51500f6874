//! wgpu's pipeline cache, persisted in a folder beside the model cache (`GpuOptions::pipeline_cache`): one file
//! per adapter and driver, so that a driver that compiles at pipeline creation (NVIDIA's, AMD's) starts from
//! the last run's compiled code. Only backends with a pipeline cache have one (Vulkan today,
//! `wgpu::util::pipeline_cache_key`).
//!
//! The file is the driver's blob behind our own header (a magic word, the blob's length and its FNV-1a 64
//! hash): a truncated or damaged file is ignored with a warning, never handed to the driver, whose own checks
//! cover only a blob from another driver or device. Written atomically (a temporary file, then a rename), and
//! only when pipelines were created since it was read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const MAGIC: &[u8; 8] = b"WLLMPC01";

pub struct DiskCache {
    pub cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Pipelines created through the cache since it was read or last saved.
    fresh: AtomicUsize,
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The file's name: wgpu's key for the adapter plus the driver's name and version, as a file name.
pub fn file_name(info: &wgpu::AdapterInfo) -> Option<String> {
    let key = wgpu::util::pipeline_cache_key(info)?;
    let driver = format!("{}_{}", info.driver, info.driver_info);
    let clean: String =
        driver.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    Some(format!("{key}_{}.bin", clean.trim_matches('_')))
}

/// The driver's blob in `bytes`, if the header and the hash check out.
pub fn unwrap_blob(bytes: &[u8]) -> Option<&[u8]> {
    let (head, blob) = (bytes.get(..24)?, bytes.get(24..)?);
    let len = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let hash = u64::from_le_bytes(head[16..24].try_into().ok()?);
    (&head[..8] == MAGIC && len == blob.len() as u64 && hash == fnv1a(blob)).then_some(blob)
}

/// `blob` behind the header.
pub fn wrap_blob(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blob.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a(blob).to_le_bytes());
    out.extend_from_slice(blob);
    out
}

impl DiskCache {
    /// The cache for this device, seeded from `dir`'s file when there is a valid one; None where the backend
    /// or the device has no pipeline cache.
    pub fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo, features: wgpu::Features, dir: &Path) -> Option<Self> {
        if !features.contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let path = dir.join(file_name(info)?);
        let bytes = std::fs::read(&path).ok();
        let blob = bytes.as_deref().and_then(|b| {
            let blob = unwrap_blob(b);
            if blob.is_none() {
                log::warn!("{}: not a pipeline cache this engine wrote (damaged?): ignored", path.display());
            }
            blob
        });
        // Safety: the blob is one `get_data` returned for this adapter's key and driver (the file name says
        // so, the hash says it arrived whole); wgpu checks its header against the device, and `fallback`
        // makes a cache the driver will not take an empty one instead of an error.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("wgpu-llm pipelines"),
                data: blob,
                fallback: true,
            })
        };
        log::info!("pipeline cache {} ({} bytes read)", path.display(), blob.map_or(0, <[u8]>::len));
        Some(DiskCache { cache, path, fresh: AtomicUsize::new(0) })
    }

    /// Count a pipeline created through the cache.
    pub fn created(&self) {
        self.fresh.fetch_add(1, Ordering::Relaxed);
    }

    /// Write the cache if pipelines were created since it was read; a failure is a warning (the cache only
    /// saves time).
    pub fn save(&self) {
        if self.fresh.swap(0, Ordering::Relaxed) == 0 {
            return;
        }
        let Some(blob) = self.cache.get_data() else { return };
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&tmp, wrap_blob(&blob)))
            .and_then(|_| std::fs::rename(&tmp, &self.path));
        match written {
            Ok(()) => log::info!("pipeline cache {} saved ({} bytes)", self.path.display(), blob.len()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                log::warn!("pipeline cache {}: not saved: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_not_a_blob() {
        let blob = b"driver bytes".to_vec();
        let file = wrap_blob(&blob);
        assert_eq!(unwrap_blob(&file), Some(&blob[..]));
        assert_eq!(unwrap_blob(&file[..file.len() - 1]), None, "truncated");
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(unwrap_blob(&flipped), None, "a changed byte");
        assert_eq!(unwrap_blob(b"WLLMPC01"), None, "a header cut short");
        assert_eq!(unwrap_blob(&[]), None);
    }
}
