#!/usr/bin/env python3
"""PyTorch's run of `wgpu-llm train`'s character-GPT recipe on the same data, for comparing val losses.

It builds what `train --tokenizer char` builds from the same files (their texts concatenated in the order given,
the sorted set of their characters as the vocabulary, the last 10% of the tokens as the validation split),
trains transformers' GPT2LMHeadModel from its own initialisation (N(0, 0.02), residual projections scaled by
1/sqrt(2 layers), as the engine's) with AdamW (weight decay on all but biases and LayerNorms, eps 1e-8) on random
windows shifted by one, and prints each evaluation as the engine does (the mean loss of 20 fixed validation
batches), one JSON object a line on stdout, then the loss over the whole validation split. With --eval-model
it trains nothing and prints that whole-split loss for a model `wgpu-llm train` wrote, so that the two runs'
models are measured on the same windows. The random windows and initial weights come from torch's generator,
not the engine's, so the two runs agree in distribution, not step by step (tests/train.rs checks the step-by-step
agreement on a tiny model with shared weights and batches).

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch transformers
    scripts/fetch_corpus.sh --all corpus
    /tmp/tv/bin/python scripts/char_gpt_reference.py --config gpt.json --data corpus/*.txt --seed 1
"""

import argparse
import json
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="a GPT2Config JSON, as `wgpu-llm train --config`")
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--betas", default="0.9,0.99")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--eval-model", help="train nothing: print the full-split val loss of this model folder "
                    "(one `wgpu-llm train` wrote)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    # newline="": the bytes as the engine reads them (Python's default would turn CRLF into LF).
    text = "".join(open(p, encoding="utf-8", newline="").read() for p in a.data)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
    n_val = len(tokens) // 10
    train, val = tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val:]
    print(f"{len(text):,} characters, vocabulary {len(chars)}, validation {n_val:,} tokens", file=sys.stderr)

    def full_val_loss(model):
        """The mean loss over every whole window of the validation split, side by side (no sampling noise)."""
        n = (len(val) - 1) // a.seq_len
        x = val[: n * a.seq_len].view(n, a.seq_len)
        y = val[1: n * a.seq_len + 1].view(n, a.seq_len)
        model.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, n, 256):
                logits = model(input_ids=x[i: i + 256]).logits
                total += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y[i: i + 256].reshape(-1), reduction="sum").item()
        return total / (n * a.seq_len)

    if a.eval_model:
        model = GPT2LMHeadModel.from_pretrained(a.eval_model).to(torch.float32)
        vocab = json.load(open(f"{a.eval_model}/tokenizer.json"))["model"]["vocab"]
        assert [c for c, _ in sorted(vocab.items(), key=lambda kv: kv[1])] == chars, "another vocabulary"
        print(json.dumps({"model": a.eval_model, "full_val_loss": round(full_val_loss(model), 4)}))
        return

    fields = json.load(open(a.config))
    fields.pop("model_type", None)
    fields.update(vocab_size=len(chars), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(GPT2Config(**fields)).to(torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params:,} parameters", file=sys.stderr)

    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or ".ln_" in n or "ln_f" in n)]
    rest = [p for n, p in model.named_parameters() if n.endswith(".bias") or ".ln_" in n or "ln_f" in n]
    b1, b2 = (float(x) for x in a.betas.split(","))
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(b1, b2), eps=1e-8)

    def windows(data, gen):
        s = torch.randint(0, len(data) - a.seq_len, (a.batch_size,), generator=gen)
        x = torch.stack([data[i: i + a.seq_len] for i in s])
        y = torch.stack([data[i + 1: i + a.seq_len + 1] for i in s])
        return x, y

    train_gen = torch.Generator().manual_seed(a.seed)
    val_gen = torch.Generator().manual_seed(a.seed ^ 0x5EED)
    val_batches = [windows(val, val_gen) for _ in range(a.eval_batches)]

    since, since_n, t0, tokens_since = 0.0, 0, time.time(), 0
    for step in range(1, a.steps + 1):
        model.train()
        x, y = windows(train, train_gen)
        logits = model(input_ids=x).logits  # y is already shifted (transformers' labels= would shift again)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        since += loss.item()
        since_n += 1
        tokens_since += a.batch_size * a.seq_len
        if step % a.eval_every == 0 or step == a.steps:
            secs = time.time() - t0
            model.eval()
            with torch.no_grad():
                vl = sum(
                    torch.nn.functional.cross_entropy(model(input_ids=x).logits.reshape(-1, len(chars)), y.reshape(-1)).item()
                    for x, y in val_batches) / len(val_batches)
            print(json.dumps({"step": step, "train_loss": round(since / since_n, 4), "val_loss": round(vl, 4),
                              "lr": a.lr, "tokens_per_sec": round(tokens_since / secs)}), flush=True)
            since, since_n, tokens_since, t0 = 0.0, 0, 0, time.time()
    print(json.dumps({"step": a.steps, "full_val_loss": round(full_val_loss(model), 4)}), flush=True)


if __name__ == "__main__":
    main()
