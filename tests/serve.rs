//! `wgpu-llm serve` end to end on 127.0.0.1 and an ephemeral port: /predict with the course's cases, the
//! OpenAI-style endpoints (plain and streamed, compared with each other and across concurrent clients),
//! embeddings, a client that disconnects mid-stream, the official openai Python client, and a graceful
//! shutdown with a request in flight.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

#[path = "kernels/common.rs"]
mod common;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tiny classifier with the fixture tokenizer, as a classifier folder.
fn classifier() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-llm-serve-cls-{}", std::process::id()));
    common::tiny_classifier(&dir);
    dir
}

fn start(extra: &[&str]) -> Server {
    let cls = classifier();
    let mut args = vec!["serve", "--port", "0", "--ctx", "512", "--embedder", "minilm", "--max-body", "65536"];
    let c = cls.display().to_string();
    args.extend(["--classifier", c.as_str()]);
    args.extend(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpu-llm"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let base = loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("serve exited before listening: {seen}");
        }
        seen += &line;
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    Server { child, base }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build()
}

/// (status, JSON body) of a request; error statuses are answers too.
fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let req = agent().request(method, url).set("Content-Type", "application/json");
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url} {status}: not JSON ({e}): {text}")))
}

/// The status and JSON body the server answers to a POST announcing `len` body bytes, of which it sends
/// `sent`: the limit's worth plus one byte is all the server needs to refuse it, and sending no more than it
/// reads keeps its close from resetting the connection before the answer is read (a client that keeps
/// sending a refused body can meet a reset, as the server need not read what it refuses).
fn post_announcing(base: &str, path: &str, len: usize, sent: usize) -> (u16, Value) {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").unwrap();
    s.write_all(&vec![b'a'; sent]).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status: {resp}"));
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    // A chunked body: the JSON sits between its size lines.
    let json = body.find('{').zip(body.rfind('}')).map_or("", |(a, b)| &body[a..=b]);
    (status, serde_json::from_str(json).unwrap_or_else(|e| panic!("413 body not JSON ({e}): {resp}")))
}

fn chat_body(prompt: &str, n: usize, stream: bool) -> String {
    json!({"model": "x", "messages": [{"role": "user", "content": prompt}], "max_tokens": n, "temperature": 0,
           "stream": stream})
    .to_string()
}

/// A streamed chat: the concatenated deltas, and whether it ended with [DONE] after a chunk with usage.
fn stream_chat(base: &str, prompt: &str, n: usize) -> (String, bool) {
    let r = agent()
        .post(&format!("{base}/v1/chat/completions"))
        .set("Content-Type", "application/json")
        .send_string(&chat_body(prompt, n, true))
        .unwrap();
    assert!(r.header("content-type").unwrap_or("").starts_with("text/event-stream"));
    let (mut text, mut usage, mut done) = (String::new(), false, false);
    for line in BufReader::new(r.into_reader()).lines() {
        let line = line.unwrap();
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            done = usage;
            break;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        text += v["choices"][0]["delta"]["content"].as_str().unwrap_or("");
        usage |= v["usage"]["completion_tokens"].as_u64().is_some();
    }
    (text, done)
}

fn chat(base: &str, prompt: &str, n: usize) -> String {
    let (s, v) = call("POST", &format!("{base}/v1/chat/completions"), Some(&chat_body(prompt, n, false)));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
}

