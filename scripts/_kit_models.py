"""Tiny English causal LMs of the demo kit: a GPT-2 and a Llama, trained on ``assets/text/en``.

Both are trained from scratch with a plain AdamW loop (linear warm-up, cosine
decay to 10 %, gradient clipping 1.0, no dropout) on random 256-token windows
of the training stream, under three budgets, whichever ends first: a step
budget, a CPU-time budget (``minutes`` on ``threads`` cores = ``minutes * 60 *
threads`` CPU-seconds of this process, what a dedicated 2-core machine does in
``minutes``; counting CPU rather than wall time keeps the result independent of
other jobs sharing the cores), and a hard wall-clock cap. The cosine schedule
runs on ``progress = max(step / max_steps, cpu / cpu_budget, wall / wall_cap)``,
so whichever budget binds, the schedule completes. Steps, CPU and wall time
reached are recorded in ``training.json``.

Stream layout (what the model sees, and what the evaluation scores):

* GPT-2: ``<|endoftext|> p1 <|endoftext|> p2 <|endoftext|> ...``
* Llama: ``<s> p1 </s> <s> p2 </s> ...``; predicting ``<s>`` after ``</s>``
  is free, so those targets are left out of loss and metrics.

So both models predict each paragraph's tokens and one end token, and loss per
byte (nats over the UTF-8 bytes of the text, one newline per paragraph) is
comparable across the two tokenizers. The unigram baseline scores the same
targets with add-one-smoothed token frequencies of the training stream.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from _kit_common import Timer, nbytes, write_json

CTX = 256
BATCH = 8
PEAK_LR = 2e-3
MIN_LR_FRACTION = 0.1
WARMUP = 100
WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.95)
LOG_EVERY = 50
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_model(kind: str) -> torch.nn.Module:
    """A freshly initialised tiny model (seed torch first)."""
    if kind == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(vocab_size=8192, n_positions=CTX, n_embd=256, n_layer=4, n_head=4,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         bos_token_id=0, eos_token_id=0, pad_token_id=1, tie_word_embeddings=True)
        cfg._attn_implementation = "sdpa"  # transformers 5: not a constructor argument
        return GPT2LMHeadModel(cfg)
    from transformers import LlamaConfig, LlamaForCausalLM
    # Untied head on purpose: the kit then holds one model whose output head a conversion must remap too.
    cfg = LlamaConfig(vocab_size=8192, hidden_size=256, intermediate_size=640, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=CTX,
                      rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=3,
                      tie_word_embeddings=False)
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


SPECS = {
    "gpt2": {"folder": "tiny-en-gpt2", "tokenizer": "en-bytebpe", "bos": 0, "eos": 0, "pad": 1,
             "bos_per_paragraph": False},
    "llama": {"folder": "tiny-en-llama", "tokenizer": "en-metaspace", "bos": 1, "eos": 2, "pad": 3,
              "bos_per_paragraph": True},
}


def encode_stream(tok: Tokenizer, lines: list[str], spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of the whole text as one stream, and which positions count as targets."""
    ids, count = [], []
    if not spec["bos_per_paragraph"]:
        ids, count = [spec["bos"]], [False]
    for enc in tok.encode_batch(lines, add_special_tokens=False):
        if spec["bos_per_paragraph"]:
            ids.append(spec["bos"])
            count.append(False)
        ids += enc.ids + [spec["eos"]]
        count += [True] * (len(enc.ids) + 1)
    return torch.tensor(ids), torch.tensor(count)


def lr_at(progress: float, step: int) -> float:
    """Linear warm-up over WARMUP steps, then cosine from PEAK_LR to MIN_LR_FRACTION * PEAK_LR."""
    if step < WARMUP:
        return PEAK_LR * (step + 1) / WARMUP
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return PEAK_LR * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * cos)


