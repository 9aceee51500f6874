//! Training: labelled data files and preprocessing (`data`), learning-rate schedules (`schedule`),
//! classification metrics (`metrics`), the sequence classifier's step plans and checkpoints (`classifier`)
//! and its finetuning loop (`finetune`), and GPT-2 pretraining from scratch (`lm`). The CLI's `finetune` and `evaluate` are thin wrappers over these.

pub mod classifier;
pub mod data;
pub mod finetune;
pub mod lm;
pub mod lora;
pub mod metrics;
pub mod predict;
pub mod schedule;
pub mod sft;
pub mod sft_data;
pub mod vocab;

/// Every trainable parameter (name, value) and its gradient, in the graph's order.
pub type Trainable = (Vec<(String, crate::graph::ValueId)>, Vec<crate::graph::ValueId>);

/// Where a step's gradients go: gradient accumulation runs an optimizer step as several micro-batches, each
/// through its own plan (compiled once per padded length, like every step plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accum {
    /// One batch, one update.
    Off,
    /// The first micro-batch of a step: its gradients are stored in the accumulators (`grad_acc.{param}`).
    First,
    /// A middle micro-batch: its gradients are added to the accumulators.
    Add,
    /// The last of `n` micro-batches: the mean (accumulators + its gradients) / n feeds clipping and AdamW,
    /// as transformers' Trainer scales each micro-batch's loss by 1/n.
    Last(usize),
}

impl Accum {
    /// Micro-batch `i` (0-based) of `n`.
    pub fn of(i: usize, n: usize) -> Self {
        match (i, n) {
            (_, 0 | 1) => Accum::Off,
            (0, _) => Accum::First,
            (i, n) if i + 1 == n => Accum::Last(n),
            _ => Accum::Add,
        }
    }
    /// Whether the step ends in an update.
    pub fn updates(self) -> bool {
        matches!(self, Accum::Off | Accum::Last(_))
    }
}

/// AdamW as the trainers configure it: learning rate and step at run time ("lr" as f32 bits, "step"),
/// weight decay except on the parameters `no_decay` names, clipping by global norm when asked.
pub struct Optimizer {
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    pub max_grad_norm: Option<f32>,
    pub no_decay: fn(&str) -> bool,
    /// The params that train (the rest are frozen: no gradient, no optimizer state).
    pub trainable: fn(&str) -> bool,
}

impl Optimizer {
    /// Append the gradient of `loss` for every parameter of `g` and their AdamW updates (or, accumulating,
    /// the gradients' store into or addition to the accumulators: `Accum`). Returns each parameter (name,
    /// value) and its gradient, in the graph's order.
    pub fn append(
        &self,
        g: &mut crate::graph::GraphBuilder,
        loss: crate::graph::ValueId,
        accum: Accum,
    ) -> crate::Result<Trainable> {
        let ids: Vec<crate::graph::ValueId> = g
            .graph
            .params()
            .into_iter()
            .filter(|&p| crate::graph::leaf_name(&g.graph.node(p).op).is_some_and(self.trainable))
            .collect();
        let mut grads = crate::autodiff::backward(g, loss, &ids)?;
        if accum != Accum::Off {
            let mut params = vec![];
            for (k, &p) in ids.iter().enumerate() {
                let gr = grads[k];
                let name = crate::graph::leaf_name(&g.graph.node(p).op).unwrap_or_default().to_string();
                let shape = g.shape(p).to_vec();
                // The accumulator is a state leaf written in place: a cache write of all its rows, so it is
                // held as [1, 1, numel, 1].
                let n: usize = shape.iter().product();
                let acc = g.state(&format!("grad_acc.{name}"), &[1, 1, n, 1], crate::tensor::DType::F32)?;
                let sum = match accum {
                    Accum::First => gr,
                    _ => {
                        let prev = g.reshape(acc, &shape)?;
                        g.add(prev, gr)?
                    }
                };
                if let Accum::Last(m) = accum {
                    grads[k] = g.scale(sum, 1.0 / m as f32)?;
                } else {
                    let flat = g.reshape(sum, &[1, 1, n, 1])?;
                    g.op(crate::graph::Op::CacheWrite { offset: crate::graph::Scalar::Const(0) }, &[acc, flat])?;
                }
                params.push((name, p));
            }
            if !accum.updates() {
                return Ok((params, grads));
            }
        }
        let norm2 = match self.max_grad_norm {
            Some(_) => Some(classifier::global_norm2(g, &grads)?),
            None => None,
        };
        // Two param groups, as torch's: the weights that decay and the rest, each one AdamW op.
        let mut params = vec![];
        let mut groups: [(Vec<_>, Vec<_>); 2] = Default::default();
        for (&p, &gr) in ids.iter().zip(&grads) {
            let name = crate::graph::leaf_name(&g.graph.node(p).op).unwrap_or_default().to_string();
            let group = &mut groups[(self.no_decay)(&name) as usize];
            group.0.push(p);
            group.1.push(gr);
            params.push((name, p));
        }
        for ((ps, gs), weight_decay) in groups.iter().zip([self.weight_decay, 0.0]) {
            if ps.is_empty() {
                continue;
            }
            let spec = crate::graph::AdamWSpec {
                lr: 0.0,
                lr_var: Some("lr".into()),
                max_grad_norm: self.max_grad_norm,
                beta1: self.betas.0,
                beta2: self.betas.1,
                eps: self.eps,
                weight_decay,
                step: crate::graph::Scalar::var("step"),
            };
            crate::optim::adamw(g, ps, gs, &spec, norm2)?;
        }
        Ok((params, grads))
    }
}

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
