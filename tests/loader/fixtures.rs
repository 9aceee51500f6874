//! Test fixtures: GGUF metadata of every value type, one tensor of each supported type with known values,
//! and seeded Gaussian data.

use half::{bf16, f16};
use wgpu_llm::loader::{MetaValue, SourceDType};

use super::gguf_writer::GgufWriter;
use super::quantize::{pack_q4_0, pack_q4_1, pack_q4_k, pack_q6_k, pack_q8_0};

/// Every value type GGUF has, arrays of numbers and strings, a nested and an empty array.
pub fn all_metadata() -> Vec<(&'static str, MetaValue)> {
    use MetaValue::*;
    vec![
        ("general.architecture", Str("llama".into())),
        ("t.u8", U8(200)),
        ("t.i8", I8(-100)),
        ("t.u16", U16(60000)),
        ("t.i16", I16(-30000)),
        ("t.u32", U32(4_000_000_000)),
        ("t.i32", I32(-2_000_000_000)),
        ("t.u64", U64(1 << 60)),
        ("t.i64", I64(-(1 << 60))),
        ("t.f32", F32(1.0e-5)),
        ("t.f64", F64(std::f64::consts::PI)),
        ("t.bool", Bool(true)),
        ("t.str", Str("héllo ▁world".into())),
        ("t.arr_i32", Array(vec![I32(1), I32(-2), I32(3)])),
        ("t.arr_str", Array(vec![Str("<s>".into()), Str("".into()), Str("Ġthe".into())])),
        ("t.arr_f32", Array(vec![F32(0.5), F32(-0.25)])),
        ("t.nested", Array(vec![Array(vec![U8(1), U8(2)]), Array(vec![U8(3)])])),
        ("t.empty", Array(vec![])),
    ]
}

/// A tensor written with known bytes, and the values ggml's dequantizers give for them.
pub struct Known {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub type_id: u32,
    pub bytes: Vec<u8>,
    pub dtype: SourceDType,
    pub want: Vec<f32>,
}

fn known(name: &'static str, shape: &[usize], dtype: SourceDType, bytes: Vec<u8>, want: Vec<f32>) -> Known {
    let type_id = match dtype {
        SourceDType::F32 => 0,
        SourceDType::F16 => 1,
        SourceDType::Q4_0 => 2,
        SourceDType::Q4_1 => 3,
        SourceDType::Q8_0 => 8,
        SourceDType::Q4_K => 12,
        SourceDType::Q6_K => 14,
        SourceDType::BF16 => 30,
        // Int8 tensors come from safetensors only; ggml has no plain-int8 weight type we read.
        SourceDType::I8 => panic!("{name}: GGUF fixtures have no I8 tensors"),
    };
    Known { name, shape: shape.to_vec(), type_id, bytes, dtype, want }
}

/// One tensor of each type, the block formats built from known codes.
pub fn known_tensors() -> Vec<Known> {
    let mut t = Vec::new();
    let f32s = vec![1.5f32, -2.0, 0.0, 3.25e-3, -7.0e8, 0.1];
    let bytes = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.push(known("f32", &[2, 3], SourceDType::F32, bytes, f32s));
    let f16s = vec![1.0f32, -0.5, 65504.0, 6.1035156e-5, 0.333_251_95, -3.0, 0.0, 2.0];
    let bytes = f16s.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    t.push(known("f16", &[8], SourceDType::F16, bytes, f16s));
    let bf16s = vec![1.0f32, -(2f32).powi(100), 0.007_812_5, 256.0];
    let bytes = bf16s.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
    t.push(known("bf16", &[2, 2], SourceDType::BF16, bytes, bf16s));

    // Q8_0, two rows of one block: x = q·d.
    let (mut bytes, mut want) = (Vec::new(), Vec::new());
    for (row, d) in [0.25f32, 2.0].into_iter().enumerate() {
        let q: [i8; 32] = std::array::from_fn(|j| (if row == 0 { j as i32 - 16 } else { 127 - 7 * j as i32 }) as i8);
        bytes.extend(pack_q8_0(d, &q));
        want.extend(q.iter().map(|&q| q as f32 * d));
    }
    t.push(known("q8_0", &[2, 32], SourceDType::Q8_0, bytes, want));

    // Q4_0: x = (q − 8)·d.
    let q: [u8; 32] = std::array::from_fn(|j| (j as u8 * 5) % 16);
    let want = q.iter().map(|&q| (q as f32 - 8.0) * 0.5).collect();
    t.push(known("q4_0", &[32], SourceDType::Q4_0, pack_q4_0(0.5, &q), want));

    // Q4_1: x = q·d + m.
    let q: [u8; 32] = std::array::from_fn(|j| (j % 16) as u8);
    let want = q.iter().map(|&q| q as f32 * 0.5 - 1.5).collect();
    t.push(known("q4_1", &[1, 32], SourceDType::Q4_1, pack_q4_1(0.5, -1.5, &q), want));

    // Q4_K: x = d·sc·q − dmin·mn, with 6-bit codes that use the packed top bits.
    let sc = [1u8, 63, 17, 40, 5, 62, 33, 48];
    let mn = [0u8, 9, 63, 21, 60, 2, 47, 31];
    let q: [u8; 256] = std::array::from_fn(|i| (i * 7 % 16) as u8);
    let want = (0..256).map(|i| 0.5 * sc[i / 32] as f32 * q[i] as f32 - 0.25 * mn[i / 32] as f32).collect();
    t.push(known("q4_k", &[256], SourceDType::Q4_K, pack_q4_k(0.5, 0.25, &sc, &mn, &q), want));

    // Q6_K, two super-blocks: x = d·sc·(code − 32).
    let (mut bytes, mut want) = (Vec::new(), Vec::new());
    for (b, d) in [0.125f32, 0.5].into_iter().enumerate() {
        let sc: [i8; 16] = std::array::from_fn(|s| (s as i32 * 17 - 128 + b as i32) as i8);
        let code: [u8; 256] = std::array::from_fn(|i| ((i * 5 + 3 + b) % 64) as u8);
        bytes.extend(pack_q6_k(d, &sc, &code));
        want.extend((0..256).map(|i| d * sc[i / 16] as f32 * (code[i] as f32 - 32.0)));
    }
    t.push(known("q6_k", &[2, 256], SourceDType::Q6_K, bytes, want));
    t
}

pub fn known_gguf(alignment: Option<u32>) -> GgufWriter {
    let mut w = GgufWriter::new();
    for (k, v) in all_metadata() {
        w.kv(k, v);
    }
    if let Some(a) = alignment {
        w.alignment = a as usize;
        w.kv("general.alignment", MetaValue::U32(a));
    }
    for k in known_tensors() {
        w.tensor(k.name, &k.shape, k.type_id, k.bytes);
    }
    w
}

/// Gaussian test data from a fixed seed (xorshift + Box–Muller).
pub fn gaussian(n: usize, mut seed: u64) -> Vec<f32> {
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n).map(|_| ((-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()) as f32).collect()
}
