//! `wgpu-llm prune`: magnitude-prune a model's linear layers and write the pruned folder (f32 weights), with
//! the sparsity reached per layer as a table or JSON.

use std::path::Path;

use super::model_path::resolve;
use crate::error::Result;
use crate::tools::export::{model_tensors, write_model_folder};
use crate::tools::prune::{prune_model, Method};

pub fn run(
    model: Option<&str>,
    out: &Path,
    rate: Option<f64>,
    pattern: Option<&str>,
    overwrite: bool,
    json: bool,
) -> Result<()> {
    // Everything is checked before anything is written.
    let method = Method::parse(rate, pattern)?;
    if out.exists() && !overwrite {
        return Err(crate::Error::Other(format!("{}: the output exists already (pass --overwrite)", out.display())));
    }
    let path = resolve(model)?;
    let source = path.display().to_string();
    let mut m = model_tensors(&path)?;
    let report = prune_model(&mut m, method, &source)?;
    let mut pruning = method.describe();
    pruning["sparsity"] = report.sparsity.into();
    m.config["pruning"] = pruning;
    write_model_folder(out, &path, &m.config, &m.tensors, overwrite)?;
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["model"] = source.into();
        v["out"] = out.display().to_string().into();
        println!("{v}");
        return Ok(());
    }
    println!("{:<48} {:>14} {:>10} {:>9}", "layer", "shape", "params", "sparsity");
    for l in &report.layers {
        let shape = format!("{:?}", l.shape);
        println!("{:<48} {shape:>14} {:>10} {:>8.2}%", l.name, l.params, 100.0 * l.sparsity);
    }
    println!(
        "linear weights: {} of {} zero ({:.2}%); whole model: {:.2}% of {} parameters",
        report.zeros,
        report.params,
        100.0 * report.sparsity,
        100.0 * report.model_sparsity,
        report.model_params
    );
    println!("wrote {} (f32 weights)", out.display());
    Ok(())
}
