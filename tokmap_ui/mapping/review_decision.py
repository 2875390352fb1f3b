"""Review decisions: what a reviewer decided about one entry, and how a change is planned (issue 8).

A :class:`Decision` is the stored ``after`` JSON of an entry's latest review event::

    {"status": "approved", "sources": [[5, 1.0]], "comment": "", "basis": [[5, 1.0]], "by": "ana"}

* ``sources`` are *pinned* (kept whatever a re-run proposes) once a reviewer approves or edits;
  ``None`` means "follow the proposal" (rejected, flagged or commented entries that were
  never approved or edited).
* ``basis`` is the proposal the reviewer decided against; a re-run whose proposal differs
  marks a ``conflict`` (old and new proposal) and keeps the decision.
* ``by`` is who made the decision (an import keeps the file's reviewer column).

Everything here is pure: :class:`~tokmap_ui.mapping.review.ReviewedMap` does the storing.

Example:
    >>> p = MapEntry(7, "▁kat", ((5, 1.0),), "dictionary")
    >>> action, d = plan_change(None, p, "ana", status="approved")
    >>> action.value, d.sources, reviewed_entry(p, d).status
    ('approve', ((5, 1.0),), 'approved')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

from tokmap_ui.errors import StoreError, TokenMapError
from tokmap_ui.mapping.tokenmap import EntryMethod, EntryStatus, MapEntry
from tokmap_ui.store import ReviewAction

Sources = tuple[tuple[int, float], ...]


class RejectedFallback(str, Enum):
    """What the effective map puts in place of a rejected entry."""

    UNMAPPED = "unmapped"          # no sources: conversion uses its fallback row, CMC the neutral value
    PROPOSAL = "proposal"          # ignore the rejection and keep the generated proposal
    FALLBACK_MAP = "fallback-map"  # take the entry of a second map (e.g. an FVT or mean baseline)


@dataclasses.dataclass(frozen=True)
class Decision:
    """A reviewer's decision on one entry (the stored ``after`` JSON of its latest event)."""

    status: str = EntryStatus.AUTO.value
    sources: Sources | None = None        # pinned sources; None = follow the proposal
    comment: str = ""
    basis: Sources = ()                    # the proposal the decision was made against
    by: str = ""                           # who decided
    conflict: dict[str, Any] | None = None  # {"previous": basis before, "proposal": new proposal}

    def to_json(self) -> dict[str, Any]:
        out = {"status": self.status, "sources": source_pairs(self.sources), "comment": self.comment,
               "basis": source_pairs(self.basis), "by": self.by}
        if self.conflict is not None:
            out["conflict"] = self.conflict
        return out

    @classmethod
    def from_json(cls, value: Any) -> Decision | None:
        """Parse a stored state; None stays None (the entry is back to its proposal)."""
        if value is None:
            return None
        if not isinstance(value, dict) or value.get("status") not in _STATUSES:
            raise StoreError(f"review state {value!r} is not a tokmap decision. Fix: the map's event log "
                             "was written by another program; restore an earlier state or reset the entry.")
        sources = value.get("sources")
        return cls(value["status"], None if sources is None else _sources(sources), value.get("comment", ""),
                   _sources(value.get("basis") or ()), value.get("by", ""), value.get("conflict"))


_STATUSES = frozenset(s.value for s in EntryStatus)
_ACTION_OF_STATUS = {"approved": ReviewAction.APPROVE, "rejected": ReviewAction.REJECT,
                     "flagged": ReviewAction.FLAG, "edited": ReviewAction.EDIT}


def _sources(pairs: Iterable) -> Sources:
    return tuple((int(i), float(w)) for i, w in pairs)


def source_pairs(sources: Sources | None) -> list[list] | None:
    return None if sources is None else [[i, w] for i, w in sources]


