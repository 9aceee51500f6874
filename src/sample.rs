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

/// Candidates a top-p draw over the whole vocabulary looks at before sorting all of it.
const FEW: usize = 256;

pub struct Sampler {
    pub cfg: SamplerConfig,
    state: u64,
}

/// log Σ exp of a row (f64 accumulation): log_softmax(x)[i] = x[i] − this.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    logits.iter().map(|&x| ((x - m) as f64).exp()).sum::<f64>().ln() as f32 + m
}

/// log-softmax of a row (f64 accumulation).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&x| x - lse).collect()
}

/// The k largest entries (index, value), largest first; ties broken by the lower index.
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    if k == 0 {
        return vec![];
    }
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
        let k = if self.cfg.top_k == 0 { l.len() } else { self.cfg.top_k.min(l.len()) };
        let t = self.cfg.temperature;
        // Top-p over the whole vocabulary usually keeps a few dozen tokens: try the best FEW first (the
        // normaliser still over all of them), and sort the whole vocabulary (milliseconds for SmolLM2's
        // 49,152 logits) only when they do not reach top_p.
        if k == l.len() && k > FEW && self.cfg.top_p < 1.0 {
            let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z = l.iter().map(|&x| (((x - m) / t) as f64).exp()).sum();
            if let Some(tok) = self.pick(&top_k(&l, FEW), z, false) {
                return tok;
            }
        }
        let cand = top_k(&l, k);
        let m = cand[0].1;
        let z = cand.iter().map(|&(_, x)| (((x - m) / t) as f64).exp()).sum();
        self.pick(&cand, z, true).expect("the whole candidate set is kept")
    }

    /// Sample from the best candidates `cand` (largest first, at least one), their probabilities
    /// exp((x − max) / T) / z: keep the shortest prefix whose mass reaches top_p, less those under min_p × the
    /// top probability, then draw. `None` when `cand` is not `complete` and its prefix never reached top_p
    /// (the caller needs more candidates); nothing is drawn then.
    fn pick(&mut self, cand: &[(usize, f32)], z: f64, complete: bool) -> Option<u32> {
        let (t, m) = (self.cfg.temperature, cand[0].1);
        let probs: Vec<f64> = cand.iter().map(|&(_, x)| (((x - m) / t) as f64).exp() / z).collect();
        let keep_min = probs[0] * self.cfg.min_p as f64;
        let mut mass = 0.0;
        let mut n = 0;
        for &p in &probs {
            if n > 0 && (mass >= self.cfg.top_p as f64 || p < keep_min) {
                break;
            }
            mass += p;
            n += 1;
        }
        if n == cand.len() && !complete && mass < self.cfg.top_p as f64 {
            return None;
        }
        let r = self.uniform() * mass;
        let mut acc = 0.0;
        for (&(tok, _), &p) in cand[..n].iter().zip(&probs) {
            acc += p;
            if r < acc {
                return Some(tok as u32);
            }
        }
        Some(cand[n - 1].0 as u32)
    }
}
