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
