//! Model files into memory: a `WeightStore` (tensor name → shape, source dtype, bytes) and its metadata,
//! read from safetensors (one file or a sharded folder) or GGUF. Files are memory-mapped; nothing here
//! touches the GPU or knows about models.
//!
//! Shapes are row-major, outermost first, as PyTorch / Hugging Face write them: a linear weight of
//! `out_features × in_features` has shape `[out, in]` whichever format it came from (GGUF's innermost-first
//! dims are reversed on load).

mod dequant;
mod gguf;
mod gguf_write;
mod safetensors;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::tensor::{numel, HostTensor};

pub use dequant::dequantize;
pub use gguf::{unpermute_qk, GGUF_DEFAULT_ALIGNMENT};
pub use gguf_write::{gguf_bytes, meta_type_id, write_gguf, write_string, write_value, GgufTensor};

/// Element type of a tensor as stored in the file. Block formats are ggml's: `Q8_0`, `Q4_0` and `Q4_1` hold 32
/// values per block, `Q4_K` and `Q6_K` 256 per super-block.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceDType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q6_K,
    /// Plain int8 values: the weights of an int8 checkpoint written by `wgpu-llm quantize` (their block
    /// scales are the tensor `{name}_scale`); `to_f32` gives the raw integers.
    I8,
}

impl SourceDType {
    pub fn name(self) -> &'static str {
        match self {
            SourceDType::F32 => "F32",
            SourceDType::F16 => "F16",
            SourceDType::BF16 => "BF16",
            SourceDType::Q8_0 => "Q8_0",
            SourceDType::Q4_0 => "Q4_0",
            SourceDType::Q4_1 => "Q4_1",
            SourceDType::Q4_K => "Q4_K",
            SourceDType::Q6_K => "Q6_K",
            SourceDType::I8 => "I8",
        }
    }
    /// (values per block, bytes per block); plain floats are blocks of one value.
    pub fn block(self) -> (usize, usize) {
        match self {
            SourceDType::F32 => (1, 4),
            SourceDType::F16 | SourceDType::BF16 => (1, 2),
            SourceDType::Q8_0 => (32, 34),
            SourceDType::Q4_0 => (32, 18),
            SourceDType::Q4_1 => (32, 20),
            SourceDType::Q4_K => (256, 144),
            SourceDType::Q6_K => (256, 210),
            SourceDType::I8 => (1, 1),
        }
    }
    pub fn is_quantized(self) -> bool {
        self.block().0 > 1
    }
    /// Bytes taken by `n` values, or None when `n` is not a whole number of blocks (or overflows).
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        let (per_block, block_bytes) = self.block();
        if !n.is_multiple_of(per_block) {
            return None;
        }
        (n / per_block).checked_mul(block_bytes)
    }
}

/// One GGUF metadata value (safetensors' `__metadata__` strings arrive as `Str`).
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// Any integer value that fits (booleans and floats do not convert).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }
    /// Floats, and integers widened.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The GGUF name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F32(_) => "f32",
            MetaValue::F64(_) => "f64",
            MetaValue::Bool(_) => "bool",
            MetaValue::Str(_) => "string",
            MetaValue::Array(_) => "array",
        }
    }
}

/// Which reader produced a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Safetensors,
    Gguf,
}

/// Where one tensor's bytes live: `file` indexes `WeightStore::files`, `offset..offset + len` its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    /// Row-major, outermost first.
    pub shape: Vec<usize>,
    pub dtype: SourceDType,
    pub file: usize,
    pub offset: usize,
    pub len: usize,
}

impl TensorEntry {
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
}

/// A memory-mapped file of the store.
struct Mapped {
    path: PathBuf,
    map: Mmap,
}

/// Every tensor of a model file (or of the shards of one), by name, plus the file's metadata.
pub struct WeightStore {
    format: FileFormat,
    files: Vec<Mapped>,
    tensors: BTreeMap<String, TensorEntry>,
    metadata: BTreeMap<String, MetaValue>,
}

