//! Per-kernel GPU time of one continuous-batching decode step of SmolLM2 with N sequences
//! (`cargo run --release --example slots_profile -- MODEL N`).
use wgpu_llm::gpu::{Gpu, GpuOptions};
use wgpu_llm::session::Session;
use wgpu_llm::tensor::DType;

fn main() -> wgpu_llm::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model, n): (&str, usize) = (&args[1], args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8));
    let gpu = Gpu::new(&GpuOptions::default())?;
    let mut s = Session::load(&gpu, std::path::Path::new(model), DType::F16, 256)?;
    s.open_slots(n)?;
    for slot in 0..n {
        s.prefill_slot(slot, &[1, 2, 3, 4 + slot as u32, 5, 6, 7, 8])?;
    }
    let toks: Vec<(usize, u32)> = (0..n).map(|i| (i, 10 + i as u32)).collect();
    s.step_slots(&toks)?; // warm
    let prof = s.profile_slots(&toks)?;
    let mut by: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for t in &prof {
        let e = by.entry(format!("{} {}", t.op, t.kernel)).or_default();
        e.0 += t.micros;
        e.1 += 1;
    }
    let total: f64 = by.values().map(|v| v.0).sum();
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("{n} rows: {:.1} ms in {} dispatches", total / 1e3, prof.len());
    for (k, (us, c)) in v.iter().take(12) {
        println!("  {k:<48} {:>8.1} ms {:>4}", us / 1e3, c);
    }
    Ok(())
}