#[test]
fn serve_end_to_end() {
    let srv = start(&[]);
    let b = srv.base.clone();
    assert_eq!(call("GET", &format!("{b}/health"), None), (200, json!({"status": "ok"})));
    let (s, models) = call("GET", &format!("{b}/v1/models"), None);
    assert_eq!(s, 200);
    assert!(models["data"].as_array().unwrap().len() == 3, "{models}");

    // /predict, the course's cases.
    let p = format!("{b}/predict");
    let (s, v) = call("POST", &p, Some(r#"{"text": "a good day"}"#));
    assert_eq!(s, 200, "{v}");
    let row: Vec<f64> = v["predictions"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(row.len(), 3);
    assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    assert!(["negative", "neutral", "positive"].contains(&v["label"].as_str().unwrap()), "{v}");
    assert!(
        (v["probabilities"][v["label"].as_str().unwrap()].as_f64().unwrap() - v["confidence"].as_f64().unwrap()).abs()
            < 1e-12
    );
    let (s, v) = call("POST", &p, Some(r#"{"text": ["a good day", "this is bad"]}"#));
    assert_eq!((s, v["predictions"].as_array().unwrap().len()), (200, 2), "{v}");
    for (body, status, want) in [
        ("{}", 400, "No text provided"),
        (r#"{"text": ""}"#, 400, "No text provided"),
        (r#"{"text": 42}"#, 400, "text must be a string"),
        (r#"{"text": "unclosed"#, 400, "not valid JSON"),
        (r#"["text"]"#, 400, "JSON object"),
    ] {
        let (s, v) = call("POST", &p, Some(body));
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let (s, v) = post_announcing(&b, "/predict", 100_000, 65_537);
    assert_eq!(s, 413, "{v}");
    assert!(v["error"].is_string(), "{v}");
    let (s, v) = call("GET", &format!("{b}/no/such"), None);
    assert_eq!(s, 404, "{v}");

    // Chat, plain and streamed: the same greedy text.
    let plain = chat(&b, "What is the capital of France?", 8);
    assert!(!plain.is_empty());
    let (streamed, done) = stream_chat(&b, "What is the capital of France?", 8);
    assert_eq!(streamed, plain);
    assert!(done, "the stream must end with a usage chunk and [DONE]");
    let (s, v) = call(
        "POST",
        &format!("{b}/v1/completions"),
        Some(r#"{"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}"#),
    );
    assert_eq!((s, v["object"].as_str()), (200, Some("text_completion")), "{v}");
    for bad in [
        r#"{"messages": []}"#,
        r#"{"messages": [{"role": "user", "content": "hi"}], "temperature": -1}"#,
        r#"{"messages": [{"role": "king", "content": "hi"}]}"#,
    ] {
        let (s, v) = call("POST", &format!("{b}/v1/chat/completions"), Some(bad));
        assert!(s == 400 && v["error"].is_string(), "{bad}: {s} {v}");
    }

    // Under load: 16 concurrent clients, 4 requests each (streamed and not), every answer equal to its
    // prompt's answer alone (no mixed-up sequences), and decode steps that batched several sequences.
    let prompts = ["Name a fruit.", "Name a color.", "Count to three.", "Say hello."];
    let alone: Vec<String> = prompts.iter().map(|q| chat(&b, q, 5)).collect();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || {
                (0..4)
                    .map(|k| {
                        let q = prompts[(i + k) % 4];
                        if (i + k) % 2 == 0 {
                            chat(&b, q, 5)
                        } else {
                            stream_chat(&b, q, 5).0
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        for (k, got) in h.join().unwrap().into_iter().enumerate() {
            assert_eq!(got, alone[(i + k) % 4], "client {i} request {k}");
        }
    }
    let m = agent().get(&format!("{b}/metrics")).call().unwrap().into_string().unwrap();
    let metric = |name: &str| -> f64 {
        m.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    let (rows, steps) = (metric("wgpu_llm_batch_size_sum "), metric("wgpu_llm_batch_size_count "));
    assert!(steps > 0.0 && rows / steps > 2.0, "decode steps did not batch: {rows} rows in {steps} steps\n{m}");

    // Embeddings (MiniLM): unit vectors of 384.
    let (s, v) = call("POST", &format!("{b}/v1/embeddings"), Some(r#"{"input": ["hello world"], "model": "x"}"#));
    assert_eq!(s, 200, "{v}");
    let e: Vec<f64> = v["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(e.len(), 384);
    assert!((e.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-3);

    // A client that goes away mid-stream cancels its sequence; the server keeps serving.
    {
        let r = agent()
            .post(&format!("{b}/v1/chat/completions"))
            .set("Content-Type", "application/json")
            .send_string(&chat_body("Tell me a long story about a dragon.", 200, true))
            .unwrap();
        let mut rd = r.into_reader();
        let mut first = [0u8; 64];
        rd.read_exact(&mut first).unwrap();
    }
    let cancelled = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        let t = agent().get(&format!("{b}/metrics")).call().unwrap().into_string().unwrap();
        t.lines().any(|l| l.starts_with("wgpu_llm_cancelled_total ") && !l.ends_with(" 0"))
    });
    assert!(cancelled, "the disconnected stream was not cancelled");
    assert_eq!(chat(&b, "Name a fruit.", 5), alone[0]);

    // The official openai client.
    python_client("openai_client.py", &b, "pip install openai");
}

/// Run tests/serve/SCRIPT against the server at `base`; it must print "ok" (what `install` names is what it
/// needs).
fn python_client(script: &str, base: &str, install: &str) {
    let out = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/serve").join(script))
        .arg(base)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ok"),
        "{script} ({install}): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// --api-key guards every endpoint but /health; SIGTERM with a request in flight: it finishes, new ones are
/// refused, the process exits 0.
#[cfg(unix)]
#[test]
fn serve_auth_and_graceful_shutdown() {
    let mut srv = start(&["--api-key", "sesame"]);
    let b = srv.base.clone();
    assert_eq!(call("GET", &format!("{b}/health"), None).0, 200);
    let (s, v) = call("POST", &format!("{b}/predict"), Some(r#"{"text": "hi"}"#));
    assert_eq!(s, 401, "{v}");
    let authed = agent()
        .post(&format!("{b}/predict"))
        .set("Authorization", "Bearer sesame")
        .set("Content-Type", "application/json")
        .send_string(r#"{"text": "hi"}"#);
    assert_eq!(authed.map(|r| r.status()).ok(), Some(200));
    let b2 = b.clone();
    let inflight = std::thread::spawn(move || {
        agent()
            .post(&format!("{b2}/v1/chat/completions"))
            .set("Authorization", "Bearer sesame")
            .set("Content-Type", "application/json")
            .send_string(&chat_body("Count from one to ten.", 24, false))
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: a plain kill(2) of our own child process.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGTERM) };
    assert_eq!(inflight.join().unwrap().expect("the request in flight finishes"), 200);
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
    assert!(agent().get(&format!("{b}/health")).call().is_err(), "the server still answers after shutdown");
}

/// A chat model folder that answers fast: the tiny Llama with the ChatML tokenizer of the LoRA fixtures.
fn tiny_chat_model() -> PathBuf {
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = std::env::temp_dir().join(format!("wgpu-llm-serve-tiny-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (from, f) in [
        ("tiny-llama", "config.json"),
        ("tiny-llama", "model.safetensors"),
        ("tiny-llama-lora", "tokenizer.json"),
        ("tiny-llama-lora", "tokenizer_config.json"),
    ] {
        std::fs::copy(fx.join(from).join(f), dir.join(f)).unwrap();
    }
    dir
}

/// The chat page in headless Chromium (Debian's chromium and chromedriver, driven by selenium): a typed
/// message gets a streamed reply and the tokens/s line. Then schemathesis fuzzes every endpoint from the
/// OpenAPI description serve publishes (a bounded number of cases, fixed seed): no 5xx, no crash.
#[test]
fn serve_chat_page_in_a_browser_and_schema_fuzzing() {
    let model = tiny_chat_model();
    let srv = start(&["-m", model.to_str().unwrap()]);
    let b = srv.base.clone();
    python_client("chat_page.py", &b, "apt-get install chromium chromium-driver; pip install selenium");
    let work = std::env::temp_dir().join(format!("wgpu-llm-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let st = Command::new("schemathesis")
        .current_dir(&work)
        .args(["run", &format!("{b}/openapi.json"), "--checks", "not_a_server_error", "--max-examples", "30"])
        .args(["--seed", "7", "--request-timeout", "120"])
        .output()
        .unwrap_or_else(|e| panic!("schemathesis (pip install schemathesis): {e}"));
    let out = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success(), "schemathesis found server errors:\n{out}{}", String::from_utf8_lossy(&st.stderr));
    assert!(out.contains("passed"), "{out}");
    assert_eq!(call("GET", &format!("{b}/health"), None).0, 200, "the server survived the fuzzing");
}
