"""The review queue: which entries a linguist should look at first, filters, and progress (issue 8).

Priority = how often the target token occurs in target-language text × how unsure the map is
about it, so a reviewer's first hour goes to frequent tokens with weak proposals. Without a
text every token counts once and the queue is ordered by uncertainty alone.

Uncertainty (0..1) mixes two signals, equally weighted:

* the method's rank: specials and identical strings are near-certain, dictionary pairs fairly
  sure, nearest neighbours, decompositions and mean/random rows unsure, unmapped the least sure;
* the spread of the weights: ``1 − max normalised weight`` (one source = 0, three equal = 0.67),
  or for prefix/edit-distance matches the edit distance relative to the token's length.

Example:
    >>> uncertainty(MapEntry(0, "▁kat", ((5, 1.0),), "dictionary"))
    0.15
    >>> uncertainty(MapEntry(1, "xq", (), "unmapped"))
    1.0
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tokmap_ui.mapping.review import ReviewedMap
from tokmap_ui.mapping.tokenmap import MapEntry

# 0 = certain .. 1 = a guess. Manual entries were chosen by a person.
METHOD_RANK: dict[str, float] = {
    "special": 0.0, "identical": 0.0, "manual": 0.0, "exact": 0.1, "byte": 0.1, "dictionary": 0.3, "aligned": 0.3,
    "pm-mined": 0.5, "neighbour": 0.6, "fvt": 0.7, "fallback": 0.8, "mean": 0.9, "random": 1.0, "unmapped": 1.0,
}
LOW_CONFIDENCE = 0.5  # uncertainty at or above this counts as "low confidence"


def uncertainty(entry: MapEntry) -> float:
    """How unsure the map is about one entry, 0 (certain) .. 1 (no idea); rounded to 4 places."""
    rank = METHOD_RANK.get(entry.method, 0.5)
    if not entry.sources:
        spread = 1.0
    elif entry.method in ("pm-mined", "exact") and entry.evidence and isinstance(entry.evidence[0], (int, float)):
        spread = min(1.0, float(entry.evidence[0]) / max(1, len(entry.target_token)))  # edit distance
    else:
        weights = [w for _, w in entry.sources]
        total = sum(weights)
        spread = 1.0 - (max(weights) / total if total > 0 else 1.0 / len(weights))
    return round(0.5 * rank + 0.5 * spread, 4)


def dictionary_backed(entry: MapEntry) -> bool:
    """True when a bilingual dictionary pair supports the entry (its method or its evidence says so)."""
    if entry.method == "dictionary":
        return True
    return any(isinstance(item, dict) and ("dictionary" in item or item.get("kind") == "dictionary"
                                          or item.get("source") == "dictionary") for item in entry.evidence)


@dataclasses.dataclass(frozen=True)
class QueueFilter:
    """Which entries a queue shows; None = no restriction on that field.

    Attributes:
        status: review statuses to keep (auto, approved, rejected, flagged, edited).
        method: entry methods to keep (dictionary, neighbour, pm-mined, manual, ...).
        low_confidence: True = only uncertainty ≥ ``threshold``; False = only below it.
        dictionary_backed: True = only entries a dictionary pair supports; False = only the others.
        conflict: True = only entries a re-run put in conflict with a decision.
        search: case-insensitive text in the token, the comment, a source token, or an exact id.
        threshold: the low-confidence cut-off.
    """

    status: tuple[str, ...] | None = None
    method: tuple[str, ...] | None = None
    low_confidence: bool | None = None
    dictionary_backed: bool | None = None
    conflict: bool | None = None
    search: str | None = None
    threshold: float = LOW_CONFIDENCE


@dataclasses.dataclass(frozen=True)
class QueueItem:
    """One row of the review queue."""

    rank: int
    entry: MapEntry           # the reviewed entry (proposal + decision)
    version: int
    reviewer: str             # who decided ("" if never reviewed)
    frequency: int
    uncertainty: float
    priority: float
    dictionary_backed: bool
    conflict: dict[str, Any] | None

    @property
    def target_id(self) -> int:
        return self.entry.target_id


def token_frequencies(tokenizer: Any, lines: Iterable[str], vocab_size: int, batch: int = 1000) -> np.ndarray:
    """``(V,)`` int64 counts of every target token in ``lines`` (a fast tokenizer, no special tokens)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    chunk: list[str] = []

    def flush() -> None:
        ids = [i for enc in backend.encode_batch(chunk, add_special_tokens=False) for i in enc.ids]
        if ids:
            found = np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)
            counts[:] += found[:vocab_size]
        chunk.clear()

    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            flush()
    if chunk:
        flush()
    return counts


