"""Short CLM/MLM fine-tunes of a (converted) model, resumable, on accelerate.

The loop a Tik-to-Tok conversion needs afterwards: a few hundred steps on target-language
text, first only the embeddings (the rest of the network already knows the language
structure), then optionally everything. Built on ``accelerate`` so ``accelerate launch -m
tokmap_ui finetune ...`` spreads it over several GPUs unchanged; bf16 on GPU, fp32 on CPU.

Exact resume: the batch of every step is a pure function of (seed, step) — see
:func:`batch_indices` — and checkpoints carry optimizer, scheduler and RNG state, so 3 steps +
resume + 3 steps gives the same weights as 6 steps straight.

Run folder (``config.out``)::

    config.json        the FinetuneConfig (a resume must match it)
    metrics.jsonl      step and eval records
    checkpoints/       step-000100/ ... (see tokmap_ui.train.checkpoint)
    model/             the final model + tokenizer (written atomically)

Example:
    >>> cfg = FinetuneConfig(model="converted/", train_files=("nl.txt",), valid_file="nl-valid.txt",
    ...                      out="runs/nl", steps=200, phase="embeddings-then-full")   # doctest: +SKIP
    >>> finetune(cfg).final_eval.loss_per_byte                                          # doctest: +SKIP
    1.21
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tokmap_ui.errors import ConfigError, check_ranges
from tokmap_ui.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tokmap_ui.train.data import (EvalResult, TextBlocks, clm_loss, evaluate_loss_per_byte, mask_tokens,
                                  mlm_loss, require_mask_token)
from tokmap_ui.train.options import Objective, Phase, RunControl, trainable_parameters
from tokmap_ui.train.rundir import (check_resume_config, load_model_and_tokenizer, read_texts, rewind_metrics,
                                   save_final_model, write_config)

EventCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class FinetuneConfig(RunControl):
    """Settings of one fine-tune run (the CLI flags map 1:1 onto these fields; run control: RunControl)."""

    model: str
    """Model folder (config.json + model.safetensors + tokenizer) to start from."""
    train_files: tuple[str, ...]
    """UTF-8 text files to train on, one document or sentence per line."""
    valid_file: str
    """UTF-8 text file for validation; its loss is reported per token and per byte."""
    out: str
    """Run folder: checkpoints, metrics.jsonl and the final model go here."""
    objective: str = "clm"
    """clm (next-token, GPT/Llama) or mlm (15% masked tokens, BERT/RoBERTa)."""
    steps: int = 200
    """Optimizer steps to run in total."""
    phase: str = "full"
    """embeddings (train only the embeddings and an untied head/bias), full, or embeddings-then-full."""
    embeddings_fraction: float = 0.5
    """Share of the steps spent in the embeddings phase of embeddings-then-full."""
    lr: float = 3e-4
    """Peak learning rate of AdamW (linear warm-up, then cosine decay to 10%)."""
    warmup_ratio: float = 0.06
    """Share of the steps spent warming the learning rate up from 0."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and norms)."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm to this (0 = no clipping)."""
    batch_size: int = 8
    """Blocks per device per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    block_size: int = 128
    """Tokens per training block (clamped to the model's maximum length)."""
    eval_every: int = 0
    """Evaluate every N steps (0 = only before training, at checkpoints and at the end)."""
    max_eval_texts: int = 1000
    """Use at most this many non-empty lines of the validation file."""
    eval_batch_size: int = 16
    """Texts per evaluation batch."""
    mask_probability: float = 0.15
    """MLM: share of tokens masked."""

    def validate(self) -> None:
        """Raise ConfigError for settings out of range."""
        Objective.parse(self.objective)
        Phase.parse(self.phase)
        checks = [("steps", self.steps >= 1, "at least 1"), ("lr", self.lr > 0, "above 0"),
                  ("batch_size", self.batch_size >= 1, "at least 1"),
                  ("grad_accum", self.grad_accum >= 1, "at least 1"),
                  ("block_size", self.block_size >= 8, "at least 8"),
                  ("eval_every", self.eval_every >= 0, "0 or more"),
                  ("embeddings_fraction", 0 < self.embeddings_fraction < 1, "between 0 and 1"),
                  ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
                  ("mask_probability", 0 < self.mask_probability < 1, "between 0 and 1")]
        check_ranges(self, checks + self.run_checks())
        if not self.train_files:
            raise ConfigError("no training file given. Fix: pass --train FILE (one or more).")


