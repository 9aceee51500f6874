//! GGUF (v2, v3) reading by hand: header, metadata key/values, tensor infos, the aligned data section; and
//! the inverse of llama.cpp's Q/K row permutation.
//!
//! Layout (little-endian): `"GGUF"`, `version: u32`, `tensor_count: u64`, `kv_count: u64`, then `kv_count`
//! × (`key: string`, `type: u32`, value), then `tensor_count` × (`name: string`, `n_dims: u32`,
//! `ne: [u64; n_dims]`, `type: u32`, `offset: u64`), then padding to `general.alignment` (default 32), then
//! the data section; each tensor's `offset` is relative to its start and a multiple of the alignment.
//! A string is `len: u64` + UTF-8 bytes; an array is `type: u32`, `count: u64`, values.
//! `ne[0]` is the contiguous (innermost) dim: the shape we expose is `ne` reversed.

use std::collections::BTreeMap;
use std::path::Path;

use super::{format_err, map_file, FileFormat, Mapped, MetaValue, SourceDType, TensorEntry, WeightStore};
use crate::error::{Error, Result};

/// Alignment of the data section and of every tensor offset when `general.alignment` is absent.
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
/// ggml tensors have at most 4 dims.
const MAX_DIMS: usize = 4;
/// Arrays of arrays are legal; this bounds the recursion on a corrupt file.
const MAX_ARRAY_DEPTH: usize = 8;

/// ggml's tensor type ids (`enum ggml_type`) for the types we read.
fn source_dtype(type_id: u32) -> std::result::Result<SourceDType, String> {
    Ok(match type_id {
        0 => SourceDType::F32,
        1 => SourceDType::F16,
        2 => SourceDType::Q4_0,
        3 => SourceDType::Q4_1,
        8 => SourceDType::Q8_0,
        12 => SourceDType::Q4_K,
        14 => SourceDType::Q6_K,
        30 => SourceDType::BF16,
        _ => {
            let known = match type_id {
                6 => "Q5_0",
                7 => "Q5_1",
                9 => "Q8_1",
                10 => "Q2_K",
                11 => "Q3_K",
                13 => "Q5_K",
                15 => "Q8_K",
                16..=23 | 29 => "an IQ format",
                24..=27 => "an integer type",
                28 => "F64",
                _ => "unknown",
            };
            return Err(format!(
                "tensor type {type_id} ({known}) is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
            ));
        }
    })
}

/// A bounds-checked little-endian cursor; every error says what was being read and where.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Parse<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Parse<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(format!(
                "truncated: {what} needs {n} bytes at byte {} but the file ends at byte {}",
                self.pos,
                self.buf.len()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Parse<[u8; N]> {
        Ok(self.take(N, what)?.try_into().expect("take returned N bytes"))
    }
    fn u32(&mut self, what: &str) -> Parse<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Parse<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Parse<String> {
        let at = self.pos;
        let len = self.u64(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        if len > left {
            return Err(format!(
                "{what}: string length {len} at byte {at} runs past the end of the file ({} bytes)",
                self.buf.len()
            ));
        }
        let bytes = self.take(len as usize, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("{what}: string at byte {at} is not UTF-8: {e}"))
    }
    fn value(&mut self, type_id: u32, what: &str, depth: usize) -> Parse<MetaValue> {
        Ok(match type_id {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(self.array::<1>(what)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(format!("{what}: bool byte {b} is neither 0 nor 1")),
            },
            8 => MetaValue::Str(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!("{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}"));
                }
                let elem = self.u32(what)?;
                let count = self.u64(what)?;
                // Refuse counts the rest of the file cannot hold before allocating anything for them.
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(format!("{what}: unknown array element type {t}")),
                };
                let left = (self.buf.len() - self.pos) as u64;
                if count.saturating_mul(min_size) > left {
                    return Err(format!(
                        "{what}: array of {count} elements of type {elem} runs past the end of the file ({} bytes)",
                        self.buf.len()
                    ));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, what, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            t => return Err(format!("{what}: unknown value type {t}")),
        })
    }
}

/// One tensor info as read, before its data range is checked.
struct Info {
    name: String,
    ne: Vec<u64>,
    dtype: SourceDType,
    offset: u64,
}

