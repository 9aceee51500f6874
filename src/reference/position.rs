//! CPU reference of the position family: rotary embedding (half-split pairs, HF Llama) and additive
//! sinusoidal encodings. Angles are rounded to f32 as the kernels (and HF) compute them; the rotation
//! itself is f64.

use super::{scalar, Val, Vars};
use crate::error::{Error, Result};
use crate::graph::Op;

/// The f32 angle pos·base^(−k/dim) (k even), as the kernel computes it.
fn angle_f32(pos: usize, base: f32, k: usize, dim: usize) -> f64 {
    let inv_freq = 1.0f32 / base.powf(k as f32 / dim as f32);
    (pos as f32 * inv_freq) as f64
}

/// out = RoPE(x): x, out (b, h, t, d), d even; pair (x[i], x[i + d/2]) of position offset + t rotated by
/// angle (offset + t)·theta^(−2i/d) — or (offset + t)·table[i] (f32) with a frequency table — or by its
/// negative if `inverse` (the transpose: the backward).
#[allow(clippy::too_many_arguments)]
pub fn rope_forward(
    out: &mut [f64],
    x: &[f64],
    b: usize,
    h: usize,
    t: usize,
    d: usize,
    theta: f32,
    table: Option<&[f64]>,
    offsets: &[usize],
    inverse: bool,
) {
    let half = d / 2;
    for row in 0..b * h * t {
        // One offset for every sequence, or one per sequence (RopeAt).
        let pos = offsets[(row / (h * t)) % offsets.len()] + row % t;
        for i in 0..half {
            let mut ang = match table {
                Some(f) => (pos as f32 * f[i] as f32) as f64,
                None => angle_f32(pos, theta, 2 * i, d),
            };
            if inverse {
                ang = -ang;
            }
            let (s, c) = ang.sin_cos();
            let (x0, x1) = (x[row * d + i], x[row * d + i + half]);
            out[row * d + i] = x0 * c - x1 * s;
            out[row * d + i + half] = x1 * c + x0 * s;
        }
    }
}

/// out = x + PE: x, out (b, t, c); PE[pos, 2i] = sin(pos/10000^(2i/c)), PE[pos, 2i+1] = cos(same),
/// pos = offset + t.
pub fn add_sinusoidal(out: &mut [f64], x: &[f64], b: usize, t: usize, c: usize, offset: usize) {
    for bt in 0..b * t {
        let pos = offset + bt % t;
        for col in 0..c {
            let ang = angle_f32(pos, 10000.0, col - col % 2, c);
            let pe = if col % 2 == 0 { ang.sin() } else { ang.cos() };
            out[bt * c + col] = x[bt * c + col] + pe;
        }
    }
}

/// `Op::RopeQkvCache`: the packed heads split (heads-first), q and k rotated (`rope_forward`), k and v
/// written into copies of the caches (`elementwise::cache_write`). Returns q and the two updated caches.
pub fn rope_qkv_cache(op: &Op, ins: &[&Val], vars: &Vars) -> Result<[Vec<f64>; 3]> {
    let Op::RopeQkvCache { theta, offset, q_heads, at } = op else {
        return Err(Error::Run(format!("op {} is not rope_qkv_cache", op.name())));
    };
    let (x, c) = (&ins[0], &ins[1].shape);
    let (b, t, hkv, smax, d) = (x.shape[0], x.shape[1], c[1], c[2], c[3]);
    let htot = q_heads + 2 * hkv;
    let offsets: Vec<usize> = match at {
        true => ins[3].data.iter().map(|&p| p as usize).collect(),
        false => vec![scalar(offset, vars, op)? as usize],
    };
    let table = ins.get(3 + *at as usize).map(|f| f.data.as_slice());
    // Heads h0..h0+n of every token, as [b, n, t, d].
    let heads = |h0: usize, n: usize| {
        let mut y = vec![0.0; b * n * t * d];
        for (bb, h, tt) in (0..b).flat_map(|bb| (0..n).flat_map(move |h| (0..t).map(move |tt| (bb, h, tt)))) {
            let src = ((bb * t + tt) * htot + h0 + h) * d;
            y[((bb * n + h) * t + tt) * d..][..d].copy_from_slice(&x.data[src..src + d]);
        }
        y
    };
    let rotated = |h0: usize, n: usize| {
        let mut y = vec![0.0; b * n * t * d];
        rope_forward(&mut y, &heads(h0, n), b, n, t, d, *theta, table, &offsets, false);
        y
    };
    let (q, k, v) = (rotated(0, *q_heads), rotated(*q_heads, hkv), heads(q_heads + hkv, hkv));
    let (mut kc, mut vc) = (ins[1].data.clone(), ins[2].data.clone());
    crate::reference::elementwise::cache_write(&mut kc, &k, b * hkv, hkv, smax, t, d, &offsets);
    crate::reference::elementwise::cache_write(&mut vc, &v, b * hkv, hkv, smax, t, d, &offsets);
    Ok([q, kc, vc])
}

