"""The TokenMap: which source tokens stand for each target token, with weights and provenance.

One artifact is shared by every mapping method (Tik-to-Tok, the baselines, PM-MinED) and by
everything that consumes a map (model conversion, CMC decoding, the review UI). For each token
of the *target* vocabulary there is exactly one :class:`MapEntry`, in target-id order; its
``sources`` list ``(source_id, weight)`` pairs (empty = unmapped). Weights are normalised per
row when the map is applied, so ``[[5, 2.0], [9, 2.0]]`` means "the mean of rows 5 and 9".

Example:
    >>> import torch
    >>> tgt, src = VocabRef("new", 3, "aa"), VocabRef("old", 2, "bb")
    >>> tm = TokenMap("manual", tgt, src, {}, (
    ...     MapEntry(0, "a", ((0, 1.0),), "manual"),
    ...     MapEntry(1, "b", ((0, 1.0), (1, 3.0)), "manual"),
    ...     MapEntry(2, "c", (), "unmapped")))
    >>> tm.apply_to_rows(torch.tensor([[0.0], [4.0]])).flatten().tolist()
    [0.0, 3.0, 2.0]

Disk format (``tokmap.token-map/1``) and strict loading live in :mod:`tokmap_ui.io.tokenmaps`.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from tokmap_ui.errors import TokenMapError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tokmap_ui.vocab import Vocabulary


class EntryMethod(str, Enum):
    """How one entry was produced (the ``method`` field of an entry)."""

    SPECIAL = "special"        # special token matched by role, string or id
    IDENTICAL = "identical"    # the same string exists in the source vocabulary
    EXACT = "exact"            # exact string match (PM-MinED)
    DICTIONARY = "dictionary"  # reached through a bilingual dictionary pair
    ALIGNED = "aligned"        # aligned to source tokens in parallel text (IBM Model 1)
    NEIGHBOUR = "neighbour"    # nearest source tokens in a joint subword space
    FALLBACK = "fallback"      # some last-resort rule
    FVT = "fvt"                # decomposed with the source tokenizer (fast vocabulary transfer)
    MEAN = "mean"              # the mean source row
    RANDOM = "random"          # random source rows (baseline)
    PM_MINED = "pm-mined"      # prefix match + minimum edit distance (CMC)
    BYTE = "byte"              # UTF-8 byte tokens
    UNMAPPED = "unmapped"      # no source; consumers use their fallback row/value
    MANUAL = "manual"          # set by a reviewer


class EntryStatus(str, Enum):
    """Review state of one entry."""

    AUTO = "auto"
    APPROVED = "approved"
    REJECTED = "rejected"
    FLAGGED = "flagged"
    EDITED = "edited"


FORMAT = "tokmap.token-map/1"  # the ``format`` string of the file; bump on incompatible changes

METHODS = frozenset(m.value for m in EntryMethod)
STATUSES = frozenset(s.value for s in EntryStatus)


@dataclass(frozen=True)
class VocabRef:
    """Identity of a vocabulary: a display name, its size and the SHA-256 of its token list."""

    name: str
    vocab_size: int
    sha256: str

    @classmethod
    def of(cls, vocab: Vocabulary) -> VocabRef:
        """The reference of a :class:`~tokmap_ui.vocab.Vocabulary`."""
        return cls(vocab.name, len(vocab), vocab.sha256)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vocab_size": self.vocab_size, "sha256": self.sha256}


@dataclass(frozen=True)
class MapEntry:
    """One target token and the source tokens standing for it.

    Attributes:
        target_id: id of the token in the target vocabulary.
        target_token: its raw token string (for people reading the file).
        sources: ``((source_id, weight), ...)``; weights ≥ 0, normalised when applied; ``()`` = unmapped.
        method: an :class:`EntryMethod` value.
        evidence: JSON-able details of why (edit distance, dictionary pair, similarity...).
        status: an :class:`EntryStatus` value.
        comment: a reviewer's note.
    """

    target_id: int
    target_token: str
    sources: tuple[tuple[int, float], ...]
    method: str
    evidence: tuple | list = ()
    status: str = "auto"
    comment: str = ""

    def __post_init__(self) -> None:
        # Normalise cheaply (maps have 150k entries): enums to plain strings, lists to tuples.
        sources = self.sources  # checking the first pair is enough to tell a loader's tuples from user lists
        if type(sources) is not tuple or (sources and type(sources[0]) is not tuple):
            object.__setattr__(self, "sources", tuple((int(i), float(w)) for i, w in self.sources))
        if type(self.evidence) is not tuple:
            object.__setattr__(self, "evidence", tuple(self.evidence))
        if type(self.method) is not str and isinstance(self.method, Enum):
            object.__setattr__(self, "method", self.method.value)
        if type(self.status) is not str and isinstance(self.status, Enum):
            object.__setattr__(self, "status", self.status.value)
        if self.method not in METHODS:
            raise TokenMapError(None, f"entry {self.target_id}: unknown method '{self.method}'",
                                fix=f"use one of {', '.join(sorted(METHODS))}")
        if self.status not in STATUSES:
            raise TokenMapError(None, f"entry {self.target_id}: unknown status '{self.status}'",
                                fix=f"use one of {', '.join(sorted(STATUSES))}")

    @property
    def is_mapped(self) -> bool:
        return bool(self.sources)

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in the file (``comment`` only when non-empty)."""
        out = {"target_id": self.target_id, "target_token": self.target_token,
               "sources": [[i, w] for i, w in self.sources], "method": self.method,
               "evidence": list(self.evidence), "status": self.status}
        if self.comment:
            out["comment"] = self.comment
        return out


