"""Compose token maps through a pivot vocabulary: (fy → nl) ∘ (nl → en) = fy → en.

A map says, for each token of its *target* vocabulary, which tokens of its *source* vocabulary
stand for it. A chain ``A, B, ...`` lines up when each map's source vocabulary is the next map's
target vocabulary (same size and SHA-256 of the token list, as stored in the map files). The
composed weight of final source token ``s`` for target token ``t`` is

    W[t, s] = Σ_p A[t, p] · B[p, s]          # p runs over the pivot vocabulary

with both maps row-normalised first (as conversion reads them). Pivot tokens the next map leaves
unmapped, and entries a reviewer rejected, carry nothing; each row is renormalised over what the
pivot reached, cut to the ``top_k`` strongest sources (shares below ``min_share`` dropped) and
renormalised again. Target tokens whose pivot tokens reach nothing fall back as configured
(:class:`PivotFallback`): left ``unmapped`` (conversion's own fallback row), an explicit ``mean``
entry, ``fvt`` (the token's text split by the final source tokenizer), or the entry of another
map (``map``: e.g. a direct fy → en map).

Provenance (the entry's ``evidence``, all strings, so every consumer can show them):

* ``chain:dictionary→neighbour``: the method of each hop (hop 2 = the strongest pivot token's);
* ``pivot:{"hop": 1, "via": "Ġsluiten", "share": 0.71, "to": [["close", 0.6], ...], "why": [...]}``:
  one JSON item per quoted pivot token: its share of the entry, the final tokens it leads to
  with its own weights, and that pivot entry's evidence (e.g. the dictionary pair of hop 2);
* then the first map's own evidence (e.g. ``pair:slute→sluiten:1``).

The composed entry's ``method`` is the less certain of the hops' methods (``special`` <
``identical`` < ``manual`` < ``dictionary`` < ``neighbour`` < ``fvt`` ...): a dictionary hop
followed by a neighbour hop is, all told, a neighbour entry.

Example:
    >>> from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef
    >>> fy, nl, en = VocabRef("fy", 2, "f"), VocabRef("nl", 2, "n"), VocabRef("en", 2, "e")
    >>> a = TokenMap("x", fy, nl, {}, (MapEntry(0, "slute", ((0, 1.0),), "dictionary"),
    ...                                MapEntry(1, "mar", ((0, 1.0), (1, 3.0)), "neighbour")))
    >>> b = TokenMap("x", nl, en, {}, (MapEntry(0, "sluiten", ((1, 1.0),), "dictionary"),
    ...                                MapEntry(1, "maar", ((0, 1.0),), "identical")))
    >>> c = compose_maps([a, b])
    >>> [(e.sources, e.method) for e in c.entries]
    [(((1, 1.0),), 'dictionary'), (((0, 0.75), (1, 0.25)), 'neighbour')]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import scipy.sparse as sp

from tokmap_ui.errors import ConfigError, TokenMapError
from tokmap_ui.mapping.tokenmap import EntryMethod, MapEntry, TokenMap, VocabRef

KIND = "pivot"  # the ``kind`` of a composed map; the hops' kinds are in ``params["chain"]``

# Less certain methods win when two hops disagree (a dictionary hop through a neighbour hop is a
# neighbour entry). Entries without sources (mean, random, unmapped) never reach this point.
CERTAINTY = {"special": 0, "identical": 1, "exact": 1, "manual": 2, "dictionary": 3, "aligned": 3, "neighbour": 4,
             "pm-mined": 4, "byte": 4, "fvt": 5, "fallback": 6, "mean": 7, "random": 7, "unmapped": 7}


class PivotFallback(str, Enum):
    """What a target token gets when no pivot token it maps to reaches the final source vocabulary."""

    UNMAPPED = "unmapped"  # no sources, method "unmapped": conversion uses its own fallback row
    MEAN = "mean"          # no sources, method "mean": the mean source row, said explicitly
    FVT = "fvt"            # the token's text split by the final source tokenizer, else mean
    MAP = "map"            # the entry of another map with the same target and source (a direct map)


@dataclass(frozen=True)
class ComposeConfig:
    """Settings of ``tokmap compose`` (field docstrings are the CLI help)."""

    top_k: int = 10
    """Keep at most this many final source tokens per entry (the strongest)."""
    min_share: float = 0.0
    """Drop sources with less than this share of an entry's weight (the strongest is always kept)."""
    fallback: PivotFallback = PivotFallback.UNMAPPED
    """Target tokens the pivot cannot reach: unmapped | mean | fvt | map."""
    evidence_pivots: int = 3
    """Pivot tokens quoted in each entry's evidence (the largest shares)."""
    evidence_sources: int = 3
    """Final source tokens quoted per pivot token."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback", PivotFallback(self.fallback))
        if self.top_k < 1:
            raise ConfigError(f"compose top_k must be at least 1, got {self.top_k}")
        if not 0.0 <= self.min_share < 1.0:
            raise ConfigError(f"compose min_share must be in [0, 1), got {self.min_share}")
        if self.evidence_pivots < 0 or self.evidence_sources < 0:
            raise ConfigError("compose evidence_pivots and evidence_sources must be 0 or more")

    def to_params(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "min_share": self.min_share, "fallback": self.fallback.value,
                "evidence_pivots": self.evidence_pivots, "evidence_sources": self.evidence_sources}


def _same(a: VocabRef, b: VocabRef) -> bool:
    return (a.vocab_size, a.sha256) == (b.vocab_size, b.sha256)


def _describe(ref: VocabRef) -> str:
    return f"'{ref.name}' ({ref.vocab_size:,} tokens, sha256 {ref.sha256[:12]}…)"


def check_chain(maps: Sequence[TokenMap], names: Sequence[str] | None = None) -> None:
    """Raise :class:`TokenMapError` unless each map's source vocabulary is the next map's target vocabulary.

    The check uses the vocabulary size and SHA-256 stored in the maps, never the display names.
    """
    names = list(names) if names is not None else [f"map {i + 1}" for i in range(len(maps))]
    if len(maps) < 2:
        raise ConfigError(f"composing needs at least two maps, got {len(maps)}. Fix: give a chain such as "
                          "fy→nl.json nl→en.json")
    for i in range(len(maps) - 1):
        first, second = maps[i], maps[i + 1]
        if _same(first.source, second.target):
            continue
        fix = (f"build {names[i + 1]} with {_describe(first.source)} as its target tokenizer (the tokenizer "
               f"{names[i]} reads as its source), or rebuild {names[i]} for {_describe(second.target)}")
        if _same(first.target, second.source) and not _same(second.source, second.target):
            fix = f"the maps are in the wrong order: give {names[i + 1]} before {names[i]}"
        raise TokenMapError(names[i], f"does not line up with {names[i + 1]}: its source vocabulary is "
                                      f"{_describe(first.source)} but {names[i + 1]} maps the target vocabulary "
                                      f"{_describe(second.target)}", field="source", fix=fix)


def _matrix(token_map: TokenMap) -> sp.csr_matrix:
    """``(V_t, V_s)`` row-normalised weights; rejected entries are empty rows (they stand for nothing)."""
    rows, cols, vals = token_map.weight_arrays()
    rejected = np.fromiter((e.status == "rejected" for e in token_map.entries), bool, len(token_map.entries))
    keep = ~rejected[rows]
    shape = (token_map.target.vocab_size, token_map.source.vocab_size)
    return sp.csr_matrix((vals[keep].astype(np.float64), (rows[keep], cols[keep])), shape=shape)


def _least_certain(a: str, b: str) -> str:
    return a if CERTAINTY.get(a, 6) >= CERTAINTY.get(b, 6) else b


def _split_evidence(evidence: Sequence[Any]) -> tuple[list[str], list[str], list[Any]]:
    """``(chain methods, pivot items, other items)`` of an entry's evidence."""
    chain: list[str] = []
    pivots: list[str] = []
    other: list[Any] = []
    for item in evidence:
        if isinstance(item, str) and item.startswith("chain:"):
            chain = item[len("chain:"):].split("→")
        elif isinstance(item, str) and item.startswith("pivot:"):
            pivots.append(item)
        else:
            other.append(item)
    return chain, pivots, other


