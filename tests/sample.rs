//! The sampler against the rules of transformers' logits processors, computed here independently: greedy,
//! repetition penalty (once per distinct token), temperature, top-k, top-p, min-p, and seeds. Sampled
//! frequencies over many draws are compared with the exact kept-and-renormalised distribution.

use wgpu_llm::sample::{Sampler, SamplerConfig};

fn cfg(temperature: f32, top_k: usize, top_p: f32, min_p: f32, seed: u64) -> SamplerConfig {
    SamplerConfig { temperature, top_k, top_p, min_p, repetition_penalty: 1.0, seed }
}

/// The distribution transformers samples from: softmax(l / T), then top-k, then the smallest prefix (by
/// descending probability) whose mass reaches top_p, then drop what is below min_p × the top probability;
/// renormalised.
fn expected(logits: &[f32], c: &SamplerConfig) -> Vec<f64> {
    let t = c.temperature as f64;
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let p: Vec<f64> = logits.iter().map(|&x| ((x as f64 - m) / t).exp()).collect();
    let z: f64 = p.iter().sum();
    let p: Vec<f64> = p.iter().map(|x| x / z).collect();
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    if c.top_k > 0 {
        order.truncate(c.top_k);
    }
    let zk: f64 = order.iter().map(|&i| p[i]).sum();
    let mut kept = vec![];
    let mut mass = 0.0;
    for &i in &order {
        if !kept.is_empty() && mass >= c.top_p as f64 {
            break;
        }
        mass += p[i] / zk;
        kept.push(i);
    }
    let top = p[kept[0]];
    kept.retain(|&i| p[i] >= c.min_p as f64 * top);
    let zz: f64 = kept.iter().map(|&i| p[i]).sum();
    let mut out = vec![0.0; p.len()];
    for i in kept {
        out[i] = p[i] / zz;
    }
    out
}

fn frequencies(logits: &[f32], c: &SamplerConfig, draws: usize) -> Vec<f64> {
    let mut s = Sampler::new(c.clone());
    let mut n = vec![0usize; logits.len()];
    for _ in 0..draws {
        n[s.sample(logits, &[]) as usize] += 1;
    }
    n.iter().map(|&k| k as f64 / draws as f64).collect()
}

/// Every token's frequency within 4.5 standard errors of its probability, and tokens of probability 0 never
/// drawn.
fn assert_matches(name: &str, logits: &[f32], c: &SamplerConfig) {
    let draws = 40_000;
    let want = expected(logits, c);
    let got = frequencies(logits, c, draws);
    for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
        let se = (w * (1.0 - w) / draws as f64).sqrt().max(1e-9);
        if w == 0.0 {
            assert_eq!(g, 0.0, "{name}: token {i} is outside the kept set but was drawn ({g})");
        } else {
            assert!((g - w).abs() <= 4.5 * se, "{name}: token {i} drawn {g:.4}, expected {w:.4} (±{se:.4})");
        }
    }
}

const LOGITS: [f32; 8] = [2.0, 1.5, 1.4, 0.3, 0.0, -0.5, -1.0, -3.0];

#[test]
fn greedy_takes_the_largest_logit_and_the_lower_id_on_ties() {
    let mut s = Sampler::new(SamplerConfig::default());
    assert_eq!(s.sample(&LOGITS, &[]), 0);
    assert_eq!(s.sample(&[0.5, 3.0, 3.0, -1.0], &[]), 1);
    // A tiny temperature is greedy in effect.
    let mut s = Sampler::new(cfg(1e-4, 0, 1.0, 0.0, 3));
    assert!((0..100).all(|_| s.sample(&LOGITS, &[]) == 0));
}

#[test]
fn repetition_penalty_counts_each_distinct_token_once() {
    let rp = |r: f32| Sampler::new(SamplerConfig { repetition_penalty: r, ..SamplerConfig::default() });
    // 2.0 / 1.2 = 1.67 still beats 1.5; penalised twice (2.0 / 1.44 = 1.39) it would not.
    assert_eq!(rp(1.2).sample(&[2.0, 1.5], &[0, 0, 0]), 0);
    assert_eq!(rp(1.5).sample(&[2.0, 1.5], &[0]), 1, "2.0 / 1.5 < 1.5");
    // Negative logits are multiplied: -0.1 · 1.5 = -0.15 falls below -0.12.
    assert_eq!(rp(1.5).sample(&[-0.1, -0.12], &[0]), 1);
    // Ids past the vocabulary are ignored.
    assert_eq!(rp(1.5).sample(&[-0.1, -0.12], &[7]), 0);
}

