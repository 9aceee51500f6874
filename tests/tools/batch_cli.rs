//! `generate` with several prompts runs them as one batch and prints each prompt's continuation as the
//! single-prompt command does.

use super::{cli, model_with_tokenizer, stderr, TempDir};

#[test]
fn generate_with_several_prompts_matches_one_by_one() {
    let dir = TempDir::new("batch-cli");
    let m = model_with_tokenizer(&dir, "tiny-llama");
    let m = m.to_str().unwrap();
    let prompts = ["w5 w9 w13", "w2 w40 w41 w7 w7 w63"];
    let one = |p: &str| -> serde_json::Value {
        let o = cli(&["generate", "-m", m, "-p", p, "-n", "4", "--json", "--dtype", "f32"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // f32: the batched GEMMs and the single-row GEMVs round differently, and in f16 that could flip a near
    // tie of the random tiny model's greedy choice.
    let o = cli(&["generate", "-m", m, "-p", prompts[0], "-p", prompts[1], "-n", "4", "--json", "--dtype", "f32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let batch: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(batch["batch"], 2);
    for (i, p) in prompts.iter().enumerate() {
        let single = one(p);
        assert_eq!(batch["results"][i]["tokens"], single["tokens"], "prompt {i}");
        assert_eq!(batch["results"][i]["prompt_tokens"], single["prompt_tokens"], "prompt {i}");
    }
}
