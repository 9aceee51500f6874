//! `wgpu-llm quantize`: write an int8 model folder (see `crate::tools::quantize`) and report each layer's weight
//! error and the model's bytes.

use std::path::Path;

use super::model_path::resolve;
use crate::error::{Error, Result};
use crate::graph::ActQuant;
use crate::tools::quantize::{quantize_model, CalibrationText};

pub struct Args<'a> {
    pub model: Option<&'a str>,
    pub out: &'a Path,
    pub mode: &'a str,
    pub calibration: Option<&'a Path>,
    pub calib_samples: usize,
    pub calib_len: usize,
    pub calib_percentile: f64,
    pub smooth: Option<f64>,
    pub dynamic: Option<&'a str>,
    pub keep: Option<&'a str>,
    pub overwrite: bool,
    pub json: bool,
}

pub fn run(gpu: &dyn Fn() -> Result<crate::gpu::Gpu>, a: Args) -> Result<()> {
    let mode = ActQuant::parse(a.mode)
        .ok_or_else(|| Error::Other(format!("unknown --mode {:?} (weight-only, dynamic, static)", a.mode)))?;
    let path = resolve(a.model)?;
    if a.calibration.is_none() && (a.smooth.is_some() || a.dynamic.is_some()) {
        return Err(Error::Other("--smooth and --dynamic apply to --mode static (with --calibration)".into()));
    }
    let calibration = a.calibration.map(|file| CalibrationText {
        file,
        samples: a.calib_samples,
        len: a.calib_len,
        percentile: a.calib_percentile,
        smooth: a.smooth,
        dynamic: a.dynamic.map(|d| crate::models::parse_keep(Some(d))),
    });
    let keep = crate::models::parse_keep(a.keep);
    let r = quantize_model(gpu, &path, a.out, mode, keep, calibration, a.overwrite)?;
    if a.json {
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        v["model"] = path.display().to_string().into();
        v["out"] = a.out.display().to_string().into();
        println!("{v}");
        return Ok(());
    }
    println!("{:<48} {:>14} {:>12} {:>10}", "layer", "shape", "weight NMSE", "act noise");
    for l in &r.layers {
        let noise = l.act_noise_ratio.map_or("-".into(), |r| format!("{r:.1}×"));
        println!("{:<48} {:>14} {:>12.3e} {noise:>10}", l.name, format!("{:?}", l.shape), l.weight_nmse);
    }
    if !r.kept_float.is_empty() {
        println!("kept float: {}", r.kept_float.join(", "));
    }
    if r.calibration_tokens > 0 {
        println!("static activation scales from {} calibration tokens", r.calibration_tokens);
    }
    if !r.dynamic.is_empty() {
        println!("quantized per token (not calibrated): layers matching {}", r.dynamic.join(", "));
    }
    if let Some(a) = r.smooth_alpha {
        println!("smoothed {} groups of layers (α {a})", r.smoothed_groups);
    }
    println!(
        "{} layers int8 ({}); model {:.1} MB as f32 → {:.1} MB written; wrote {}",
        r.layers.len(),
        r.mode,
        r.f32_bytes as f64 / 1e6,
        r.bytes as f64 / 1e6,
        a.out.display()
    );
    Ok(())
}
