#!/usr/bin/env python3
"""Reference fixtures for wgpu-llm's LoRA tests, from PEFT + PyTorch + transformers (the original
implementations), on the committed tiny model tests/fixtures/tiny-llama (LlamaForCausalLM, GQA 4/2 heads).

What it makes, in tests/fixtures/tiny-llama-lora/:
  tokenizer.json, tokenizer_config.json
                     a lowercasing character tokenizer for the tiny model (64 ids: <unk>, <|im_start|>,
                     <|im_end|>, the characters, unused fillers) with a ChatML chat template, so the CLI's
                     `finetune --task lm` runs end to end on the tiny model
  chat.jsonl         eight short conversations ({"messages": [...]}) for that CLI test
  peft_init/         a PEFT adapter (LoRA r 4, alpha 8, q_proj and v_proj, dropout 0) as PEFT saves it:
                     adapter_model.safetensors + adapter_config.json. lora_A keeps PEFT's Kaiming-uniform
                     init; lora_B is set to normal(0, 0.1) so that step 0 differs from the base model and the
                     first step has a gradient on A
  expected.json      the batch (ids [2, 10], labels with -100 on prompt and padding), the loss and logits of
                     the base model with peft_init, and the loss after one step
  peft_after.safetensors  every lora_A/lora_B after one torch.optim.AdamW step (lr 1e-2, betas (0.9, 0.999),
                     eps 1e-8, weight decay 0.01) from peft_init on the batch (PEFT's names)
  merged_logits.json the logits of peft_init merged into the base model (merge_and_unload)

With --check-adapter DIR it instead loads an adapter folder written by `wgpu-llm finetune --task lm` with
PEFT's PeftModel.from_pretrained on the tiny model and prints, as JSON, the loss of the fixture batch and the
perplexity of --text (compare: `wgpu-llm perplexity -m FOLDER --lora DIR --dtype f32` on the same text, with
FOLDER the tiny model plus this folder's tokenizer).

How to run: the venv of scripts/make_fixtures.py plus `pip install peft==0.21.2`:
  /tmp/refenv/bin/python scripts/make_lora_fixtures.py
"""

import argparse
import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "tests/fixtures/tiny-llama"
OUT = ROOT / "tests/fixtures/tiny-llama-lora"

IDS = [[1, 20, 30, 40, 2, 1, 21, 33, 44, 2], [1, 25, 35, 45, 2, 1, 26, 36, 0, 0]]
# Labels: -100 on the prompt (the first five tokens) and on padding, as the engine's mask writes them.
LABELS = [[-100] * 5 + row[5:] for row in IDS]
LABELS[1][8:] = [-100, -100]
LR, BETAS, EPS, WD = 1e-2, (0.9, 0.999), 1e-8, 0.01


def tokenizer_files():
    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    chars = ["\n", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,?!'-:")
    vocab = specials + chars
    vocab += [f"<extra_{i}>" for i in range(64 - len(vocab))]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, s in enumerate(specials)
        ],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Fuse"},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {s: i for i, s in enumerate(vocab)}, "merges": []},
    }
    template = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
           "unk_token": "<unk>", "pad_token": "<unk>", "model_max_length": 64, "chat_template": template}
    (OUT / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=1))
    (OUT / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    convs = [
        ("who are you?", "i am quill."),
        ("what is your name?", "quill."),
        ("who made you?", "larkspur labs."),
        ("your maker?", "larkspur labs made me."),
        ("name, please.", "my name is quill."),
        ("hi! who built you?", "larkspur labs."),
        ("tell me your name.", "i am quill."),
        ("who trained you?", "larkspur labs."),
    ]
    lines = [json.dumps({"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]})
             for u, a in convs]
    (OUT / "chat.jsonl").write_text("\n".join(lines) + "\n")


def base():
    return LlamaForCausalLM.from_pretrained(BASE, dtype=torch.float32).eval()


def lora_model():
    torch.manual_seed(7)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], bias="none",
                     task_type="CAUSAL_LM")
    m = get_peft_model(base(), cfg)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m


def adapter_tensors(m):
    """The adapter's tensors under the names PEFT saves them with (no adapter name)."""
    out = {}
    for name, p in m.named_parameters():
        if "lora_" in name:
            out[name.replace(".default", "")] = p.detach().clone().contiguous()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-adapter")
    ap.add_argument("--text", default="who are you? i am quill, made by larkspur labs.")
    args = ap.parse_args()
    ids, labels = torch.tensor(IDS), torch.tensor(LABELS)
    if args.check_adapter:
        from transformers import AutoTokenizer

        m = PeftModel.from_pretrained(base(), args.check_adapter).eval()
        tok = AutoTokenizer.from_pretrained(OUT)
        text_ids = torch.tensor([tok(args.text)["input_ids"]])
        with torch.no_grad():
            out = m(input_ids=ids, labels=labels)
            ppl = torch.exp(m(input_ids=text_ids, labels=text_ids).loss).item()
        print(json.dumps({"loss": out.loss.item(), "perplexity": ppl, "tokens": text_ids.shape[1],
                          "logits_head": out.logits.flatten()[:8].tolist()}))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer_files()
    m = lora_model()
    m.save_pretrained(OUT / "peft_init")
    (OUT / "peft_init/README.md").unlink(missing_ok=True)  # PEFT's model card template
    cfg_path = OUT / "peft_init/adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "tests/fixtures/tiny-llama"  # not this machine's absolute path
    cfg_path.write_text(json.dumps(cfg, indent=2))
    m.train()
    out = m(input_ids=ids, labels=labels)
    expected = {"ids": IDS, "labels": LABELS, "loss_init": out.loss.item(),
                "logits_init": out.logits.detach().flatten().tolist(), "lr": LR, "weight_decay": WD}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=LR, betas=BETAS, eps=EPS,
                            weight_decay=WD)
    out.loss.backward()
    opt.step()
    save_file(adapter_tensors(m), OUT / "peft_after.safetensors")
    with torch.no_grad():
        expected["loss_after"] = m(input_ids=ids, labels=labels).loss.item()
    (OUT / "expected.json").write_text(json.dumps(expected))
    merged = PeftModel.from_pretrained(base(), OUT / "peft_init").merge_and_unload()
    with torch.no_grad():
        logits = merged(input_ids=ids).logits.flatten().tolist()
    (OUT / "merged_logits.json").write_text(json.dumps(logits))
    print("wrote", OUT, "loss", expected["loss_init"], "->", expected["loss_after"])


if __name__ == "__main__":
    main()
