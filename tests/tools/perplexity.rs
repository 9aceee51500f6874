//! Perplexity: the GPU cross-entropy over sliding windows against the CPU reference's full logits of the same
//! windows (windows computed here independently, as transformers' guide loops), and the CLI's errors.

use std::collections::HashMap;

use wgpu_llm::models::ConfigSource;
use wgpu_llm::session::perplexity::{perplexity, windows, Window};
use wgpu_llm::session::{Arch, Session};
use wgpu_llm::tensor::{DType, HostTensor};

use super::common::{gpu, Rng};
use super::{cli, fixture, model_with_tokenizer, stderr, TempDir};

/// The logits [t, V] of every position of `ids` from the CPU reference interpreter.
fn cpu_logits(name: &str, ids: &[u32]) -> Vec<Vec<f64>> {
    let dir = fixture(name);
    let store = wgpu_llm::loader::open(&dir).unwrap();
    let arch = Arch::from_source(&ConfigSource::find(&dir, &store).unwrap(), &store).unwrap();
    let t = ids.len();
    let step = arch.build(t, t, t, &DType::F32.into()).unwrap();
    let mut leaves = arch.load_params(&store, &step.graph).unwrap();
    leaves.insert("ids".into(), HostTensor::u32(&[1, t], ids.to_vec()).unwrap());
    leaves.insert("last".into(), HostTensor::u32(&[t], (0..t as u32).collect()).unwrap());
    leaves.insert("pos_ids".into(), HostTensor::u32(&[1, t], (0..t as u32).collect()).unwrap());
    let vars = HashMap::from([("pos".to_string(), 0), ("len".to_string(), t as u32)]);
    let out = wgpu_llm::reference::run_graph(&step.graph, &mut leaves, &vars, &[step.logits]).unwrap();
    let v = arch.vocab();
    out[0].to_f32().chunks(v).map(|r| r.iter().map(|&x| x as f64).collect()).collect()
}

/// Perplexity as transformers' guide computes it, from CPU logits.
fn cpu_perplexity(name: &str, ids: &[u32], ctx: usize, stride: usize) -> (f64, usize, usize) {
    let (mut nll, mut count, mut n_windows, mut prev_end) = (0.0, 0, 0, 0);
    let mut begin = 0;
    while begin < ids.len() {
        let end = (begin + ctx).min(ids.len());
        let trg_len = end - prev_end;
        let logits = cpu_logits(name, &ids[begin..end]);
        // Labels: the window's last trg_len tokens; the model's shift drops the first label. A window left
        // with no label (a last window of one token) is not counted.
        n_windows += usize::from((end - begin - trg_len).max(1) < end - begin);
        for j in (end - begin - trg_len).max(1)..end - begin {
            let row = &logits[j - 1];
            let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + row.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
            nll += lse - row[ids[begin + j] as usize];
            count += 1;
        }
        prev_end = end;
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    ((nll / count as f64).exp(), count, n_windows)
}

#[test]
fn gpu_perplexity_matches_the_cpu_reference() {
    let mut rng = Rng::new(3);
    let ids: Vec<u32> = (0..37).map(|_| rng.next_u32() % 64).collect();
    for name in ["tiny-llama", "tiny-gpt2"] {
        let mut s = Session::load(gpu(), &fixture(name), DType::F32, 16).unwrap();
        for (ctx, stride) in [(16, 16), (16, 5), (12, 12), (12, 1)] {
            let p = perplexity(&mut s, &ids, ctx, stride).unwrap();
            let (ppl, scored, n_windows) = cpu_perplexity(name, &ids, ctx, stride);
            assert_eq!((p.tokens_scored, p.windows), (scored, n_windows), "{name} ctx {ctx} stride {stride}");
            let rel = (p.ppl - ppl).abs() / ppl;
            assert!(rel < 1e-5, "{name} ctx {ctx} stride {stride}: GPU {} vs CPU {ppl} (rel {rel:e})", p.ppl);
        }
        // The session still generates after scoring (the cache is reset).
        assert_eq!(s.pos, 0);
        s.forward(&[1, 2, 3]).unwrap();
    }
}

#[test]
fn windows_score_every_token_once() {
    for n in [2, 3, 10, 37] {
        for (ctx, stride) in [(4, 4), (4, 1), (4, 3), (8, 5), (64, 64)] {
            let ws = windows(n, ctx, stride).unwrap();
            let scored: usize = ws.iter().map(|w| w.end - w.begin - w.first_scored).sum();
            let expected = if stride < ctx { n - 1 } else { n - n.div_ceil(ctx) };
            assert_eq!(scored, expected, "n {n} ctx {ctx} stride {stride}: {ws:?}");
            assert!(ws.iter().all(|w| w.end - w.begin <= ctx && w.first_scored >= 1));
        }
    }
    assert_eq!(windows(5, 4, 2).unwrap()[1], Window { begin: 2, end: 5, first_scored: 2 });
    for (ctx, stride, want) in [(1, 1, "--ctx 1"), (4, 0, "--stride 0"), (4, 5, "--stride 5")] {
        let e = windows(10, ctx, stride).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn perplexity_cli_reports_and_rejects_bad_input() {
    let tmp = TempDir::new("ppl-cli");
    let model = model_with_tokenizer(&tmp, "tiny-llama");
    let text = tmp.path("text.txt");
    std::fs::write(&text, (0..40).map(|i| format!("w{}", (i * 7) % 63 + 1)).collect::<Vec<_>>().join(" ")).unwrap();
    let (m, f) = (model.to_str().unwrap(), text.to_str().unwrap());
    let o = cli(&[
        "perplexity",
        "-m",
        m,
        "-f",
        f,
        "--ctx",
        "16",
        "--stride",
        "8",
        "--max-tokens",
        "30",
        "--json",
        "--dtype",
        "f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["tokens"].as_u64(), v["tokens_scored"].as_u64(), v["text_tokens"].as_u64()),
        (Some(30), Some(29), Some(40))
    );
    assert_eq!(v["precision"], "f32");
    assert_eq!(v["prefix_only"], true);
    assert!(v["ppl"].as_f64().unwrap() > 1.0, "{v}");

    let empty = tmp.path("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    let binary = tmp.path("binary.txt");
    std::fs::write(&binary, [0x66, 0xff, 0xfe, 0x00]).unwrap();
    let (e, b) = (empty.to_str().unwrap(), binary.to_str().unwrap());
    let cases: &[(&[&str], &str)] = &[
        (&["-m", m, "-f", e], "empty"),
        (&["-m", m, "-f", b], "not UTF-8"),
        (&["-m", m, "-f", f, "--ctx", "1"], "--ctx 1"),
        (&["-m", m, "-f", f, "--stride", "0"], "--stride 0"),
        (&["-m", m, "-f", f, "--ctx", "8", "--stride", "9"], "--stride 9"),
        (&["-m", m, "-f", "/no/such/text.txt"], "/no/such/text.txt"),
        (&["-m", m, "-f", f, "--ctx", "100"], "--ctx 100"),
    ];
    for (args, want) in cases {
        let o = cli(&[&["perplexity"], *args].concat());
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains(want) && !err.contains("panicked"), "{args:?}: {err}");
    }
}
