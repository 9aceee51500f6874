//! Logits → token: greedy, temperature, top-k, top-p, min-p and repetition penalty, seeded so the same seed
//! gives the same tokens. Runs on the host over the one row of logits a decode step reads back.

/// Sampling settings; `temperature == 0` is greedy.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repetition_penalty: 1.0, seed: 0 }
    }
}

pub struct Sampler {
    pub cfg: SamplerConfig,
    state: u64,
}

/// log-softmax of a row (f64 accumulation).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = logits.iter().map(|&x| ((x - m) as f64).exp()).sum::<f64>().ln() as f32 + m;
    logits.iter().map(|&x| x - lse).collect()
}

/// The k largest entries (index, value), largest first; ties broken by the lower index.
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k < idx.len() {
        let nth = k.saturating_sub(1).min(idx.len() - 1);
        idx.select_nth_unstable_by(nth, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, values[i])).collect()
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        let state = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        Sampler { cfg, state: state | 1 }
    }

    fn uniform(&mut self) -> f64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Pick the next token from one row of logits, given the tokens so far (for the repetition penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut l = logits.to_vec();
        let rp = self.cfg.repetition_penalty;
        if rp != 1.0 {
            // As in transformers and llama.cpp: divide positive logits, multiply negative ones, once for each
            // distinct token of the history however often it occurs.
            let mut seen = vec![false; l.len()];
            for &t in history {
                let t = t as usize;
                if t < l.len() && !seen[t] {
                    seen[t] = true;
                    l[t] = if l[t] > 0.0 { l[t] / rp } else { l[t] * rp };
                }
            }
        }
        if self.cfg.temperature <= 0.0 {
            return top_k(&l, 1)[0].0 as u32;
        }
        let k = if self.cfg.top_k == 0 { l.len() } else { self.cfg.top_k };
        let mut cand = top_k(&l, k);
        let t = self.cfg.temperature;
        let m = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|&(_, x)| (((x - m) / t) as f64).exp()).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        // min-p: drop tokens below min_p × the top probability.
        let keep_min = probs[0] * self.cfg.min_p as f64;
        // top-p: the smallest prefix whose mass reaches top_p.
        let mut mass = 0.0;
        let mut n = 0;
        for &p in &probs {
            if n > 0 && (mass >= self.cfg.top_p as f64 || p < keep_min) {
                break;
            }
            mass += p;
            n += 1;
        }
        cand.truncate(n);
        let r = self.uniform() * mass;
        let mut acc = 0.0;
        for (i, &(tok, _)) in cand.iter().enumerate() {
            acc += probs[i];
            if r < acc {
                return tok as u32;
            }
        }
        cand[n - 1].0 as u32
    }
}
