"""Apply a TokenMap to a model: every vocabulary-sized tensor, the config ids and the tokenizer.

Row ``t`` of every rebuilt table is the weighted average the map gives for target token ``t``::

    new[t] = sum(w * old[s] for s, w in entry.sources)        # (V_t, D) from (V_s, D)

This holds for the input embeddings, an untied output head and an MLM output bias (BERT
``cls.predictions.bias``, RoBERTa ``lm_head.bias``; a bias is a table with D = 1). Tied tables stay
tied (one tensor). Unmapped and rejected entries get ``ConvertConfig.fallback``; entries whose
method is ``random`` get transformers' old resize default, N(0, initializer_range), seeded.

Traps handled (research/peers.md §1.4, §1.7, §7; research/tiktotok.md §3.3):
- tables padded past the tokenizer (Qwen: 151,665 tokens, 151,936 rows): the new table is padded
  to the same multiple and keeps the old padding rows; map sources that point past the table
  (tokens a tokenizer has but the table lacks, mergekit #657) are dropped, never indexed;
- a target tokenizer whose added tokens exceed its base vocabulary: rows = ``len(tokenizer)``;
- config ids (bos/eos/pad/unk/sep/cls/mask, decoder_start) by role, not by old number;
- RoBERTa-style position ids start at ``pad_token_id + 1``: a new pad id shifts the position table
  so every position keeps its trained row;
- the tokenizer gets the special-token template the source model was trained with, with the
  target's ids (``convert_tokenizer.py``), so a wrong ``sep`` id cannot slip through.

Example:
    >>> model, tokenizer = convert_model(model, src_vocab, tgt_tok, tgt_vocab, token_map,
    ...                                  ConvertConfig(fallback=Fallback.MEAN))     # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import nn

from tokmap_ui.convert_tokenizer import (ROLES, build_target_tokenizer, fvt_source_ids,
                                         model_max_length_for, position_offset_module)
from tokmap_ui.errors import ConfigError, TokenizerError


class Fallback(str, Enum):
    """How rows of unmapped and rejected entries are initialised."""

    MEAN = "mean"          # the mean of the source rows
    RANDOM = "random"      # N(0, initializer_range), seeded (transformers' old resize default)
    KEEP_FVT = "keep-fvt"  # the mean of the rows the source tokenizer splits the token into (FVT)


@dataclass(frozen=True)
class ConvertConfig:
    """Settings of one conversion (``tokmap convert``)."""

    fallback: Fallback = Fallback.MEAN
    """Rows for unmapped and rejected entries: mean | random | keep-fvt (needs the source tokenizer)."""
    seed: int = 0
    """Seed of random rows (entries whose method is 'random', or fallback=random)."""
    pad_to_multiple_of: int | None = None
    """Pad new tables to a multiple of this many rows. None: keep the source's padding if its table
    is padded past its tokenizer (Qwen-style), else none. 1: never pad."""
    model_max_length: int | None = None
    """Longest input the converted tokenizer accepts. None: the source tokenizer's, else the
    model's position table."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback", Fallback(self.fallback))
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ConfigError(f"pad_to_multiple_of must be >= 1, got {self.pad_to_multiple_of}")


@dataclass
class ConvertReport:
    """What a conversion did: counts per row kind, rebuilt tensors, config changes, warnings."""

    rows: int = 0
    target_tokens: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    dropped_sources: int = 0
    tensors: list[str] = field(default_factory=list)
    tied: bool = False
    config_changes: dict[str, Any] = field(default_factory=dict)
    template: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def to_text(self) -> str:
        lines = [f"rows: {self.rows} ({self.target_tokens} target tokens"
                 f"{', tied input/output' if self.tied else ''})",
                 "rows by kind: " + ", ".join(f"{k} {v}" for k, v in self.counts.items() if v),
                 "tensors rebuilt: " + ", ".join(self.tensors),
                 f"tokenizer template: {self.template}"]
        lines += [f"config {k}: {v[0]} -> {v[1]}" for k, v in self.config_changes.items()]
        if self.dropped_sources:
            lines.append(f"dropped {self.dropped_sources} map sources past the source table")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class RowPlan:
    """Which old rows make each new row: a sparse (rows, cols, weights) matrix plus special rows."""

    n_target: int                 # rows standing for target tokens
    n_rows: int                   # rows after padding (>= n_target)
    rows: torch.Tensor            # (E,) new row ids
    cols: torch.Tensor            # (E,) old row ids
    weights: torch.Tensor         # (E,) float32, summing to 1 per new row
    fallback_ids: torch.Tensor    # new rows that get the mean (or random, per config)
    random_ids: torch.Tensor      # new rows of entries whose method is 'random'
    counts: dict[str, int]
    dropped_sources: int


