//! Pruning: the maths against brute-force counts on random matrices, the CLI on tiny fixtures, bad input.

use wgpu_llm::tools::export::model_tensors;
use wgpu_llm::tools::prune::{prune_model, prune_n_m, prune_unstructured, zeros, Method};

use super::common::Rng;
use super::{cli, fixture, stderr, TempDir};

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    // Distinct magnitudes: a shuffled ramp with random signs.
    let mut v: Vec<f32> = (1..=n).map(|i| i as f32 * 0.01).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.next_u32() as usize % (i + 1));
    }
    v.iter().map(|&x| if rng.next_u32().is_multiple_of(2) { x } else { -x }).collect()
}

#[test]
fn unstructured_zeroes_exactly_the_smallest_fraction() {
    let mut rng = Rng::new(7);
    for (rows, cols) in [(1, 1), (7, 13), (16, 64), (33, 5)] {
        for rate in [0.0, 0.1, 0.3, 0.5, 0.9, 0.999] {
            let w = random(&mut rng, rows * cols);
            let mut p = w.clone();
            let z = prune_unstructured(&mut p, rate);
            let want = (rate * w.len() as f64).round() as usize;
            assert_eq!(z, want, "{rows}x{cols} rate {rate}");
            assert_eq!(zeros(&p), want);
            // Brute force: every zeroed |w| is below every kept one, and kept values are unchanged.
            let cut = w.iter().zip(&p).filter(|(_, &q)| q == 0.0).map(|(x, _)| x.abs()).fold(0.0, f32::max);
            for (x, q) in w.iter().zip(&p) {
                if *q != 0.0 {
                    assert_eq!(x, q);
                    assert!(x.abs() > cut, "kept {x} below the cut {cut}");
                }
            }
        }
    }
}

#[test]
fn n_m_keeps_the_n_largest_of_every_group() {
    let mut rng = Rng::new(11);
    for (rows, cols) in [(3, 8), (5, 12), (4, 10), (2, 3)] {
        for (n, m) in [(2, 4), (1, 4), (4, 8), (0, 2), (3, 3)] {
            let w = random(&mut rng, rows * cols);
            let mut p = w.clone();
            let z = prune_n_m(&mut p, cols, n, m);
            let mut want_zeros = 0;
            for r in 0..rows {
                for g0 in (0..cols).step_by(m) {
                    let g = g0..(g0 + m).min(cols);
                    let (orig, got) = (&w[r * cols..][g.clone()], &p[r * cols..][g.clone()]);
                    let kept = got.iter().filter(|&&x| x != 0.0).count();
                    assert_eq!(kept, n.min(orig.len()), "{rows}x{cols} {n}:{m} row {r} group {g:?}");
                    want_zeros += orig.len() - kept;
                    // The kept ones are the group's largest.
                    for (x, q) in orig.iter().zip(got) {
                        let larger = orig.iter().filter(|y| y.abs() > x.abs()).count();
                        assert_eq!(*q != 0.0, larger < n, "{x} in {orig:?}");
                    }
                }
            }
            assert_eq!(z, want_zeros);
        }
    }
}

#[test]
fn bad_methods_and_models_are_clear_errors() {
    for (rate, pattern, want) in [
        (Some(1.0), None, "--rate 1"),
        (Some(-0.1), None, "--rate -0.1"),
        (Some(f64::NAN), None, "--rate NaN"),
        (None, Some("3:2"), "N > M"),
        (None, Some("2:0"), "M is 0"),
        (None, Some("2-4"), "--pattern \"2-4\""),
        (None, Some("a:4"), "N is not"),
        (None, None, "--rate"),
    ] {
        let e = Method::parse(rate, pattern).unwrap_err().to_string();
        assert!(e.contains(want), "{rate:?} {pattern:?}: {e}");
    }
    let mut m = model_tensors(&fixture("tiny-gpt2")).unwrap();
    let e = prune_model(&mut m, Method::Unstructured { rate: 0.5 }, "tiny-gpt2").unwrap_err().to_string();
    assert!(e.contains("tiny-gpt2") && e.contains("no linear layers"), "{e}");
}

#[test]
fn prune_cli_writes_a_sparse_model_and_reports_it() {
    let tmp = TempDir::new("prune-cli");
    let out = tmp.path("pruned");
    let o = cli(&[
        "prune",
        "-m",
        fixture("tiny-llama").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--rate",
        "0.3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layers = r["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2 * 7, "q, k, v, o, gate, up, down per layer");
    for l in layers {
        let want = (0.3 * l["params"].as_f64().unwrap()).round();
        assert_eq!(l["zeros"].as_f64().unwrap(), want, "{l}");
    }
    assert!((r["sparsity"].as_f64().unwrap() - 0.3).abs() < 1e-3, "{r}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["pruning"]["method"], "unstructured");
    assert_eq!(cfg["pruning"]["rate"], 0.3);
    // Linear weights are sparse, the rest (the output head included) is as it was.
    let (before, after) = (model_tensors(&fixture("tiny-llama")).unwrap(), model_tensors(&out).unwrap());
    for (a, b) in before.tensors.iter().zip(&after.tensors) {
        let linear = after.linear.iter().any(|l| format!("{l}.weight") == a.name && l != "lm_head");
        assert_eq!(a.name, b.name);
        if linear {
            assert_eq!(zeros(&b.to_f32()), (0.3 * a.to_f32().len() as f64).round() as usize, "{}", a.name);
        } else {
            assert_eq!(a, b, "{} should stay dense", a.name);
        }
    }

    // 2:4 on BERT, as a table.
    let out2 = tmp.path("bert-2-4");
    let o =
        cli(&["prune", "-m", fixture("tiny-bert").to_str().unwrap(), "-o", out2.to_str().unwrap(), "--pattern", "2:4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("encoder.layer.0.attention.self.query") && text.contains("50.00%"), "{text}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["pruning"]["pattern"], "2:4");
    assert_eq!(cfg["pruning"]["sparsity"], 0.5);
}

#[test]
fn prune_cli_bad_input_writes_nothing() {
    let tmp = TempDir::new("prune-bad");
    let out = tmp.path("out");
    let (o_s, llama, gpt2) = (out.to_str().unwrap(), fixture("tiny-llama"), fixture("tiny-gpt2"));
    let cases: &[(&[&str], &str)] = &[
        (&["-m", llama.to_str().unwrap(), "-o", o_s, "--rate", "1.5"], "--rate 1.5"),
        (&["-m", llama.to_str().unwrap(), "-o", o_s, "--pattern", "5:4"], "N > M"),
        (&["-m", llama.to_str().unwrap(), "-o", o_s, "--pattern", "1:0"], "M is 0"),
        (&["-m", gpt2.to_str().unwrap(), "-o", o_s, "--rate", "0.5"], "no linear layers"),
        (&["-m", "/no/such/model", "-o", o_s, "--rate", "0.5"], "no such file"),
    ];
    for (args, want) in cases {
        let o = cli(&[&["prune"], *args].concat());
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains(want) && !e.contains("panicked"), "{args:?}: {e}");
        assert!(tmp.names().is_empty(), "{args:?} left {:?}", tmp.names());
    }
    std::fs::create_dir(&out).unwrap();
    let o = cli(&["prune", "-m", llama.to_str().unwrap(), "-o", o_s, "--rate", "0.5"]);
    assert!(!o.status.success() && stderr(&o).contains("exists"), "{}", stderr(&o));
}