#[test]
fn temperature_samples_the_softmax() {
    for t in [0.5, 1.0, 2.0] {
        assert_matches(&format!("T={t}"), &LOGITS, &cfg(t, 0, 1.0, 0.0, 11));
    }
}

#[test]
fn top_k_top_p_and_min_p_keep_what_transformers_keeps() {
    assert_matches("top-k 3", &LOGITS, &cfg(1.0, 3, 1.0, 0.0, 12));
    // Probabilities at T = 1: 0.383, 0.232, 0.210, 0.070, 0.052, … top-p 0.65 keeps three (0.383 + 0.232 =
    // 0.615 < 0.65), top-p 0.6 two, top-p 0.3 one; min-p 0.2 keeps those ≥ 0.0766: three.
    assert_matches("top-p 0.65", &LOGITS, &cfg(1.0, 0, 0.65, 0.0, 13));
    assert_matches("top-p 0.6", &LOGITS, &cfg(1.0, 0, 0.6, 0.0, 17));
    assert_matches("top-p 0.3", &LOGITS, &cfg(1.0, 0, 0.3, 0.0, 14));
    assert_matches("min-p 0.2", &LOGITS, &cfg(1.0, 0, 1.0, 0.2, 15));
    assert_matches("all of them", &LOGITS, &cfg(0.8, 5, 0.9, 0.1, 16));
    // The kept sets are what the comments above say.
    let kept = |c: SamplerConfig| expected(&LOGITS, &c).iter().filter(|&&p| p > 0.0).count();
    assert_eq!(kept(cfg(1.0, 0, 0.65, 0.0, 0)), 3);
    assert_eq!(kept(cfg(1.0, 0, 0.6, 0.0, 0)), 2);
    assert_eq!(kept(cfg(1.0, 0, 0.3, 0.0, 0)), 1);
    assert_eq!(kept(cfg(1.0, 0, 1.0, 0.2, 0)), 3);
}

#[test]
fn the_same_seed_gives_the_same_tokens() {
    let run = |seed| {
        let mut s = Sampler::new(cfg(1.0, 0, 1.0, 0.0, seed));
        (0..64).map(|_| s.sample(&LOGITS, &[])).collect::<Vec<u32>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// Over a large vocabulary top-p first looks at the best 256 tokens only: the tokens drawn are those of the
/// full sort, for a peaked distribution that 256 tokens cover and a flat one that they do not. The full sort
/// is reached with top_k = vocab − 1, which drops only the last token, whose logit is −100 (e^−100 leaves
/// every f64 sum unchanged).
#[test]
fn top_p_over_a_large_vocabulary_draws_what_the_full_sort_draws() {
    let v = 5000u32;
    let with_floor = |f: &dyn Fn(u32) -> f32| (0..v - 1).map(f).chain([-100.0]).collect::<Vec<f32>>();
    let peaked = with_floor(&|i| 8.0 - 2.0 * ((1 + (i * 7907) % v) as f32).ln());
    let flat = with_floor(&|i| ((i * 7919) % 1000) as f32 / 1000.0);
    for (name, logits) in [("peaked", &peaked), ("flat", &flat)] {
        for (t, top_p, min_p) in [(0.8, 0.95, 0.0), (1.0, 0.7, 0.0), (1.3, 0.9, 0.05)] {
            let draws = |top_k: usize| {
                let mut s = Sampler::new(SamplerConfig { top_k, ..cfg(t, 0, top_p, min_p, 21) });
                (0..500).map(|_| s.sample(logits, &[])).collect::<Vec<u32>>()
            };
            let (fast, full) = (draws(0), draws(v as usize - 1));
            assert_eq!(fast, full, "{name} T={t} top-p={top_p} min-p={min_p}");
            let distinct = fast.iter().collect::<std::collections::HashSet<_>>().len();
            assert!(distinct > 1, "{name}: the draws vary");
        }
    }
}
