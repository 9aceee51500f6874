//! Test-side ggml block packing (codes → bytes, written forward from the documented layouts, independently of
//! the loader's dequantizers) and small round-to-nearest quantizers in the spirit of ggml's reference ones.

use half::f16;

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}
fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Q8_0 block: `d` then 32 signed codes.
pub fn pack_q8_0(d: f32, q: &[i8; 32]) -> Vec<u8> {
    let mut b = h(d).to_vec();
    b.extend(q.iter().map(|&v| v as u8));
    b
}

/// Q4_0 / Q4_1 nibbles: code j in the low nibble of byte j, code j + 16 in its high nibble.
fn nibbles(q: &[u8; 32]) -> impl Iterator<Item = u8> + '_ {
    (0..16).map(move |j| (q[j] & 0x0F) | (q[j + 16] << 4))
}

pub fn pack_q4_0(d: f32, q: &[u8; 32]) -> Vec<u8> {
    let mut b = h(d).to_vec();
    b.extend(nibbles(q));
    b
}

pub fn pack_q4_1(d: f32, m: f32, q: &[u8; 32]) -> Vec<u8> {
    let mut b = h(d).to_vec();
    b.extend(h(m));
    b.extend(nibbles(q));
    b
}

/// Q4_K super-block from 8 (scale, min) 6-bit codes and 256 4-bit codes.
pub fn pack_q4_k(d: f32, dmin: f32, sc: &[u8; 8], mn: &[u8; 8], q: &[u8; 256]) -> Vec<u8> {
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
    let mut b = h(d).to_vec();
    b.extend(h(dmin));
    b.extend(s);
    // Each 64 values: the first 32 in the low nibbles of 32 bytes, the next 32 in their high nibbles.
    for c in 0..4 {
        b.extend((0..32).map(|l| q[64 * c + l] | (q[64 * c + 32 + l] << 4)));
    }
    b
}

/// Q6_K super-block from 16 signed 8-bit scales and 256 6-bit codes (stored biased: code = q + 32).
pub fn pack_q6_k(d: f32, sc: &[i8; 16], code: &[u8; 256]) -> Vec<u8> {
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for n in 0..2 {
        let c = &code[128 * n..128 * n + 128];
        for l in 0..32 {
            ql[64 * n + l] = (c[l] & 0x0F) | ((c[l + 64] & 0x0F) << 4);
            ql[64 * n + l + 32] = (c[l + 32] & 0x0F) | ((c[l + 96] & 0x0F) << 4);
            qh[32 * n + l] = (c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6);
        }
    }
    let mut b = ql.to_vec();
    b.extend(qh);
    b.extend(sc.iter().map(|&s| s as u8));
    b.extend(h(d));
    b
}

/// Which block format to quantize to.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    Q8_0,
    Q4_0,
    Q4_1,
    Q4K,
    Q6K,
}

impl Format {
    pub fn block_len(self) -> usize {
        match self {
            Format::Q4K | Format::Q6K => 256,
            _ => 32,
        }
    }
    /// ggml's `enum ggml_type` id.
    pub fn type_id(self) -> u32 {
        match self {
            Format::Q4_0 => 2,
            Format::Q4_1 => 3,
            Format::Q8_0 => 8,
            Format::Q4K => 12,
            Format::Q6K => 14,
        }
    }
}

/// Quantizes `x` (a multiple of the block length) round-to-nearest, one block at a time.
pub fn quantize(format: Format, x: &[f32]) -> Vec<u8> {
    x.chunks_exact(format.block_len())
        .flat_map(|b| match format {
            Format::Q8_0 => q8_0(b),
            Format::Q4_0 => q4_0(b),
            Format::Q4_1 => q4_1(b),
            Format::Q4K => q4_k(b),
            Format::Q6K => q6_k(b),
        })
        .collect()
}

fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

fn q8_0(x: &[f32]) -> Vec<u8> {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inv(d);
    let q: [i8; 32] = std::array::from_fn(|j| (x[j] * id).round() as i8);
    pack_q8_0(d, &q)
}

fn q4_0(x: &[f32]) -> Vec<u8> {
    // As ggml: the value of largest magnitude maps to code 0 (−8), so the scale's sign follows it.
    let max = x.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let d = max / -8.0;
    let id = inv(d);
    let q: [u8; 32] = std::array::from_fn(|j| ((x[j] * id + 8.5) as i8).clamp(0, 15) as u8);
    pack_q4_0(d, &q)
}

fn q4_1(x: &[f32]) -> Vec<u8> {
    let min = x.iter().fold(f32::MAX, |a, &v| a.min(v));
    let max = x.iter().fold(f32::MIN, |a, &v| a.max(v));
    let d = (max - min) / 15.0;
    let id = inv(d);
    let q: [u8; 32] = std::array::from_fn(|j| (((x[j] - min) * id + 0.5) as u8).min(15));
    pack_q4_1(d, min, &q)
}

fn q4_k(x: &[f32]) -> Vec<u8> {
    // Per 32-value sub-block: x ≈ scale·q − mn with q in 0..16 and mn ≥ 0; scales and mins are then
    // quantized to 6 bits against the super-block's d and dmin.
    let mut scale = [0f32; 8];
    let mut mins = [0f32; 8];
    for (s, sub) in x.chunks_exact(32).enumerate() {
        let lo = sub.iter().fold(0f32, |a, &v| a.min(v));
        let hi = sub.iter().fold(f32::MIN, |a, &v| a.max(v));
        scale[s] = (hi - lo) / 15.0;
        mins[s] = -lo;
    }
    let d = f16_round(scale.iter().fold(0f32, |a, &v| a.max(v)) / 63.0);
    let dmin = f16_round(mins.iter().fold(0f32, |a, &v| a.max(v)) / 63.0);
    let sc: [u8; 8] = std::array::from_fn(|s| (scale[s] * inv(d)).round().clamp(0.0, 63.0) as u8);
    let mn: [u8; 8] = std::array::from_fn(|s| (mins[s] * inv(dmin)).round().clamp(0.0, 63.0) as u8);
    let q: [u8; 256] = std::array::from_fn(|i| {
        let s = i / 32;
        let (step, offset) = (d * sc[s] as f32, dmin * mn[s] as f32);
        ((x[i] + offset) * inv(step)).round().clamp(0.0, 15.0) as u8
    });
    pack_q4_k(d, dmin, &sc, &mn, &q)
}

fn q6_k(x: &[f32]) -> Vec<u8> {
    // Per 16-value sub-block: the value of largest magnitude maps to −32; the 16 scales are quantized to
    // i8 against the super-block's d.
    let scale: [f32; 16] = std::array::from_fn(|s| {
        let sub = &x[16 * s..16 * s + 16];
        sub.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m }) / -32.0
    });
    let d = f16_round(scale.iter().fold(0f32, |a, &v| a.max(v.abs())) / 127.0);
    let sc: [i8; 16] = std::array::from_fn(|s| (scale[s] * inv(d)).round().clamp(-128.0, 127.0) as i8);
    let code: [u8; 256] = std::array::from_fn(|i| {
        let step = d * sc[i / 16] as f32;
        ((x[i] * inv(step)).round().clamp(-32.0, 31.0) + 32.0) as u8
    });
    pack_q6_k(d, &sc, &code)
}