def plan_rows(token_map: Any, n_target: int, n_source: int, old_rows: int, config: ConvertConfig,
              fvt: Callable[[int], list[int]] | None = None) -> RowPlan:
    """Turn map entries into a sparse averaging plan.

    Rejected entries and those without sources go to the fallback; entries whose method is
    'random' get random rows; sources at or past the source table's end (a tokenizer longer
    than its table) are dropped and the rest renormalised. Target ids past the map (a target
    tokenizer longer than the map's vocabulary) count as unmapped.
    """
    usable = min(n_source, old_rows)  # a source id at or past this has no trained row
    entries = token_map.entries
    n_map = min(len(entries), n_target)
    rows, cols, vals = (np.asarray(a) for a in token_map.weight_arrays())  # COO, rows sum to 1
    rejected = np.zeros(n_target, dtype=bool)
    random_row = np.zeros(n_target, dtype=bool)
    rejected[:n_map] = np.fromiter((e.status == "rejected" for e in entries[:n_map]), bool, n_map)
    random_row[:n_map] = np.fromiter((e.method == "random" for e in entries[:n_map]), bool, n_map)
    rejected &= ~random_row
    keep = rows < n_target
    keep[keep] = ~(rejected | random_row)[rows[keep]]
    dropped = int((keep & (cols >= usable)).sum())
    keep &= cols < usable
    rows, cols, vals = rows[keep], cols[keep], vals[keep].astype(np.float64)
    sums = np.bincount(rows, weights=vals, minlength=n_target)
    positive = sums[rows] > 0
    rows, cols, vals = rows[positive], cols[positive], vals[positive] / sums[rows[positive]]
    mapped = np.zeros(n_target, dtype=bool)
    mapped[rows] = True
    fallback = np.flatnonzero(~mapped & ~random_row).tolist()
    counts = {"mapped": int(mapped.sum()), "unmapped": len(fallback) - int(rejected.sum()),
              "rejected": int(rejected.sum()), "random": int(random_row.sum()), "fvt": 0}
    rows_l, cols_l, vals_l = rows.tolist(), cols.tolist(), vals.tolist()
    if config.fallback is Fallback.KEEP_FVT and fvt is not None:
        still = []
        for t in fallback:
            pieces = [s for s in fvt(t) if 0 <= s < usable]
            if not pieces:
                still.append(t)
                continue
            counts["fvt"] += 1
            rows_l += [t] * len(pieces)
            cols_l += pieces
            vals_l += [1.0 / len(pieces)] * len(pieces)
        fallback = still
    counts["fallback"] = len(fallback)
    n_rows = _padded_rows(n_target, n_source, old_rows, config.pad_to_multiple_of)
    counts["padding"] = n_rows - n_target
    long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return RowPlan(n_target, n_rows, long(rows_l), long(cols_l), torch.tensor(vals_l, dtype=torch.float32),
                   long(fallback), long(np.flatnonzero(random_row).tolist()), counts, dropped)


