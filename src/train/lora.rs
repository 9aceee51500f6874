//! LoRA adapters ("LoRA: Low-Rank Adaptation of Large Language Models", Hu et al., 2021) in Hugging Face
//! PEFT's format: a target linear layer y = x·Wᵀ gains (alpha/r)·(x·Aᵀ)·Bᵀ with A [r, in] and B [out, r];
//! W stays frozen. On disk: `adapter_config.json` (PEFT's `LoraConfig`) and `adapter_model.safetensors` with
//! `base_model.model.{layer}.lora_A.weight` / `.lora_B.weight`. In the engine's graphs the two matrices are
//! the params `{layer}.lora_A.weight` / `{layer}.lora_B.weight` beside the layer's own.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::HostTensor;

/// PEFT's prefix of every tensor name of a causal-LM adapter.
pub const PEFT_PREFIX: &str = "base_model.model.";
/// The projections of a Llama-family layer, the targets `--lora-targets all` means.
pub const LLAMA_TARGETS: &[&str] = &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    pub dropout: f32,
    /// Layer names' last components (`q_proj`, ...).
    pub targets: Vec<String>,
    /// rsLoRA: scale alpha/√r instead of alpha/r.
    pub rslora: bool,
}

impl LoraConfig {
    pub fn scale(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.r as f32).sqrt()
        } else {
            self.alpha / self.r as f32
        }
    }

    /// Whether the linear layer `name` (`model.layers.0.self_attn.q_proj`) is a target.
    pub fn targets_layer(&self, name: &str) -> bool {
        let last = name.rsplit('.').next().unwrap_or(name);
        self.targets.iter().any(|t| t == last)
    }

    /// `adapter_config.json` as PEFT writes it (the fields PEFT 0.21 reads; the rest take its defaults).
    pub fn peft_json(&self, base_model: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": self.rslora,
            "use_dora": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "rank_pattern": {},
            "alpha_pattern": {},
        })
    }

    /// PEFT's `adapter_config.json`; what this engine does not compute (DoRA, per-layer ranks, trained
    /// biases, extra saved modules) is an error naming the field.
    pub fn from_peft_json(file: &Path, v: &serde_json::Value) -> Result<LoraConfig> {
        let bad = |detail: String| Error::Format { file: file.display().to_string(), detail };
        let peft_type = v["peft_type"].as_str().unwrap_or("LORA");
        if peft_type != "LORA" {
            return Err(bad(format!("peft_type {peft_type:?}: only LORA adapters are supported")));
        }
        let r = v["r"]
            .as_u64()
            .filter(|&r| r > 0)
            .ok_or_else(|| bad(format!("r must be a positive integer: {}", v["r"])))?;
        let alpha = v["lora_alpha"].as_f64().unwrap_or(8.0) as f32;
        let targets: Vec<String> = match &v["target_modules"] {
            serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str().map(String::from)).collect(),
            serde_json::Value::String(s) if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => vec![s.clone()],
            other => {
                return Err(bad(format!("target_modules {other}: a list of layer names is supported, not a regex")))
            }
        };
        // PEFT stores a set: its order means nothing.
        let mut targets = targets;
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Err(bad("target_modules is empty".into()));
        }
        let unsupported = [
            ("use_dora", v["use_dora"].as_bool() == Some(true)),
            ("fan_in_fan_out", v["fan_in_fan_out"].as_bool() == Some(true)),
            ("bias", v["bias"].as_str().is_some_and(|b| b != "none")),
            ("rank_pattern", v["rank_pattern"].as_object().is_some_and(|o| !o.is_empty())),
            ("alpha_pattern", v["alpha_pattern"].as_object().is_some_and(|o| !o.is_empty())),
            ("modules_to_save", v["modules_to_save"].as_array().is_some_and(|a| !a.is_empty())),
        ];
        if let Some((k, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(bad(format!("{k} = {}: not supported by this engine's LoRA", v[*k])));
        }
        Ok(LoraConfig {
            r: r as usize,
            alpha,
            dropout: v["lora_dropout"].as_f64().unwrap_or(0.0) as f32,
            targets,
            rslora: v["use_rslora"].as_bool() == Some(true),
        })
    }
}

/// A loaded adapter: its config and, per target layer, A [r, in] and B [out, r] as f32.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub config: LoraConfig,
    /// layer name → (A, B)
    pub layers: BTreeMap<String, (HostTensor, HostTensor)>,
}

