//! safetensors reading: one file, or the shards listed by a `model.safetensors.index.json` weight map.
//! The `safetensors` crate validates the header (JSON, offsets that tile the data section exactly); we keep
//! only each tensor's dtype, shape and byte range in the memory-mapped file.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

use super::{format_err, map_file, FileFormat, Mapped, MetaValue, SourceDType, TensorEntry, WeightStore};
use crate::error::Result;

/// Size of the little-endian u64 that gives the JSON header's length.
const HEADER_LEN_BYTES: usize = 8;

/// Opens safetensors files as one store; a tensor name may appear in only one of them.
pub(super) fn open_files(paths: &[PathBuf]) -> Result<WeightStore> {
    let mut store = WeightStore {
        format: FileFormat::Safetensors,
        files: Vec::new(),
        tensors: BTreeMap::new(),
        metadata: BTreeMap::new(),
    };
    for path in paths {
        let map = map_file(path)?;
        let (header_len, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| format_err(path, format!("not a valid safetensors file: {e}")))?;
        let data_start = HEADER_LEN_BYTES + header_len;
        let file = store.files.len();
        for (name, info) in meta.tensors() {
            let dtype = match info.dtype {
                Dtype::F32 => SourceDType::F32,
                Dtype::F16 => SourceDType::F16,
                Dtype::BF16 => SourceDType::BF16,
                Dtype::I8 => SourceDType::I8,
                // Other integer tensors in checkpoints are buffers (position_ids, masks), not weights: skipped.
                Dtype::I64 | Dtype::I32 | Dtype::I16 | Dtype::U8 | Dtype::BOOL => {
                    log::debug!("{}: skipping integer tensor {name} ({:?})", path.display(), info.dtype);
                    continue;
                }
                other => {
                    return Err(format_err(
                        path,
                        format!("tensor {name}: dtype {other:?} is not supported (F32, F16 or BF16)"),
                    ))
                }
            };
            let (start, end) = info.data_offsets;
            super::check_dims(&name, &info.shape).map_err(|e| format_err(path, e))?;
            let entry = TensorEntry {
                name: name.clone(),
                shape: info.shape.clone(),
                dtype,
                file,
                offset: data_start + start,
                len: end - start,
            };
            if let Some(previous) = store.tensors.insert(name.clone(), entry) {
                let first = store.files[previous.file].path.display().to_string();
                return Err(format_err(path, format!("tensor {name} is also in {first}")));
            }
        }
        if let Some(extra) = meta.metadata() {
            for (key, value) in extra {
                store.metadata.insert(key.clone(), MetaValue::Str(value.clone()));
            }
        }
        store.files.push(Mapped { path: path.clone(), map });
    }
    Ok(store)
}

/// Opens the shards named by a `model.safetensors.index.json` (`{"metadata": {..}, "weight_map": {tensor:
/// file}}`), checking that every tensor of the map is found in the shard it names.
pub(super) fn open_sharded(index: &Path) -> Result<WeightStore> {
    let text = std::fs::read_to_string(index).map_err(|e| format_err(index, format!("cannot read: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format_err(index, format!("invalid JSON: {e}")))?;
    let weight_map = json
        .get("weight_map")
        .and_then(|w| w.as_object())
        .ok_or_else(|| format_err(index, "no \"weight_map\" object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shard_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, file) in weight_map {
        let file =
            file.as_str().ok_or_else(|| format_err(index, format!("weight_map entry {name} is not a file name")))?;
        if !Path::new(file).components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format_err(index, format!("weight_map entry {name}: shard {file:?} is outside the folder")));
        }
        shard_of.insert(name, file);
    }
    let mut shards: Vec<&str> = shard_of.values().copied().collect();
    shards.sort_unstable();
    shards.dedup();
    let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
    let mut store = open_files(&paths)?;
    for (name, shard) in &shard_of {
        let found = store.tensors.get(*name).map(|e| store.files[e.file].path.as_path());
        if found != Some(dir.join(shard).as_path()) {
            return Err(format_err(index, format!("tensor {name} is not in its shard {shard}")));
        }
    }
    if let Some(meta) = json.get("metadata").and_then(|m| m.as_object()) {
        for (key, value) in meta {
            let value = match value {
                serde_json::Value::String(s) => MetaValue::Str(s.clone()),
                v => match v.as_u64() {
                    Some(n) => MetaValue::U64(n),
                    None => MetaValue::Str(v.to_string()),
                },
            };
            store.metadata.insert(key.clone(), value);
        }
    }
    Ok(store)
}