@dataclass(frozen=True)
class FinetuneResult:
    """What a run produced and how it went."""

    out: Path
    model_dir: Path
    steps_done: int
    start_step: int
    initial_eval: EvalResult | None   # None when resumed past step 0
    final_eval: EvalResult
    train_tokens_per_s: float
    elapsed_s: float
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # eval records of this session

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(out=str(self.out), model_dir=str(self.model_dir))
        return data


def batch_indices(micro_step: int, batch: int, n_items: int, seed: int, rank: int = 0,
                  world: int = 1) -> list[int]:
    """Dataset indices of one micro-batch: a seeded shuffle per epoch, consumed in order.

    Pure in its arguments, so a resumed run sees exactly the batches it would have seen.

    Example:
        >>> batch_indices(0, 2, 5, seed=0) == batch_indices(0, 2, 5, seed=0)
        True
    """
    start = (micro_step * world + rank) * batch
    out = []
    for position in range(start, start + batch):
        epoch, offset = divmod(position, n_items)
        out.append(int(_epoch_order(n_items, seed, epoch)[offset]))
    return out


@functools.lru_cache(maxsize=4)
def _epoch_order(n_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of one epoch (cached: a shuffle of a million blocks costs milliseconds)."""
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 7919 + epoch))


def _schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def _optimizer(model: torch.nn.Module, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)


def _block_limit(model: torch.nn.Module) -> int | None:
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if limit and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # RoBERTa positions start after the padding index
    return int(limit) if limit else None


def finetune(config: FinetuneConfig, model: torch.nn.Module | None = None, tokenizer: Any = None,
             on_event: EventCallback | None = None) -> FinetuneResult:
    """Run (or resume) a fine-tune; see the module docstring for the run folder.

    Args:
        config: the settings. ``config.model`` is loaded unless ``model`` and ``tokenizer`` are given.
        model, tokenizer: an already loaded model (trained in place) and its tokenizer.
        on_event: called with every progress event dict (see tokmap_ui.train.progress).

    Raises:
        ConfigError, InputFileError, TokenizerError, ModelError: bad settings or inputs.
    """
    from accelerate import Accelerator

    config.validate()
    objective, phase = Objective.parse(config.objective), Phase.parse(config.phase)
    out = Path(config.out)
    train_texts = read_texts(config.train_files, "training file")
    valid_texts = read_texts([config.valid_file], "validation file")[: config.max_eval_texts]
    checkpoint = check_resume_config(out, config)
    if model is None or tokenizer is None:
        model, tokenizer = load_model_and_tokenizer(config.model, objective)
    # Master weights in fp32 whatever the checkpoint's storage dtype: AdamW on fp16 weights gives NaN
    # on the CPU, and on a GPU accelerate's bf16 autocast expects fp32 parameters underneath.
    if any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters()):
        model = model.float()
    mask_id = require_mask_token(tokenizer, f"the tokenizer of {config.model}") if objective is Objective.MLM else None
    block = min(config.block_size, _block_limit(model) or config.block_size)
    data = TextBlocks.from_texts(tokenizer, train_texts, block, wrap_cls_sep=objective is Objective.MLM,
                                 add_eos=objective is Objective.CLM)
    if len(data) == 0:
        raise ConfigError(f"the training text gives no block of 2 or more tokens ({', '.join(config.train_files)}). "
                          "Fix: give more training text.")

    use_gpu = torch.cuda.is_available() and not config.cpu
    precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if use_gpu else "no"
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_steps=config.grad_accum,
                              cpu=not use_gpu)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process

    def emit(event: str, **fields: Any) -> None:
        if on_event is not None and main:  # one process speaks for a multi-GPU run
            on_event({"event": event, **fields})

    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model.train()
    optimizer = _optimizer(model, config)
    warmup = int(config.steps * config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.steps, warmup))
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler steps once per optimizer step, by us
    bare = accelerator.unwrap_model(model)
    vocab = int(bare.get_input_embeddings().weight.shape[0])
    embed_only = trainable_parameters(bare)  # the parameters the embeddings phase trains
    embed_ids = {id(p) for p in embed_only}

    start_step = 0
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, bare, optimizer, scheduler, rank=rank)
        start_step = int(state["step"])
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, config)
        rewind_metrics(out, start_step)
    history: list[dict[str, Any]] = []

    def record(kind: str, step: int, **fields: Any) -> dict[str, Any]:
        row = {"event": kind, "step": step, **fields}
        if main:  # opened per record: a killed run leaves every line it reported, and no open handle
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as metrics:
                metrics.write(json.dumps(row) + "\n")
        emit(kind, step=step, **fields)
        return row

    def evaluate(step: int) -> EvalResult:
        result = evaluate_loss_per_byte(bare, tokenizer, valid_texts, objective=objective.value, block_size=block,
                                        batch_size=config.eval_batch_size, seed=config.seed, autocast_dtype=autocast)
        history.append(record("eval", step, **result.to_dict()))
        return result

    emit("start", total_steps=config.steps, start_step=start_step, objective=objective.value, phase=phase.value,
         device=str(accelerator.device), precision=precision, processes=world, train_blocks=len(data),
         block_size=block, train_tokens=data.n_tokens, valid_texts=len(valid_texts), out=str(out))
    initial = evaluate(0) if start_step == 0 and main else None
    final_eval = initial

    embed_steps = {Phase.EMBEDDINGS: config.steps, Phase.FULL: 0,
                   Phase.EMBEDDINGS_THEN_FULL: round(config.steps * config.embeddings_fraction)}[phase]
    began = time.monotonic()
    train_seconds, tokens_seen, stopped_early, step = 0.0, 0, False, start_step
    for step in range(start_step + 1, config.steps + 1):
        embeddings_only = step <= embed_steps
        if world == 1:  # cheaper than masking gradients: frozen weights get no gradient at all
            for param in bare.parameters():
                param.requires_grad_(not embeddings_only or id(param) in embed_ids)
        tick = time.monotonic()
        loss_sum = torch.zeros((), device=accelerator.device)
        for micro in range(config.grad_accum):
            k = (step - 1) * config.grad_accum + micro
            batch = data.batch(batch_indices(k, config.batch_size, len(data), config.seed, rank, world))
            tokens_seen += int(batch["attention_mask"].sum()) * world
            with accelerator.accumulate(model):
                ids = batch["input_ids"].to(accelerator.device)
                attention = batch["attention_mask"].to(accelerator.device)
                if objective is Objective.MLM:
                    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + k * world + rank)
                    inputs, labels = mask_tokens(batch["input_ids"], batch["special_mask"], mask_id, vocab,
                                                 generator, config.mask_probability)
                    logits = model(input_ids=inputs.to(accelerator.device), attention_mask=attention).logits
                    loss = mlm_loss(logits, labels.to(accelerator.device))
                else:
                    logits = model(input_ids=ids, attention_mask=attention).logits  # (B, T, V)
                    loss = clm_loss(logits, ids, attention)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if embeddings_only and world > 1:
                        for param in bare.parameters():
                            if id(param) not in embed_ids:
                                param.grad = None  # AdamW skips parameters without a gradient
                    if config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
        lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        scheduler.step()
        train_seconds += time.monotonic() - tick
        if step % config.log_every == 0 or step == config.steps:
            rate = tokens_seen / max(train_seconds, 1e-9)
            record("step", step, loss=float(loss_sum) / config.grad_accum, lr=lr,
                   tokens_per_s=rate, eta_s=train_seconds / (step - start_step) * (config.steps - step),
                   phase="embeddings" if embeddings_only else "full")
        out_of_time = config.max_minutes > 0 and time.monotonic() - began > config.max_minutes * 60
        last = step == config.steps or out_of_time
        at_checkpoint = last or (config.checkpoint_every and step % config.checkpoint_every == 0)
        if at_checkpoint:
            accelerator.wait_for_everyone()
            path = save_checkpoint(out, step, bare, optimizer, scheduler, rank=0, keep=config.keep_checkpoints,
                                   extra={"tokens_seen": tokens_seen}) if main else None
            accelerator.wait_for_everyone()
            if not main:
                save_checkpoint(out, step, bare, optimizer, scheduler, rank=rank, is_main=False)
            emit("checkpoint", step=step, path=str(path))
        if main and (at_checkpoint or (config.eval_every and step % config.eval_every == 0)):
            final_eval = evaluate(step)
        if out_of_time:
            stopped_early = True
            break
    accelerator.wait_for_everyone()
    model_dir = out / "model"
    if main:
        if final_eval is None:  # resumed a run that had already finished all its steps
            final_eval = evaluate(step)
        save_final_model(bare, tokenizer, model_dir)
        emit("artifact", path=str(model_dir), kind="model")
    rate = tokens_seen / max(train_seconds, 1e-9)
    result = FinetuneResult(out=out, model_dir=model_dir, steps_done=step, start_step=start_step,
                            initial_eval=initial, final_eval=final_eval, train_tokens_per_s=rate,
                            elapsed_s=time.monotonic() - began, stopped_early=stopped_early, history=history)
    emit("done", step=step, out=str(out), model=str(model_dir), stopped_early=stopped_early,
         loss_per_byte=final_eval.loss_per_byte if final_eval else None, tokens_per_s=rate)
    return result