/// Parses and checks the whole layout of a GGUF file held in memory.
fn parse(buf: &[u8]) -> Parse<(BTreeMap<String, MetaValue>, Vec<TensorEntry>)> {
    let mut r = Reader { buf, pos: 0 };
    let magic = r.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(format!("bad magic {magic:02x?}: not a GGUF file (expected \"GGUF\")"));
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not supported (2 or 3)"));
    }
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = r.string(&format!("metadata key #{i}"))?;
        let what = format!("metadata key {key}");
        let type_id = r.u32(&what)?;
        let value = r.value(type_id, &what, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key {key} appears twice"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => GGUF_DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
            _ => return Err(format!("general.alignment = {v:?} is not a power of two up to 1 MiB")),
        },
    };

    let mut infos = Vec::new();
    for i in 0..n_tensors {
        let name = r.string(&format!("tensor #{i} name"))?;
        let what = format!("tensor {name}");
        let n_dims = r.u32(&what)? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!("{what}: {n_dims} dims (ggml allows 1 to {MAX_DIMS})"));
        }
        let ne = (0..n_dims).map(|_| r.u64(&what)).collect::<Parse<Vec<u64>>>()?;
        let dtype = source_dtype(r.u32(&what)?).map_err(|e| format!("{what}: {e}"))?;
        let offset = r.u64(&what)?;
        infos.push(Info { name, ne, dtype, offset });
    }

    let data_start = r.pos.div_ceil(alignment) * alignment;
    let mut entries = Vec::with_capacity(infos.len());
    for Info { name, ne, dtype, offset } in infos {
        let shape: Vec<usize> = ne.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
        super::check_dims(&name, &shape)?;
        let numel = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let numel = numel
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("tensor {name}: dims {ne:?} overflow"))?;
        let per_block = dtype.block().0 as u64;
        if !ne[0].is_multiple_of(per_block) {
            return Err(format!(
                "tensor {name}: row length {} is not a multiple of the {} block size {per_block}",
                ne[0],
                dtype.name()
            ));
        }
        let len = dtype.bytes_for(numel).ok_or_else(|| format!("tensor {name}: size overflows"))?;
        if !offset.is_multiple_of(alignment as u64) {
            return Err(format!("tensor {name}: offset {offset} is not a multiple of the alignment {alignment}"));
        }
        let start = (data_start as u64).checked_add(offset);
        let end = start.and_then(|s| s.checked_add(len as u64));
        match (start, end) {
            (Some(start), Some(end)) if end <= buf.len() as u64 => entries.push(TensorEntry {
                name,
                shape: ne.iter().rev().map(|&d| d as usize).collect(),
                dtype,
                file: 0,
                offset: start as usize,
                len,
            }),
            _ => {
                return Err(format!(
                    "tensor {name}: data at offset {offset} ({len} bytes, data section from byte {data_start}) \
                     runs past the end of the file ({} bytes)",
                    buf.len()
                ))
            }
        }
    }
    Ok((metadata, entries))
}

/// Opens a GGUF file: every tensor's range is checked here, so later reads cannot go out of bounds.
pub(super) fn open(path: &Path) -> Result<WeightStore> {
    let map = map_file(path)?;
    let (metadata, entries) = parse(&map).map_err(|detail| format_err(path, detail))?;
    let mut tensors = BTreeMap::new();
    for e in entries {
        let name = e.name.clone();
        if tensors.insert(name.clone(), e).is_some() {
            return Err(format_err(path, format!("tensor {name} appears twice")));
        }
    }
    Ok(WeightStore {
        format: FileFormat::Gguf,
        files: vec![Mapped { path: path.to_path_buf(), map }],
        tensors,
        metadata,
    })
}

/// Undoes the row permutation llama.cpp's converter applies to `attn_q` / `attn_k` weights (and biases).
///
/// The converter regroups each head's rows from the Hugging Face rotary layout (first half of the head's
/// rows, then second half) to an interleaved one: `w.reshape(n_head, 2, rows / n_head / 2, cols)
/// .swapaxes(1, 2)`, i.e. permuted row `h·hd + 2j + i` = original row `h·hd + i·hd/2 + j` with `hd = rows /
/// n_head`, `i ∈ {0, 1}`, `j < hd/2`. This returns the original (Hugging Face) order. Use
/// `llama.attention.head_count` for `attn_q` and `llama.attention.head_count_kv` for `attn_k`.
///
/// `data` holds `rows` rows of `row_len` items: f32 values for a dequantized weight, or the bytes of each
/// row for a quantized one (rows are whole blocks, so they move intact).
pub fn unpermute_qk<T: Copy>(data: &[T], n_head: usize, rows: usize, row_len: usize) -> Result<Vec<T>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) || rows.checked_mul(row_len) != Some(data.len()) {
        return Err(Error::Shape {
            op: "unpermute_qk".into(),
            detail: format!(
                "{rows} rows of {row_len} for {n_head} heads (rows must split into 2 halves per head) \
                 but {} items",
                data.len()
            ),
            shapes: vec![vec![rows, row_len]],
        });
    }
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                let src = h * head_dim + 2 * j + i;
                out.extend_from_slice(&data[src * row_len..(src + 1) * row_len]);
            }
        }
    }
    Ok(out)
}