/// Opens a model: a folder holding `model.safetensors` or `model.safetensors.index.json`, a `.safetensors`
/// file, or a `.gguf` file (also recognised by its magic whatever its extension).
pub fn open(path: impl AsRef<Path>) -> Result<WeightStore> {
    let path = path.as_ref();
    if path.is_dir() {
        let index = path.join("model.safetensors.index.json");
        if index.is_file() {
            return safetensors::open_sharded(&index);
        }
        let single = path.join("model.safetensors");
        if single.is_file() {
            return safetensors::open_files(&[single]);
        }
        return Err(format_err(path, "folder holds neither model.safetensors nor model.safetensors.index.json"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("json") && path.to_string_lossy().ends_with(".index.json") {
        return safetensors::open_sharded(path);
    }
    if ext.eq_ignore_ascii_case("gguf") {
        return gguf::open(path);
    }
    if ext.eq_ignore_ascii_case("safetensors") {
        return safetensors::open_files(&[path.to_path_buf()]);
    }
    if read_magic(path)? == b"GGUF" {
        return gguf::open(path);
    }
    Err(format_err(
        path,
        "unknown model format: expected a .gguf or .safetensors file, or a folder with model.safetensors",
    ))
}

impl WeightStore {
    /// A store with no tensors (a model trained from scratch).
    pub fn empty() -> Self {
        WeightStore {
            format: FileFormat::Safetensors,
            files: vec![],
            tensors: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }
    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    pub fn entries(&self) -> impl Iterator<Item = &TensorEntry> {
        self.tensors.values()
    }
    /// The entry of `name`, or an error naming the tensor and the file(s).
    pub fn entry(&self, name: &str) -> Result<&TensorEntry> {
        self.tensors.get(name).ok_or_else(|| Error::Format {
            file: self.file_names(),
            detail: format!("no tensor named {name:?} ({} tensors in the store)", self.tensors.len()),
        })
    }
    /// The path of the file holding `entry`.
    pub fn path_of(&self, entry: &TensorEntry) -> &Path {
        &self.files[entry.file].path
    }
    /// The stored bytes of a tensor, whatever its dtype (little-endian; ggml blocks as laid out on disk).
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let e = self.entry(name)?;
        Ok(&self.files[e.file].map[e.offset..e.offset + e.len])
    }
    /// The values as f32: plain floats widened, block formats dequantized as ggml does.
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>> {
        let e = self.entry(name)?;
        dequantize(e.dtype, self.bytes(name)?, e.numel()).map_err(|detail| Error::Format {
            file: self.path_of(e).display().to_string(),
            detail: format!("tensor {name}: {detail}"),
        })
    }
    /// The tensor as an f32 host tensor of its shape.
    pub fn to_host(&self, name: &str) -> Result<HostTensor> {
        let shape = self.entry(name)?.shape.clone();
        HostTensor::f32(&shape, self.to_f32(name)?)
    }
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }
    fn file_names(&self) -> String {
        let names: Vec<String> = self.files.iter().map(|f| f.path.display().to_string()).collect();
        names.join(", ")
    }
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightStore")
            .field("format", &self.format)
            .field("files", &self.file_names())
            .field("tensors", &self.tensors.len())
            .field("metadata", &self.metadata.len())
            .finish()
    }
}

/// A tensor's dims must multiply without overflow in any order: the product of its non-zero dims fits a
/// usize (a zero dim makes the tensor empty, but `[2^40, 2^40, 0]` would still overflow a running product).
fn check_dims(name: &str, shape: &[usize]) -> std::result::Result<(), String> {
    shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .map(|_| ())
        .ok_or_else(|| format!("tensor {name}: dims {shape:?} overflow"))
}

fn format_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Format { file: path.display().to_string(), detail: detail.into() }
}

/// Maps a whole file read-only.
fn map_file(path: &Path) -> Result<Mmap> {
    let file = std::fs::File::open(path).map_err(|e| format_err(path, format!("cannot open: {e}")))?;
    // SAFETY: the map is read-only. Like every mmap-based loader we rely on the model file not being truncated
    // or rewritten by another process while it is open, which Rust cannot check; every offset read from the
    // file itself is bounds-checked against `map.len()` before use.
    unsafe { Mmap::map(&file) }.map_err(|e| format_err(path, format!("cannot memory-map: {e}")))
}

/// The first four bytes of a file (fewer when it is shorter).
fn read_magic(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format_err(path, format!("cannot open: {e}")))?;
    let mut magic = Vec::with_capacity(4);
    file.take(4).read_to_end(&mut magic).map_err(|e| format_err(path, format!("cannot read: {e}")))?;
    Ok(magic)
}