def review_queue(reviewed: ReviewedMap, filters: QueueFilter = QueueFilter(), *,
                 frequencies: Sequence[int] | np.ndarray | None = None,
                 source_tokens: Sequence[str] | None = None, limit: int | None = None,
                 offset: int = 0) -> list[QueueItem]:
    """Entries matching ``filters``, highest priority first (ties: lower target id first).

    Args:
        frequencies: ``(V_target,)`` counts in target text (see :func:`token_frequencies`).
        source_tokens: source vocabulary strings, so ``search`` also finds source tokens.
        limit, offset: the page to return (tables show a page, never the whole vocabulary).
    """
    f = filters
    statuses = set(f.status) if f.status else None
    methods = set(f.method) if f.method else None
    needle = (f.search or "").strip().casefold()
    needle_id = int(needle) if needle.isdigit() else None
    freq = None if frequencies is None else np.asarray(frequencies).tolist()
    decisions = reviewed.decisions()
    base_scores = _base_scores(reviewed)
    rows = []
    for t in range(len(reviewed)):
        decision = decisions.get(t)
        if decision is None:
            entry = reviewed.base.entries[t]
            unsure, backed = base_scores[t]
        else:
            entry = reviewed.entry(t)
            unsure, backed = uncertainty(entry), dictionary_backed(entry)
        if statuses is not None and entry.status not in statuses:
            continue
        if methods is not None and entry.method not in methods:
            continue
        conflict = decision.conflict if decision is not None else None
        if f.conflict is not None and (conflict is not None) != f.conflict:
            continue
        if f.dictionary_backed is not None and backed != f.dictionary_backed:
            continue
        if f.low_confidence is not None and (unsure >= f.threshold) != f.low_confidence:
            continue
        if needle and needle_id != t and not _matches(entry, needle, source_tokens):
            continue
        count = int(freq[t]) if freq is not None and t < len(freq) else 0
        # max(…, 0.05): a certain but very frequent token still outranks a rare certain one.
        priority = round((count + 1) * max(unsure, 0.05), 4)
        rows.append((-priority, t, entry, count, unsure, priority, backed, conflict))
    rows.sort(key=lambda row: (row[0], row[1]))
    page = rows[offset:None if limit is None else offset + limit]
    items = []
    for rank, (_, t, entry, count, unsure, priority, backed, conflict) in enumerate(page, start=offset + 1):
        state = reviewed.state(t)
        reviewer = decisions[t].by if t in decisions else ""
        items.append(QueueItem(rank, entry, state.version if state else 0, reviewer, count, unsure, priority,
                               backed, conflict))
    return items


def _base_scores(reviewed: ReviewedMap) -> list[tuple[float, bool]]:
    """``(uncertainty, dictionary_backed)`` of every generated entry, computed once per base map."""
    if "queue_scores" not in reviewed.cache:
        reviewed.cache["queue_scores"] = [(uncertainty(e), dictionary_backed(e)) for e in reviewed.base.entries]
    return reviewed.cache["queue_scores"]


def _matches(entry: MapEntry, needle: str, source_tokens: Sequence[str] | None) -> bool:
    if needle in entry.target_token.casefold() or (entry.comment and needle in entry.comment.casefold()):
        return True
    if source_tokens is not None:
        return any(0 <= i < len(source_tokens) and needle in source_tokens[i].casefold() for i, _ in entry.sources)
    return False


@dataclasses.dataclass(frozen=True)
class ReviewProgress:
    """How far the review of one map is: counts per status, conflicts, reviewers."""

    total: int
    reviewed: int                 # entries with a status other than auto
    by_status: dict[str, int]     # every status, auto included
    conflicts: int
    by_reviewer: dict[str, int]   # decisions per reviewer who made them
    events: int                   # id of the newest event (a change marker)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        share = 100.0 * self.reviewed / self.total if self.total else 0.0
        lines = [f"reviewed {self.reviewed}/{self.total} ({share:.1f}%)"]
        lines += [f"  {status:<9} {count}" for status, count in self.by_status.items()]
        lines.append(f"  conflicts {self.conflicts}")
        if self.by_reviewer:
            lines.append("by reviewer: " + ", ".join(f"{name} {n}" for name, n in self.by_reviewer.items()))
        return "\n".join(lines)


def review_progress(reviewed: ReviewedMap) -> ReviewProgress:
    """Counts for the progress bar: reviewed/total, per status, conflicts, per reviewer."""
    decisions = reviewed.decisions()
    statuses = Counter(d.status for d in decisions.values())
    statuses["auto"] += len(reviewed) - len(decisions)
    by_status = {s: statuses.get(s, 0) for s in ("auto", "approved", "edited", "rejected", "flagged")}
    decided = [d for d in decisions.values() if d.status != "auto"]
    return ReviewProgress(total=len(reviewed), reviewed=len(decided), by_status=by_status,
                          conflicts=sum(d.conflict is not None for d in decisions.values()),
                          by_reviewer=dict(sorted(Counter(d.by for d in decided).items())),
                          events=reviewed.last_event_id)
