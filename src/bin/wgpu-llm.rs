//! The `wgpu-llm` command line: argument parsing and printing only; the work is in the library.

fn main() {
    // A closed stdout (`wgpu-llm devices --json | grep -q …`, `… | head`) ends the process as for any Unix
    // tool, instead of a panic from println!.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts; SIG_DFL is a valid action for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    quiet_display_probe();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,wgpu_llm::serve=info")).init();
    if let Err(e) = wgpu_llm::cli::main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Mesa's Vulkan drivers probe for a Wayland display when the instance is created, and libwayland prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." on every command run outside a desktop
/// session (a server, CI, ssh). The engine draws nothing: when neither XDG_RUNTIME_DIR nor WAYLAND_DISPLAY is
/// set, point the probe at a private folder, where it finds no display and says nothing.
fn quiet_display_probe() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        use std::os::unix::fs::DirBuilderExt;
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let dir = std::env::temp_dir().join(format!("wgpu-llm-runtime-{uid}"));
        if std::fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).is_ok() {
            // Called first thing in main, before any thread starts (set_var is not thread-safe).
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}
