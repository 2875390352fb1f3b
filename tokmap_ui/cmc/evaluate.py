"""Does the delta do its job, and only its job? Per-byte loss of host vs host + delta on text sets.

For unlearning the question is two numbers per host: the loss on the *forget* set should rise,
the loss on the *retain* set should not. Both are measured in nats per UTF-8 byte, so hosts with
different tokenizers compare (see :mod:`tokmap_ui.train.data`).

Scoring convention (as :func:`tokmap_ui.train.data.evaluate_loss_per_byte`): each text is scored
on its own after the host's BOS (else EOS) token, every token predicted once; texts longer than
the models' context are cut into pieces at token boundaries, scored separately. Host alone and
host + delta are scored on the same pieces in the same pass.

* Same vocabulary: one forward pass of each model; the combined distribution is
  ``softmax(log_softmax(host) + α·(delta − centre))`` over the host's real tokens.
* Other vocabulary: the delta reads the host's text exactly as in decoding (teacher-forced:
  host tokens are pushed one at a time, the delta re-encodes a trailing window), so the figures
  are what generation would see.

Example:
    >>> report = evaluate_cmc(pair, {"forget": kjv, "retain": other}, alpha=1.0)   # doctest: +SKIP
    >>> print(report.to_text())                                                    # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tokmap_ui.cmc.combine import Centre
from tokmap_ui.cmc.decode import CmcPair, DeltaStreams, _context_id
from tokmap_ui.cmc.runner import max_positions
from tokmap_ui.cmc.sync import Detokenizer
from tokmap_ui.train.data import pad_rows
from tokmap_ui.errors import ConfigError


@dataclass(frozen=True)
class SetLoss:
    """Loss of host alone and host + delta on one set of texts."""

    name: str
    n_texts: int
    n_pieces: int
    n_bytes: int
    n_tokens: int                  # host tokens scored
    host_loss_per_byte: float
    combined_loss_per_byte: float

    @property
    def change(self) -> float:
        """combined − host, nats per byte (positive = the delta made the text less likely)."""
        return self.combined_loss_per_byte - self.host_loss_per_byte

    @property
    def relative_change(self) -> float:
        return self.change / self.host_loss_per_byte if self.host_loss_per_byte else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change, "relative_change": self.relative_change}


@dataclass(frozen=True)
class CmcEvalReport:
    """Per-set losses for one host + delta at one α."""

    alpha: float
    mapping: dict
    sets: tuple[SetLoss, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "mapping": self.mapping, "sets": [s.to_dict() for s in self.sets]}

    def to_text(self) -> str:
        lines = [f"alpha {self.alpha:g}, delta mapping: {self.mapping.get('kind', 'none')} "
                 f"({self.mapping.get('mapped_host_tokens', '-')} host tokens mapped)",
                 f"{'set':<14} {'texts':>6} {'bytes':>9}  {'host':>8} {'host+delta':>10} {'change':>8}  (nats/byte)"]
        for s in self.sets:
            lines.append(f"{s.name:<14} {s.n_texts:>6} {s.n_bytes:>9}  {s.host_loss_per_byte:8.4f} "
                         f"{s.combined_loss_per_byte:10.4f} {s.relative_change:+8.1%}")
        return "\n".join(lines)


def _split_long(text: str, tokenizer: Any, max_tokens: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_tokens`` tokens, at token starts (preferring a space)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return [text]
    pieces, start_tok, start_char = [], 0, 0
    while len(offsets) - start_tok > max_tokens:
        cut = start_tok + max_tokens
        for j in range(cut, start_tok + max_tokens // 2, -1):  # back off to a token that starts a word
            if text[offsets[j][0]:offsets[j][0] + 1].isspace():
                cut = j
                break
        char = offsets[cut][0]
        pieces.append(text[start_char:char])
        start_tok, start_char = cut, char
    pieces.append(text[start_char:])
    return [p for p in pieces if p.strip()]


def _pieces(pair: CmcPair, texts: Sequence[str], max_tokens: int | None) -> list[str]:
    host_limit = max_positions(pair.host) or 1024
    limits = [host_limit - 1]
    if pair.delta is not None:
        limits.append((max_positions(pair.delta) or 1024) - 8)
    cap = min(limits + ([max_tokens] if max_tokens else []))
    out = []
    for text in texts:
        for piece in _split_long(text, pair.host_tok, cap):
            if pair.delta is not None and not pair.same_vocab:
                out.extend(_split_long(piece, pair.delta_tok, cap))
            else:
                out.append(piece)
    return out


@torch.no_grad()
def score_texts(pair: CmcPair, texts: Sequence[str], alpha: float, *, name: str = "texts", batch_size: int = 16,
                max_tokens: int | None = None, centre: str = "mean") -> SetLoss:
    """Host-alone and host + delta loss per byte on ``texts`` (see the module docstring)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ConfigError(f"the {name} set has no text (every line is blank). Fix: give a file with text lines.")
    if pair.shift is not None:
        pair.shift.centre = Centre.parse(centre)
    pieces = sorted(_pieces(pair, texts, max_tokens), key=len)
    ctx = _context_id(pair.host_tok)
    rows = [[ctx] + list(ids) for ids in pair.host_tok(pieces, add_special_tokens=False)["input_ids"]]
    host_nats = comb_nats = 0.0
    n_tokens = 0
    device = next(pair.host.parameters()).device
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        ids, mask = pad_rows(batch, ctx)  # (B, T) each
        width = ids.shape[1]
        host_logits = pair.host(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()  # (B, T, V)
        host_lp = torch.log_softmax(host_logits[..., : pair.host_vocab_len], dim=-1)                      # (B, T, Vr)
        targets = ids[:, 1:].to(device)                                                                    # (B, T-1)
        valid = mask[:, 1:].bool().to(device)
        picked = host_lp[:, :-1].gather(-1, targets.unsqueeze(-1)).squeeze(-1)                            # (B, T-1)
        host_nats -= float(picked[valid].sum())
        n_tokens += int(valid.sum())
        if pair.delta is None or alpha == 0:
            comb_nats -= float(picked[valid].sum())
        elif pair.same_vocab:
            d_ids = ids.clamp(max=pair.delta.get_output_embeddings().weight.shape[0] - 1)
            d_logits = pair.delta(input_ids=d_ids.to(device), attention_mask=mask.to(device)).logits  # (B, T, Vd)
            flat = d_logits.reshape(-1, d_logits.shape[-1])
            shift = pair.shift.shift(flat).reshape(len(batch), width, -1)[..., : pair.host_vocab_len]
            comb = torch.log_softmax(host_lp + alpha * shift, dim=-1)
            got = comb[:, :-1].gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            comb_nats -= float(got[valid].sum())
        else:
            comb_nats += _cross_vocab_nats(pair, batch, host_lp, alpha)
    n_bytes = sum(len(p.encode("utf-8")) for p in pieces)
    return SetLoss(name, len(texts), len(pieces), n_bytes, n_tokens, host_nats / n_bytes, comb_nats / n_bytes)


def _cross_vocab_nats(pair: CmcPair, batch: list[list[int]], host_lp: torch.Tensor, alpha: float) -> float:
    """Teacher-forced host + delta nats for a batch when the delta reads the host's text re-tokenised."""
    delta = DeltaStreams(pair.delta, pair.delta_tok, same_vocab=False)
    d_logits = delta.start([""] * len(batch), [])
    detok = [Detokenizer(pair.host_tok, row[:1]) for row in batch]
    total = 0.0
    for t in range(max(len(r) for r in batch) - 1):
        active = [t + 1 < len(r) for r in batch]
        shift = pair.shift.shift(d_logits)[:, : pair.host_vocab_len]                          # (B, Vr)
        comb = torch.log_softmax(host_lp[:, t] + alpha * shift, dim=-1)                        # (B, Vr)
        new: list[list[int]] = []
        for r, row in enumerate(batch):
            if active[r]:
                total -= float(comb[r, row[t + 1]])
                detok[r].push(row[t + 1])
                new.append([row[t + 1]])
            else:
                new.append([])
        if t + 2 < max(len(r) for r in batch):  # the last step needs no further delta logits
            d_logits = delta.advance(active, new, [d.text for d in detok])
    return total


def evaluate_cmc(pair: CmcPair, sets: dict[str, Sequence[str]], alpha: float, *, batch_size: int = 16,
                 max_texts: int = 0, centre: str = "mean") -> CmcEvalReport:
    """Score every named set (e.g. ``{"forget": ..., "retain": ...}``) for host alone and host + delta.

    Args:
        max_texts: use only the first N non-blank texts of each set (0 = all).
    """
    if not math.isfinite(alpha):
        raise ConfigError(f"alpha = {alpha} is not a number. Fix: give a finite alpha such as 1.0.")
    results = []
    for name, texts in sets.items():
        chosen = [t for t in texts if t.strip()]
        if max_texts:
            chosen = chosen[:max_texts]
        results.append(score_texts(pair, chosen, alpha, name=name, batch_size=batch_size, centre=centre))
    mapping = pair.shift.describe() if pair.shift is not None else {"kind": "none"}
    return CmcEvalReport(alpha, mapping, tuple(results))
