"""Train a CMC delta: a small LM next to a frozen template so that ``log_softmax(template) + α·delta`` fits the data.

Cross-model Control (Wu et al. 2024; research/cmc.md §1). The template is frozen; the delta is a
small causal LM with the template's tokenizer, built from a preset (``tiny``: 2 layers, 128
wide; ``small``: 4 layers, 256 wide; Llama-style for Llama/Mistral/Qwen templates, GPT-2-style
otherwise), from a ``config.json``, or from a pretrained model folder.

**Step 0 equals the template.** The delta's output head is untied from its input table and set
to zero, so its logits start at exactly 0 and the combination is the template itself (the
reference starts from a pretrained TinyStories LM and skews the template from the first step).
Zeroing a *tied* head would zero the input embeddings too, hence the untying. The body still
learns: the head's gradient is non-zero at once, and the body's follows after the first step.

**Tasks.** ``instruct``: cross-entropy of the combination on response tokens. ``unlearn``:
gradient difference with a guard, ``retain_weight·CE(retain) + forget_weight·F(forget)``. An
unbounded ``F = −CE`` is minimised by driving the right token's logit to −∞, which wrecks the
delta and every host it is applied to. The default guard (``forget_guard="target"``) is
``F = mean |CE_f − (CE_template + forget_margin)|``: each forget token's loss is pulled to
``forget_margin`` nats above the template's, up *and* down. The one-sided ``clamp`` (ascent stops
at that target) was tried first and overshot on the demo kit: what the delta learnt on some tokens
pushed others far past the target (forget CE above the uniform distribution's) with nothing to
pull them back.

Runs on ``accelerate`` like :mod:`tokmap_ui.train.finetune` and shares its run-folder,
checkpoint and progress helpers (config.json, metrics.jsonl, checkpoints/, exact resume).
The result is ``<out>/delta/``: a normal HF model folder plus ``cmc.json``.

Example:
    >>> cfg = DeltaConfig(template="assets/models/tiny-en-gpt2", data="unlearn.jsonl",
    ...                   task="unlearn", out="runs/kjv", steps=200)     # doctest: +SKIP
    >>> train_delta(cfg).delta_dir                                      # doctest: +SKIP
    PosixPath('runs/kjv/delta')
"""

from __future__ import annotations

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
from tokmap_ui.train.checkpoint import load_checkpoint, save_checkpoint
from tokmap_ui.train.delta_data import (Example, TemplateCache, collate, instruct_examples, read_jsonl,
                                        resolved_prompt_format, unlearn_examples)
from tokmap_ui.train.delta_model import FORGET_GUARDS, build_delta, combined_logprobs, token_losses, unlearn_loss
from tokmap_ui.train.finetune import batch_indices
from tokmap_ui.train.options import RunControl
from tokmap_ui.train.rundir import check_resume_config, rewind_metrics, write_config

EventCallback = Callable[[dict[str, Any]], None]
TASKS = ("instruct", "unlearn")


