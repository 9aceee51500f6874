//! The op enum: every forward and backward op the engine runs, as equals. Each variant documents its inputs
//! (in order), output, layout and maths; the CPU reference (`reference`), the WGSL lowering (`kernels`) and the
//! backward rules (`autodiff`) all follow these comments. Shapes are row-major, last dim contiguous.
//!
//! Every op has exactly one output. Ops that update state in place (`CacheWrite`, `AdamW`) return a value that
//! aliases the mutated buffer, so later readers are ordered after the write; `RopeQkvCache` writes two caches
//! and returns the queries that every reader of those caches also reads.

/// A scalar that is either fixed when the graph is built or supplied by name at each run (positions,
/// lengths, the optimizer step): changing it never recompiles anything.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Const(u32),
    /// A runtime value looked up by name in the run's scalar table.
    Var(String),
}

impl Scalar {
    pub fn var(name: &str) -> Self {
        Scalar::Var(name.to_string())
    }
    /// Resolve against a scalar table.
    pub fn resolve(&self, vars: &dyn Fn(&str) -> Option<u32>) -> Option<u32> {
        match self {
            Scalar::Const(c) => Some(*c),
            Scalar::Var(n) => vars(n),
        }
    }
}

/// Pointwise activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    Relu,
    /// 0.5·x·(1 + erf(x/√2)).
    GeluErf,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    GeluTanh,
    /// x·σ(x).
    Silu,
    /// tanh(x) (BERT's pooler).
    Tanh,
}

/// How an int8 matmul treats its float input (see `Op::QMatMul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActQuant {
    /// Weight-only: x stays float; weights are dequantized in registers.
    None,
    /// x is quantized on the fly per row and block of 32 (scale = max|x|/127 of the block).
    Dynamic,
    /// x is quantized with calibrated per-block scales (an input [K/32], shared by every row).
    Static,
}

