//! Failure paths that must be clear errors, never panics or aborts: a model larger than the memory budget,
//! a GPU validation error outside any error scope (wgpu's default handler panics), crash-safe folder writes.

use std::path::PathBuf;

use wgpu_llm::gpu::{Gpu, GpuOptions};
use wgpu_llm::session::Session;
use wgpu_llm::tensor::DType;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn a_model_beyond_the_memory_budget_is_an_error_naming_the_budget_and_the_flags() {
    let gpu = Gpu::new(&GpuOptions { memory_budget: Some(96 << 10), ..GpuOptions::default() }).unwrap();
    let e = Session::load(&gpu, &fixtures().join("tiny-llama"), DType::F32, 64).err().expect("over the budget");
    let msg = e.to_string();
    assert!(msg.contains("memory budget (98304 bytes") && msg.contains("KV cache") && msg.contains("--ctx"), "{msg}");
    assert_eq!(gpu.allocated_bytes(), 0, "the pre-flight plan fails before anything is allocated");
    // The same model fits a budget large enough, and the count is what it allocated.
    let gpu = Gpu::new(&GpuOptions { memory_budget: Some(64 << 20), ..GpuOptions::default() }).unwrap();
    let mut s = Session::load(&gpu, &fixtures().join("tiny-llama"), DType::F32, 64).unwrap();
    assert!(s.forward(&[1, 2, 3]).unwrap().len() == 64);
    assert!(gpu.allocated_bytes() > 96 << 10 && gpu.allocated_bytes() < 64 << 20);
}

#[test]
fn the_preflight_plan_matches_what_a_plan_allocates() {
    use wgpu_llm::session::preflight::MemoryPlan;
    // A storage-buffer adapter (no texture copies): the estimate is the plan's own accounting.
    let gpu = Gpu::new(&GpuOptions { texture_reads: Some(false), ..GpuOptions::default() }).unwrap();
    let path = fixtures().join("tiny-llama");
    let plan = MemoryPlan::of(&path, &DType::F32.into(), 48).unwrap();
    let s = Session::load(&gpu, &path, DType::F32, 48).unwrap();
    // The session's decode plan: shared weights and KV cache, and its transient pool (plus small scratch
    // buffers some kernels keep, which the estimate leaves out).
    let (got, want) = (s.gpu_bytes(), plan.weights + plan.kv_cache + plan.decode_activations);
    assert!(got >= want && got - want <= 1024.max(want / 100), "allocated {got}, planned {want}: {plan:?}");
    assert!(plan.prefill_activations > plan.decode_activations);
    assert_eq!(plan.largest_tensor.0, "model.embed_tokens.weight");
    // The CLI prints it.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-llm"))
        .args(["inspect", path.to_str().unwrap(), "--memory", "--ctx", "48", "--dtype", "f32", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"].as_u64(), Some(plan.total));
}

#[test]
fn an_invalid_copy_outside_any_scope_is_an_error_not_a_panic() {
    let gpu = Gpu::new(&GpuOptions::default()).unwrap();
    let a = gpu.buffer("a", 256).unwrap();
    let b = gpu.buffer("b", 256).unwrap();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&a, 0, &b, 0, a.size() + 4096);
    gpu.queue.submit([enc.finish()]);
    let e = gpu.wait().expect_err("the oversized copy is reported");
    assert!(e.to_string().contains("GPU error in waiting for the GPU"), "{e}");
    // Reported once: the device goes on working.
    gpu.wait().unwrap();
    let c = gpu.buffer("c", 256).unwrap();
    assert_eq!(c.size(), a.size());
}

#[test]
fn memory_budgets_parse_with_suffixes() {
    use wgpu_llm::gpu::parse_bytes;
    assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
    assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
    assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
    assert_eq!(parse_bytes("4096").unwrap(), 4096);
    assert!(parse_bytes("lots").is_err() && parse_bytes("-1M").is_err());
}

/// Every tensor of a model folder, read in full (a torn file fails here).
fn read_all(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let store = wgpu_llm::loader::open(dir).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llama");
    store.names().map(|n| (n.to_string(), store.to_f32(n).unwrap())).collect()
}

#[test]
fn killing_a_writer_at_random_points_never_leaves_a_broken_or_partial_output() {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("ckpt");
    let (model, lora) = (fixtures().join("tiny-llama"), fixtures().join("tiny-llama-lora/peft_init"));
    let args = |o: &std::path::Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-llm"));
        c.args(["merge", "--overwrite", "-m"]).arg(&model).arg("--lora").arg(&lora).arg("-o").arg(o);
        c.stderr(std::process::Stdio::null());
        c
    };
    let t0 = std::time::Instant::now();
    assert!(args(&out).status().unwrap().success());
    let took = t0.elapsed().as_micros() as u64;
    let want = read_all(&out);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for trial in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = args(&out).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_micros(seed % (took + 1)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_eq!(read_all(&out), want, "trial {trial}: the previous output must stay whole");
    }
    // The next write cleans up what killed writers left, and only complete folders were ever at `out`.
    assert!(args(&out).status().unwrap().success());
    let left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert_eq!(left, vec!["ckpt".to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tiny Llama with the LoRA fixture's character tokenizer, as a model folder.
fn tiny_chat_model(dir: &std::path::Path) -> std::path::PathBuf {
    let m = dir.join("tiny");
    std::fs::create_dir_all(&m).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("tiny-llama").join(f), m.join(f)).unwrap();
    }
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("tiny-llama-lora").join(f), m.join(f)).unwrap();
    }
    m
}