@dataclass(frozen=True)
class TokenMap:
    """A complete map from every target token to weighted source tokens.

    Attributes:
        kind: the method family that built it ("tiktotok", "pm-mined", "identical", ...).
        target: the vocabulary whose tokens are mapped (the new tokenizer; the CMC host).
        source: the vocabulary whose rows or logits are read (the old model; the CMC delta).
        params: everything needed to reproduce the map (the job config as a dict).
        entries: one :class:`MapEntry` per target token, in target-id order.
        stats: summary numbers; computed by :meth:`compute_stats` when left empty.
    """

    kind: str
    target: VocabRef
    source: VocabRef
    params: dict
    entries: tuple[MapEntry, ...]
    stats: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.entries) is not tuple:
            object.__setattr__(self, "entries", tuple(self.entries))
        if len(self.entries) != self.target.vocab_size:
            raise TokenMapError(None, f"token map has {len(self.entries)} entries but the target vocabulary "
                                      f"'{self.target.name}' has {self.target.vocab_size} tokens",
                                fix="give exactly one entry per target token")
        size = self.source.vocab_size
        for index, entry in enumerate(self.entries):
            if entry.target_id != index:
                raise TokenMapError(None, f"entry {index} has target_id {entry.target_id}",
                                    fix="keep entries in target-id order, one per target token")
            for source_id, weight in entry.sources:
                if not 0 <= source_id < size:
                    raise TokenMapError(None, f"entry {index}: source id {source_id} is outside the source "
                                              f"vocabulary (size {size})")
                if not 0.0 <= weight < math.inf:  # also false for NaN
                    raise TokenMapError(None, f"entry {index}: weight {weight} for source {source_id} "
                                              "is not a finite number ≥ 0")
        if not self.stats:
            object.__setattr__(self, "stats", self.compute_stats())

    # ------------------------------------------------------------------ identity

    def check_fits(self, target: Vocabulary, source: Vocabulary) -> None:
        """Raise :class:`TokenMapError` unless ``target``/``source`` are the vocabularies this map was made for."""
        for side, ref, vocab in (("target", self.target, target), ("source", self.source, source)):
            got = VocabRef.of(vocab)
            if got.vocab_size != ref.vocab_size:
                problem = f"size {got.vocab_size} instead of {ref.vocab_size}"
            elif got.sha256 != ref.sha256:
                problem = f"sha256 {got.sha256[:12]}… instead of {ref.sha256[:12]}… (same size, different tokens)"
            else:
                continue
            raise TokenMapError(
                None, f"the {self.kind} token map does not fit the {side} vocabulary: '{got.name}' has {problem} "
                      f"of '{ref.name}' the map was made for",
                fix=f"use the {side} tokenizer the map was built with, or rebuild the map for this one")

    def with_entries(self, changed: list[MapEntry] | tuple[MapEntry, ...]) -> TokenMap:
        """A copy with some entries replaced (matched by ``target_id``) and stats recomputed."""
        entries = list(self.entries)
        for entry in changed:
            if not 0 <= entry.target_id < len(entries):
                raise TokenMapError(None, f"entry target_id {entry.target_id} is outside the target vocabulary")
            entries[entry.target_id] = entry
        return TokenMap(self.kind, self.target, self.source, dict(self.params), tuple(entries))

    # ------------------------------------------------------------------ numeric views

    def weight_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, vals)``: int64, int64, float32 COO triplets with each row's weights summing to 1.

        A mapped row whose weights are all 0 gets equal weights (the reviewer listed the sources).
        Unmapped rows have no triplets. The arrays are cached; do not modify them.
        """
        if "coo" not in self._cache:
            counts = np.fromiter((len(e.sources) for e in self.entries), np.int64, len(self.entries))
            total = int(counts.sum())
            rows = np.repeat(np.arange(len(self.entries), dtype=np.int64), counts)
            cols = np.fromiter((i for e in self.entries for i, _ in e.sources), np.int64, total)
            vals = np.fromiter((w for e in self.entries for _, w in e.sources), np.float64, total)
            sums = np.bincount(rows, weights=vals, minlength=len(self.entries))
            zero = sums[rows] <= 0
            vals = np.where(zero, 1.0 / np.maximum(counts[rows], 1), vals / np.where(zero, 1.0, sums[rows]))
            self._cache["coo"] = (rows, cols, vals.astype(np.float32))
        return self._cache["coo"]

    def weight_matrix(self) -> torch.Tensor:
        """The map as a coalesced sparse COO tensor of shape ``(V_target, V_source)``, rows summing to 1 (or 0 if unmapped)."""
        import torch

        if "csr" not in self._cache:
            rows, cols, vals = self.weight_arrays()
            coo = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(vals),
                                          (self.target.vocab_size, self.source.vocab_size), check_invariants=True)
            self._cache["sparse"] = coo.coalesce()
        return self._cache["sparse"]

    def mapped_mask(self) -> np.ndarray:
        """``(V_target,)`` bool: which target tokens have at least one source."""
        if "mapped" not in self._cache:
            self._cache["mapped"] = np.fromiter((bool(e.sources) for e in self.entries), bool, len(self.entries))
        return self._cache["mapped"]

    def apply_to_rows(self, source_rows: torch.Tensor, fallback: torch.Tensor | None = None) -> torch.Tensor:
        """Build target rows: each is the weighted sum of its source rows.

        Args:
            source_rows: ``(V_source, D)`` embedding (or output-head) rows of the source model.
            fallback: row for unmapped targets, ``(D,)`` or ``(V_target, D)``; default the mean source row.

        Returns:
            ``(V_target, D)`` tensor with the dtype and device of ``source_rows``.
        """
        import torch

        if source_rows.dim() != 2 or source_rows.shape[0] != self.source.vocab_size:
            raise TokenMapError(None, f"source rows have shape {tuple(source_rows.shape)}, expected "
                                      f"({self.source.vocab_size}, D) for source vocabulary '{self.source.name}'",
                                fix="pass the embedding matrix of the model whose tokenizer is the map's source")
        dim = source_rows.shape[1]
        work = source_rows.detach().float()                                   # (Vs, D)
        out = torch.sparse.mm(self.weight_matrix().to(work.device), work)     # (Vt, D)
        unmapped = torch.from_numpy(~self.mapped_mask()).to(work.device)      # (Vt,)
        if bool(unmapped.any()):
            if fallback is None:
                fill = work.mean(dim=0).expand(int(unmapped.sum()), dim)
            elif fallback.dim() == 1 and fallback.shape[0] == dim:
                fill = fallback.detach().float().to(work.device).expand(int(unmapped.sum()), dim)
            elif fallback.dim() == 2 and tuple(fallback.shape) == (self.target.vocab_size, dim):
                fill = fallback.detach().float().to(work.device)[unmapped]
            else:
                raise TokenMapError(None, f"fallback has shape {tuple(fallback.shape)}, expected ({dim},) or "
                                          f"({self.target.vocab_size}, {dim})")
            out[unmapped] = fill
        return out.to(source_rows.dtype)

    # ------------------------------------------------------------------ summaries

    def compute_stats(self) -> dict[str, Any]:
        """Entries per method and status, unmapped count, mean sources, mean weight entropy (nats).

        Example:
            >>> e = (MapEntry(0, "a", ((0, 1.0), (1, 1.0)), "manual"), MapEntry(1, "b", (), "unmapped"))
            >>> s = TokenMap("x", VocabRef("t", 2, ""), VocabRef("s", 2, ""), {}, e).stats
            >>> s["unmapped"], s["mean_sources_per_mapped_entry"], round(s["mean_weight_entropy"], 3)
            (1, 2.0, 0.693)
        """
        n = len(self.entries)
        n_sources = list(map(len, map(_SOURCES, self.entries)))
        total = sum(n_sources)
        mapped = n - n_sources.count(0)
        # One-source entries have entropy 0: only entries with several sources need the sum.
        entropies = sum(_entropy([w for _, w in e.sources]) for e in self.entries if len(e.sources) > 1)
        return {
            "entries": n,
            "mapped": mapped,
            "unmapped": n - mapped,
            "by_method": dict(sorted(Counter(map(_METHOD, self.entries)).items())),
            "by_status": dict(sorted(Counter(map(_STATUS, self.entries)).items())),
            "mean_sources_per_entry": (total / n) if n else 0.0,
            "mean_sources_per_mapped_entry": (total / mapped) if mapped else 0.0,
            "mean_weight_entropy": (entropies / mapped) if mapped else 0.0,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole map as the JSON object of the file format (see :mod:`tokmap_ui.io.tokenmaps`)."""
        return {"format": FORMAT, "kind": self.kind, "target": self.target.to_dict(),
                "source": self.source.to_dict(), "params": self.params, "stats": self.stats,
                "entries": [e.to_dict() for e in self.entries]}


_SOURCES, _METHOD, _STATUS = (attrgetter(name) for name in ("sources", "method", "status"))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while creating many small acyclic objects.

    Parsing or building a 150k-entry map creates millions of dicts, lists and tuples; each
    allocation burst triggers collections that scan all of them again, which made loading 3-4x
    slower than the parsing itself. None of these objects form cycles, so nothing is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _entropy(weights: list[float]) -> float:
    """Shannon entropy (nats) of normalised weights; 0 for one source."""
    if len(weights) < 2:
        return 0.0
    total = sum(weights)
    if total <= 0:
        return math.log(len(weights))
    return -sum((w / total) * math.log(w / total) for w in weights if w > 0)
