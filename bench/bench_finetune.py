"""Benchmark the fine-tune loop: tokens/s of ``tokmap_ui.train.finetune`` beside a plain PyTorch loop.

Usage (from the repository root)::

    python bench/bench_finetune.py [--layers 4 --width 256 --vocab 8000 --batch 16 --block 128]
                                   [--steps 12 --warmup 3 --repeat 3 --threads 0 --device auto]

Both loops train the same GPT-2 (same initial weights), on the same batches (the blocks and
batch order ``finetune`` uses), with the same AdamW, schedule and gradient clipping, in the
same process, alternating ``--repeat`` times. The plain loop is what one writes by hand:
``loss = model(ids, labels=ids).loss; loss.backward(); clip; step; zero_grad``. Ours is the
full ``finetune()`` (accelerate, progress events, phase handling) with checkpoints off; its
steps are timed by the gaps between its step events after ``--warmup`` (the evaluation before
training and the final checkpoint lie outside). Prints tokens/s of each (median over the
repeats, and the best single step, which other processes on a shared CPU disturb least) and
the ratios; the goal is ours ≥ 0.9× plain.

The text is ``assets/text/nl/train.txt`` when the demo kit is present, else made-up sentences.
On a GPU (``--device cuda``) both loops use bf16 autocast.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def _texts(limit: int = 4000) -> list[str]:
    for candidate in (ROOT / "assets/text/nl/train.txt", ROOT / "assets/text/en/train.txt"):
        if candidate.is_file():
            lines = [l for l in candidate.read_text(encoding="utf-8").splitlines() if l.strip()]
            if len(lines) > 200:
                return lines[:limit]
    from tests.tiny import corpus_lines

    return corpus_lines(limit, seed=1)


def _setup(args, folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = _texts()
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=args.vocab, special_tokens=["<|endoftext|>"],
                                                       show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=args.layers, n_embd=args.width,
                                       n_head=max(1, args.width // 64), n_positions=max(args.block, 64),
                                       bos_token_id=0, eos_token_id=0))
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    (folder / "train.txt").write_text("\n".join(texts[:-100]) + "\n", encoding="utf-8")
    (folder / "valid.txt").write_text("\n".join(texts[-20:]) + "\n", encoding="utf-8")
    return tokenizer, texts[:-100]


def _config(args, folder: Path, run: str):
    from tokmap_ui.train.finetune import FinetuneConfig

    return FinetuneConfig(model=str(folder / "model"), train_files=(str(folder / "train.txt"),),
                          valid_file=str(folder / "valid.txt"), out=str(folder / run), steps=args.steps,
                          batch_size=args.batch, block_size=args.block, checkpoint_every=0, lr=3e-4,
                          warmup_ratio=0.06, max_eval_texts=8, cpu=args.device == "cpu")


def _step_tokens(args, step: int) -> int:
    """Real tokens in the batch of ``step`` (both loops see the same batches)."""
    from tokmap_ui.train.finetune import batch_indices

    data = _BLOCKS["data"]
    return int(data.batch(batch_indices(step - 1, args.batch, len(data), 0))["attention_mask"].sum())


def run_ours(args, folder: Path, run: str) -> list[tuple[int, float]]:
    """(tokens, seconds) of each timed step of ``finetune()``, from the gaps between its step events."""
    from tokmap_ui.train.finetune import finetune

    stamps: dict[int, float] = {}

    def on_event(event):
        if event["event"] == "step":
            stamps[event["step"]] = time.perf_counter()

    finetune(_config(args, folder, run), on_event=on_event)
    timed = range(args.warmup + 1, args.steps + 1)
    return [(_step_tokens(args, step), stamps[step] - stamps[step - 1]) for step in timed]


_BLOCKS: dict = {}  # the training blocks, built once


def run_plain(args, folder: Path, device: torch.device) -> list[tuple[int, float]]:
    """The hand-written loop: same model file, same batches, same optimizer settings."""
    from transformers import GPT2LMHeadModel

    from tokmap_ui.train.finetune import _optimizer, _schedule, batch_indices

    data = _BLOCKS["data"]
    model = GPT2LMHeadModel.from_pretrained(folder / "model").to(device).train()
    config = _config(args, folder, "unused")
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(args.steps, int(args.steps * 0.06)))
    autocast = device.type == "cuda"
    steps, last = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = data.batch(batch_indices(step - 1, args.batch, len(data), 0))
        ids, attention = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        labels = ids.masked_fill(attention.eq(0), -100)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())  # a plain loop logs its loss too (and this waits for the GPU)
        now = time.perf_counter()
        if step > args.warmup:
            steps.append((int(attention.sum()), now - last))
        last = now
    return steps


def _rate(steps: list[tuple[int, float]]) -> float:
    return sum(t for t, _ in steps) / sum(s for _, s in steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="steps per run (the first --warmup are not timed)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    from transformers.utils import logging as hf_logging

    from tokmap_ui.train.data import TextBlocks

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        folder = Path(tmp)
        tokenizer, texts = _setup(args, folder)
        _BLOCKS["data"] = TextBlocks.from_texts(tokenizer, texts, args.block)
        ours, plain = [], []
        for i in range(args.repeat):
            plain.append(run_plain(args, folder, device))
            ours.append(run_ours(args, folder, f"run{i}"))
            print(f"repeat {i + 1}: plain {_rate(plain[-1]):,.0f} tok/s, ours {_rate(ours[-1]):,.0f} tok/s", flush=True)
    best = lambda runs: max(tokens / seconds for run in runs for tokens, seconds in run)  # noqa: E731
    figures = {"device": str(device), "threads": torch.get_num_threads(), "layers": args.layers,
               "width": args.width, "vocab": len(tokenizer), "batch": args.batch, "block": args.block,
               "timed_steps": args.steps - args.warmup, "repeat": args.repeat,
               "plain_tokens_per_s": statistics.median(map(_rate, plain)),
               "ours_tokens_per_s": statistics.median(map(_rate, ours)),
               "plain_best_step_tokens_per_s": best(plain), "ours_best_step_tokens_per_s": best(ours)}
    figures["ratio"] = figures["ours_tokens_per_s"] / figures["plain_tokens_per_s"]
    figures["ratio_best_step"] = figures["ours_best_step_tokens_per_s"] / figures["plain_best_step_tokens_per_s"]
    print(f"plain PyTorch loop: {figures['plain_tokens_per_s']:,.0f} tokens/s median of {args.repeat} runs, "
          f"{figures['plain_best_step_tokens_per_s']:,.0f} in its best step")
    print(f"tokmap finetune:    {figures['ours_tokens_per_s']:,.0f} tokens/s median of {args.repeat} runs, "
          f"{figures['ours_best_step_tokens_per_s']:,.0f} in its best step")
    print(f"ratio ours/plain:   {figures['ratio']:.3f} (median), {figures['ratio_best_step']:.3f} (best step); "
          "goal >= 0.9. The best step is the figure least disturbed by other processes on a shared CPU.")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