@torch.no_grad()
def stream_nats(model: torch.nn.Module, ids: torch.Tensor, count: torch.Tensor) -> tuple[float, int]:
    """Total nats and number of counted targets over the stream, each target scored once.

    Windows of CTX tokens overlap by one, so every position but the first is a target exactly once.
    """
    model.eval()
    total, n = 0.0, 0
    starts = list(range(0, len(ids) - 1, CTX - 1))
    for i in range(0, len(starts), 16):
        chunk = [ids[s:s + CTX] for s in starts[i:i + 16]]
        masks = [count[s + 1:s + CTX] for s in starts[i:i + 16]]
        width = max(len(c) for c in chunk)
        x = torch.stack([F.pad(c, (0, width - len(c))) for c in chunk])                    # (B, T)
        y = torch.stack([F.pad(c[1:], (0, width - len(c)), value=-100) for c in chunk])   # (B, T-1)
        m = torch.stack([F.pad(c, (0, width - 1 - len(c)), value=False) for c in masks])
        y = torch.where(m, y, torch.full_like(y, -100))
        logits = model(input_ids=x).logits[:, :-1].float()                                # (B, T-1, V)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 ignore_index=-100, reduction="sum").item()
        n += int((y != -100).sum())
    return total, n


def unigram_nats(train_ids: torch.Tensor, train_count: torch.Tensor, ids: torch.Tensor, count: torch.Tensor,
                 vocab: int) -> float:
    """Nats of the counted targets of ``ids`` under add-one-smoothed unigram frequencies of the train stream."""
    freq = torch.bincount(train_ids[train_count], minlength=vocab).double() + 1.0
    logp = torch.log(freq / freq.sum())
    return float(-logp[ids[count]].sum())


