//! `quantize`: a model folder with int8 linear weights (block-32 int8 + f32 scales, `quant`'s format) that
//! every loader reads directly, and the scheme recorded in config.json's `quantization_config`.
//!
//! What stays float: embeddings and norms (they are not linear layers), the output head (`lm_head`) unless
//! `keep` says otherwise, every layer whose name contains a `keep` fragment, and layers whose input width is
//! not a multiple of 32. Modes: `weight-only` (activations stay float), `dynamic` (activations quantized per
//! token and block on the fly, W8A8 where the adapter has the int8 dot product), `static` (activation scales
//! per block calibrated on text run through the float model on the GPU, stored as `{layer}.input_scale`).

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::graph::ActQuant;
use crate::models::Precision;
use crate::quant::{QTensor, BLOCK, METHOD};
use crate::session::calibrate::Calibration;
use crate::tensor::DType;
use crate::tools::export::{model_tensors, write_model_folder, ExportTensor};
use crate::tools::smooth;

/// Calibration text for static mode.
pub struct CalibrationText<'a> {
    pub file: &'a Path,
    /// Windows (decoders) or lines (encoders) to run.
    pub samples: usize,
    /// Tokens per decoder window.
    pub len: usize,
    /// The percentile of the tokens' block maxima that sets a static scale (100: the maximum).
    pub percentile: f64,
    /// Smoothing with this α before the scales are taken (`crate::tools::smooth`).
    pub smooth: Option<f64>,
    /// Layers (name fragments) that quantize their inputs per token instead of with a calibrated scale;
    /// `None`: `default_dynamic` of the architecture.
    pub dynamic: Option<Vec<String>>,
}

/// The layers a static scheme quantizes per token by default: the architecture's (`models::arch::Family::
/// dynamic`; in the Llama family `mlp.down_proj`, whose heavy-tailed input one calibrated scale per block
/// serves badly). None for encoders and unknown architectures.
pub fn default_dynamic(arch: &str) -> Vec<String> {
    crate::models::arch::family(arch).map(|f| f.dynamic.iter().map(|s| s.to_string()).collect()).unwrap_or_default()
}

#[derive(Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub shape: Vec<usize>,
    /// NMSE of the int8 weights against the float ones.
    pub weight_nmse: f64,
    /// Static layers (unsmoothed): how much coarser the calibrated scales round the calibration tokens than
    /// per-token scales (`Calibration::noise_ratio`); layers with large ratios are candidates for `--dynamic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act_noise_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct QuantizeReport {
    pub mode: String,
    pub layers: Vec<LayerReport>,
    pub kept_float: Vec<String>,
    /// Bytes of every tensor as f32, and as written (int8 values + scales for the quantized layers).
    pub f32_bytes: u64,
    pub bytes: u64,
    pub calibration_tokens: usize,
    /// The smoothing α and how many producer → layers groups it rescaled (static mode).
    pub smooth_alpha: Option<f64>,
    pub smoothed_groups: usize,
    /// Static mode: the layers (name fragments) that quantize their inputs per token.
    pub dynamic: Vec<String>,
}

/// Read a calibration file: UTF-8 text with something in it.
fn read_text(file: &Path) -> Result<String> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Format { file: file.display().to_string(), detail: format!("cannot read: {e}") })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Format {
        file: file.display().to_string(),
        detail: "the calibration file is not UTF-8 text".into(),
    })?;
    if text.trim().is_empty() {
        return Err(Error::Format { file: file.display().to_string(), detail: "the calibration file is empty".into() });
    }
    Ok(text)
}

/// Run the calibration text through the float model at `path`.
fn calibrate(gpu: &crate::gpu::Gpu, path: &Path, arch: &str, c: &CalibrationText, text: &str) -> Result<Calibration> {
    let tok = crate::tokenizer::Tokenizer::from_path(path)?;
    let mut cal = Calibration::default();
    if arch == "bert" {
        let mut enc = crate::session::encoder::Encoder::load(gpu, path, DType::F32)?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()).take(c.samples.max(1)) {
            let mut ids = tok.encode(line, true)?;
            crate::session::encoder::Encoder::truncate(&mut ids, 256);
            enc.calibrate(&[ids], &mut cal)?;
        }
    } else {
        let len = c.len.max(2);
        let mut s = crate::session::Session::load(gpu, path, DType::F32, len)?;
        let ids = tok.encode(text, true)?;
        for w in ids.chunks(len).filter(|w| w.len() >= 2).take(c.samples.max(1)) {
            s.calibrate(w, &mut cal)?;
        }
    }
    if cal.rows == 0 {
        return Err(Error::Format {
            file: c.file.display().to_string(),
            detail: "the calibration text gave no tokens to run".into(),
        });
    }
    Ok(cal)
}

