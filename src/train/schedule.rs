//! Learning-rate schedules, evaluated on the host each step and passed to the step plan as a runtime scalar
//! (`AdamWSpec::lr_var`), so changing the rate never recompiles anything.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Constant,
    /// Linear warmup from 0, then linear decay to 0 at the last step (transformers'
    /// `get_linear_schedule_with_warmup`).
    Linear,
    /// Linear warmup, then a half cosine from the peak down to `min_lr`.
    Cosine,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Kind> {
        match s {
            "constant" => Ok(Kind::Constant),
            "linear" => Ok(Kind::Linear),
            "cosine" => Ok(Kind::Cosine),
            _ => Err(Error::Other(format!("--schedule {s}: expected constant, linear or cosine"))),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub kind: Kind,
    pub peak: f32,
    pub warmup: usize,
    pub total: usize,
    pub min_lr: f32,
}

impl Schedule {
    /// The finetuning commands' schedule: linear warmup over `warmup_ratio` of `total` steps then linear decay
    /// to 0 (transformers' `get_linear_schedule_with_warmup`), or a constant rate when the ratio is 0.
    pub fn finetune(peak: f32, warmup_ratio: f32, total: usize) -> Schedule {
        Schedule {
            kind: if warmup_ratio > 0.0 { Kind::Linear } else { Kind::Constant },
            peak,
            warmup: (warmup_ratio as f64 * total as f64).ceil() as usize,
            total,
            min_lr: 0.0,
        }
    }

    /// The rate of optimizer step `step` (1-based, as the optimizer counts).
    pub fn at(&self, step: usize) -> f32 {
        // transformers' lambda takes the 0-based count of steps already taken.
        let s = step.saturating_sub(1) as f64;
        let (w, total, peak) = (self.warmup as f64, self.total.max(1) as f64, self.peak as f64);
        let lr = match self.kind {
            Kind::Constant if s < w => peak * s / w.max(1.0),
            Kind::Constant => peak,
            _ if s < w => peak * s / w.max(1.0),
            Kind::Linear => peak * ((total - s) / (total - w).max(1.0)).max(0.0),
            Kind::Cosine => {
                let progress = ((s - w) / (total - w).max(1.0)).clamp(0.0, 1.0);
                let min = self.min_lr as f64;
                min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        lr as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_then_decay_as_transformers() {
        // get_linear_schedule_with_warmup(num_warmup_steps=2, num_training_steps=10), lr 1.0: the lambda at
        // 0-based step s is s/2 while s < 2, then (10 − s)/8.
        let s = Schedule { kind: Kind::Linear, peak: 1.0, warmup: 2, total: 10, min_lr: 0.0 };
        let want = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125];
        for (i, w) in want.iter().enumerate() {
            assert!((s.at(i + 1) - w).abs() < 1e-6, "step {}: {} vs {w}", i + 1, s.at(i + 1));
        }
    }

    #[test]
    fn cosine_and_constant() {
        let s = Schedule { kind: Kind::Cosine, peak: 1.0, warmup: 0, total: 5, min_lr: 0.1 };
        assert!((s.at(1) - 1.0).abs() < 1e-6);
        assert!((s.at(6) - 0.1).abs() < 1e-6);
        // Two of five steps done: 0.1 + 0.45·(1 + cos(0.4π)).
        assert!((s.at(3) - 0.689_057_6).abs() < 1e-6, "{}", s.at(3));
        let c = Schedule { kind: Kind::Constant, peak: 3e-4, warmup: 0, total: 5, min_lr: 0.0 };
        assert_eq!(c.at(1), 3e-4);
        assert_eq!(c.at(100), 3e-4);
    }
}