def train_one(kind: str, assets: Path, minutes: float, max_steps: int, threads: int, seed: int,
              wall_cap_minutes: float) -> dict:
    """Train, save (fp16 safetensors + tokenizer + generation config) and evaluate one model."""
    from transformers import AutoModelForCausalLM, GenerationConfig
    import transformers

    spec = SPECS[kind]
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tok_dir = assets / "tokenizers" / spec["tokenizer"]
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    text = assets / "text" / "en"
    train_lines = (text / "train.txt").read_text(encoding="utf-8").splitlines()
    valid_lines = (text / "valid.txt").read_text(encoding="utf-8").splitlines()
    train_ids, train_count = encode_stream(tok, train_lines, spec)
    valid_ids, valid_count = encode_stream(tok, valid_lines, spec)

    model = make_model(kind)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=PEAK_LR, betas=BETAS)
    gen = torch.Generator().manual_seed(seed)
    cpu_budget, wall_cap = minutes * 60 * threads, wall_cap_minutes * 60
    start, cpu_start, step, curve, recent = time.perf_counter(), time.process_time(), 0, [], []
    print(f"[{kind}] {params:,} params, train stream {len(train_ids):,} tokens", flush=True)
    while True:
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        budgets = {"steps": step / max_steps, "cpu": cpu / cpu_budget, "wall": wall / wall_cap}
        progress = max(budgets.values())
        if progress >= 1.0:
            stopped_by = max(budgets, key=budgets.get)
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(progress, step)
        model.train()
        s = torch.randint(0, len(train_ids) - CTX - 1, (BATCH,), generator=gen)
        w = torch.stack([train_ids[i:i + CTX + 1] for i in s])                              # (B, T+1)
        c = torch.stack([train_count[i + 1:i + CTX + 1] for i in s])                        # (B, T)
        y = torch.where(c, w[:, 1:], torch.full_like(w[:, 1:], -100))
        logits = model(input_ids=w[:, :-1]).logits                                          # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        recent.append(loss.item())
        if step % LOG_EVERY == 0:
            mean = sum(recent[-LOG_EVERY:]) / len(recent[-LOG_EVERY:])
            curve.append([step, round(mean, 4), round(time.perf_counter() - start, 1)])
            print(f"[{kind}] step {step} loss {mean:.3f} lr {opt.param_groups[0]['lr']:.2e} "
                  f"wall {time.perf_counter() - start:.0f}s cpu {time.process_time() - cpu_start:.0f}s", flush=True)
    train_seconds = round(time.perf_counter() - start, 1)
    cpu_seconds = round(time.process_time() - cpu_start, 1)

    out = assets / "models" / spec["folder"]
    if out.exists():
        shutil.rmtree(out)
    model.config.dtype = torch.float16
    model.half().save_pretrained(out)
    GenerationConfig(bos_token_id=spec["bos"], eos_token_id=spec["eos"], pad_token_id=spec["pad"],
                     max_new_tokens=64).save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(tok_dir / name, out / name)

    # Evaluate what was saved: the fp16 weights, read back through safetensors and computed in fp32.
    timer = Timer()
    saved = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, use_safetensors=True)
    nats, n = stream_nats(saved, valid_ids, valid_count)
    valid_bytes = nbytes(valid_lines)
    uni = unigram_nats(train_ids, train_count, valid_ids, valid_count, model.config.vocab_size)
    result = {
        "model": spec["folder"], "architecture": type(model).__name__, "tokenizer": spec["tokenizer"],
        "parameters": params, "config": {k: v for k, v in model.config.to_diff_dict().items()
                                         if k in ("n_layer", "n_embd", "n_head", "n_positions", "num_hidden_layers",
                                                  "hidden_size", "intermediate_size", "num_attention_heads",
                                                  "max_position_embeddings", "tie_word_embeddings", "vocab_size")},
        "stored_dtype": "float16",
        "training": {"steps": step, "max_steps": max_steps, "minutes_budget": minutes,
                     "cpu_seconds_budget": cpu_budget, "wall_cap_minutes": wall_cap_minutes,
                     "stopped_by": stopped_by, "seconds": train_seconds, "cpu_seconds": cpu_seconds,
                     "cpu_minutes_per_core": round(cpu_seconds / threads / 60, 1),
                     "seconds_per_step": round(train_seconds / max(step, 1), 3),
                     "cpu_seconds_per_step": round(cpu_seconds / max(step, 1), 3), "batch": BATCH,
                     "context": CTX, "tokens_seen": step * BATCH * CTX,
                     "epochs": round(step * BATCH * CTX / len(train_ids), 2), "peak_lr": PEAK_LR,
                     "warmup_steps": WARMUP, "weight_decay": WEIGHT_DECAY, "betas": list(BETAS),
                     "schedule": "linear warm-up, cosine to 10% over max(step/max_steps, cpu/cpu_budget, "
                                 "wall/wall_cap)",
                     "optimizer": "torch.optim.AdamW", "grad_clip": 1.0, "seed": seed, "threads": threads,
                     "final_train_loss": curve[-1][1] if curve else None, "loss_curve": curve,
                     "train_stream_tokens": len(train_ids)},
        "validation": {"file": "assets/text/en/valid.txt", "targets": n, "bytes": valid_bytes,
                       "loss_per_token": round(nats / n, 4), "perplexity": round(math.exp(nats / n), 2),
                       "loss_per_byte": round(nats / valid_bytes, 4),
                       "bits_per_byte": round(nats / valid_bytes / math.log(2), 4),
                       "unigram_loss_per_token": round(uni / n, 4),
                       "unigram_perplexity": round(math.exp(uni / n), 2),
                       "unigram_loss_per_byte": round(uni / valid_bytes, 4),
                       "eval_seconds": timer()},
        "software": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "machine": platform.machine()},
    }
    write_json(out / "training.json", result)
    print(json.dumps(result["validation"]), flush=True)
    return result


def build_models(assets: Path, kinds: list[str], minutes: float, max_steps: int, threads: int, seed: int,
                 wall_cap_minutes: float) -> dict:
    """Train the requested models one after the other; return a summary per model."""
    info = {}
    for kind in kinds:
        r = train_one(kind, assets, minutes, max_steps, threads, seed, wall_cap_minutes)
        info[r["model"]] = {"parameters": r["parameters"], **{k: r["training"][k] for k in
                            ("steps", "seconds", "cpu_seconds", "stopped_by", "seed")},
                            **{k: r["validation"][k] for k in ("loss_per_byte", "unigram_loss_per_byte",
                                                               "perplexity", "loss_per_token")}}
    return info
