//! What sampling costs on the host per decode token, over SmolLM2's 49,152 logits: greedy, T 0.8 with top-p
//! 0.95, and each step's log-probability (with and without --top-logprobs alternatives). Zipf-like logits (as
//! a language model's) by default, uniform ones with FLAT=1. `cargo run --release --example sample_bench`.
use std::time::Instant;
use wgpu_llm::sample::{Sampler, SamplerConfig};
use wgpu_llm::session::TokenLogprob;
fn main() {
    let mut r = 12345u32;
    let logits: Vec<f32> = (0..49152)
        .map(|_| {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            (r as f32 / u32::MAX as f32) * 20.0 - 10.0
        })
        .collect();
    let hist: Vec<u32> = (0..200).collect();
    let flat = std::env::var_os("FLAT").is_some();
    // Zipf-like, as a language model's logits (scattered over the ids), unless FLAT.
    let logits: Vec<f32> = if flat {
        logits
    } else {
        (0..49152u32).map(|i| 10.0 - 2.0 * ((1 + (i.wrapping_mul(2654435761) % 49152)) as f32).ln()).collect()
    };
    for (name, cfg) in [
        ("greedy", SamplerConfig::default()),
        ("T0.8 top-p 0.95", SamplerConfig { temperature: 0.8, top_p: 0.95, ..SamplerConfig::default() }),
    ] {
        let mut s = Sampler::new(cfg);
        let t = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(s.sample(&logits, &hist));
        }
        println!("{name}: {:.3} ms", t.elapsed().as_secs_f64() * 10.0);
    }
    for top in [0, 5] {
        let t = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(TokenLogprob::new(&logits, 7, top));
        }
        println!("token logprob, top {top}: {:.3} ms", t.elapsed().as_secs_f64() * 10.0);
    }
}
