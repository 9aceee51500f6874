//! The `wgpu-llm` command line: argument parsing and printing only; the work is in the library.

fn main() {
    // A closed stdout (`wgpu-llm devices --json | grep -q …`, `… | head`) ends the process as for any Unix
    // tool, instead of a panic from println!.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts; SIG_DFL is a valid action for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_llm::serve=info")).init();
    if let Err(e) = wgpu_llm::cli::main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