def _padded_rows(n_target: int, n_source: int, old_rows: int, multiple: int | None) -> int:
    """Rows of the new table: ``n_target`` rounded up like the source table was.

    Example: Qwen2.5 has 151,665 tokens in 151,936 rows = 1187 * 128, so a 40,001-token target
    gets 40,064 rows (313 * 128).
    """
    if multiple is None:
        multiple = 1
        if old_rows > n_source:  # padded: the largest power of two (<= 256) dividing the table
            while multiple < 256 and old_rows % (multiple * 2) == 0:
                multiple *= 2
    return math.ceil(n_target / multiple) * multiple


def rebuild_table(old: torch.Tensor, plan: RowPlan, n_source: int, fallback: Fallback,
                  generator: torch.Generator, std: float, is_bias: bool = False) -> torch.Tensor:
    """One new table ``(plan.n_rows, D)`` (or bias ``(n_rows,)``) from ``old`` by ``plan``."""
    src = old.detach().float()
    if is_bias:
        src = src[:, None]                                        # (V_s, 1)
    old_rows, dim = src.shape
    device = src.device
    real = src[: min(n_source, old_rows)]
    mean = real.mean(0)
    new = mean.expand(plan.n_rows, dim).clone()                   # (V_t', D): mean by default
    if plan.rows.numel():
        rows, cols = plan.rows.to(device), plan.cols.to(device)
        new[rows] = 0.0
        new.index_add_(0, rows, src[cols] * plan.weights.to(device)[:, None])
    random_rows = plan.random_ids
    if fallback is Fallback.RANDOM:
        random_rows = torch.cat([random_rows, plan.fallback_ids])
    if random_rows.numel():
        # A random bias is 0 (nn.Linear's resize init); random rows are N(0, std) as in
        # transformers before mean_resizing (transformers #6562, #33325). Drawn on the CPU
        # generator so a seed gives the same rows on every device.
        new[random_rows.to(device)] = 0.0 if is_bias else torch.normal(
            0.0, std, (random_rows.numel(), dim), generator=generator).to(device)
    if plan.n_rows > plan.n_target:  # padding rows: reuse the old padding rows, which never win
        old_padding = src[n_source:] if old_rows > n_source else None
        pad_ids = torch.arange(plan.n_target, plan.n_rows, device=device)
        if old_padding is not None and len(old_padding):
            new[pad_ids] = old_padding[torch.arange(len(pad_ids), device=device) % len(old_padding)]
        elif is_bias:
            new[pad_ids] = real.min()  # an unseen id should never out-score a real one
    new = new.to(old.dtype)
    return new[:, 0] if is_bias else new


