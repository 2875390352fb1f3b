"""A causal LM stepping a batch of rows with one KV cache, where rows grow unevenly and may roll back.

Host decoding appends one token per row per step. The delta's stream in cross-vocabulary
decoding does not: after a re-encode a row may drop its last few tokens and append a few others
(see :mod:`tokmap_ui.cmc.sync`). Cropping a shared cache per row is impossible, so rows never
crop: dropped positions are *masked out* (attention mask 0) and stay in the cache as dead slots,
and every real token gets an explicit position id (its index among the row's live tokens). The
model then computes exactly what it would on the row's live tokens alone (a test checks this
against a fresh forward pass). Prompts are left-padded, new chunks right-padded.

Example:
    >>> lm = CachedLM(model, pad_id=0)                       # doctest: +SKIP
    >>> logits = lm.start([[1, 5, 6], [1, 7]])               # (2, V) at each row's last token
    >>> logits = lm.step(keep=[3, 1], new=[[8], [9, 10]])    # row 1 dropped token 7
"""

from __future__ import annotations

from typing import Any

import torch


def max_positions(model: Any) -> int | None:
    """The model's context length from its config (``max_position_embeddings`` / ``n_positions``)."""
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(value) if value else None


class CachedLM:
    """Batch stepping with a KV cache, dead slots and per-row rollback.

    Args:
        model: a transformers causal LM (eval mode).
        pad_id: the id fed in padding slots (masked, so any valid id).
    """

    def __init__(self, model: Any, pad_id: int = 0):
        self.model = model
        self.pad_id = int(pad_id)
        self.device = next(model.parameters()).device
        self.limit = max_positions(model)
        self.cache = None
        self.mask: torch.Tensor | None = None  # (B, S) long: 1 = live slot
        self.slots: list[list[int]] = []       # per row: the slot index of each live token, in order
        self.ids: list[list[int]] = []         # per row: the live token ids
        self.last: torch.Tensor | None = None  # (B, V) logits at each row's last live token
        self.forwards = 0

    def lengths(self) -> list[int]:
        """Live tokens per row."""
        return [len(row) for row in self.ids]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, keep_logits: int) -> torch.Tensor:
        out = self.model(input_ids=ids.to(self.device), attention_mask=self.mask.to(self.device),
                         position_ids=positions.to(self.device), past_key_values=self.cache, use_cache=True,
                         logits_to_keep=keep_logits)
        self.cache = out.past_key_values
        self.forwards += 1
        return out.logits  # (B, keep_logits, V)

    @torch.no_grad()
    def start(self, rows: list[list[int]]) -> torch.Tensor:
        """Prefill left-padded prompts; return ``(B, V)`` logits at each row's last token."""
        if any(not row for row in rows):
            raise ValueError("CachedLM.start: every row needs at least one token")
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        self.mask = torch.zeros((len(rows), width), dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        self.slots, self.ids = [], []
        for r, row in enumerate(rows):
            offset = width - len(row)
            ids[r, offset:] = torch.tensor(row, dtype=torch.long)
            self.mask[r, offset:] = 1
            positions[r, offset:] = torch.arange(len(row))
            self.slots.append(list(range(offset, width)))
            self.ids.append([int(t) for t in row])
        self.cache = None
        self.last = self._forward(ids, positions, 1)[:, -1].float()
        return self.last

    @torch.no_grad()
    def step(self, keep: list[int], new: list[list[int]]) -> torch.Tensor:
        """Per row keep the first ``keep[r]`` live tokens, append ``new[r]``; return ``(B, V)`` last logits.

        A row with nothing dropped and nothing new keeps its previous logits (no compute for it).
        """
        assert self.mask is not None and self.last is not None, "call start() first"
        work: list[list[int]] = []
        for r, (k, add) in enumerate(zip(keep, new)):
            k = min(int(k), len(self.ids[r]))
            add = [int(t) for t in add]
            if k < len(self.ids[r]) and not add:
                # Rolled back with nothing to add: the new last token's logits are unknown, so
                # drop it too and feed it again.
                k -= 1
                add = [self.ids[r][k]]
            if k < len(self.ids[r]):
                dead = self.slots[r][k:]
                self.mask[r, dead] = 0
                del self.slots[r][k:]
                del self.ids[r][k:]
            if k < 1 and not add:
                raise ValueError("CachedLM.step: a row would have no tokens")
            work.append(add)
        width = max(len(add) for add in work)
        if width == 0:
            return self.last
        rows = len(work)
        start = self.mask.shape[1]
        # Build the chunk as Python lists and convert once: per-row tensor writes cost more than the delta.
        ids = [[self.pad_id] * width for _ in range(rows)]
        chunk_mask = [[0] * width for _ in range(rows)]
        positions = [[0] * width for _ in range(rows)]
        for r, add in enumerate(work):
            n, base = len(add), len(self.ids[r])
            ids[r][:n] = add
            chunk_mask[r][:n] = [1] * n
            positions[r][:n] = range(base, base + n)
            self.slots[r].extend(range(start, start + n))
            self.ids[r].extend(add)
        self.mask = torch.cat([self.mask, torch.tensor(chunk_mask, dtype=torch.long)], dim=1)
        logits = self._forward(torch.tensor(ids, dtype=torch.long), torch.tensor(positions, dtype=torch.long),
                               width).float()                        # (B, W, V)
        if all(len(add) == width for add in work):
            self.last = logits[:, -1]
            return self.last
        last = self.last.clone()
        for r, add in enumerate(work):
            if add:
                last[r] = logits[r, len(add) - 1]
        self.last = last
        return last