pub fn eval(op: &Op, ins: &[&Val], out_shape: &[usize], vars: &Vars) -> Result<Vec<f64>> {
    let s = &ins[0].shape;
    let mut out = vec![0.0; out_shape.iter().product()];
    match op {
        Op::Rope { theta, offset, inverse } => {
            let off = scalar(offset, vars, op)? as usize;
            let table = ins.get(1).map(|f| f.data.as_slice());
            rope_forward(&mut out, &ins[0].data, s[0], s[1], s[2], s[3], *theta, table, &[off], *inverse)
        }
        Op::RopeAt { theta } => {
            let offs: Vec<usize> = ins[1].data.iter().map(|&p| p as usize).collect();
            let table = ins.get(2).map(|f| f.data.as_slice());
            rope_forward(&mut out, &ins[0].data, s[0], s[1], s[2], s[3], *theta, table, &offs, false)
        }
        Op::AddSinusoidal { offset } => {
            let off = scalar(offset, vars, op)? as usize;
            add_sinusoidal(&mut out, &ins[0].data, s[0], s[1], s[2], off)
        }
        _ => return Err(Error::Unsupported { op: op.name().into(), detail: "not a position op".into() }),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::norm::tests::{assert_close, fd, rand_vec};

    #[test]
    fn rope_backward_is_the_inverse_rotation() {
        let (b, h, t, d, theta, off) = (2, 3, 5, 6, 10000.0, 7);
        let n = b * h * t * d;
        let x = rand_vec(21, n);
        let dy = rand_vec(22, n);
        for inverse in [false, true] {
            let f = |x: &[f64]| {
                let mut y = vec![0.0; n];
                rope_forward(&mut y, x, b, h, t, d, theta, None, &[off], inverse);
                y.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>()
            };
            // The backward rule: dx = Rope{inverse: !inverse}(dy).
            let mut dx = vec![0.0; n];
            rope_forward(&mut dx, &dy, b, h, t, d, theta, None, &[off], !inverse);
            assert_close("rope dx", &dx, &fd(&x, f), 1e-8);
        }
        // Forward then inverse is the identity.
        let (mut y, mut z) = (vec![0.0; n], vec![0.0; n]);
        rope_forward(&mut y, &x, b, h, t, d, theta, None, &[off], false);
        rope_forward(&mut z, &y, b, h, t, d, theta, None, &[off], true);
        assert_close("rope roundtrip", &z, &x, 1e-12);
    }

    #[test]
    fn sinusoidal_backward_is_identity() {
        let (b, t, c, off) = (2, 3, 5, 4);
        let n = b * t * c;
        let x = rand_vec(23, n);
        let dy = rand_vec(24, n);
        let f = |x: &[f64]| {
            let mut y = vec![0.0; n];
            add_sinusoidal(&mut y, x, b, t, c, off);
            y.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>()
        };
        assert_close("sinusoidal dx", &dy, &fd(&x, f), 1e-8);
        let mut y = vec![0.0; n];
        add_sinusoidal(&mut y, &vec![0.0; n], b, t, c, 0);
        // pos 0: sin 0 = 0 on even columns, cos 0 = 1 on odd ones (including the lone last even column).
        assert_eq!(&y[..5], &[0.0, 1.0, 0.0, 1.0, 0.0]);
    }
}
