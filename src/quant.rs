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
    round_clamped(x * if s > 0.0 { 1.0 / s } else { 0.0 })
}

/// `y` rounded half to even and clamped to ±127. Clamping first changes nothing (±127 are on the grid) and
/// lets 1.5·2²³ do the rounding: adding it leaves no fraction bits, so the FPU rounds half to even, exactly
/// `round_ties_even`, which the x86-64 baseline (no SSE4.1) compiles to a libm call a value (that call was
/// most of a 2.5 s int8 load of SmolLM2). NaN stays NaN and casts to 0, as before.
fn round_clamped(y: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    ((y.clamp(-127.0, 127.0) + MAGIC) - MAGIC) as i8
}

/// Quantize one block with its own scale.
pub fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let s = block_scale(x.iter().fold(0f32, |m, v| m.max(v.abs())));
    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
    for (o, &v) in q.iter_mut().zip(x) {
        *o = round_clamped(v * inv);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The magic-number rounding equals round-half-to-even then clamp for ties, near-ties, both signs, values
    /// past ±127, infinities and NaN, and through a scale.
    #[test]
    fn rounding_is_round_ties_even_clamped() {
        let want = |y: f32| y.round_ties_even().clamp(-127.0, 127.0) as i8;
        let mut ys: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.25).collect();
        ys.extend((-300..=300).map(|i| i as f32 + 0.5));
        ys.extend([0.49999997, -0.49999997, 1.5000001, 126.5, -126.5, 127.49, 1e9, -1e9, -0.0]);
        ys.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, f32::MAX]);
        let mut r = 0x2545_F491u32;
        for _ in 0..100_000 {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            ys.push((r as f32 / u32::MAX as f32 - 0.5) * 300.0);
        }
        for &y in &ys {
            assert_eq!(quantize_value(y, 1.0), want(y), "{y}");
        }
        assert_eq!(quantize_value(0.75, 0.5), 2, "0.75 / 0.5 = 1.5 rounds to 2");
        assert_eq!(quantize_value(1.25, 0.5), 2, "2.5 rounds to 2");
        assert_eq!(quantize_value(3.0, 0.0), 0, "a zero scale");
    }
}