def check_sources(sources: Iterable, source_size: int, where: str = "") -> Sources:
    """Validate hand-written sources: ids inside the source vocabulary, finite weights ≥ 0, no repeats.

    Example:
        >>> check_sources([(3, 1), (4, 0.5)], 10)
        ((3, 1.0), (4, 0.5))
    """
    out, seen = [], set()
    for pair in sources:
        try:
            sid, weight = int(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            raise TokenMapError(None, f"{where}source {pair!r} is not an (id, weight) pair",
                                fix="write sources as id:weight pairs, e.g. 5:0.7,9:0.3") from None
        if not 0 <= sid < source_size:
            raise TokenMapError(None, f"{where}source id {sid} is outside the source vocabulary (size {source_size})",
                                fix="use ids of the map's source tokenizer")
        if not 0.0 <= weight < math.inf:
            raise TokenMapError(None, f"{where}weight {weight} for source {sid} is not a finite number ≥ 0")
        if sid in seen:
            raise TokenMapError(None, f"{where}source id {sid} is listed twice", fix="merge its weights into one pair")
        seen.add(sid)
        out.append((sid, weight))
    return tuple(out)


def plan_change(current: Decision | None, proposal: MapEntry, reviewer: str, *, status: str | None = None,
                sources: Sources | None = None, comment: str | None = None,
                use_proposal: bool = False) -> tuple[ReviewAction, Decision | None]:
    """The event a change records and the entry's new decision (pure; no store involved).

    ``sources`` given = an edit (status ``edited`` unless ``status`` says otherwise); status
    ``approved`` pins the shown sources (or the proposal's with ``use_proposal``); ``rejected``
    and ``flagged`` keep the sources as they are; status ``auto`` resets the entry to its
    proposal; a comment alone changes only the comment. Approve, reject, edit and reset clear
    a re-run conflict; flag and comment keep it.
    """
    if status is not None and status not in _STATUSES:
        raise StoreError(f"unknown review status {status!r}. Fix: use one of {', '.join(sorted(_STATUSES))}.")
    if status == EntryStatus.AUTO.value and sources is None:
        if not comment:
            return ReviewAction.RESET, None
        return ReviewAction.RESET, Decision(basis=proposal.sources, comment=comment, by=reviewer)
    if status is None and sources is None:
        if comment is None:
            raise StoreError("nothing to change: give a status, sources or a comment. "
                             "Fix: e.g. --status approved.")
        base = current or Decision(basis=proposal.sources, by=reviewer)
        return ReviewAction.COMMENT, dataclasses.replace(base, comment=comment)
    base = current or Decision(basis=proposal.sources)
    new_comment = base.comment if comment is None else comment
    if sources is not None:
        action, new_status, pinned = ReviewAction.EDIT, status or EntryStatus.EDITED.value, sources
    else:
        action, new_status = _ACTION_OF_STATUS[status], status
        pinned = base.sources
        if status == EntryStatus.APPROVED.value and (pinned is None or use_proposal):
            pinned = proposal.sources
        elif status == EntryStatus.EDITED.value and pinned is None:
            pinned = proposal.sources
    keep_conflict = action in (ReviewAction.FLAG,)
    return action, Decision(new_status, pinned, new_comment, proposal.sources, reviewer,
                            base.conflict if keep_conflict else None)


def reviewed_entry(proposal: MapEntry, decision: Decision | None) -> MapEntry:
    """The entry as reviewers see it: pinned sources win; ``manual`` when they differ from the proposal."""
    if decision is None:
        return proposal
    sources = proposal.sources if decision.sources is None else decision.sources
    method = proposal.method if sources == proposal.sources else EntryMethod.MANUAL.value
    return MapEntry(proposal.target_id, proposal.target_token, sources, method, proposal.evidence,
                    decision.status, decision.comment)


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    """The stored form of a decision (None = back to the proposal)."""
    return None if decision is None else decision.to_json()


def decision_from_fields(proposal: MapEntry, status: str, sources: Sources, comment: str,
                         by: str) -> Decision | None:
    """The decision that makes an entry show ``status``, ``sources`` and ``comment`` (imports).

    Sources are pinned when the status is approved or edited or when they differ from the
    proposal; ``auto`` with other sources than the proposal's means ``edited``. So exporting a
    map and importing the file into a map with the same proposals shows exactly the same entries.

    Example:
        >>> p = MapEntry(7, "▁kat", ((5, 1.0),), "dictionary")
        >>> decision_from_fields(p, "auto", ((5, 1.0),), "", "ana") is None
        True
        >>> decision_from_fields(p, "auto", ((6, 1.0),), "", "ana").status
        'edited'
    """
    if status == EntryStatus.AUTO.value and sources != proposal.sources:
        status = EntryStatus.EDITED.value
    if status == EntryStatus.AUTO.value and not comment:
        return None
    pinned = sources if status in _PINNING or sources != proposal.sources else None
    return Decision(status, pinned, comment, proposal.sources, by)


_PINNING = frozenset({EntryStatus.APPROVED.value, EntryStatus.EDITED.value})


# ---------------------------------------------------------------------------- sources as text
_ESCAPES = {"\\": "\\\\", "|": "\\|", ":": "\\:", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "|": "|", ":": ":", "t": "\t", "n": "\n", "r": "\r"}
def format_sources(sources: Sequence[tuple[int, float]], source_tokens: Sequence[str] | None = None) -> str:
    """``2345:kat:0.71|998:cat:0.29`` (weights in shortest exact form).

    Example:
        >>> format_sources([(5, 0.5), (9, 0.25)], ["a"] * 5 + ["k|t"] + ["b"] * 4)
        '5:k\\\\|t:0.5|9:b:0.25'
    """
    cells = []
    for sid, weight in sources:
        token = source_tokens[sid] if source_tokens is not None and 0 <= sid < len(source_tokens) else ""
        cells.append(f"{sid}:{''.join(_ESCAPES.get(c, c) for c in token)}:{weight!r}")
    return "|".join(cells)


def parse_sources(cell: str) -> list[tuple[int, str | None, float]]:
    """Parse a sources cell into ``(id, token or None, weight)``; raises ValueError with the reason.

    Example:
        >>> parse_sources("5:k\\\\|t:0.5|9:0.25|3")
        [(5, 'k|t', 0.5), (9, None, 0.25), (3, None, 1.0)]
    """
    out: list[tuple[int, str | None, float]] = []
    if not cell.strip():
        return out
    pairs, parts, current, escaped = [], [], [], False
    for char in cell:
        if escaped:
            if char not in _UNESCAPES:
                raise ValueError(f"unknown escape '\\{char}' (use \\\\, \\|, \\:, \\t, \\n, \\r)")
            current.append(_UNESCAPES[char])
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        elif char == "|":
            parts.append("".join(current))
            pairs.append(parts)
            parts, current = [], []
        else:
            current.append(char)
    if escaped:
        raise ValueError("ends with a lone backslash")
    parts.append("".join(current))
    pairs.append(parts)
    for parts in pairs:
        text = ":".join(parts)
        if len(parts) > 3:
            raise ValueError(f"'{text}' has too many ':' (escape ':' inside a token as '\\:')")
        try:
            sid = int(parts[0].strip())
        except ValueError:
            raise ValueError(f"'{text}' does not start with a source id") from None
        try:
            weight = float(parts[-1].strip()) if len(parts) > 1 else 1.0
        except ValueError:
            raise ValueError(f"'{text}' does not end with a weight") from None
        out.append((sid, parts[1] if len(parts) == 3 else None, weight))
    return out