def pivot_item(hop: int, via: str, share: float, to: Sequence[tuple[str, float]], why: Sequence[Any] = ()) -> str:
    """One ``pivot:{json}`` evidence item (see the module docstring).

    Example:
        >>> pivot_item(1, "Ġsluiten", 0.5, [("close", 1.0)])
        'pivot:{"hop":1,"via":"Ġsluiten","share":0.5,"to":[["close",1.0]]}'
    """
    item: dict[str, Any] = {"hop": hop, "via": via, "share": round(float(share), 4),
                            "to": [[t, round(float(w), 4)] for t, w in to]}
    if why:
        item["why"] = [str(w) for w in why]
    return "pivot:" + json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def parse_pivot_item(item: Any) -> dict[str, Any] | None:
    """The dict of a ``pivot:{json}`` evidence item, or None when ``item`` is something else."""
    if not isinstance(item, str) or not item.startswith("pivot:"):
        return None
    try:
        value = json.loads(item[len("pivot:"):])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _compose_two(first: TokenMap, second: TokenMap, config: ComposeConfig, hop: int,
                 source_token: Callable[[int], str]) -> tuple[list[MapEntry], np.ndarray]:
    """Entries of ``first ∘ second`` and a ``(V_t,)`` bool mask of the target tokens the pivot reached."""
    a, b = _matrix(first), _matrix(second)                           # (Vt, Vp), (Vp, Vs)
    reached_pivot = np.diff(b.indptr) > 0                            # (Vp,)
    a_live = (a @ sp.diags(reached_pivot.astype(np.float64))).tocsr()  # drop pivots that lead nowhere
    product = (a_live @ b).tocsr()                                   # (Vt, Vs)
    pivot_tokens = [e.target_token for e in second.entries]
    entries: list[MapEntry] = []
    reached = np.zeros(first.target.vocab_size, dtype=bool)
    for i, entry in enumerate(first.entries):
        lo, hi = product.indptr[i], product.indptr[i + 1]
        ids, weights = product.indices[lo:hi], product.data[lo:hi]
        total = float(weights.sum())
        if hi == lo or total <= 0:
            entries.append(MapEntry(i, entry.target_token, (), EntryMethod.UNMAPPED, entry.evidence))
            continue
        reached[i] = True
        order = np.lexsort((ids, -weights))[:config.top_k]          # strongest first, ties to the lower id
        ids, weights = ids[order], weights[order] / total
        if config.min_share > 0:
            keep = weights >= config.min_share
            keep[0] = True
            ids, weights = ids[keep], weights[keep]
        weights = weights / weights.sum()
        sources = tuple(zip(ids.tolist(), np.round(weights, 6).tolist()))
        # which pivot tokens carried the weight (their share of what reached the final vocabulary)
        plo, phi = a_live.indptr[i], a_live.indptr[i + 1]
        pivots, shares = a_live.indices[plo:phi], a_live.data[plo:phi]
        shares = shares / shares.sum()
        pivot_order = np.lexsort((pivots, -shares))
        top_pivot = int(pivots[pivot_order[0]])
        chain, earlier, other = _split_evidence(entry.evidence)
        methods = (chain or [entry.method]) + [second.entries[top_pivot].method]
        quoted = []
        for k in pivot_order[:config.evidence_pivots].tolist():
            p = int(pivots[k])
            hop_entry = second.entries[p]
            to = sorted(_row(b, p), key=lambda x: (-x[1], x[0]))[:config.evidence_sources]
            _, _, why = _split_evidence(hop_entry.evidence)
            quoted.append(pivot_item(hop, pivot_tokens[p], shares[k], [(source_token(s), w) for s, w in to], why[:2]))
        method = _least_certain(entry.method, second.entries[top_pivot].method)
        evidence = ["chain:" + "→".join(methods), *earlier, *quoted, *other]
        entries.append(MapEntry(i, entry.target_token, sources, method, tuple(evidence)))
    return entries, reached


