//! Training: labelled data files and preprocessing (`data`), learning-rate schedules (`schedule`),
//! classification metrics (`metrics`), the sequence classifier's step plans and checkpoints (`classifier`)
//! and its finetuning loop (`finetune`). The CLI's `finetune` and `evaluate` are thin wrappers over these.

pub mod classifier;
pub mod data;
pub mod finetune;
pub mod metrics;
pub mod predict;
pub mod schedule;
