#!/usr/bin/env bash
# Fuzz every reader of outside input with cargo fuzz (libFuzzer, nightly toolchain, AddressSanitizer):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 600 s, every target)
# Targets (fuzz/fuzz_targets/, bodies in src/fuzzing.rs): gguf, safetensors, safetensors_index, config,
# tokenizer, template, int8, data, serve_body. Seeds come from the committed fixtures; the working corpus grows in
# fuzz/corpus/TARGET. Limits: 1 s an input (-timeout), 256 MiB for one allocation (-malloc_limit_mb: inputs are
# at most 64 KiB, so any bigger allocation is not bounded by the file), 2 GiB in all.
# A crash is copied to tests/fuzz_regressions/TARGET/ (replayed on stable by `cargo test --test
# fuzz_regressions`) and the script exits non-zero. It ends with one line per target:
#   target  runs  executions  coverage  features  crashes
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf safetensors safetensors_index config tokenizer template int8 data serve_body)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || { echo "fuzz.sh: needs the nightly toolchain" >&2; exit 2; }

seed() { # seed TARGET FILE [PREFIX_BYTE]
  local d="fuzz/seeds/$1"
  mkdir -p "$d"
  local out="$d/$(basename "$(dirname "$2")")-$(basename "$2")"
  if [ -n "${3:-}" ]; then { printf "\\x$3"; cat "$2"; } > "$out"; else cp "$2" "$out"; fi
}
rm -rf fuzz/seeds
for f in tests/fixtures/*/model.safetensors tests/fixtures/tiny-llama-lora/*.safetensors; do seed safetensors "$f"; done
for f in tests/fixtures/*/config.json; do seed config "$f"; done
for f in tests/fixtures/*/tokenizer.json; do seed tokenizer "$f"; done
for f in tests/fixtures/*/tokenizer_config.json; do
  python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("chat_template"); t and sys.stdout.write(t)' "$f" \
    > "fuzz/seeds/template.$$" || true
  [ -s "fuzz/seeds/template.$$" ] && { mkdir -p fuzz/seeds/template; mv "fuzz/seeds/template.$$" "fuzz/seeds/template/$(basename "$(dirname "$f")").jinja"; }
  rm -f "fuzz/seeds/template.$$"
done
for f in tests/fixtures/tiny-bert-cls-data/*.tsv; do seed data "$f" 01; done
seed data tests/fixtures/tiny-llama-lora/chat.jsonl 02
mkdir -p fuzz/seeds/safetensors_index
printf '{"metadata": {"total_size": 32}, "weight_map": {"w": "model-00001-of-00002.safetensors"}}' \
  > fuzz/seeds/safetensors_index/index.json
# GGUF seeds: the smallest valid header, plus the regression inputs below.
mkdir -p fuzz/seeds/gguf
printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' > fuzz/seeds/gguf/empty.gguf
mkdir -p fuzz/seeds/serve_body
printf '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "temperature": 0.7, "stop": ["\\n"], "logprobs": true, "top_logprobs": 2}' > fuzz/seeds/serve_body/chat.json
printf '{"text": ["good", "bad"]}' > fuzz/seeds/serve_body/predict.json
printf '{"prompt": "Once", "max_tokens": 4, "seed": 3, "logprobs": 2}' > fuzz/seeds/serve_body/completion.json
for f in tests/fuzz_regressions/*/*; do seed "$(basename "$(dirname "$f")")" "$f"; done

# One build of every target (libFuzzer + AddressSanitizer + debug assertions), then each binary runs directly.
[ "${FUZZ_SKIP_BUILD:-0}" = 1 ] || cargo +nightly fuzz build
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
status=0
report=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # An earlier run's findings were copied to tests/fuzz_regressions/ then: only this run's count here.
  rm -f fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/timeout-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/leak-*
  log="fuzz/artifacts/$t/fuzz.log"
  echo "== $t: ${secs} s" >&2
  set +e
  "fuzz/target/$host/release/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
    -max_total_time="$secs" -timeout=1 -max_len=65536 -malloc_limit_mb=256 -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  crashes=0
  for a in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/timeout-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/leak-*; do
    [ -e "$a" ] || continue
    crashes=$((crashes + 1))
    mkdir -p "tests/fuzz_regressions/$t"
    cp "$a" "tests/fuzz_regressions/$t/"
  done
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    tail -30 "$log" >&2
  fi
  report+=("$t ${secs}s execs ${execs:-?} cov ${cov:-?} ft ${ft:-?} crashes $crashes (exit $rc)")
done
printf '%s\n' "${report[@]}"
exit $status
