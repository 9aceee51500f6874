//! A tiny GGUF v3 writer for the tests: header, metadata of every value type, tensor infos, and the data
//! section padded to the alignment. Fields can be overridden to produce corrupt files.

use wgpu_llm::loader::MetaValue;

pub struct Tensor {
    pub name: String,
    /// Outermost first, as the loader reports it; written to the file reversed (ne[0] innermost).
    pub shape: Vec<usize>,
    pub type_id: u32,
    pub bytes: Vec<u8>,
    /// Replaces the computed offset in the tensor info (for corrupt files).
    pub offset_override: Option<u64>,
}

pub struct GgufWriter {
    pub version: u32,
    pub alignment: usize,
    pub kvs: Vec<(String, MetaValue)>,
    pub tensors: Vec<Tensor>,
}

fn type_id(v: &MetaValue) -> u32 {
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

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn value(out: &mut Vec<u8>, v: &MetaValue) {
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
        MetaValue::Str(s) => string(out, s),
        MetaValue::Array(items) => {
            // An empty array's element type is arbitrary; u32 as llama.cpp's writer does for numbers.
            out.extend(items.first().map_or(4, type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                value(out, item);
            }
        }
    }
}

fn pad(out: &mut Vec<u8>, alignment: usize) {
    out.resize(out.len().div_ceil(alignment) * alignment, 0);
}

impl GgufWriter {
    pub fn new() -> Self {
        Self { version: 3, alignment: 32, kvs: Vec::new(), tensors: Vec::new() }
    }
    pub fn kv(&mut self, key: &str, v: MetaValue) -> &mut Self {
        self.kvs.push((key.to_string(), v));
        self
    }
    pub fn tensor(&mut self, name: &str, shape: &[usize], type_id: u32, bytes: Vec<u8>) -> &mut Self {
        self.tensors.push(Tensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            type_id,
            bytes,
            offset_override: None,
        });
        self
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            string(&mut out, k);
            out.extend(type_id(v).to_le_bytes());
            value(&mut out, v);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            string(&mut out, &t.name);
            out.extend((t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                out.extend((d as u64).to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(t.offset_override.unwrap_or(offset).to_le_bytes());
            offset += (t.bytes.len().div_ceil(self.alignment) * self.alignment) as u64;
        }
        pad(&mut out, self.alignment);
        for t in &self.tensors {
            out.extend(&t.bytes);
            pad(&mut out, self.alignment);
        }
        out
    }
}
