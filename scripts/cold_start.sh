#!/usr/bin/env bash
# Time to first token on a cold and a warm driver shader cache, with and without the warm-up at load.
# Each mode gets its own empty Mesa cache (MESA_SHADER_CACHE_DIR), then runs once cold and once warm.
# Usage: cargo build --release && scripts/cold_start.sh [PROMPT]   (B=binary to use another build)
set -euo pipefail
B=${B:-target/release/wgpu-llm}
PROMPT=${1:-Hello, who are you?}
for mode in "" "--no-warmup"; do
  D=$(mktemp -d)
  for run in cold warm; do
    s=$(date +%s.%N)
    out=$(MESA_SHADER_CACHE_DIR=$D "$B" generate -p "$PROMPT" -n 8 --json $mode 2>/dev/null)
    e=$(date +%s.%N)
    echo "$out" | python3 -c "
import json, sys
d = json.load(sys.stdin); t = d['timings']
print('%-12s %-4s wall %6.2f s  load %5.2f s  warm-up %5.2f s  first token %6.3f s  (%d prompt tokens)' % (
    '${mode:-warm-up}', '$run', $e - $s, d['load_secs'], d['warmup_secs'], t['time_to_first_token_secs'],
    t['prompt_tokens']))"
  done
  rm -rf "$D"
done
