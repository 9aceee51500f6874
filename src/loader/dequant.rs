//! Stored bytes → f32: plain floats (F32, F16, BF16) widened, and ggml's block formats (Q8_0, Q4_0, Q4_1,
//! Q4_K, Q6_K) dequantized with the same arithmetic, in the same order, as ggml's `dequantize_row_*`.
//!
//! Block layouts (all little-endian, `d`/`m`/`dmin` are f16):
//! - Q8_0, 34 bytes / 32 values: `d`, `qs[32]: i8`; `x = qs·d`.
//! - Q4_0, 18 bytes / 32 values: `d`, `qs[16]`; the low nibbles are values 0..16, the high nibbles 16..32;
//!   `x = (q − 8)·d`.
//! - Q4_1, 20 bytes / 32 values: `d`, `m`, `qs[16]` as Q4_0; `x = q·d + m`.
//! - Q4_K, 144 bytes / 256 values: `d`, `dmin`, `scales[12]` (eight 6-bit scales and eight 6-bit mins, packed
//!   as below), `qs[128]`. Each 64 values share 32 bytes of `qs`: the low nibbles are the first sub-block of
//!   32, the high nibbles the second; `x = d·sc·q − dmin·mn`.
//! - Q6_K, 210 bytes / 256 values: `ql[128]` (low 4 bits), `qh[64]` (high 2 bits), `scales[16]: i8` (one per
//!   16 values), `d`; `x = d·sc·(q − 32)`. Each half of 128 values uses 64 bytes of `ql` and 32 of `qh`: value
//!   `l + 32·k` (k = 0..4) takes its low bits from `ql[l + 32·(k & 1)]` (low nibble for k < 2, high for k ≥ 2)
//!   and its high bits from bits `2k, 2k+1` of `qh[l]`.

use half::{bf16, f16};

use super::SourceDType;

/// Dequantizes (or widens) `n` values of `dtype` from `bytes`, which must be exactly their size.
pub fn dequantize(dtype: SourceDType, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    let want =
        dtype.bytes_for(n).ok_or_else(|| format!("{n} values are not a whole number of {} blocks", dtype.name()))?;
    if bytes.len() != want {
        return Err(format!("{n} {} values need {want} bytes, got {}", dtype.name(), bytes.len()));
    }
    let (per_block, block_bytes) = dtype.block();
    let mut out = Vec::with_capacity(n);
    match dtype {
        SourceDType::F32 => out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        SourceDType::F16 => out.extend(bytes.chunks_exact(2).map(|b| f16_at(b, 0))),
        SourceDType::BF16 => out.extend(bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        SourceDType::I8 => out.extend(bytes.iter().map(|&b| b as i8 as f32)),
        _ => {
            let mut block_out = vec![0f32; per_block];
            for block in bytes.chunks_exact(block_bytes) {
                match dtype {
                    SourceDType::I8 => unreachable!("plain dtype"),
                    SourceDType::Q8_0 => q8_0(block, &mut block_out),
                    SourceDType::Q4_0 => q4_0(block, &mut block_out),
                    SourceDType::Q4_1 => q4_1(block, &mut block_out),
                    SourceDType::Q4_K => q4_k(block, &mut block_out),
                    SourceDType::Q6_K => q6_k(block, &mut block_out),
                    SourceDType::F32 | SourceDType::F16 | SourceDType::BF16 => unreachable!(),
                }
                out.extend_from_slice(&block_out);
            }
        }
    }
    Ok(out)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn q8_0(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 0);
    for (y, &q) in y.iter_mut().zip(&block[2..34]) {
        *y = (q as i8) as f32 * d;
    }
}

fn q4_0(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 0);
    for (j, &q) in block[2..18].iter().enumerate() {
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    for (j, &q) in block[4..20].iter().enumerate() {
        y[j] = (q & 0x0F) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// Scale and min of sub-block `j` (0..8) from Q4_K's 12 packed bytes: sub-blocks 0..4 keep their 6 bits in the
/// low bits of bytes `j` (scale) and `j + 4` (min); sub-blocks 4..8 keep their low 4 bits in byte `j + 4`
/// (scale low nibble, min high nibble) and their top 2 bits in the top bits of bytes `j − 4` (scale) and `j`
/// (min).
pub(crate) fn q4_k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

fn q4_k(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let scales = &block[4..16];
    let qs = &block[16..144];
    for chunk in 0..4 {
        let (sc1, m1) = q4_k_scale_min(2 * chunk, scales);
        let (sc2, m2) = q4_k_scale_min(2 * chunk + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * chunk..32 * chunk + 32];
        let y = &mut y[64 * chunk..64 * chunk + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - min1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

fn q6_k(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 208);
    for half in 0..2 {
        let ql = &block[64 * half..64 * half + 64];
        let qh = &block[128 + 32 * half..128 + 32 * half + 32];
        let sc = &block[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_0_nibble_order() {
        // d = 0.5; byte j holds q = j (low, values 0..16) and 15 − j (high, values 16..32).
        let mut b = h(0.5).to_vec();
        b.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(SourceDType::Q4_0, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn q4_k_scale_packing_round_trips() {
        // Pack eight 6-bit (scale, min) pairs the way ggml's quantizer does, then unpack.
        let sc: [u8; 8] = [1, 63, 17, 40, 5, 62, 33, 48];
        let mn: [u8; 8] = [0, 9, 63, 21, 60, 2, 47, 31];
        let mut s = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                s[j] = sc[j];
                s[j + 4] = mn[j];
            } else {
                s[j + 4] = (sc[j] & 0x0F) | ((mn[j] & 0x0F) << 4);
                s[j - 4] |= (sc[j] >> 4) << 6;
                s[j] |= (mn[j] >> 4) << 6;
            }
        }
        for j in 0..8 {
            assert_eq!(q4_k_scale_min(j, &s), (sc[j], mn[j]), "sub-block {j}");
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(dequantize(SourceDType::Q8_0, &[0; 33], 32).is_err());
        assert!(dequantize(SourceDType::Q8_0, &[0; 34], 31).is_err());
        assert!(dequantize(SourceDType::F16, &[0; 4], 2).is_ok());
    }
}