impl ActQuant {
    pub fn name(self) -> &'static str {
        match self {
            ActQuant::None => "weight-only",
            ActQuant::Dynamic => "dynamic",
            ActQuant::Static => "static",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "weight-only" | "none" => Some(ActQuant::None),
            "dynamic" => Some(ActQuant::Dynamic),
            "static" => Some(ActQuant::Static),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // ---- leaves -------------------------------------------------------------------------------------------
    /// Fed at every run (token ids, targets, masks, activations).
    Input { name: String },
    /// A persistent, trainable weight (uploaded once; updated in place by `AdamW`).
    Param { name: String },
    /// Persistent, not trainable (KV cache, optimizer moments); starts as zeros unless set.
    State { name: String },
    /// A constant tensor filled with one value (the gradient seed, zeros to broadcast into); uploaded when the
    /// plan is compiled, so it needs no kernel.
    Fill { value: f32 },

    // ---- elementwise --------------------------------------------------------------------------------------
    /// (a, b) → a + b. b has a's shape, or b is 1-D [n] with a's last dim n (a bias, broadcast over rows).
    Add,
    /// (a, b) → a ⊙ b, same shapes.
    Mul,
    /// (a) → s·a.
    Scale { s: f32 },
    /// (x) → act(x).
    Unary { act: Act },
    /// (x) → x·keep/(1 − p): inverted dropout. keep = 1 where `dropout_bits(seed, step, i)` ≥ p·2³² (i the
    /// flat index), else 0: a counter-based hash, no state, so a run repeats from its seed and the backward
    /// rule is the same op on dy (the same mask). `seed` tells the ops of one graph apart; `step` (usually
    /// the runtime scalar "step") draws a fresh mask each training step.
    Dropout { p: f32, seed: u32, step: Scalar },
    /// (x, dy) → dy ⊙ act'(x).
    UnaryBackward { act: Act },
    /// (x [..., n]) → [n]: sum over all leading dims (bias and beta gradients).
    SumRows,
    /// (x) → x converted to the dtype `to` (f32 ↔ f16).
    Cast { to: crate::tensor::DType },
    /// A stored weight widened to f32: (w f16 [out, in]) or (w u32 [out, in/4] packed int8, scales f32
    /// [out, in/32]; `quant`'s block-32 format) → f32 [out, in], or [in, out] with `transpose`. Training's
    /// frozen base weights: the forward widens them right before their product, the backward widens them
    /// again transposed for dY·W (`autodiff`), so no f32 copy lives from one to the other.
    Dequantize { transpose: bool },
    /// (x) → same data, new shape (same element count); no copy.
    Reshape { shape: Vec<usize> },
    /// (x [a, b, c, d]) → [a, c, b, d]; its own inverse. Splits/merges heads: [B,T,H,D] ↔ [B,H,T,D].
    Permute0213,

    // ---- matmul -------------------------------------------------------------------------------------------
    /// (a, b) → c = op(a)·op(b), op(x) = xᵀ (last two dims) when the flag is set.
    /// a: [batch..., M, K] (or [batch..., K, M] if ta); b: [batch..., K, N] (or [batch..., N, K] if tb) with
    /// the same batch dims, or b 2-D (a weight shared over the batch). c: [batch..., M, N].
    /// `x·Wᵀ` with W [N, K] (the Linear layout of every checkpoint) is `MatMul { ta: false, tb: true }`.
    MatMul { ta: bool, tb: bool },
    /// (x [..., K], w [N, K], both f16 or both f32) → x·Wᵀ [..., N] in f32: accumulated in f32 as every
    /// kernel does and stored without rounding to the inputs' dtype. A decoder's logits: rounded to f16 (an
    /// ulp of 1/32 near 32) greedy near-ties became exact ties, which a prefill and a decode step broke
    /// differently.
    LinearF32,
    /// (x [..., K], w [N, K], r [..., N]) → r + x·Wᵀ, written over r in place (the output aliases r): a
    /// residual connection's add folded into the product that feeds it, so a decoder layer's two residual
    /// adds cost no dispatch. Nothing may read r after this op except through the returned value (the
    /// memory planner checks).
    LinearAdd,
    /// (x [..., K] float, wq [N, K/4] u32, ws [N, K/32] f32 (, xs [K/32] f32 if act = Static)) → [..., N]
    /// = x·Wᵀ with the int8 weight W[n, k] = int8 byte (k mod 4) of wq[n, k/4] (little-endian) ·
    /// ws[n, k/32] (the block-32 format of `quant`). With act = Dynamic or Static, x is first rounded to
    /// q = clamp(round_half_even(x/s), −127, 127) per row and block of 32, s = max|x|/127 of that row block
    /// (Dynamic) or xs[block] (Static), and the products are integer dot products rescaled by s·ws.
    QMatMul { act: ActQuant },
    /// (x, wq, ws, r [..., N] (, xs if act = Static)) → r + QMatMul { act }(x, wq, ws (, xs)), written over
    /// r in place (the output aliases r, input 3): `LinearAdd` for int8 layers, the residual add folded into
    /// the product's stores. Nothing may read r after this op except through the returned value.
    QLinearAdd { act: ActQuant },
    /// (x [..., K], wgq [N, K/4], wgs [N, K/32], wuq, wus (, xs [K/32] if quant = Static)) →
    /// act(x·Wgᵀ) ⊙ (x·Wuᵀ) with both weights int8 as in QMatMul { act: quant } (the two products share x and
    /// its static scales): `Glu` for int8 layers, so a decode step runs the gate, the up projection and
    /// their product as one GEMV. (Models use it without static scales: calibrated layers keep their own.)
    QGlu { act: Act, quant: ActQuant },
    /// (x [..., K], wg [N, K], wu [N, K]) → act(x·Wgᵀ) ⊙ (x·Wuᵀ): a gated feed-forward's two projections and
    /// its gate as one op (SwiGLU with act = Silu), so a decode step runs them as one GEMV.
    Glu { act: Act },

    // ---- norms --------------------------------------------------------------------------------------------
    /// (x [..., C], gamma [C], beta [C]) → (x − mean)/√(var + eps)·gamma + beta, per row; var is biased.
    LayerNorm { eps: f32 },
    /// (x, gamma, dy) → dx of LayerNorm.
    LayerNormGradX { eps: f32 },
    /// (x [..., C], gamma [C]) → x/√(mean(x²) + eps)·gamma, per row.
    RmsNorm { eps: f32 },
    /// (x, gamma, dy) → dx of RmsNorm.
    RmsNormGradX { eps: f32 },
    /// (x [..., C], dy) → dgamma [C] = Σ_rows dy ⊙ x̂, x̂ the normalised x (of LayerNorm, or RmsNorm if `rms`).
    NormGradGamma { eps: f32, rms: bool },

    // ---- softmax ------------------------------------------------------------------------------------------
    /// (x [..., T, S]) → softmax over the last dim. `causal`: row i (of T) sees columns j ≤ i + (S − T);
    /// masked entries are 0 in the output.
    Softmax { causal: bool },
    /// (y, dy) → dx = y ⊙ (dy − Σ_j y·dy), y the softmax output.
    SoftmaxBackward,

    // ---- attention ----------------------------------------------------------------------------------------
    /// (q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, D] (+ mask [B, S] f32, 1 = keep, 0 = pad, if `mask`))
    /// → o [B, Hq, T, D] = softmax(scale·q·kᵀ + masks)·v. Only keys j < kv_len are read (kv_len ≤ S; a KV
    /// cache is allocated at S = max positions). `causal`: query i sits at position q_offset + i and sees keys
    /// j ≤ q_offset + i. Grouped-query heads: query head h reads kv head h / (Hq / Hkv).
    /// A query row that sees no key outputs zeros.
    Attention(AttnSpec),
    /// Same inputs → the attention probabilities [B, Hq, T, S] (0 where masked or j ≥ kv_len).
    AttentionWeights(AttnSpec),
    /// (q, k, v, [mask], do) → dq [B, Hq, T, D].
    AttentionGradQ(AttnSpec),
    /// (q, k, v, [mask], do) → dk [B, Hkv, S, D] (summed over the query heads of each group).
    AttentionGradK(AttnSpec),
    /// (q, k, v, [mask], do) → dv [B, Hkv, S, D].
    AttentionGradV(AttnSpec),

    // ---- positions ----------------------------------------------------------------------------------------
    /// (x [B, H, T, D] (, inv_freq [D/2] f32)) → rotary embedding, half-split pairs (x[i], x[i + D/2]) as in
    /// HF Llama, rotated by angle (offset + t)·theta^(−2i/D), or (offset + t)·inv_freq[i] when the table is
    /// given (the scaled variants: Llama 3, linear; `theta` is then unused). `inverse` rotates by the
    /// negative angle (the backward rule).
    Rope { theta: f32, offset: Scalar, inverse: bool },
    /// (x [B, H, T, D], pos [B] u32 (, inv_freq [D/2] f32)) → Rope with each sequence at its own position:
    /// token t of sequence b is at pos[b] + t (continuous batching: sequences of different lengths step
    /// together).
    RopeAt { theta: f32 },
    /// (qkv [B, T, (Hq + 2·Hkv)·D]: the q, k and v heads of one projection side by side, kc [B, Hkv, Smax, D]
    /// state, vc [B, Hkv, Smax, D] state (, pos [B] u32 if `at`) (, inv_freq [D/2] f32)) → q [B, Hq, T, D]
    /// rotated as `Rope` (`RopeAt` with `at`: token t of sequence b at pos[b] + t); in place, k rotated the
    /// same way and v as it is go to rows offset + t (pos[b] + t) of kc and vc (rows past Smax dropped). A
    /// decoder step's attention inputs in one dispatch instead of a rope per q and k and a cache write per k
    /// and v. The output does not alias the caches: their readers (the attention) also read the returned q,
    /// so they run after the writes.
    RopeQkvCache { theta: f32, offset: Scalar, q_heads: usize, at: bool },
    /// (x [B, T, C]) → x + PE, PE[pos, 2i] = sin(pos/10000^(2i/C)), PE[pos, 2i+1] = cos(same), pos = offset + t.
    AddSinusoidal { offset: Scalar },

    // ---- embedding ----------------------------------------------------------------------------------------
    /// (table [V, C], ids [...] u32) → [..., C]: rows of the table. Ids ≥ V give zero rows.
    Embedding,
    /// (ids [...] u32, dy [..., C]) → dtable [V, C] = scatter-add of dy rows at ids (deterministic order).
    EmbeddingBackward { vocab: usize },

    // ---- loss ---------------------------------------------------------------------------------------------
    /// (logits [N, V], targets [N] i32) → [1]: mean over rows whose target ≠ ignore_index of
    /// −log softmax(logits)[target]; 0 if every row is ignored.
    CrossEntropy { ignore_index: i32 },
    /// (logits, targets, dloss [1]) → dlogits = (softmax − onehot)·dloss/count, zero rows where ignored.
    CrossEntropyBackward { ignore_index: i32 },

    // ---- state updates (in place) -------------------------------------------------------------------------
    /// (cache [B, H, Smax, D] state, src [B, H, T, D]) → the cache, with rows offset..offset+T replaced by src.
    CacheWrite { offset: Scalar },
    /// (cache [B, H, Smax, D] state, src [B, H, T, D], pos [B] u32) → the cache, with rows pos[b]..pos[b]+T of
    /// sequence b replaced by src (rows past Smax are dropped).
    CacheWriteAt,
    /// (param, grad, m, v) for each parameter of a group (one or more, as torch's param groups: one spec) →
    /// the first param; every param is updated in place with AdamW (decoupled weight decay):
    /// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; m̂ = m/(1−β1^t); v̂ = v/(1−β2^t);
    /// p = p − lr·(m̂/(√v̂ + eps) + wd·p), t = step (≥ 1). m and v are updated in place too.
    /// With `max_grad_norm`, a last input is the squared global norm [1] of every gradient of the step
    /// (`SumSquares` over them) and g is first scaled by min(1, max_grad_norm/(‖g‖ + 1e-6)), as torch's
    /// `clip_grad_norm_`.
    AdamW(AdamWSpec),
    /// (x0, x1, … [...] f32) → [1] = Σ over every input of Σ x², summed in a fixed order (gradient
    /// clipping's global norm).
    SumSquares,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttnSpec {
    pub causal: bool,
    /// Usually 1/√D.
    pub scale: f32,
    /// Whether a [B, S] key-padding mask input follows v.
    pub mask: bool,
    /// Position of the first query row (for the causal mask); Const(0) for a full sequence.
    pub q_offset: Scalar,
    /// Number of valid keys; Const(S) for a full sequence.
    pub kv_len: Scalar,
}

impl AttnSpec {
    /// Causal self-attention over whole sequences of `t` tokens from position 0 (training), scaled 1/√hd.
    pub fn whole_causal(t: usize, hd: usize) -> AttnSpec {
        AttnSpec {
            causal: true,
            scale: 1.0 / (hd as f32).sqrt(),
            mask: false,
            q_offset: Scalar::Const(0),
            kv_len: Scalar::Const(t as u32),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdamWSpec {
    pub lr: f32,
    /// When set, the learning rate is this runtime scalar, its u32 the bits of an f32 (`f32::to_bits`), so a
    /// schedule changes it every step without recompiling; `lr` is then unused.
    pub lr_var: Option<String>,
    /// Clip the gradients by this global norm (the op then takes the squared norm as a fifth input).
    pub max_grad_norm: Option<f32>,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: Scalar,
}

impl Default for AdamWSpec {
    /// torch.optim.AdamW's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01), the step
    /// from the runtime scalar "step".
    fn default() -> Self {
        AdamWSpec {
            lr: 1e-3,
            lr_var: None,
            max_grad_norm: None,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step: Scalar::var("step"),
        }
    }
}

impl AdamWSpec {
    /// The spec with a runtime learning rate resolved into `lr` (`lr_var` read as f32 bits).
    pub fn resolved(&self, vars: &dyn Fn(&str) -> Option<u32>) -> Option<AdamWSpec> {
        let lr = match &self.lr_var {
            Some(name) => f32::from_bits(vars(name)?),
            None => self.lr,
        };
        Some(AdamWSpec { lr, lr_var: None, ..self.clone() })
    }
}

impl Op {
    /// A short name for errors, timings and pipeline keys.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Param { .. } => "param",
            Op::State { .. } => "state",
            Op::Fill { .. } => "fill",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::Unary { .. } => "unary",
            Op::Dropout { .. } => "dropout",
            Op::UnaryBackward { .. } => "unary_backward",
            Op::SumRows => "sum_rows",
            Op::Cast { .. } => "cast",
            Op::Dequantize { .. } => "dequantize",
            Op::Reshape { .. } => "reshape",
            Op::Permute0213 => "permute0213",
            Op::MatMul { .. } => "matmul",
            Op::LinearAdd => "linear_add",
            Op::LinearF32 => "linear_f32",
            Op::QMatMul { .. } => "qmatmul",
            Op::QLinearAdd { .. } => "qlinear_add",
            Op::QGlu { .. } => "qglu",
            Op::Glu { .. } => "glu",
            Op::LayerNorm { .. } => "layernorm",
            Op::LayerNormGradX { .. } => "layernorm_grad_x",
            Op::RmsNorm { .. } => "rmsnorm",
            Op::RmsNormGradX { .. } => "rmsnorm_grad_x",
            Op::NormGradGamma { .. } => "norm_grad_gamma",
            Op::Softmax { .. } => "softmax",
            Op::SoftmaxBackward => "softmax_backward",
            Op::Attention(_) => "attention",
            Op::AttentionWeights(_) => "attention_weights",
            Op::AttentionGradQ(_) => "attention_grad_q",
            Op::AttentionGradK(_) => "attention_grad_k",
            Op::AttentionGradV(_) => "attention_grad_v",
            Op::Rope { .. } => "rope",
            Op::RopeAt { .. } => "rope_at",
            Op::RopeQkvCache { .. } => "rope_qkv_cache",
            Op::AddSinusoidal { .. } => "add_sinusoidal",
            Op::Embedding => "embedding",
            Op::EmbeddingBackward { .. } => "embedding_backward",
            Op::CrossEntropy { .. } => "cross_entropy",
            Op::CrossEntropyBackward { .. } => "cross_entropy_backward",
            Op::CacheWrite { .. } => "cache_write",
            Op::CacheWriteAt => "cache_write_at",
            Op::AdamW(_) => "adamw",
            Op::SumSquares => "sum_squares",
        }
    }

    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Input { .. } | Op::Param { .. } | Op::State { .. } | Op::Fill { .. })
    }

    /// Ops whose output is the same buffer as one input (no new memory): Reshape, and the in-place updates.
    pub fn aliases_input(&self) -> Option<usize> {
        match self {
            Op::Reshape { .. } | Op::CacheWrite { .. } | Op::CacheWriteAt | Op::AdamW(_) => Some(0),
            Op::LinearAdd => Some(2),
            Op::QLinearAdd { .. } => Some(3),
            _ => None,
        }
    }
}

/// AdamW's inputs, (param, grad, m, v) for each parameter (, the squared gradient norm when `spec` clips):
/// each parameter's four and the norm, so the shape rule, the reference and the lowering read one layout.
pub fn adamw_parts<'a, T>(spec: &AdamWSpec, ins: &'a [T]) -> (std::slice::ChunksExact<'a, T>, Option<&'a T>) {
    let clip = spec.max_grad_norm.is_some() as usize;
    let (params, norm) = ins.split_at(ins.len().saturating_sub(clip));
    (params.chunks_exact(4), norm.first())
}

/// The int8 fused ops' inputs as the QMatMul products they stand for (`T`: whatever describes an input —
/// shapes, values, bindings), so the shape rule, the reference and the lowering read one layout.
/// QLinearAdd (x, wq, ws, r (, xs)): the product's (x, wq, ws (, xs)) and r.
pub fn qlinear_add_parts<T: Clone>(ins: &[T]) -> (Vec<T>, &T) {
    ([&ins[..3], &ins[4..]].concat(), &ins[3])
}

/// QGlu (x, wgq, wgs, wuq, wus (, xs)): the gate's (x, wgq, wgs (, xs)) and the up projection's
/// (x, wuq, wus (, xs)).
pub fn qglu_parts<T: Clone>(ins: &[T]) -> (Vec<T>, Vec<T>) {
    ([&ins[..3], &ins[5..]].concat(), [&ins[..1], &ins[3..]].concat())
}