def _row(matrix: sp.csr_matrix, i: int) -> list[tuple[int, float]]:
    lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
    return list(zip(matrix.indices[lo:hi].tolist(), matrix.data[lo:hi].tolist()))


def compose_maps(maps: Sequence[TokenMap], config: ComposeConfig = ComposeConfig(), *,
                 names: Sequence[str] | None = None, source_tokens: Sequence[str] | None = None,
                 target_vocab: Any = None, source_vocab: Any = None, source_tokenizer: Any = None,
                 fallback_map: TokenMap | None = None) -> TokenMap:
    """Compose a chain of maps into one map from the first target vocabulary to the last source vocabulary.

    Args:
        maps: ``[A, B, ...]``; each map's source vocabulary must be the next map's target
            vocabulary (checked by the stored hashes, :func:`check_chain`).
        config: top-k, minimum share, fallback, how much evidence to quote.
        names: how to name the maps in errors (file names); default "map 1", "map 2", ...
        source_tokens: token strings of the final source vocabulary, for the evidence (default
            ``source_vocab.tokens``, else ``#id``).
        target_vocab, source_vocab, source_tokenizer: the chain's first target and last source
            :class:`~tokmap_ui.vocab.Vocabulary` and the final source tokenizer; needed by the
            ``fvt`` fallback only.
        fallback_map: the map the ``map`` fallback takes entries from (same target and source
            vocabularies as the composed map).

    Raises:
        TokenMapError: the maps do not line up, or a fallback's vocabularies do not fit.
        ConfigError: fewer than two maps, or a fallback without what it needs.
    """
    names = list(names) if names is not None else [f"map {i + 1}" for i in range(len(maps))]
    check_chain(maps, names)
    _check_fallback(maps, config, names, target_vocab, source_vocab, source_tokenizer, fallback_map)
    if source_tokens is None and source_vocab is not None:
        source_tokens = source_vocab.tokens
    final_tokens = source_tokens

    def namer(tokens: Sequence[str] | None) -> Callable[[int], str]:
        return (lambda s: tokens[s]) if tokens is not None else (lambda s: f"#{s}")

    current = maps[0]
    reached = np.ones(current.target.vocab_size, dtype=bool)
    for hop, following in enumerate(maps[1:], start=1):
        last = hop == len(maps) - 1
        tokens = final_tokens if last else [e.target_token for e in maps[hop + 1].entries]
        entries, hop_reached = _compose_two(current, following, config, hop, namer(tokens))
        reached &= hop_reached
        current = TokenMap(KIND, maps[0].target, following.source, {}, tuple(entries))
    entries = list(current.entries)
    unreached = np.flatnonzero(~reached).tolist()
    entries = _fall_back(entries, unreached, config, target_vocab, source_vocab, source_tokenizer, fallback_map)
    params = {"compose": config.to_params(),
              "chain": [{"name": n, "kind": m.kind, "target": m.target.to_dict(), "source": m.source.to_dict(),
                         "params": m.params} for n, m in zip(names, maps)]}
    token_map = TokenMap(KIND, maps[0].target, maps[-1].source, params, tuple(entries))
    token_map.stats["pivot"] = {"reached": int(reached.sum()), "unreached": len(unreached),
                                "fallback": config.fallback.value}
    return token_map