impl Adapter {
    /// Read a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`).
    pub fn load(dir: &Path) -> Result<Adapter> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::Format {
            file: cfg_path.display().to_string(),
            detail: format!("cannot read ({e}): --lora takes a PEFT adapter folder"),
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Format { file: cfg_path.display().to_string(), detail: format!("not JSON: {e}") })?;
        let config = LoraConfig::from_peft_json(&cfg_path, &v)?;
        let file = dir.join("adapter_model.safetensors");
        let store = crate::loader::open(&file)?;
        let bad = |detail: String| Error::Format { file: file.display().to_string(), detail };
        let mut parts: BTreeMap<String, [Option<HostTensor>; 2]> = BTreeMap::new();
        for name in store.names() {
            let stem = name.strip_prefix(PEFT_PREFIX).unwrap_or(name);
            let (layer, k) = match (stem.strip_suffix(".lora_A.weight"), stem.strip_suffix(".lora_B.weight")) {
                (Some(l), _) => (l, 0),
                (_, Some(l)) => (l, 1),
                _ => return Err(bad(format!("tensor {name:?} is not a LoRA A or B matrix"))),
            };
            let e = store.entry(name)?;
            if e.shape.len() != 2 {
                return Err(bad(format!("{name} has shape {:?}, not a matrix", e.shape)));
            }
            let t = HostTensor::f32(&e.shape, store.to_f32(name)?)?;
            parts.entry(layer.to_string()).or_default()[k] = Some(t);
        }
        let mut layers = BTreeMap::new();
        for (layer, [a, b]) in parts {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(bad(format!("{layer} has only one of lora_A and lora_B")));
            };
            if a.shape[0] != config.r || b.shape[1] != config.r {
                return Err(bad(format!(
                    "{layer}: lora_A {:?} and lora_B {:?} do not have rank r = {}",
                    a.shape, b.shape, config.r
                )));
            }
            layers.insert(layer, (a, b));
        }
        if layers.is_empty() {
            return Err(bad("holds no LoRA matrices".into()));
        }
        Ok(Adapter { config, layers })
    }

    /// Check the adapter against a model's linear layers (name → [out, in]): every adapted layer exists and
    /// has the adapter's in and out sizes. An adapter made for another model fails here, naming the layer.
    pub fn check(&self, linear: &BTreeMap<String, [usize; 2]>, model: &str) -> Result<()> {
        for (layer, (a, b)) in &self.layers {
            let Some(&[out, inp]) = linear.get(layer) else {
                return Err(Error::Shape {
                    op: "lora".into(),
                    detail: format!(
                        "the adapter adapts {layer}, which {model} does not have: it was made for another model"
                    ),
                    shapes: vec![],
                });
            };
            if a.shape[1] != inp || b.shape[0] != out {
                return Err(Error::Shape {
                    op: "lora".into(),
                    detail: format!(
                        "{layer} is [{out}, {inp}] in {model}, the adapter's A {:?} and B {:?} fit another model",
                        a.shape, b.shape
                    ),
                    shapes: vec![a.shape.clone(), b.shape.clone()],
                });
            }
        }
        Ok(())
    }

    /// W + scale·B·A for a layer's weight `{layer}.weight` [out, in] (any other tensor comes back as it is).
    pub fn merge(&self, name: &str, w: HostTensor) -> Result<HostTensor> {
        let Some((a, b)) = name.strip_suffix(".weight").and_then(|l| self.layers.get(l)) else { return Ok(w) };
        let (out, inp, r) = (b.shape[0], a.shape[1], self.config.r);
        if w.shape != [out, inp] {
            return Err(Error::Shape {
                op: "lora merge".into(),
                detail: format!("{name} is {:?}, the adapter's B·A is [{out}, {inp}]", w.shape),
                shapes: vec![w.shape.clone()],
            });
        }
        let (a, b) = (a.to_f32(), b.to_f32());
        let mut m = w.to_f32();
        let s = self.config.scale();
        for o in 0..out {
            let row = &mut m[o * inp..(o + 1) * inp];
            for k in 0..r {
                let bk = s * b[o * r + k];
                if bk == 0.0 {
                    continue;
                }
                for (x, av) in row.iter_mut().zip(&a[k * inp..(k + 1) * inp]) {
                    *x += bk * av;
                }
            }
        }
        HostTensor::f32(&w.shape, m)
    }
}

/// Write a PEFT adapter folder: `tensors` are (layer, A, B) with their shapes; written to a temporary
/// folder and renamed into place (`crate::tools::export::write_folder`).
pub fn save(
    out: &Path,
    config: &LoraConfig,
    base_model: &str,
    tensors: &[(String, HostTensor, HostTensor)],
) -> Result<()> {
    use crate::tools::export::ExportTensor;
    let mut st = vec![];
    for (layer, a, b) in tensors {
        st.push(ExportTensor::f32(&format!("{PEFT_PREFIX}{layer}.lora_A.weight"), &a.shape, a.to_f32()));
        st.push(ExportTensor::f32(&format!("{PEFT_PREFIX}{layer}.lora_B.weight"), &b.shape, b.to_f32()));
    }
    let json = config.peft_json(base_model);
    crate::tools::export::write_folder(out, true, &|dir| {
        crate::tools::export::write_json(&dir.join("adapter_config.json"), &json)?;
        crate::tools::export::write_safetensors(&dir.join("adapter_model.safetensors"), &st)
    })
}

/// PEFT's initialisation of A: Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in), seeded per layer.
pub fn init_a(layer: &str, r: usize, inp: usize, seed: u64) -> Result<HostTensor> {
    let mut rng = super::SplitMix(layer.bytes().fold(seed, |h, c| h.wrapping_mul(31).wrapping_add(c as u64)));
    let bound = 1.0 / (inp as f64).sqrt();
    HostTensor::f32(&[r, inp], (0..r * inp).map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32).collect())
}
