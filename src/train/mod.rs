//! Training: labelled data files and preprocessing (`data`), learning-rate schedules (`schedule`),
//! classification metrics (`metrics`), the sequence classifier's step plans and checkpoints (`classifier`)
//! and its finetuning loop (`finetune`), and GPT-2 pretraining from scratch (`lm`). The CLI's `finetune` and `evaluate` are thin wrappers over these.

pub mod classifier;
pub mod data;
pub mod finetune;
pub mod lm;
pub mod metrics;
pub mod predict;
pub mod schedule;

/// SplitMix64: the seeded generator of every random choice in training (shuffles, initial weights, batch
/// windows), the same stream on every platform.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