#[test]
fn inputs_beyond_the_context_or_vocabulary_are_clear_errors_or_documented_truncation() {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let m = tiny_chat_model(&dir);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-llm")).args(args).output().expect("the binary runs")
    };
    let ms = m.to_str().unwrap();
    // A prompt longer than the context: an error that says so and names the flag.
    let long = "who are you? ".repeat(10);
    let o = run(&["generate", "-m", ms, "--ctx", "32", "-p", &long, "-n", "4"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("context") && e.contains("--ctx"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    // -n beyond the context: generation stops when the context is full (documented), exit 0.
    let o = run(&["generate", "-m", ms, "--ctx", "32", "-p", "who are you?", "-n", "1000", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (p, n) = (v["prompt_tokens"].as_array().unwrap().len(), v["tokens"].as_array().unwrap().len());
    assert!(p + n <= 33 && n >= 1, "prompt {p} + generated {n} within a context of 32: {v}");
    // A vocabulary id out of range, through the library.
    let gpu = Gpu::new(&GpuOptions::default()).unwrap();
    let mut s = Session::load(&gpu, &m, DType::F32, 32).unwrap();
    let e = s.forward(&[1, 64]).unwrap_err().to_string();
    assert!(e.contains("token id 64") && e.contains("vocabulary"), "{e}");
    let e = s.forward(&[1; 40]).unwrap_err().to_string();
    assert!(e.contains("context is full") && e.contains("--ctx"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pipeline cache persists where the backend has one (Vulkan): a run that creates pipelines writes its
/// file, the next run starts from it and gives the same logits, and a damaged file is ignored, not handed to
/// the driver: the model still loads and runs.
#[test]
fn the_pipeline_cache_is_written_reread_and_a_damaged_one_ignored() {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-pipelines-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = GpuOptions { pipeline_cache: Some(dir.clone()), ..GpuOptions::default() };
    let run = || {
        let gpu = Gpu::new(&opts).unwrap();
        let has = gpu.has_pipeline_cache();
        let mut s = Session::load(&gpu, &fixtures().join("tiny-llama"), DType::F32, 16).unwrap();
        let logits = s.forward(&[1, 2, 3]).unwrap();
        drop(s);
        drop(gpu); // saves the cache
        (has, logits)
    };
    let (has, first) = run();
    let files = || -> Vec<PathBuf> {
        std::fs::read_dir(&dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
    };
    let vulkan = Gpu::new(&GpuOptions::default()).unwrap().info.backend == wgpu::Backend::Vulkan;
    assert_eq!(has, vulkan, "a pipeline cache exactly where the backend offers one");
    if !has {
        assert!(files().is_empty());
        return;
    }
    let written = files();
    assert_eq!(written.len(), 1, "one file for this adapter and driver: {written:?}");
    let bytes = std::fs::read(&written[0]).unwrap();
    assert!(wgpu_llm::gpu::disk_cache::unwrap_blob(&bytes).is_some(), "the file holds a whole blob");
    assert_eq!(run().1, first, "a run from the cache");
    std::fs::write(&written[0], &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(run().1, first, "a run from a damaged file");
    assert_eq!(files().len(), 1, "no temporary file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
