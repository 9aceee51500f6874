//! `bench all`'s SVG charts (plotters' SVG backend): the roofline (arithmetic intensity against achieved
//! GFLOP/s, with the measured bandwidth and compute ceilings as lines), decode and prefill tokens/s per
//! dtype, and the GPU time by op of one decode step and of one 256-token prefill.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;
use crate::error::{Error, Result};

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format { file: path.display().to_string(), detail: format!("cannot draw: {e}") }
}

fn median_of(r: &Report, section: &str, name: &str) -> Option<f64> {
    r.figures.iter().find(|f| f.section == section && f.name == name).map(|f| f.median)
}

/// Draw every chart the report has data for into `dir`; returns their file names.
pub fn draw(dir: &Path, r: &Report) -> Result<Vec<String>> {
    let mut out = vec![];
    if !r.roofline.is_empty() {
        roofline(&dir.join("roofline.svg"), r)?;
        out.push("roofline.svg".to_string());
    }
    let dtypes: Vec<(String, f64, f64)> = ["f32", "f16", "int8", "w8a8"]
        .iter()
        .filter_map(|d| {
            let s = format!("SmolLM2 {d}");
            let dec = median_of(r, "models", &format!("{s}: decode"))?;
            let pre = median_of(r, "models", &format!("{s}: prefill at 256 tokens"))?;
            Some((d.to_string(), dec, pre))
        })
        .collect();
    if !dtypes.is_empty() {
        let bars: Vec<(String, f64)> = dtypes.iter().map(|(d, dec, _)| (format!("decode {d}"), *dec)).collect();
        bar_chart(&dir.join("decode_tokens_per_sec.svg"), "SmolLM2 decode", "tokens/s", &bars)?;
        let bars: Vec<(String, f64)> = dtypes.iter().map(|(d, _, pre)| (format!("prefill {d}"), *pre)).collect();
        bar_chart(&dir.join("prefill_tokens_per_sec.svg"), "SmolLM2 prefill, 256 tokens", "tokens/s", &bars)?;
        out.extend(["decode_tokens_per_sec.svg".to_string(), "prefill_tokens_per_sec.svg".to_string()]);
    }
    for (file, what, p) in [
        ("decode_ops.svg", "one decode step", &r.decode_profile),
        ("prefill_ops.svg", "one 256-token prefill", &r.prefill_profile),
    ] {
        if p.is_empty() {
            continue;
        }
        let bars: Vec<(String, f64)> = p.iter().take(10).map(|(op, us, _)| (op.clone(), us / 1e3)).collect();
        bar_chart(&dir.join(file), &format!("{}: GPU time of {what} by op", r.profiled), "ms", &bars)?;
        out.push(file.to_string());
    }
    Ok(out)
}

fn roofline(path: &Path, r: &Report) -> Result<()> {
    let bw = median_of(r, "ceilings", "copy bandwidth").unwrap_or(1.0);
    let peaks: Vec<(String, f64)> = r
        .figures
        .iter()
        .filter(|f| f.section == "ceilings" && f.name.starts_with("best GEMM"))
        .map(|f| (f.name.clone(), f.median))
        .collect();
    let (mut x0, mut x1) = (f64::INFINITY, 0f64);
    let (mut y0, mut y1) = (f64::INFINITY, 0f64);
    for p in &r.roofline {
        (x0, x1) = (x0.min(p.intensity), x1.max(p.intensity));
        (y0, y1) = (y0.min(p.gflops), y1.max(p.gflops));
    }
    for (_, v) in &peaks {
        y1 = y1.max(*v);
    }
    let (x0, x1) = ((x0 / 2.0).max(1e-3), (x1 * 2.0).max(1.0));
    let (y0, y1) = ((y0 / 2.0).max(1e-3), (y1 * 2.0).max(1.0));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("roofline: {}", r.adapter), ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("arithmetic intensity (FLOP per byte)")
        .y_desc("GFLOP/s")
        .draw()
        .map_err(|e| err(path, e))?;
    // The bandwidth roof: GFLOP/s = GB/s × FLOP/byte, up to the highest compute ceiling.
    // The bandwidth roof rises to the highest compute ceiling.
    let top = peaks.iter().map(|p| p.1).fold(0f64, f64::max);
    let knee = if top > 0.0 { (top / bw).clamp(x0, x1) } else { x1 };
    chart
        .draw_series(LineSeries::new([(x0, bw * x0), (knee, bw * knee)], &BLUE))
        .map_err(|e| err(path, e))?
        .label(format!("copy bandwidth {bw:.1} GB/s"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    for (i, (name, peak)) in peaks.iter().enumerate() {
        let color = Palette99::pick(i + 1).to_rgba();
        chart
            .draw_series(LineSeries::new([(x0, *peak), (x1, *peak)], color))
            .map_err(|e| err(path, e))?
            .label(format!("{name} {peak:.1} GFLOP/s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .draw_series(r.roofline.iter().map(|p| Circle::new((p.intensity, p.gflops), 4, RED.filled())))
        .map_err(|e| err(path, e))?
        .label("kernels")
        .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// Horizontal bars, one per (label, value), the first at the top, each labelled inside with its name and
/// value.
fn bar_chart(path: &Path, title: &str, unit: &str, bars: &[(String, f64)]) -> Result<()> {
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).fold(0f64, f64::max).max(1e-9) * 1.15;
    let root = SVGBackend::new(path, (900, 90 + 36 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(8)
        .build_cartesian_2d(0f64..top, 0f64..n as f64)
        .map_err(|e| err(path, e))?;
    chart.configure_mesh().disable_y_mesh().disable_y_axis().x_desc(unit).draw().map_err(|e| err(path, e))?;
    // Bar i at rows n − 1 − i .. n − i (the first on top).
    let row = |i: usize| (n - 1 - i) as f64;
    chart
        .draw_series(
            bars.iter().enumerate().map(|(i, (_, v))| {
                Rectangle::new([(0.0, row(i) + 0.12), (*v, row(i) + 0.88)], BLUE.mix(0.35).filled())
            }),
        )
        .map_err(|e| err(path, e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            Text::new(format!("{name}  {}", super::report::num(*v)), (top * 0.005, row(i) + 0.62), ("sans-serif", 14))
        }))
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