def _swap_parameter(model: nn.Module, old: torch.Tensor, new: nn.Parameter) -> None:
    """Replace every reference to parameter ``old`` (ties included) by ``new``."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is old:
                module._parameters[name] = new


def convert_model(model: Any, source_vocab: Any, target_tokenizer: Any, target_vocab: Any, token_map: Any,
                  config: ConvertConfig | None = None, *, source_tokenizer: Any = None) -> tuple[Any, Any]:
    """Convert ``model`` (in place) to ``target_tokenizer`` by ``token_map``; return ``(model, tokenizer)``.

    Args:
        model: a transformers model (CLM, MLM or bare encoder) whose vocabulary is ``source_vocab``.
        source_vocab: Vocabulary of the model's tokenizer (the map's source).
        target_tokenizer: the new tokenizer (fast); it is copied, never changed.
        target_vocab: Vocabulary of ``target_tokenizer`` (the map's target).
        token_map: TokenMap from ``target_vocab`` to ``source_vocab``.
        config: ConvertConfig (fallback, seed, padding, model_max_length).
        source_tokenizer: the model's own tokenizer; its special-token template (``[CLS] A [SEP]``,
            ``<s> A``, none) is reproduced with the target's ids; needed for ``keep-fvt``.
    """
    result = convert_model_with_report(model, source_vocab, target_tokenizer, target_vocab, token_map,
                                       config, source_tokenizer=source_tokenizer)
    return result[0], result[1]


def convert_model_with_report(model: Any, source_vocab: Any, target_tokenizer: Any, target_vocab: Any,
                              token_map: Any, config: ConvertConfig | None = None, *,
                              source_tokenizer: Any = None) -> tuple[Any, Any, ConvertReport]:
    """:func:`convert_model` that also returns a :class:`ConvertReport`."""
    config = config or ConvertConfig()
    report = ConvertReport()
    if hasattr(token_map, "check_fits"):
        token_map.check_fits(target_vocab, source_vocab)
    if config.fallback is Fallback.KEEP_FVT and source_tokenizer is None:
        raise ConfigError("fallback 'keep-fvt' needs the source tokenizer (it splits each unmapped token "
                          "with it). Fix: pass source_tokenizer=, or choose fallback 'mean'")
    embeddings = model.get_input_embeddings()
    if embeddings is None or not isinstance(embeddings, nn.Embedding):
        raise ConfigError(f"{type(model).__name__} has no plain input-embedding table to convert")
    w_in = embeddings.weight
    old_rows = w_in.shape[0]
    n_source = len(source_vocab.tokens)
    n_target = max(len(target_vocab.tokens), len(target_tokenizer))
    fvt = None
    if config.fallback is Fallback.KEEP_FVT:
        fvt = lambda t: fvt_source_ids(target_tokenizer, source_tokenizer, t)  # noqa: E731
    plan = plan_rows(token_map, n_target, n_source, old_rows, config, fvt)
    if n_source > old_rows:
        report.warnings.append(f"the source tokenizer has {n_source} tokens but the table only {old_rows} rows; "
                               "map sources past the table were dropped")
    generator = torch.Generator().manual_seed(config.seed)
    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    rebuild = lambda old, bias=False: rebuild_table(old, plan, n_source, config.fallback,  # noqa: E731
                                                    generator, std, is_bias=bias)
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is w_in
    old_bias = getattr(head, "bias", None) if head is not None else None

    new_in = nn.Parameter(rebuild(w_in), requires_grad=w_in.requires_grad)
    _swap_parameter(model, w_in, new_in)
    embeddings.num_embeddings = plan.n_rows
    report.tensors.append("input embeddings")
    if head is not None and not tied:
        new_out = nn.Parameter(rebuild(head.weight), requires_grad=head.weight.requires_grad)
        _swap_parameter(model, head.weight, new_out)
        report.tensors.append("output head")
    if head is not None and hasattr(head, "out_features"):
        head.out_features = plan.n_rows
    # Output biases: the head's own (tied to BERT's cls.predictions.bias / RoBERTa's lm_head.bias)
    # and any other 1-D '*bias' of vocabulary length (a separate copy some checkpoints load).
    biases = [old_bias] if isinstance(old_bias, nn.Parameter) and old_bias.shape[0] == old_rows else []
    for name, param in model.named_parameters(remove_duplicate=True):
        if name.endswith("bias") and param.dim() == 1 and param.shape[0] == old_rows \
                and all(param is not b for b in biases) and param is not new_in:
            biases.append(param)
    for bias in biases:
        _swap_parameter(model, bias, nn.Parameter(rebuild(bias, bias=True), requires_grad=bias.requires_grad))
        report.tensors.append("output bias")
    for module in model.modules():  # BART/Marian keep a (1, V) buffer of logit biases
        for name, buf in list(module._buffers.items()):
            if buf is not None and "logits_bias" in name and buf.shape[-1] == old_rows:
                module._buffers[name] = rebuild(buf.reshape(-1), bias=True).reshape(1, -1)
                report.tensors.append(name)
    for name, param in model.named_parameters():
        if old_rows != plan.n_rows and old_rows in param.shape:
            report.warnings.append(f"left {name} {tuple(param.shape)} unchanged: it has a vocabulary-sized "
                                   "dimension tokmap does not know how to remap")
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    text_config.vocab_size = plan.n_rows
    if hasattr(model, "vocab_size"):
        model.vocab_size = plan.n_rows

    source_roles = dict(getattr(source_vocab, "special_roles", {}) or {})
    target_roles = dict(getattr(target_vocab, "special_roles", {}) or {})
    old_pad = getattr(model.config, "pad_token_id", None)
    new_pad = target_roles.get("pad")
    _shift_positions(model, old_pad, new_pad, report)
    if embeddings.padding_idx is not None:
        embeddings.padding_idx = new_pad
    _remap_ids(model.config, source_roles, target_roles, report, "config")
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        _remap_ids(generation_config, source_roles, target_roles, report, "generation_config")

    max_length = config.model_max_length or model_max_length_for(model, source_tokenizer)
    tokenizer, report.template = build_target_tokenizer(
        target_tokenizer, target_roles, model, source_tokenizer=source_tokenizer, source_roles=source_roles,
        model_max_length=max_length)
    report.rows, report.target_tokens, report.tied = plan.n_rows, n_target, tied
    report.counts, report.dropped_sources = dict(plan.counts), plan.dropped_sources
    return model, tokenizer, report


def _shift_positions(model: Any, old_pad: int | None, new_pad: int | None, report: ConvertReport) -> None:
    """RoBERTa-style models number positions from ``pad_token_id + 1``; keep each position's row.

    With pad 1 -> 0, position k used row k + 2 and must now read row k + 1: the table is shifted
    (and grows when the new pad id is larger), so the model sees the same position vectors.
    """
    embeddings = position_offset_module(model)
    if embeddings is None or old_pad is None or old_pad == new_pad:
        return
    if new_pad is None:
        raise TokenizerError("target tokenizer", "has no padding token, which this model family "
                             "(RoBERTa-style positions) needs", fix="add a pad token to the target tokenizer")
    table = embeddings.position_embeddings
    old = table.weight.detach()
    used = old[old_pad + 1:]                                       # (L - pad - 1, D)
    new = torch.cat([old[old_pad].expand(new_pad + 1, -1), used])  # pad row (and any below it)
    table.weight = nn.Parameter(new, requires_grad=table.weight.requires_grad)
    table.num_embeddings, table.padding_idx, embeddings.padding_idx = len(new), new_pad, new_pad
    for name in ("position_ids", "token_type_ids"):
        buf = getattr(embeddings, name, None)
        if isinstance(buf, torch.Tensor) and buf.dim() == 2 and buf.shape[1] == len(old):
            fresh = torch.arange(len(new)) if name == "position_ids" else torch.zeros(len(new), dtype=buf.dtype)
            embeddings.register_buffer(name, fresh.expand(1, -1).to(buf.dtype), persistent=False)
    report.config_changes["config.max_position_embeddings"] = (len(old), len(new))
    model.config.max_position_embeddings = len(new)
    report.tensors.append("position embeddings (shifted for the new pad id)")


def _remap_ids(obj: Any, source_roles: dict[str, int], target_roles: dict[str, int],
               report: ConvertReport, label: str) -> None:
    """Set ``{role}_token_id`` (and ``decoder_start_token_id``) of a config by role, not by number."""
    roles_of = {}
    for role, token_id in source_roles.items():
        roles_of.setdefault(token_id, []).append(role)

    def by_old_id(old: int) -> int | None:  # the target id of the role the old id played
        return next((target_roles[r] for r in roles_of.get(old, ()) if r in target_roles), None)

    attrs = [f"{role}_token_id" for role in ROLES] + ["decoder_start_token_id"]
    for attr in attrs:
        old = getattr(obj, attr, None)
        role = attr[: -len("_token_id")]
        own = target_roles.get(role)
        if isinstance(old, (list, tuple)):
            ids = [own] + [by_old_id(i) for i in old]
            new: Any = list(dict.fromkeys(i for i in ids if i is not None)) or None
        elif role == "decoder_start":
            new = by_old_id(old) if old is not None else None
        else:
            new = own
        if new is None and old is None:
            continue
        if not hasattr(obj, attr) and role not in ("bos", "eos", "pad"):
            continue
        if new != old:
            if new is None:
                report.warnings.append(f"the target tokenizer has no {role} token: {label}.{attr} cleared")
            setattr(obj, attr, new)
            report.config_changes[f"{label}.{attr}"] = (old, new)
