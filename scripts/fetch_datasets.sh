#!/usr/bin/env bash
# Fetch the data sets of the training walkthroughs (nothing is committed; everything comes from PyPI):
#   data/vader/train.tsv, test.tsv   the VADER ground-truth sentences (tweets, movie reviews, Amazon reviews,
#                                    NYT editorials: the source distribution of vaderSentiment 3.3.2, its
#                                    additional_resources/hutto_ICWSM_2014.tar.gz), each with the mean rating of
#                                    about 20 people on −4..4, as three labels: negative ≤ −1, neutral within
#                                    ±0.5, positive ≥ 1 (the rest dropped); a fixed ~90/10 split by a hash of
#                                    the sentence id (source:id), columns id, text, label, rating.
# Usage: scripts/fetch_datasets.sh [OUT_DIR (default data)]
set -euo pipefail
out="${1:-data}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/vader"
echo "fetch: vaderSentiment 3.3.2 (source distribution)" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: vaderSentiment==3.3.2 -d "$work" >&2
tar xzf "$work"/vaderSentiment-3.3.2.tar.gz -C "$work"
tar xzf "$work"/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz -C "$work"
python3 - "$work/hutto_ICWSM_2014" "$out/vader" <<'PY'
import hashlib, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
rows = {"train": [], "test": []}
seen = dropped = 0
for f in sorted(src.glob("*_GroundTruth.txt")):
    source = f.name.split("_")[0]
    for line in f.read_bytes().decode("utf-8", errors="replace").splitlines():
        parts = line.rstrip("\r").split("\t")
        if len(parts) < 3:
            continue
        sid, rating, text = parts[0], float(parts[1]), " ".join(parts[2:]).strip()
        seen += 1
        if rating <= -1:
            label = "negative"
        elif abs(rating) <= 0.5:
            label = "neutral"
        elif rating >= 1:
            label = "positive"
        else:
            dropped += 1
            continue
        key = f"{source}:{sid}"
        split = "test" if hashlib.sha256(key.encode()).digest()[0] < 26 else "train"
        rows[split].append((key, text.replace("\t", " "), label, rating))
for split, r in rows.items():
    with open(dst / f"{split}.tsv", "w", encoding="utf-8") as fh:
        fh.write("id\ttext\tlabel\trating\n")
        for key, text, label, rating in r:
            fh.write(f"{key}\t{text}\t{label}\t{rating}\n")
counts = {s: len(r) for s, r in rows.items()}
print(f"vader: {seen} sentences, {dropped} between the label bands dropped; train {counts['train']}, test {counts['test']} -> {dst}", file=sys.stderr)
PY
