//! The engine's int8 weight format: blocks of 32 signed int8 values along a row, one f32 scale per block,
//! values packed four to a little-endian u32 for WGSL (so the packed words are the int8 bytes as they lie in
//! memory). Quantization is symmetric: s = max|x|/127 of the block, q = clamp(round_half_even(x/s), −127,
//! 127); a block of zeros has s = 0. The same rounding quantizes activations in the W8A8 kernels.
//!
//! GGUF Q8_0 (32 int8 + an f16 scale per block, the same rounding) maps onto it exactly; the 4-bit formats
//! are dequantized and requantized (the error is measured in tests/loader).

use crate::error::{Error, Result};

/// `quantization_config.quant_method` of checkpoints written by `wgpu-llm quantize`.
pub const METHOD: &str = "wgpu-llm-int8";

/// Values per block.
pub const BLOCK: usize = 32;

/// A [rows, cols] int8 tensor in the block format.
#[derive(Clone, Debug, PartialEq)]
pub struct QTensor {
    pub rows: usize,
    pub cols: usize,
    /// Row-major int8 values.
    pub q: Vec<i8>,
    /// Row-major [rows, cols/32] scales.
    pub scales: Vec<f32>,
}

/// The scale of a block with largest magnitude `amax`.
pub fn block_scale(amax: f32) -> f32 {
    amax / 127.0
}

/// Round `x` to the int8 grid of scale `s` (0 when s = 0). `x · (1/s)` as the kernels compute it.
pub fn quantize_value(x: f32, s: f32) -> i8 {
    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
    (x * inv).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// Quantize one block with its own scale.
pub fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let s = block_scale(x.iter().fold(0f32, |m, v| m.max(v.abs())));
    for (o, &v) in q.iter_mut().zip(x) {
        *o = quantize_value(v, s);
    }
    s
}

impl QTensor {
    /// Quantize a row-major [rows, cols] f32 tensor; cols must be a multiple of 32.
    pub fn quantize(w: &[f32], rows: usize, cols: usize) -> Result<Self> {
        if !cols.is_multiple_of(BLOCK) || w.len() != rows * cols {
            return Err(Error::Shape {
                op: "quantize".into(),
                detail: format!(
                    "int8 blocks need [rows, cols] with cols a multiple of {BLOCK}; got {} values",
                    w.len()
                ),
                shapes: vec![vec![rows, cols]],
            });
        }
        let mut q = vec![0i8; w.len()];
        let scales = w.chunks(BLOCK).zip(q.chunks_mut(BLOCK)).map(|(x, qb)| quantize_block(x, qb)).collect();
        Ok(QTensor { rows, cols, q, scales })
    }

    /// From stored parts (a quantized checkpoint): checks the sizes agree.
    pub fn from_parts(rows: usize, cols: usize, q: Vec<i8>, scales: Vec<f32>) -> Result<Self> {
        if !cols.is_multiple_of(BLOCK) || q.len() != rows * cols || scales.len() != rows * cols / BLOCK {
            return Err(Error::Shape {
                op: "int8 weight".into(),
                detail: format!(
                    "{} int8 values and {} scales do not make a [{rows}, {cols}] block-{BLOCK} tensor",
                    q.len(),
                    scales.len()
                ),
                shapes: vec![vec![rows, cols]],
            });
        }
        Ok(QTensor { rows, cols, q, scales })
    }

    pub fn dequantize(&self) -> Vec<f32> {
        self.q.iter().enumerate().map(|(i, &v)| v as f32 * self.scales[i / BLOCK]).collect()
    }

    /// The values packed four to a u32 (little-endian), [rows, cols/4].
    pub fn packed(&self) -> Vec<u32> {
        self.q.chunks(4).map(|c| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])).collect()
    }

    /// Bytes on the GPU: one byte a value plus four a block.
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scales.len()
    }
}

/// Unpack little-endian packed int8 words.
pub fn unpack(words: &[u32]) -> Vec<i8> {
    words.iter().flat_map(|w| w.to_le_bytes().map(|b| b as i8)).collect()
}