def _check_fallback(maps: Sequence[TokenMap], config: ComposeConfig, names: list[str], target_vocab: Any,
                    source_vocab: Any, source_tokenizer: Any, fallback_map: TokenMap | None) -> None:
    target, source = maps[0].target, maps[-1].source
    if config.fallback is PivotFallback.FVT:
        if target_vocab is None or source_vocab is None or source_tokenizer is None:
            raise ConfigError("the fvt fallback splits tokens with the final source tokenizer. Fix: give the "
                              "first map's target tokenizer and the last map's source tokenizer, or choose "
                              "another fallback (unmapped, mean)")
        for side, ref, vocab in (("target", target, target_vocab), ("source", source, source_vocab)):
            if not _same(ref, VocabRef.of(vocab)):
                raise TokenMapError(names[0] if side == "target" else names[-1],
                                    f"the {side} tokenizer given for the fvt fallback, {_describe(VocabRef.of(vocab))}, "
                                    f"is not the chain's {side} vocabulary {_describe(ref)}",
                                    fix=f"give the tokenizer the map was built with as its {side}")
    if config.fallback is PivotFallback.MAP:
        if fallback_map is None:
            raise ConfigError("the map fallback needs a fallback map. Fix: give one (same target and source "
                              "vocabularies as the composed map), or choose another fallback")
        if not (_same(fallback_map.target, target) and _same(fallback_map.source, source)):
            raise TokenMapError("the fallback map", f"maps {_describe(fallback_map.target)} → "
                                f"{_describe(fallback_map.source)}, but the chain goes {_describe(target)} → "
                                f"{_describe(source)}", fix="build the fallback map with the chain's first target "
                                                            "tokenizer and last source tokenizer")


def _fall_back(entries: list[MapEntry], unreached: list[int], config: ComposeConfig, target_vocab: Any,
               source_vocab: Any, source_tokenizer: Any, fallback_map: TokenMap | None) -> list[MapEntry]:
    """Replace the entries the pivot did not reach, as ``config.fallback`` says."""
    if not unreached:
        return entries
    why = "pivot: unreached"
    if config.fallback is PivotFallback.FVT:
        from tokmap_ui.mapping.baselines import fvt_evidence, fvt_sources

        split = fvt_sources(target_vocab, source_vocab, source_tokenizer, unreached)
    for i in unreached:
        old = entries[i]
        if config.fallback is PivotFallback.MAP and fallback_map is not None:
            other = fallback_map.entries[i]
            entries[i] = MapEntry(i, old.target_token, other.sources, other.method,
                                  (why, "fallback:map", *other.evidence))
        elif config.fallback is PivotFallback.FVT and split.get(i):
            pieces = split[i]
            merged: dict[int, float] = {}
            for p in pieces:
                merged[p] = merged.get(p, 0.0) + 1.0 / len(pieces)
            entries[i] = MapEntry(i, old.target_token, tuple(merged.items()), EntryMethod.FVT,
                                  (why, fvt_evidence(source_vocab, pieces)))
        elif config.fallback in (PivotFallback.MEAN, PivotFallback.FVT):
            entries[i] = MapEntry(i, old.target_token, (), EntryMethod.MEAN, (why, "mean"))
        else:
            entries[i] = MapEntry(i, old.target_token, (), EntryMethod.UNMAPPED, (why,))
    return entries
