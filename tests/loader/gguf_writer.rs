//! A GGUF v3 writer for the tests that can also produce corrupt files (any version, alignment, tensor type id
//! or offset); values are encoded by the library's writer (`loader::write_value`).

use wgpu_llm::loader::{meta_type_id as type_id, write_string as string, write_value as value, MetaValue};

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
