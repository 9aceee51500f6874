//! `cargo bench --bench kernels`: the same runner as `wgpu-llm bench kernels` (validate, then time each kernel).
//! Pass a filter as the first argument, e.g. `cargo bench --bench kernels -- gemv`.

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let gpu = match wgpu_llm::gpu::Gpu::new(&Default::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    match wgpu_llm::bench::kernels(&gpu, filter.as_deref(), 5, false) {
        Ok(rows) => wgpu_llm::bench::print(&gpu, &rows, false),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