/// Quantize the model at `path` into the folder `out` (written whole or not at all). `gpu` is opened only for
/// static calibration.
pub fn quantize_model(
    gpu: &dyn Fn() -> Result<crate::gpu::Gpu>,
    path: &Path,
    out: &Path,
    mode: ActQuant,
    keep: Vec<String>,
    calibration: Option<CalibrationText>,
    overwrite: bool,
) -> Result<QuantizeReport> {
    if out.exists() && !overwrite {
        return Err(Error::Other(format!("{}: the output exists already (pass --overwrite)", out.display())));
    }
    let calibration = match (mode, calibration) {
        (ActQuant::Static, None) => {
            return Err(Error::Other("--mode static needs calibration text (--calibration FILE)".into()))
        }
        (ActQuant::Static, Some(c)) => Some(c),
        (_, Some(_)) => return Err(Error::Other("--calibration applies to --mode static only".into())),
        (_, None) => None,
    };
    // Read (and reject bad) calibration text before any work.
    let text = calibration.as_ref().map(|c| read_text(c.file)).transpose()?;
    let mut m = model_tensors(path)?;
    let arch = m.config["model_type"].as_str().unwrap_or("").to_string();
    let f32_bytes: u64 = m.tensors.iter().map(|t| 4 * t.shape.iter().product::<usize>() as u64).sum();
    let dynamic = match &calibration {
        Some(c) => c.dynamic.clone().unwrap_or_else(|| default_dynamic(&arch)),
        None => vec![],
    };
    let prec =
        Precision { dtype: DType::F32, int8: Some(mode), keep: keep.clone(), dynamic: dynamic.clone(), weights: None };
    // A tied head that is to run int8 gets its own copy of the embedding table to quantize.
    let mut linear = m.linear.clone();
    let tied = m.config["tie_word_embeddings"].as_bool().unwrap_or(false);
    let find = |ts: &[ExportTensor], n: &str| ts.iter().position(|t| t.name == n);
    if let Some(e) = find(&m.tensors, "model.embed_tokens.weight") {
        let c = m.tensors[e].shape[1];
        if tied && find(&m.tensors, "lm_head.weight").is_none() && prec.int8_for("lm_head", c).is_some() {
            let t = &m.tensors[e];
            m.tensors.push(ExportTensor::f32("lm_head.weight", &t.shape.clone(), t.to_f32()));
            if !linear.iter().any(|l| l == "lm_head") {
                linear.push("lm_head".into());
            }
        }
    }
    // A tied head's int8 copy is not smoothed: loaded with its head float, the model would read the table.
    let head = !tied
        && find(&m.tensors, "lm_head.weight")
            .is_some_and(|i| prec.int8_for("lm_head", m.tensors[i].shape[1]).is_some());
    // Smoothing groups only when smoothing was asked (they need config fields plain quantization does not).
    let alpha = calibration.as_ref().and_then(|c| c.smooth);
    let groups: Vec<smooth::Group> = match alpha {
        Some(_) => smooth::llama_groups(&m.config, &m.tensors, head)?
            .into_iter()
            .filter(|g| g.consumers.iter().any(|n| prec.int8_for(n, g.map.len()).is_some()))
            .collect(),
        None => vec![],
    };
    if let Some(a) = alpha {
        if !(0.0..=1.0).contains(&a) {
            return Err(Error::Other(format!("--smooth {a}: α must lie in [0, 1]")));
        }
        if groups.is_empty() {
            return Err(Error::Other(format!("--smooth {a}: smoothing applies to Llama-family models, not {arch:?}")));
        }
    }
    let scales = match &calibration {
        Some(c) => {
            if !(c.percentile > 0.0 && c.percentile <= 100.0) {
                return Err(Error::Other(format!("--calib-percentile {} is outside (0, 100]", c.percentile)));
            }
            if alpha.is_some() && c.percentile != 100.0 {
                return Err(Error::Other(
                    "smoothing takes its scales from the channel maxima: use --calib-percentile 100 or --smooth none"
                        .into(),
                ));
            }
            let cal = calibrate(&gpu()?, path, &arch, c, text.as_deref().unwrap_or_default())?;
            match alpha {
                Some(a) => {
                    let mut act = cal.channel_maxima.clone();
                    for g in &groups {
                        let s = smooth::factors(g, &act, &m.tensors, a)?;
                        smooth::apply(g, &s, &mut m.tensors, &mut act)?;
                    }
                    Some((Calibration::scales_from_channels(&act), cal.rows, None))
                }
                None => Some((cal.scales(c.percentile), cal.rows, Some(cal))),
            }
        }
        None => None,
    };
    let mut layers = vec![];
    let mut kept_float = vec![];
    for name in &linear {
        let wname = format!("{name}.weight");
        let i = find(&m.tensors, &wname)
            .ok_or_else(|| Error::Other(format!("linear layer {name} has no weight {wname} in the model")))?;
        let shape = m.tensors[i].shape.clone();
        let [rows, cols] = shape[..] else {
            return Err(Error::Other(format!("{wname} is not 2-D: {shape:?}")));
        };
        if prec.int8_for(name, cols).is_none() {
            kept_float.push(name.clone());
            continue;
        }
        let w = m.tensors[i].to_f32();
        let q = QTensor::quantize(&w, rows, cols)?;
        let dq = q.dequantize();
        let err: f64 = w.iter().zip(&dq).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let sig: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum();
        let mut report = LayerReport {
            name: name.clone(),
            shape: shape.clone(),
            weight_nmse: err / sig.max(1e-30),
            act_noise_ratio: None,
        };
        m.tensors[i] = ExportTensor::i8(&wname, &shape, q.q);
        m.tensors.push(ExportTensor::f32(&format!("{wname}_scale"), &[rows, cols / BLOCK], q.scales));
        if let (Some((sc, _, cal)), Some(ActQuant::Static)) = (&scales, prec.int8_for(name, cols)) {
            let s = sc.get(name).ok_or_else(|| {
                Error::Other(format!("calibration never reached layer {name} (no static scales for it)"))
            })?;
            report.act_noise_ratio = cal.as_ref().and_then(|c| c.noise_ratio(name, s));
            m.tensors.push(ExportTensor::f32(&format!("{name}.input_scale"), &[cols / BLOCK], s.clone()));
        }
        layers.push(report);
    }
    if layers.is_empty() {
        return Err(Error::Other(format!("no linear layer of {} can run int8 (all kept float)", path.display())));
    }
    m.config["quantization_config"] = serde_json::json!({
        "quant_method": METHOD,
        "weights": "int8, blocks of 32 along the input dim, one f32 scale per block (symmetric, max/127)",
        "activations": mode.name(),
        "block_size": BLOCK,
        "keep": keep,
        "dynamic": dynamic,
        "calibration": calibration.as_ref().map(|c| serde_json::json!({
            "file": c.file.display().to_string(), "tokens": scales.as_ref().map_or(0, |s| s.1),
            "percentile": c.percentile,
            "smooth_alpha": alpha, "smoothed_groups": groups.len(),
        })),
    });
    write_model_folder(out, path, &m.config, &m.tensors, overwrite)?;
    let bytes = m
        .tensors
        .iter()
        .map(|t| {
            let n = t.shape.iter().product::<usize>() as u64;
            match t.data {
                crate::tools::export::Payload::I8(_) => n,
                crate::tools::export::Payload::F16(_) => 2 * n,
                crate::tools::export::Payload::F32(_) => 4 * n,
            }
        })
        .sum();
    Ok(QuantizeReport {
        mode: mode.name().into(),
        layers,
        kept_float,
        f32_bytes,
        bytes,
        calibration_tokens: scales.map_or(0, |s| s.1),
        smooth_alpha: alpha,
        smoothed_groups: groups.len(),
        dynamic,
    })
}
