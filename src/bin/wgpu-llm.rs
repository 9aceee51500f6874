//! The `wgpu-llm` command line: argument parsing and printing only; the work is in the library.

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = wgpu_llm::cli::main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
