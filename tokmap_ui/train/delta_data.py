"""Training data of a CMC delta: JSONL records → token examples, and the template's cached log-probs.

Two tasks, one JSON object per line (blank lines are skipped):

* ``instruct``: ``{"instruction": "...", "input": "...", "output": "..."}`` (``input`` optional).
  The prompt is the instruction (plus ``\\n`` + input) in a chat format; only the response
  tokens and the closing EOS are scored (prompt labels are -100).
* ``unlearn``: ``{"text": "...", "split": "forget" | "retain"}``; each split is packed into
  fixed-length blocks (:class:`tokmap_ui.train.data.TextBlocks`), every token scored.

A bad line raises :class:`~tokmap_ui.errors.InputFileError` naming the file, the line and the field.

Template cache: the frozen template's log-probs depend only on the example, so they are computed
once and reused in later epochs (:class:`TemplateCache`), whole rows on small vocabularies or the
top-k plus the target's value otherwise (the rest of the mass spread evenly: an approximation).
Cached values are used from the very first pass, so a run gives the same result whether or not
(and whenever) it was resumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tokmap_ui.errors import ConfigError, InputFileError
from tokmap_ui.io.files import read_text_lines
from tokmap_ui.train.data import IGNORE_INDEX, TextBlocks

PROMPT_FORMATS = ("auto", "open-instruct", "chat-template")
OPEN_INSTRUCT = "<|user|>\n{query}\n<|assistant|>\n"  # the CMC reference's template (research/cmc.md §1)
SPLITS = ("forget", "retain")


@dataclass(frozen=True)
class Example:
    """One training sequence: ids (T,) and labels (T,) with -100 where not scored."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def _context_id(tokenizer: Any) -> int | None:
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def read_jsonl(path: str | Path, task: str) -> list[tuple[int, dict]]:
    """``(line_number, record)`` of every non-blank line, checked for the task's fields and types."""
    required = {"instruct": ("instruction", "output"), "unlearn": ("text", "split")}[task]
    example = ('{"instruction": "Translate to Dutch", "input": "the cat", "output": "de kat"}'
               if task == "instruct" else '{"text": "In the beginning...", "split": "forget"}')
    records = []
    for number, line in enumerate(read_text_lines(path, "JSONL data file"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputFileError(path, f"is not valid JSON ({err.msg}, column {err.colno})", line=number,
                                 fix=f"write one JSON object per line, e.g. {example}") from None
        if not isinstance(record, dict):
            raise InputFileError(path, f"holds a JSON {type(record).__name__}, not an object", line=number,
                                 fix=f"write one JSON object per line, e.g. {example}")
        for key in required:
            if key not in record:
                raise InputFileError(path, f"lacks the field '{key}' that --task {task} needs", line=number,
                                     field=key, fix=f"give every line the fields {', '.join(required)}, e.g. {example}")
        for key in (*required, "input"):
            if key in record and not isinstance(record[key], str):
                raise InputFileError(path, f"'{key}' must be a string, not {type(record[key]).__name__}",
                                     line=number, field=key, fix="quote the value")
        if task == "unlearn" and record["split"] not in SPLITS:
            raise InputFileError(path, f"has split '{record['split']}'", line=number, field="split",
                                 fix="use \"forget\" or \"retain\"")
        records.append((number, record))
    if not records:
        raise InputFileError(path, "has no records (only blank lines)", fix=f"write one JSON object per line, e.g. {example}")
    return records


def format_prompt(tokenizer: Any, instruction: str, input_text: str = "", prompt_format: str = "auto") -> str:
    """The prompt text of an instruction (``auto``: the tokenizer's chat template if it has one).

    Example:
        >>> format_prompt(None, "Say hi", prompt_format="open-instruct")
        '<|user|>\\nSay hi\\n<|assistant|>\\n'
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(f"unknown prompt format '{prompt_format}'. Fix: use one of {', '.join(PROMPT_FORMATS)}.")
    query = instruction + (f"\n{input_text}" if input_text else "")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "chat-template" or (prompt_format == "auto" and has_template):
        if not has_template:
            raise ConfigError("the template's tokenizer has no chat template. Fix: use --prompt-format open-instruct.")
        return tokenizer.apply_chat_template([{"role": "user", "content": query}], tokenize=False,
                                             add_generation_prompt=True)
    return OPEN_INSTRUCT.format(query=query)


def resolved_prompt_format(tokenizer: Any, prompt_format: str) -> str:
    """``auto`` resolved to what :func:`format_prompt` will use for this tokenizer."""
    if prompt_format != "auto":
        return prompt_format
    return "chat-template" if getattr(tokenizer, "chat_template", None) else "open-instruct"


def instruct_examples(tokenizer: Any, records: list[tuple[int, dict]], block_size: int,
                      prompt_format: str = "auto") -> tuple[list[Example], int]:
    """Prompt + response examples (prompt masked); returns ``(examples, n_dropped)``.

    A sequence longer than ``block_size`` keeps its end cut off; one left with no response token
    is dropped (counted).
    """
    ctx, eos = _context_id(tokenizer), getattr(tokenizer, "eos_token_id", None)
    examples, dropped = [], 0
    for _, record in records:
        prompt = format_prompt(tokenizer, record["instruction"], record.get("input", ""), prompt_format)
        p_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        r_ids = list(tokenizer(record["output"], add_special_tokens=False)["input_ids"])
        if eos is not None:
            r_ids.append(int(eos))
        head = ([ctx] if ctx is not None else []) + p_ids
        ids = (head + r_ids)[:block_size]
        labels = ([IGNORE_INDEX] * len(head) + r_ids)[:block_size]
        if all(label == IGNORE_INDEX for label in labels[1:]):
            dropped += 1
            continue
        examples.append(Example(tuple(ids), tuple(labels)))
    return examples, dropped


def unlearn_examples(tokenizer: Any, records: list[tuple[int, dict]], block_size: int,
                     path: str | Path = "data") -> dict[str, list[Example]]:
    """Forget and retain blocks (every token scored) from ``{"text", "split"}`` records."""
    out: dict[str, list[Example]] = {}
    for split in SPLITS:
        texts = [r["text"] for _, r in records if r["split"] == split and r["text"].strip()]
        if not texts:
            raise InputFileError(path, f"has no non-empty '{split}' text", field="split",
                                 fix="give lines with \"split\": \"forget\" and lines with \"split\": \"retain\"")
        blocks = TextBlocks.from_texts(tokenizer, texts, block_size)
        examples = []
        for row in range(len(blocks)):
            n = int(blocks.attention_mask[row].sum())
            ids = tuple(int(i) for i in blocks.input_ids[row, :n])
            examples.append(Example(ids, ids))
        out[split] = examples
    return out


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and shifted-ready ``labels`` (B, T)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class TemplateCache:
    """The frozen template's log-probs per example, computed once.

    Args:
        mode: ``none`` (always run the template), ``full`` (whole rows, float16), ``topk``
            (k largest + the next-token target's value, float32), ``auto`` (full when all
            examples fit in ``max_mb``, else topk).
        vocab: columns of the template's logits.
        n_tokens: total tokens of all examples (for ``auto``).
    """

    def __init__(self, mode: str, vocab: int, n_tokens: int, k: int = 64, max_mb: float = 512):
        if mode not in ("none", "full", "topk", "auto"):
            raise ConfigError(f"unknown template cache '{mode}'. Fix: use none, full, topk or auto.")
        if mode == "auto":
            mode = "full" if n_tokens * vocab * 2 <= max_mb * 2**20 else "topk"
        self.mode, self.vocab, self.k = mode, vocab, min(k, vocab)
        self.store: dict[tuple[str, int], Any] = {}
        self.hits = self.misses = 0

    def get(self, keys: list[tuple[str, int]], lengths: list[int], width: int,
            compute: Any, labels: torch.Tensor) -> torch.Tensor:
        """Template log-probs ``(B, width, V)`` for a batch, from the cache or ``compute()`` (then cached)."""
        if self.mode == "none":
            self.misses += len(keys)
            return compute()
        missing = [k for k in keys if k not in self.store]
        if missing:
            fresh = compute()                                                  # (B, T, V) float32
            for row, key in enumerate(keys):
                if key in self.store:
                    continue
                n = lengths[row]
                logp = fresh[row, :n].detach()
                if self.mode == "full":
                    self.store[key] = logp.to(torch.float16).cpu()
                else:
                    top = torch.topk(logp, self.k, dim=-1)
                    target = labels[row, 1:n].clamp(min=0).to(logp.device)
                    at_target = logp[:-1].gather(-1, target.unsqueeze(-1)).squeeze(-1)
                    self.store[key] = (top.values.cpu(), top.indices.cpu(), at_target.cpu(), target.cpu())
            self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return self._assemble(keys, lengths, width)

    def _assemble(self, keys: list[tuple[str, int]], lengths: list[int], width: int) -> torch.Tensor:
        out = torch.zeros((len(keys), width, self.vocab), dtype=torch.float32)
        for row, key in enumerate(keys):
            n = lengths[row]
            item = self.store[key]
            if self.mode == "full":
                out[row, :n] = item.float()
                continue
            values, indices, at_target, target = item
            mass = values.exp().sum(-1).clamp(max=1 - 1e-6)                     # (n,)
            tail = torch.log((1 - mass) / max(self.vocab - self.k, 1))          # (n,)
            out[row, :n] = tail.unsqueeze(-1)
            out[row, :n].scatter_(-1, indices, values)
            out[row, : n - 1].scatter_(-1, target.unsqueeze(-1), at_target.unsqueeze(-1))
        return out