@dataclass(frozen=True)
class DeltaConfig(RunControl):
    """Settings of one delta-training run (the CLI flags map 1:1 onto these fields; run control: RunControl)."""

    template: str
    """Template model folder (frozen); the delta shares its tokenizer."""
    data: str
    """JSONL training data: {"instruction","input","output"} (instruct) or {"text","split"} (unlearn)."""
    task: str
    """instruct (fit responses) or unlearn (gradient difference on forget/retain text)."""
    out: str
    """Run folder: config.json, metrics.jsonl, checkpoints/ and the trained delta in delta/."""
    delta_config: str = "tiny"
    """Delta size: micro (1 layer, 64 wide), tiny (2 x 128), small (4 x 256), a config.json, or a model folder."""
    steps: int = 200
    """Optimizer steps."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to 10%)."""
    warmup_ratio: float = 0.05
    """Share of steps spent warming up."""
    weight_decay: float = 0.0
    """AdamW weight decay on matrices."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm (0 = off)."""
    batch_size: int = 8
    """Examples per micro-batch (unlearn: this many forget and this many retain blocks)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    block_size: int = 128
    """Tokens per example (clamped to the template's context length)."""
    alpha: float = 1.0
    """Weight of the delta in the combination during training (recorded in cmc.json; decode with the same)."""
    prompt_format: str = "auto"
    """instruct: auto (the tokenizer's chat template, else open-instruct), open-instruct, or chat-template."""
    retain_weight: float = 1.0
    """unlearn: weight of the retain cross-entropy."""
    forget_weight: float = 1.0
    """unlearn: weight of the (negated, clamped) forget cross-entropy."""
    forget_margin: float = 2.0
    """unlearn: target rise of each forget token's loss over the template's, in nats (see forget_guard)."""
    forget_guard: str = "target"
    """unlearn: target (pull every forget token's loss to template + margin, both ways) or clamp (ascent stops at it)."""
    template_cache: str = "auto"
    """Cache the template's log-probs: none, full (whole rows), topk, or auto (full if it fits in cache_max_mb)."""
    cache_topk: int = 64
    """topk cache: entries kept per position."""
    cache_max_mb: float = 512.0
    """auto cache: the most memory a full cache may take."""

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown task '{self.task}'. Fix: use instruct or unlearn.")
        if self.forget_guard not in FORGET_GUARDS:
            raise ConfigError(f"unknown forget guard '{self.forget_guard}'. Fix: use one of {', '.join(FORGET_GUARDS)}.")
        checks = [("steps", self.steps >= 1, "at least 1"), ("lr", self.lr > 0, "above 0"),
                  ("batch_size", self.batch_size >= 1, "at least 1"), ("grad_accum", self.grad_accum >= 1, "at least 1"),
                  ("block_size", self.block_size >= 8, "at least 8"), ("alpha", self.alpha > 0, "above 0"),
                  ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
                  ("forget_margin", self.forget_margin > 0, "above 0"),
                  ("retain_weight", self.retain_weight >= 0, "0 or more"),
                  ("forget_weight", self.forget_weight >= 0, "0 or more"),
                  ("cache_topk", self.cache_topk >= 1, "at least 1")]
        check_ranges(self, checks + self.run_checks())


@dataclass(frozen=True)
class DeltaResult:
    """What a run produced."""

    out: Path
    delta_dir: Path
    steps_done: int
    start_step: int
    final_loss: float
    elapsed_s: float
    template_cache: dict
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(out=str(self.out), delta_dir=str(self.delta_dir))
        return data


def _schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def _optimizer(model: torch.nn.Module, cfg: DeltaConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)


def _context_limit(model: Any) -> int | None:
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(value) if value else None


def train_delta(config: DeltaConfig, template: Any = None, tokenizer: Any = None,
                on_event: EventCallback | None = None) -> DeltaResult:
    """Train (or resume) a delta next to a frozen template; see the module docstring.

    Args:
        config: the settings; ``config.template`` is loaded unless ``template`` and ``tokenizer`` are given.
        on_event: called with every progress event dict (see :mod:`tokmap_ui.train.progress`).

    Raises:
        ConfigError, InputFileError, ModelError: bad settings, data lines or models.
    """
    from accelerate import Accelerator

    from tokmap_ui.io.deltas import save_delta

    config.validate()
    out = Path(config.out)
    emit = (lambda event, **f: on_event({"event": event, **f})) if on_event else (lambda *a, **k: None)
    records = read_jsonl(config.data, config.task)
    checkpoint = check_resume_config(out, config)
    if template is None or tokenizer is None:
        from tokmap_ui.io.models import load_model

        template, tokenizer = load_model(config.template, task="causal-lm")
    block = min(config.block_size, _context_limit(template) or config.block_size)
    if config.task == "instruct":
        examples, dropped = instruct_examples(tokenizer, records, block, config.prompt_format)
        if not examples:
            raise ConfigError(f"no example of {config.data} keeps a response token within {block} tokens. "
                              "Fix: shorten the prompts or raise --block-size.")
        pools: dict[str, list[Example]] = {"train": examples}
    else:
        pools, dropped = unlearn_examples(tokenizer, records, block, config.data), 0

    use_gpu = torch.cuda.is_available() and not config.cpu
    precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if use_gpu else "no"
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_steps=config.grad_accum,
                              cpu=not use_gpu)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    delta, preset = build_delta(template, tokenizer, config.delta_config, seed=config.seed)
    delta.float().train()  # fp32 master weights for the delta (the reference trains a bf16-loaded model)
    template.eval().requires_grad_(False)
    template.to(accelerator.device)
    if not use_gpu and template.dtype in (torch.float16, torch.bfloat16):
        template.float()  # kit models are stored in fp16; half-precision matmuls on a CPU are slow and coarse
    optimizer = _optimizer(delta, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.steps, int(config.steps * config.warmup_ratio)))
    delta, optimizer = accelerator.prepare(delta, optimizer)
    bare = accelerator.unwrap_model(delta)
    vocab = int(template.get_output_embeddings().weight.shape[0])
    n_tokens = sum(len(e.input_ids) for pool in pools.values() for e in pool)
    cache = TemplateCache(config.template_cache, vocab, n_tokens, config.cache_topk, config.cache_max_mb)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = int(pad) if pad is not None else int(getattr(tokenizer, "eos_token_id", 0) or 0)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    start_step = 0
    if checkpoint is not None:
        start_step = int(load_checkpoint(checkpoint, bare, optimizer, scheduler, rank=rank)["step"])
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, config)
        rewind_metrics(out, start_step)
    metrics = open(out / "metrics.jsonl", "a", encoding="utf-8") if main else None
    history: list[dict[str, Any]] = []

    def template_logprobs(pool: str, indices: list[int], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        def compute() -> torch.Tensor:
            with torch.no_grad(), torch.autocast(accelerator.device.type, dtype=autocast, enabled=autocast is not None):
                logits = template(input_ids=batch["input_ids"].to(accelerator.device),
                                  attention_mask=batch["attention_mask"].to(accelerator.device)).logits
            return torch.log_softmax(logits.float(), dim=-1)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        result = cache.get([(pool, i) for i in indices], lengths, batch["input_ids"].shape[1], compute, batch["labels"])
        return result.to(accelerator.device)

    def pool_losses(pool: str, micro: int, seed_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token combined and template losses of one micro-batch of a pool, and the label mask."""
        indices = batch_indices(micro, config.batch_size, len(pools[pool]), config.seed + seed_offset, rank, world)
        batch = collate([pools[pool][i] for i in indices], pad)
        t_lp = template_logprobs(pool, indices, batch)                                    # (B, T, V)
        with torch.autocast(accelerator.device.type, dtype=autocast, enabled=autocast is not None):
            d_logits = delta(input_ids=batch["input_ids"].to(accelerator.device),
                             attention_mask=batch["attention_mask"].to(accelerator.device)).logits
        comb = combined_logprobs(t_lp, d_logits, config.alpha)                           # (B, T, V)
        return token_losses(comb, t_lp, batch["labels"].to(accelerator.device))

    emit("start", total_steps=config.steps, start_step=start_step, task=config.task, delta=preset,
         device=str(accelerator.device), precision=precision, processes=world,
         examples={k: len(v) for k, v in pools.items()}, dropped=dropped, block_size=block,
         template_cache=cache.mode, out=str(out))
    began = time.monotonic()
    step, stopped_early, last_loss = start_step, False, float("nan")
    for step in range(start_step + 1, config.steps + 1):
        sums: dict[str, float] = {}
        for micro in range(config.grad_accum):
            k = (step - 1) * config.grad_accum + micro
            with accelerator.accumulate(delta):
                if config.task == "instruct":
                    ce, _, mask = pool_losses("train", k, 0)
                    loss = ce[mask].mean()
                    parts = {"loss": loss}
                else:
                    ce_f, t_f, m_f = pool_losses("forget", k, 0)
                    ce_r, _, m_r = pool_losses("retain", k, 1)
                    parts = unlearn_loss(ce_f, t_f, m_f, ce_r, m_r, forget_margin=config.forget_margin,
                                         forget_weight=config.forget_weight, retain_weight=config.retain_weight,
                                         guard=config.forget_guard)
                    loss = parts["loss"]
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(delta.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / config.grad_accum
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        last_loss = sums["loss"]
        if main and (step % config.log_every == 0 or step == config.steps):
            elapsed = time.monotonic() - began
            row = {"event": "step", "step": step, **sums, "lr": lr,
                   "eta_s": elapsed / (step - start_step) * (config.steps - step)}
            history.append(row)
            if metrics is not None:
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
            emit(**row)
        out_of_time = config.max_minutes > 0 and time.monotonic() - began > config.max_minutes * 60
        last = step == config.steps or out_of_time
        if last or (config.checkpoint_every and step % config.checkpoint_every == 0):
            accelerator.wait_for_everyone()
            if main:
                path = save_checkpoint(out, step, bare, optimizer, scheduler, keep=config.keep_checkpoints)
                emit("checkpoint", step=step, path=str(path))
        if out_of_time:
            stopped_early = True
            break
    accelerator.wait_for_everyone()
    if metrics is not None:
        metrics.close()
    delta_dir = out / "delta"
    cache_stats = {"mode": cache.mode, "hits": cache.hits, "misses": cache.misses}
    if main:
        info = delta_info(config, tokenizer, preset, step, resolved_prompt_format(tokenizer, config.prompt_format))
        save_delta(bare, tokenizer, delta_dir, info)
        emit("artifact", path=str(delta_dir), kind="delta")
        emit("done", step=step, out=str(out), delta=str(delta_dir), loss=last_loss, stopped_early=stopped_early,
             template_cache=cache_stats)
    return DeltaResult(out, delta_dir, step, start_step, last_loss, time.monotonic() - began, cache_stats,
                       stopped_early, history)


def delta_info(config: DeltaConfig, tokenizer: Any, preset: str, steps: int, prompt_format: str) -> dict[str, Any]:
    """The ``cmc.json`` record: template identity, α, task, steps (see :mod:`tokmap_ui.io.deltas`)."""
    from tokmap_ui.mapping.tokenmap import VocabRef
    from tokmap_ui.vocab import Vocabulary

    vocab = VocabRef.of(Vocabulary.from_tokenizer(tokenizer, name=Path(config.template).name or config.template))
    info = {"template": {"model": config.template, **vocab.to_dict()}, "alpha": config.alpha, "task": config.task,
            "steps": steps, "delta_config": preset, "combine": "log_softmax(template) + alpha * delta",
            "seed": config.seed}
    if config.task == "instruct":
        info["prompt_format"] = prompt_format
    else:
        info.update(forget_margin=config.forget_margin, forget_guard=config.forget_guard, retain_weight=config.retain_weight,
                    forget_weight=config.forget_weight)
    return info
