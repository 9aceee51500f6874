#!/usr/bin/env python3
"""Reference fixtures for wgpu-llm's training tests, from PyTorch and transformers (the original
implementations), on the committed tiny model tests/fixtures/tiny-bert-cls (BertForSequenceClassification).

What it makes, in tests/fixtures/tiny-bert-cls-data/: a word-level tokenizer for the tiny model and a small
three-label sentiment set (train.tsv, val.tsv) for the CLI's finetune test; and in
tests/fixtures/tiny-bert-cls-step/:
  expected.json           the batch (3 sequences of 5, 9 and 3 tokens, labels), and for each head the
                          loss and logits of the forward pass
  {head}_grads.safetensors  the gradient of every parameter after loss.backward() (float32)
  {head}_after.safetensors  every parameter after one torch.optim.AdamW step (lr 1e-3, betas (0.9, 0.999),
                          eps 1e-8, weight decay 0.01 except biases and LayerNorm weights)
  pooler_clip_after.safetensors  the same pooler step with clip_grad_norm_(params, 1.0) first
for head = "pooler" (transformers' BertForSequenceClassification: [CLS] → dense + tanh → classifier) and
"mean" (sentence-transformers' mean pooling over the attention mask → the same classifier).
Dropout is 0 (train mode otherwise), so the step is deterministic.

With --check-classifier DIR it instead loads a folder written by `wgpu-llm finetune` with transformers'
AutoModelForSequenceClassification and prints the logits of --text (for the pooler head, where
transformers computes what we compute), as JSON.

How to run: the venv of scripts/make_fixtures.py (torch 2.15.0, transformers 5.24.0, safetensors 0.8.0):
  /tmp/refenv/bin/python scripts/make_train_fixtures.py
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests/fixtures/tiny-bert-cls"
OUT = ROOT / "tests/fixtures/tiny-bert-cls-step"

SEQS = [[2, 17, 33, 5, 3], [2, 40, 41, 7, 9, 11, 60, 8, 3], [2, 12, 3]]
LABELS = [2, 0, 1]
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.01


def batch():
    t = max(map(len, SEQS))
    ids = torch.zeros(len(SEQS), t, dtype=torch.long)
    mask = torch.zeros(len(SEQS), t, dtype=torch.long)
    for i, s in enumerate(SEQS):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def no_decay(name):
    return name.endswith(".bias") or "LayerNorm" in name


def step(head, clip=None, tag=None):
    m = BertForSequenceClassification.from_pretrained(
        SRC, dtype=torch.float32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    m.train()
    ids, mask = batch()
    labels = torch.tensor(LABELS)
    if head == "pooler":
        logits = m(input_ids=ids, attention_mask=mask).logits
    else:
        h = m.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        f = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * f).sum(1) / f.sum(1)
        logits = m.classifier(pooled)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    params = dict(m.named_parameters())
    # The mean head has no pooler: its parameters take no part (and we do not train them).
    used = {n: p for n, p in params.items() if p.grad is not None}
    grads = {n: p.grad.detach().clone().contiguous() for n, p in used.items()}
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(list(used.values()), clip)
    groups = [
        {"params": [p for n, p in used.items() if not no_decay(n)], "weight_decay": WD},
        {"params": [p for n, p in used.items() if no_decay(n)], "weight_decay": 0.0},
    ]
    torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS).step()
    after = {n: p.detach().clone().contiguous() for n, p in used.items()}
    tag = tag or head
    if clip is None:
        save_file(grads, OUT / f"{tag}_grads.safetensors")
    save_file(after, OUT / f"{tag}_after.safetensors")
    return {"loss": loss.item(), "logits": logits.detach().tolist()}


POS = ["good", "great", "love", "happy", "excellent", "wonderful", "best", "nice"]
NEG = ["bad", "awful", "hate", "sad", "terrible", "horrible", "worst", "poor"]
NEU = ["table", "chair", "door", "window", "paper", "street", "monday", "train"]
FILL = ["the", "a", "it", "was", "is", "this", "movie", "food", "day", "very", "really", "so", "i", "we", "my"]


def make_data():
    """tiny-bert-cls-data/: a word-level BERT tokenizer over the tiny model's 64 ids, and a small
    three-label sentiment set (train.tsv, val.tsv) whose label is carried by one word of each sentence."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    d = ROOT / "tests/fixtures/tiny-bert-cls-data"
    d.mkdir(parents=True, exist_ok=True)
    words = POS + NEG + NEU + FILL
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    for w in words:
        vocab[w] = len(vocab)
    assert len(vocab) <= 64, len(vocab)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizerFast", "do_lower_case": True, "unk_token": "[UNK]",
        "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
        "model_max_length": 64}, indent=1) + "\n")
    g = torch.Generator().manual_seed(3)

    def sentence(label):
        key = [NEG, NEU, POS][label]
        pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]
        n = int(torch.randint(2, 6, (1,), generator=g))
        ws = [pick(FILL) for _ in range(n)]
        ws.insert(int(torch.randint(n + 1, (1,), generator=g)), pick(key))
        return " ".join(ws)

    names = ["negative", "neutral", "positive"]
    for split, n in [("train", 48), ("val", 12)]:
        rows = ["text\tlabel"] + [f"{sentence(i % 3)}\t{names[i % 3]}" for i in range(n)]
        (d / f"{split}.tsv").write_text("\n".join(rows) + "\n")


