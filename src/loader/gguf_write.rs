//! GGUF v3 writing: metadata key/values and plain F32/F16 tensors, laid out as `gguf.rs` reads them (header,
//! metadata, tensor infos with `ne` innermost first, the data section padded to the alignment). Used to save a
//! GGUF model's tokenizer as a metadata-only `tokenizer.gguf` beside exported weights, and by tests.

use std::path::Path;

use super::{format_err, MetaValue, SourceDType, GGUF_DEFAULT_ALIGNMENT};
use crate::error::Result;

/// One tensor to write: `shape` outermost first (as the loader reports it), `bytes` little-endian values.
pub struct GgufTensor<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub dtype: SourceDType,
    pub bytes: &'a [u8],
}

/// ggml's value type id of a metadata value.
pub fn meta_type_id(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::Str(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

/// A GGUF string: `len: u64` + UTF-8 bytes.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A metadata value without its type id (arrays carry their element type and count).
pub fn write_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::Str(s) => write_string(out, s),
        MetaValue::Array(items) => {
            // An empty array's element type is arbitrary; u32 as llama.cpp's writer does for numbers.
            out.extend(items.first().map_or(4, meta_type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
    }
}

/// ggml's tensor type id of the plain types this writer stores.
fn tensor_type_id(d: SourceDType) -> Option<u32> {
    match d {
        SourceDType::F32 => Some(0),
        SourceDType::F16 => Some(1),
        SourceDType::BF16 => Some(30),
        _ => None,
    }
}

/// The bytes of a GGUF v3 file holding `kvs` and `tensors` (F32, F16 or BF16), data aligned to 32 bytes.
pub fn gguf_bytes(kvs: &[(String, MetaValue)], tensors: &[GgufTensor]) -> std::result::Result<Vec<u8>, String> {
    let align = GGUF_DEFAULT_ALIGNMENT;
    let pad = |out: &mut Vec<u8>| out.resize(out.len().div_ceil(align) * align, 0);
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        write_string(&mut out, k);
        out.extend(meta_type_id(v).to_le_bytes());
        write_value(&mut out, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        let ty = tensor_type_id(t.dtype)
            .ok_or_else(|| format!("tensor {}: cannot write {} tensors", t.name, t.dtype.name()))?;
        if t.dtype.bytes_for(t.shape.iter().product()) != Some(t.bytes.len()) {
            return Err(format!(
                "tensor {}: {} bytes for shape {:?} in {}",
                t.name,
                t.bytes.len(),
                t.shape,
                t.dtype.name()
            ));
        }
        write_string(&mut out, t.name);
        out.extend((t.shape.len() as u32).to_le_bytes());
        for &d in t.shape.iter().rev() {
            out.extend((d as u64).to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += t.bytes.len().div_ceil(align) as u64 * align as u64;
    }
    pad(&mut out);
    for t in tensors {
        out.extend(t.bytes);
        pad(&mut out);
    }
    Ok(out)
}

/// Write a GGUF file (see `gguf_bytes`).
pub fn write_gguf(path: &Path, kvs: &[(String, MetaValue)], tensors: &[GgufTensor]) -> Result<()> {
    let bytes = gguf_bytes(kvs, tensors).map_err(|e| format_err(path, e))?;
    std::fs::write(path, bytes).map_err(|e| format_err(path, format!("cannot write: {e}")))
}
