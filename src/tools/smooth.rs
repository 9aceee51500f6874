//! SmoothQuant-style smoothing for static int8 (Xiao et al., 2022): a linear layer's input channel j is
//! divided by s_j and its weight column j multiplied by s_j, which leaves the product unchanged and moves the
//! range of the outlier channels from the activations (one static scale per block of 32 for every token)
//! into the weights (one scale per block of each row). The division is folded into what produces the input,
//! so nothing runs at inference:
//!   - a norm's gamma (and beta) for the layers it feeds (Llama: input_layernorm → q, k, v;
//!     post_attention_layernorm → gate, up; model.norm → an int8 head);
//!   - the rows of v_proj for o_proj (attention output channels are mixes of v's; with grouped-query
//!     attention the heads sharing a kv head share the factor);
//!   - the rows of up_proj for down_proj (its input is silu(gate) ⊙ up).
//!
//! s_j = max|x_j|^α / max|W_{·j}|^(1−α), with the activation maxima from calibration and the weight maximum over
//! every consumer layer; α = 0 leaves the activations alone, α = 1 moves all of their range into the weights.
//! Only the Llama family is smoothed (in a post-LN encoder the norm's output is also the residual stream,
//! so no factor can be folded into it).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::tools::export::ExportTensor;

/// What divides the smoothed channels.
#[derive(Clone, Debug, PartialEq)]
pub enum Producer {
    /// An elementwise norm: gamma (and beta) entries.
    Norm { weight: String, bias: Option<String> },
    /// The output rows of a linear layer (weight rows and bias entries).
    Rows { weight: String, bias: Option<String> },
}

/// One producer, the linear layers reading its output, and how their input channels map onto the producer's
/// channels (`map[c]`: the producer channel consumer input channel c comes from).
#[derive(Clone, Debug)]
pub struct Group {
    pub producer: Producer,
    pub consumers: Vec<String>,
    pub map: Vec<usize>,
    pub width: usize,
}

/// The groups of a Llama-family model with `tensors` in Hugging Face naming; empty for other architectures.
pub fn llama_groups(config: &serde_json::Value, tensors: &[ExportTensor], head: bool) -> Result<Vec<Group>> {
    let num = |k: &str| config[k].as_u64().map(|v| v as usize);
    let arch = config["model_type"].as_str().unwrap_or("");
    if !crate::models::arch::family(arch).is_some_and(|f| f.smoothable) {
        return Ok(vec![]);
    }
    let missing = |k: &str| Error::Other(format!("smoothing: config.json has no {k}"));
    let layers = num("num_hidden_layers").ok_or_else(|| missing("num_hidden_layers"))?;
    let c = num("hidden_size").ok_or_else(|| missing("hidden_size"))?;
    let n_head = num("num_attention_heads").ok_or_else(|| missing("num_attention_heads"))?;
    let n_kv = num("num_key_value_heads").unwrap_or(n_head);
    let hd = num("head_dim").unwrap_or(c / n_head.max(1));
    let inter = num("intermediate_size").ok_or_else(|| missing("intermediate_size"))?;
    let has = |n: &str| tensors.iter().any(|t| t.name == n);
    let bias = |stem: &str| Some(format!("{stem}.bias")).filter(|b| has(b));
    let ident = |n: usize| (0..n).collect::<Vec<_>>();
    let group_size = n_head / n_kv.max(1);
    let mut groups = vec![];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        let norm = |n: &str| Producer::Norm { weight: format!("{p}.{n}.weight"), bias: None };
        groups.push(Group {
            producer: norm("input_layernorm"),
            consumers: ["q_proj", "k_proj", "v_proj"].iter().map(|n| format!("{p}.self_attn.{n}")).collect(),
            map: ident(c),
            width: c,
        });
        let v = format!("{p}.self_attn.v_proj");
        groups.push(Group {
            producer: Producer::Rows { weight: format!("{v}.weight"), bias: bias(&v) },
            consumers: vec![format!("{p}.self_attn.o_proj")],
            // o_proj input channel h·hd + d reads v row (h / group)·hd + d.
            map: (0..n_head * hd).map(|ch| (ch / hd) / group_size.max(1) * hd + ch % hd).collect(),
            width: n_kv * hd,
        });
        groups.push(Group {
            producer: norm("post_attention_layernorm"),
            consumers: vec![format!("{p}.mlp.gate_proj"), format!("{p}.mlp.up_proj")],
            map: ident(c),
            width: c,
        });
        let up = format!("{p}.mlp.up_proj");
        groups.push(Group {
            producer: Producer::Rows { weight: format!("{up}.weight"), bias: bias(&up) },
            consumers: vec![format!("{p}.mlp.down_proj")],
            map: ident(inter),
            width: inter,
        });
    }
    if head && has("lm_head.weight") {
        groups.push(Group {
            producer: Producer::Norm { weight: "model.norm.weight".into(), bias: None },
            consumers: vec!["lm_head".into()],
            map: ident(c),
            width: c,
        });
    }
    Ok(groups)
}

