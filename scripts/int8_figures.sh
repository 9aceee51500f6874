#!/usr/bin/env bash
# The figures of the int8 work (issue 4) on whatever adapter wgpu picks: perplexity of SmolLM2-135M on
# The Tempest (public domain) for f32, f16, int8 weight-only, W8A8 dynamic and static, 30% pruned (f32 and
# int8); decode speed of each; all-MiniLM-L6-v2 int8 vs f32 embeddings over 100+
# sentences.
# Usage: scripts/int8_figures.sh [OUT]
#   env: PPL_TOKENS (default 4096), PPL_CTX (default 256), BIN (default ./target/release/wgpu-llm),
#        BENCH_BIN (the binary of the speed and embedding runs; default BIN),
#        PPL_RUNS (default: every run below; a run whose JSON exists already is skipped)
# Writes JSON per run under OUT (default target/figures) and prints a summary.
set -euo pipefail
OUT=${1:-target/figures}
N=${PPL_TOKENS:-4096}
CTX=${PPL_CTX:-256}
RUNS=${PPL_RUNS:-"f32 f16 int8 w8a8-static w8a8-static-pure pruned30-f32 pruned30-f16 pruned30-int8 pruned30-w8a8-static int8-all w8a8-dynamic"}
BIN=${BIN:-./target/release/wgpu-llm}
BENCH_BIN=${BENCH_BIN:-$BIN}
mkdir -p "$OUT" target/q
scripts/fetch_corpus.sh target/corpus >/dev/null
TEXT=target/corpus/tempest.txt

# Folders: W8A8 static (calibrated on Macbeth, not the evaluation text; mlp.down_proj per token, the
# default) and fully static (--dynamic none), and 30% magnitude-pruned.
[[ -d target/q/smollm2-static ]] || $BIN quantize -m smollm2 -o target/q/smollm2-static --mode static \
    --calibration target/corpus/macbeth.txt --calib-samples 8 --calib-len 128 --keep none --json > "$OUT/quantize-static.json"
[[ " $RUNS " != *" w8a8-static-pure "* || -d target/q/smollm2-static-pure ]] || $BIN quantize -m smollm2 \
    -o target/q/smollm2-static-pure --mode static --dynamic none --calibration target/corpus/macbeth.txt \
    --calib-samples 8 --calib-len 128 --keep none --json > "$OUT/quantize-static-pure.json"
[[ -d target/q/smollm2-pruned30 ]] || $BIN prune -m smollm2 -o target/q/smollm2-pruned30 --rate 0.3 --json > "$OUT/prune30.json"
[[ " $RUNS " != *" pruned30-w8a8-static "* || -d target/q/smollm2-pruned30-static ]] || $BIN quantize \
    -m target/q/smollm2-pruned30 -o target/q/smollm2-pruned30-static --mode static \
    --calibration target/corpus/macbeth.txt --calib-samples 8 --calib-len 128 --keep none --json > "$OUT/quantize-pruned30-static.json"
[[ -d target/q/minilm-static ]] || $BIN quantize -m minilm -o target/q/minilm-static --mode static \
    --calibration target/corpus/macbeth.txt --calib-samples 64 --keep none --json > "$OUT/quantize-minilm-static.json"

ppl() { # name, model, extra args...
    local name=$1 model=$2; shift 2
    [[ " $RUNS " == *" $name "* && ! -s "$OUT/ppl-$name.json" ]] || return 0
    $BIN perplexity -m "$model" -f "$TEXT" --ctx "$CTX" --max-tokens "$N" --json "$@" > "$OUT/ppl-$name.json"
}
ppl f32 smollm2 --dtype f32
ppl f16 smollm2 --dtype f16
ppl int8 smollm2 --dtype int8
ppl w8a8-static target/q/smollm2-static
ppl w8a8-static-pure target/q/smollm2-static-pure
ppl pruned30-f32 target/q/smollm2-pruned30 --dtype f32
ppl pruned30-f16 target/q/smollm2-pruned30 --dtype f16
ppl pruned30-int8 target/q/smollm2-pruned30 --dtype int8
ppl pruned30-w8a8-static target/q/smollm2-pruned30-static
ppl int8-all smollm2 --dtype int8 --keep none
ppl w8a8-dynamic smollm2 --dtype w8a8 --keep none
bench() { # name, args...
    local name=$1; shift
    [[ -s "$OUT/bench-$name.json" ]] || $BENCH_BIN bench model "$@" -n 16 --json > "$OUT/bench-$name.json"
}
bench f32 -m smollm2 --dtype f32
bench f16 -m smollm2 --dtype f16
bench int8 -m smollm2 --dtype int8
bench int8-all -m smollm2 --dtype int8 --keep none
bench w8a8-dynamic -m smollm2 --dtype w8a8 --keep none
bench w8a8-static -m target/q/smollm2-static
bench pruned30-f32 -m target/q/smollm2-pruned30 --dtype f32
[[ " $RUNS " != *" pruned30-f16 "* ]] || bench pruned30-f16 -m target/q/smollm2-pruned30 --dtype f16
[[ " $RUNS " != *" pruned30-int8 "* ]] || bench pruned30-int8 -m target/q/smollm2-pruned30 --dtype int8
[[ " $RUNS " != *" pruned30-w8a8-static "* ]] || bench pruned30-w8a8-static -m target/q/smollm2-pruned30-static

# MiniLM: the first 120 lines of Macbeth's dialogue longer than 30 characters as sentences.
grep -m 120 -E '^[A-Z][a-z].{30,}' target/corpus/macbeth.txt > "$OUT/sentences.txt"
for d in f32 int8 w8a8; do
    [[ -s "$OUT/embed-$d.json" ]] || $BENCH_BIN embed -m minilm --dtype "$d" --file "$OUT/sentences.txt" --json > "$OUT/embed-$d.json"
done
[[ -s "$OUT/embed-static.json" ]] || $BENCH_BIN embed -m target/q/minilm-static --file "$OUT/sentences.txt" --json > "$OUT/embed-static.json"

python3 - "$OUT" <<'PY'
import json, math, sys, glob, os
out = sys.argv[1]
for f in sorted(glob.glob(f"{out}/ppl-*.json")):
    j = json.load(open(f))
    print(f"{os.path.basename(f)[4:-5]:16s} ppl {j['ppl']:.4f}  tokens {j['tokens_scored']}  {j['tokens_per_sec']:.1f} tok/s  {j['precision']}")
for f in sorted(glob.glob(f"{out}/bench-*.json")):
    j = json.load(open(f))
    print(f"{os.path.basename(f)[6:-5]:16s} decode {j['decode_tokens_per_sec']:.2f} tok/s  prefill@256 {j['prefill_256_tokens_per_sec']:.1f} tok/s  "
          f"{j['weight_bytes_per_token']/1e6:.0f} MB/token  {j['dtype']}")
def load(d): return json.load(open(f"{out}/embed-{d}.json"))
ref = load("f32")
for d in ["int8", "w8a8", "static"]:
    j = load(d)
    cos = [sum(a*b for a, b in zip(x, y)) / (math.sqrt(sum(a*a for a in x)) * math.sqrt(sum(b*b for b in y)))
           for x, y in zip(ref["embeddings"], j["embeddings"])]
    print(f"minilm {j['dtype']:22s}: mean cosine to f32 {sum(cos)/len(cos):.5f} (min {min(cos):.5f}) over {len(cos)} sentences, "
          f"{j['sentences_per_sec']:.1f} sentences/s (f32 {ref['sentences_per_sec']:.1f})")
PY
