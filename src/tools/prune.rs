//! Magnitude pruning of the linear layers' weights: unstructured (zero the fraction `rate` of the smallest
//! |w| of each weight tensor) or N:M structured (in every group of M consecutive weights along the input dim,
//! keep the N largest |w|; the form sparse tensor cores run at 2:4). Embeddings, norms, biases and the head
//! stay dense. The sparsity reached is counted from the pruned values, not assumed.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::tools::export::ModelTensors;

/// How to prune.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    /// Zero the fraction `rate` ∈ [0, 1) of each weight tensor's entries with the smallest |w|.
    Unstructured { rate: f64 },
    /// In every group of `m` consecutive weights of a row keep the `n` largest |w| (a shorter last group of a
    /// row keeps at most `n` too).
    #[serde(rename = "n:m")]
    NM { n: usize, m: usize },
}

impl Method {
    /// `--rate` or `--pattern N:M`, checked.
    pub fn parse(rate: Option<f64>, pattern: Option<&str>) -> Result<Self> {
        match (rate, pattern) {
            (_, Some(p)) => {
                let bad = |why: &str| {
                    Error::Other(format!("--pattern {p:?}: {why} (expected N:M with N ≤ M, M ≥ 1, e.g. 2:4)"))
                };
                let (n, m) = p.split_once(':').ok_or_else(|| bad("no ':'"))?;
                let n: usize = n.trim().parse().map_err(|_| bad("N is not a whole number"))?;
                let m: usize = m.trim().parse().map_err(|_| bad("M is not a whole number"))?;
                if m == 0 {
                    return Err(bad("M is 0"));
                }
                if n > m {
                    return Err(bad("N > M"));
                }
                Ok(Method::NM { n, m })
            }
            (Some(rate), None) => {
                if !(0.0..1.0).contains(&rate) {
                    return Err(Error::Other(format!("--rate {rate} is outside [0, 1)")));
                }
                Ok(Method::Unstructured { rate })
            }
            (None, None) => Err(Error::Other("prune needs --rate R or --pattern N:M".into())),
        }
    }

    /// What config.json records under `pruning` (with the sparsity reached added).
    pub fn describe(&self) -> serde_json::Value {
        match *self {
            Method::Unstructured { rate } => serde_json::json!({"method": "unstructured", "rate": rate}),
            Method::NM { n, m } => serde_json::json!({"method": "n:m", "pattern": format!("{n}:{m}")}),
        }
    }
}

/// Zero the `round(rate · len)` entries of `w` with the smallest |w| (exactly that many, ties broken by
/// position). Returns the number of zeros in `w` afterwards.
pub fn prune_unstructured(w: &mut [f32], rate: f64) -> usize {
    let k = ((rate * w.len() as f64).round() as usize).min(w.len());
    if k > 0 {
        let mut idx: Vec<usize> = (0..w.len()).collect();
        idx.select_nth_unstable_by(k - 1, |&a, &b| w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b)));
        for &i in &idx[..k] {
            w[i] = 0.0;
        }
    }
    zeros(w)
}

/// N:M pruning of `w` [rows, cols] along each row (the input dim of an [out, in] linear weight). Returns the
/// number of zeros afterwards.
pub fn prune_n_m(w: &mut [f32], cols: usize, n: usize, m: usize) -> usize {
    if cols > 0 && m > 0 {
        let mut order: Vec<usize> = Vec::with_capacity(m);
        for row in w.chunks_mut(cols) {
            for group in row.chunks_mut(m) {
                if group.len() <= n {
                    continue;
                }
                order.clear();
                order.extend(0..group.len());
                // Largest |w| first; the first n survive.
                order.sort_by(|&a, &b| group[b].abs().total_cmp(&group[a].abs()).then(a.cmp(&b)));
                for &i in &order[n..] {
                    group[i] = 0.0;
                }
            }
        }
    }
    zeros(w)
}

pub fn zeros(w: &[f32]) -> usize {
    w.iter().filter(|&&x| x == 0.0).count()
}

/// The sparsity reached in one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSparsity {
    pub name: String,
    pub shape: Vec<usize>,
    pub params: usize,
    pub zeros: usize,
    pub sparsity: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    #[serde(flatten)]
    pub method: Method,
    pub layers: Vec<LayerSparsity>,
    /// Weights of the pruned layers, zeros among them, and their fraction.
    pub params: usize,
    pub zeros: usize,
    pub sparsity: f64,
    /// Zeros among all the model's parameters (embeddings, norms and head included).
    pub model_params: usize,
    pub model_sparsity: f64,
}

/// Prune every linear layer's weight of `model` in place and count the sparsity reached. The output head
/// (`lm_head`, a linear layer when untied) stays dense, like the embeddings.
pub fn prune_model(model: &mut ModelTensors, method: Method, source: &str) -> Result<PruneReport> {
    let linear: Vec<String> = model.linear.iter().filter(|n| n.as_str() != "lm_head").cloned().collect();
    if linear.is_empty() {
        return Err(Error::Unsupported {
            op: "prune".into(),
            detail: format!(
                "{source} has no linear layers to prune (only `Linear` layers are pruned; GPT-2's Conv1D layers \
                 are not)"
            ),
        });
    }
    let mut layers = vec![];
    for name in &linear {
        let wname = format!("{name}.weight");
        let t = model.tensors.iter_mut().find(|t| t.name == wname).ok_or_else(|| Error::Format {
            file: source.into(),
            detail: format!("linear layer {name} has no tensor {wname}"),
        })?;
        let shape = t.shape.clone();
        let cols = match shape.as_slice() {
            [_, c] => *c,
            _ => return Err(Error::Format { file: source.into(), detail: format!("{wname} is not 2-D: {shape:?}") }),
        };
        let w = t.f32_mut().ok_or_else(|| Error::Unsupported {
            op: "prune".into(),
            detail: format!("{wname} is not stored as f32"),
        })?;
        let z = match method {
            Method::Unstructured { rate } => prune_unstructured(w, rate),
            Method::NM { n, m } => prune_n_m(w, cols, n, m),
        };
        let params = w.len();
        layers.push(LayerSparsity {
            name: name.clone(),
            shape,
            params,
            zeros: z,
            sparsity: z as f64 / params.max(1) as f64,
        });
    }
    let params: usize = layers.iter().map(|l| l.params).sum();
    let zeros_n: usize = layers.iter().map(|l| l.zeros).sum();
    let model_params: usize = model.tensors.iter().map(|t| t.shape.iter().product::<usize>()).sum();
    let model_zeros: usize = model.tensors.iter().map(|t| zeros(&t.to_f32())).sum();
    Ok(PruneReport {
        method,
        layers,
        params,
        zeros: zeros_n,
        sparsity: zeros_n as f64 / params.max(1) as f64,
        model_params,
        model_sparsity: model_zeros as f64 / model_params.max(1) as f64,
    })
}