/// The factors s of one group from the consumers' input channel maxima (`act`, by layer) and weights.
pub fn factors(
    group: &Group,
    act: &BTreeMap<String, Vec<f32>>,
    tensors: &[ExportTensor],
    alpha: f64,
) -> Result<Vec<f32>> {
    let (Producer::Norm { weight, .. } | Producer::Rows { weight, .. }) = &group.producer;
    let produced = find(tensors, weight)?.shape.first().copied().unwrap_or(0);
    if produced != group.width || group.map.iter().any(|&p| p >= group.width) {
        return Err(Error::Other(format!("smoothing: {weight} has {produced} channels, the group {}", group.width)));
    }
    let mut amax = vec![0f32; group.width];
    let mut wmax = vec![0f32; group.width];
    for name in &group.consumers {
        let a =
            act.get(name).ok_or_else(|| Error::Other(format!("smoothing: calibration never reached layer {name}")))?;
        let w = find(tensors, &format!("{name}.weight"))?;
        let k = *w.shape.last().unwrap_or(&0);
        if a.len() != group.map.len() || k != group.map.len() {
            return Err(Error::Other(format!(
                "smoothing: layer {name} has {k} input channels and {} calibrated ones, the group {}",
                a.len(),
                group.map.len()
            )));
        }
        for (ch, &p) in group.map.iter().enumerate() {
            amax[p] = amax[p].max(a[ch]);
        }
        for row in w.to_f32().chunks(k) {
            for (ch, &p) in group.map.iter().enumerate() {
                wmax[p] = wmax[p].max(row[ch].abs());
            }
        }
    }
    Ok(amax
        .iter()
        .zip(&wmax)
        .map(|(&a, &w)| {
            if a <= 0.0 || w <= 0.0 {
                return 1.0;
            }
            let s = (a as f64).powf(alpha) / (w as f64).powf(1.0 - alpha);
            (s as f32).clamp(1e-5, 1e5)
        })
        .collect())
}

fn find<'a>(tensors: &'a [ExportTensor], name: &str) -> Result<&'a ExportTensor> {
    tensors.iter().find(|t| t.name == name).ok_or_else(|| Error::Other(format!("smoothing: the model has no {name}")))
}

fn update(tensors: &mut [ExportTensor], name: &str, f: impl FnOnce(&mut Vec<f32>, &[usize])) -> Result<()> {
    let t = tensors
        .iter_mut()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::Other(format!("smoothing: the model has no {name}")))?;
    let mut v = t.to_f32();
    f(&mut v, &t.shape);
    *t = ExportTensor::f32(name, &t.shape.clone(), v);
    Ok(())
}

/// Fold the factors `s` of `group` into the tensors, and divide the consumers' calibrated input maxima by
/// them (so the static scales are those of the smoothed model).
pub fn apply(
    group: &Group,
    s: &[f32],
    tensors: &mut [ExportTensor],
    act: &mut BTreeMap<String, Vec<f32>>,
) -> Result<()> {
    let (weight, bias, rows) = match &group.producer {
        Producer::Norm { weight, bias } => (weight, bias, false),
        Producer::Rows { weight, bias } => (weight, bias, true),
    };
    update(tensors, weight, |v, shape| {
        let row = if rows { shape.last().copied().unwrap_or(1) } else { 1 };
        for (p, chunk) in v.chunks_mut(row).enumerate() {
            chunk.iter_mut().for_each(|x| *x /= s[p]);
        }
    })?;
    if let Some(b) = bias {
        update(tensors, b, |v, _| v.iter_mut().zip(s).for_each(|(x, s)| *x /= s))?;
    }
    for name in &group.consumers {
        update(tensors, &format!("{name}.weight"), |v, shape| {
            let k = shape.last().copied().unwrap_or(1);
            for row in v.chunks_mut(k) {
                for (ch, &p) in group.map.iter().enumerate() {
                    row[ch] *= s[p];
                }
            }
        })?;
        if let Some(a) = act.get_mut(name) {
            for (ch, &p) in group.map.iter().enumerate() {
                a[ch] /= s[p];
            }
        }
    }
    Ok(())
}
