//! Every input that ever crashed a fuzz target (or that a target must survive: loop and recursion bombs,
//! counts and sizes beyond the file), replayed on stable through the target's own body
//! (`wgpu_llm::fuzzing`): tests/fuzz_regressions/TARGET/*. Each must return, without a panic, in under a few
//! seconds (libFuzzer's own limit is 1 s an input; this machine is slow and unoptimised here).

use std::time::{Duration, Instant};

#[test]
fn every_regression_input_returns_quickly_without_a_panic() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut ran = 0;
    for (target, _) in wgpu_llm::fuzzing::TARGETS {
        let Ok(rd) = std::fs::read_dir(root.join(target)) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            let t0 = Instant::now();
            wgpu_llm::fuzzing::run_file(target, &p).unwrap();
            let took = t0.elapsed();
            assert!(took < Duration::from_secs(5), "{target} {}: {took:?}", p.display());
            ran += 1;
        }
    }
    assert!(ran >= 7, "only {ran} regression inputs found");
}

#[test]
fn hostile_chat_templates_are_errors_not_hangs() {
    use wgpu_llm::tokenizer::ChatTemplate;
    let msgs = [("user", "hi")];
    for src in [
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{{ messages[0].content * 1000 }}{% endfor %}",
    ] {
        let t0 = Instant::now();
        let r = ChatTemplate::new(src, "", "").and_then(|t| t.render(&msgs, true));
        assert!(r.is_err(), "{src} rendered {} bytes", r.map(|s| s.len()).unwrap_or(0));
        assert!(t0.elapsed() < Duration::from_secs(5), "{src}: {:?}", t0.elapsed());
    }
    // A real template is unaffected by the bounds: 200 messages render.
    let t = ChatTemplate::chatml();
    let long: Vec<(&str, &str)> =
        (0..200).map(|i| if i % 2 == 0 { ("user", "hello there") } else { ("assistant", "hi") }).collect();
    assert!(t.render(&long, true).unwrap().len() > 200 * 20);
}