def check_classifier(folder, texts):
    tok = AutoTokenizer.from_pretrained(folder)
    m = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = m(**enc).logits
    print(json.dumps({"labels": m.config.id2label, "logits": logits.tolist()}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-classifier")
    ap.add_argument("--text", action="append", default=[])
    ap.add_argument("--only-decoders", action="store_true", help="make only decoder-grads/ (the rest as it is)")
    a = ap.parse_args()
    if a.check_classifier:
        check_classifier(a.check_classifier, a.text)
        return
    if a.only_decoders:
        make_decoder_grads()
        return
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    exp = {
        "description": "one training step of tests/fixtures/tiny-bert-cls in PyTorch, dropout 0",
        "seqs": SEQS,
        "labels": LABELS,
        "adamw": {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WD, "no_decay": ["*.bias", "*LayerNorm*"]},
        "heads": {h: step(h) for h in ["pooler", "mean"]},
        # The pooler step again with clip_grad_norm_(params, 1.0) before AdamW (the norm, 2.81, is above it).
        "clip": {"max_grad_norm": 1.0, **step("pooler", clip=1.0, tag="pooler_clip")},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
    }
    (OUT / "expected.json").write_text(json.dumps(exp, indent=1) + "\n")
    make_data()
    make_lm()
    make_decoder_grads()


def make_decoder_grads():
    """decoder-grads/{llama,gpt2}/: the gradient of every parameter of tests/fixtures/tiny-llama (grouped-query
    heads) and tests/fixtures/tiny-gpt2 (dropout set to 0) after loss.backward() on one batch of 2 × 12 ids,
    the loss being the mean cross-entropy of the next token with -100 (ignored) on the last position and on a
    few others (grads.safetensors in transformers' names; expected.json: ids, targets, loss)."""
    from transformers import AutoModelForCausalLM

    g = torch.Generator().manual_seed(3)
    B, T = 2, 12
    for name, src, kw in [
        ("llama", "tiny-llama", {}),
        ("gpt2", "tiny-gpt2", {"attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0}),
    ]:
        m = AutoModelForCausalLM.from_pretrained(ROOT / "tests/fixtures" / src, dtype=torch.float32, **kw)
        m.train()
        vocab = m.config.vocab_size
        ids = torch.randint(1, vocab, (B, T), generator=g)
        targets = torch.full((B, T), -100, dtype=torch.long)
        targets[:, :-1] = ids[:, 1:]
        targets[0, 3] = -100
        targets[1, 0] = -100
        logits = m(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, vocab), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        grads = {n: p.grad.detach().clone().contiguous() for n, p in m.named_parameters() if p.grad is not None}
        d = ROOT / "tests/fixtures/decoder-grads" / name
        d.mkdir(parents=True, exist_ok=True)
        save_file(grads, d / "grads.safetensors")
        (d / "expected.json").write_text(json.dumps({
            "model": f"tests/fixtures/{src}",
            "ids": ids.tolist(),
            "targets": targets.reshape(-1).tolist(),
            "loss": loss.item(),
            "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        }, indent=1) + "\n")



def make_lm():
    """tiny-gpt2-train/: a character-level GPT-2 (2 layers, d 32, 4 heads) with seeded initial weights
    (model.safetensors, config.json), 50 batches of 4 windows of 16 characters (targets shifted by one) and
    PyTorch's loss at each of 50 AdamW steps over them (lr 1e-3 with 5 warmup steps then cosine to 1e-4,
    betas (0.9, 0.99), weight decay 0.1 except biases and LayerNorm weights, clip_grad_norm_ 1.0)."""
    import math
    from transformers import GPT2Config, GPT2LMHeadModel

    d = ROOT / "tests/fixtures/tiny-gpt2-train"
    d.mkdir(parents=True, exist_ok=True)
    text = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
            "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
            "it was the season of Darkness, it was the spring of hope, it was the winter of despair.\n") * 3
    chars = sorted(set(text))
    ids = [chars.index(c) for c in text]
    torch.manual_seed(11)
    cfg = GPT2Config(vocab_size=len(chars), n_embd=32, n_layer=2, n_head=4, n_positions=32, n_inner=64,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    m = GPT2LMHeadModel(cfg).to(torch.float32)
    m.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(5)
    B, T, STEPS = 4, 16, 50
    batches = []
    for _ in range(STEPS):
        starts = torch.randint(0, len(ids) - T - 1, (B,), generator=g).tolist()
        batches.append([ids[s: s + T + 1] for s in starts])
    params = dict(m.named_parameters())
    nd = lambda n: n.endswith(".bias") or ".ln_" in n or "ln_f" in n
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params.items() if not nd(n)], "weight_decay": 0.1},
        {"params": [p for n, p in params.items() if nd(n)], "weight_decay": 0.0},
    ], lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    warm, peak, floor = 5, 1e-3, 1e-4

    def lr_at(s):  # s: steps taken so far (0-based), as the engine's Schedule
        if s < warm:
            return peak * s / warm
        p = (s - warm) / (STEPS - warm)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * p))

    m.train()
    losses = []
    for s, b in enumerate(batches):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(s)
        x = torch.tensor([w[:-1] for w in b])
        y = torch.tensor([w[1:] for w in b])
        logits = m(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    (d / "expected.json").write_text(json.dumps({
        "description": "50 AdamW steps of a char-level GPT-2 in PyTorch from the committed initial weights",
        "chars": "".join(chars), "batch": B, "seq_len": T, "batches": batches, "losses": losses,
        "schedule": {"kind": "cosine", "peak": peak, "warmup": warm, "total": STEPS, "min_lr": floor},
        "adamw": {"betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 1.0},
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }) + "\n")
    for f in d.iterdir():
        if f.name not in ("model.safetensors", "config.json", "expected.json"):
            f.unlink()


if __name__ == "__main__":
    main()
