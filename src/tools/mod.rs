//! Model tools: what turns one model folder into another, beside the engine rather than inside it. `export`
//! (every float parameter in Hugging Face naming, and crash-safe folder writes that every other tool and the
//! trainers use), `quantize` (int8 checkpoints), `smooth` (SmoothQuant scales for static int8) and `prune`
//! (magnitude and N:M sparsity). The CLI's `quantize`, `prune` and `merge` commands are thin layers over them.

pub mod export;
pub mod prune;
pub mod quantize;
pub mod smooth;
