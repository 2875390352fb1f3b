"""How well a host vocabulary maps onto a delta vocabulary: the PM-MinED compatibility report.

Counts per class (exact, approximate = pm-mined, byte, special, unmapped), the edit-distance
histogram of approximate entries, the delta tokens most host tokens share (a CMC delta logit
copied to many host tokens boosts all of them at once), and a few examples per class.

Example:
    >>> report = compatibility_report(token_map, host, delta)     # doctest: +SKIP
    >>> print(report.to_text())                                   # doctest: +SKIP
    PM-MinED map host-32k -> delta-32k (default mode), 32,000 host tokens
      exact        24,190  75.6%
    ...
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from tokmap_ui.mapping.tokenmap import EntryMethod, TokenMap
from tokmap_ui.vocab import Vocabulary

CLASSES = ("exact", "approximate", "byte", "special", "unmapped")
_CLASS_OF = {EntryMethod.EXACT.value: "exact", EntryMethod.IDENTICAL.value: "exact",
             EntryMethod.PM_MINED.value: "approximate", EntryMethod.BYTE.value: "byte",
             EntryMethod.SPECIAL.value: "special", EntryMethod.UNMAPPED.value: "unmapped"}


@dataclass(frozen=True)
class CompatibilityReport:
    """Summary of a host → delta token map; see :func:`compatibility_report`."""

    host: str
    delta: str
    mode: str
    total: int
    counts: dict[str, int]                 # class -> entries ("other" for reviewed/manual methods)
    distance_histogram: dict[int, int]     # edit distance -> approximate entries
    mean_distance: float
    max_distance: int
    most_shared: list[dict[str, Any]]      # {"delta_id", "delta_token", "host_tokens": n, "examples": [...]}
    examples: dict[str, list[dict[str, Any]]]

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "delta": self.delta, "mode": self.mode, "total": self.total,
                "counts": self.counts, "distance_histogram": {str(k): v for k, v in self.distance_histogram.items()},
                "mean_distance": self.mean_distance, "max_distance": self.max_distance,
                "most_shared": self.most_shared, "examples": self.examples}

    def to_text(self) -> str:
        lines = [f"PM-MinED map {self.host} -> {self.delta} ({self.mode} mode), {self.total:,} host tokens"]
        for name, count in self.counts.items():
            lines.append(f"  {name:<12}{count:>9,}  {100 * count / max(self.total, 1):5.1f}%")
        if self.distance_histogram:
            lines.append(f"edit distance of approximate matches: mean {self.mean_distance:.2f}, "
                         f"max {self.max_distance}")
            peak = max(self.distance_histogram.values())
            for d, n in self.distance_histogram.items():
                lines.append(f"  {d:>3} {n:>8,}  {'#' * max(1, round(30 * n / peak))}")
        if self.most_shared:
            lines.append("delta tokens shared by most host tokens:")
            for row in self.most_shared:
                lines.append(f"  {row['delta_token']!r:<16} ({row['delta_id']}) <- {row['host_tokens']} host tokens, "
                             f"e.g. {', '.join(repr(t) for t in row['examples'])}")
        for name, rows in self.examples.items():
            if rows:
                shown = ", ".join(f"{r['host_token']!r} -> {r['delta_token']!r}" if r["delta_token"] is not None
                                  else repr(r["host_token"]) for r in rows)
                lines.append(f"examples, {name}: {shown}")
        return "\n".join(lines)


def compatibility_report(token_map: TokenMap, host: Vocabulary, delta: Vocabulary, *, n_examples: int = 5,
                         n_shared: int = 10) -> CompatibilityReport:
    """Summarise a PM-MinED (or any one-to-one host → delta) map.

    Args:
        token_map: the map, target = ``host``, source = ``delta`` (checked).
        n_examples: examples per class, spread evenly over the host ids.
        n_shared: how many of the most shared delta tokens to list.
    """
    token_map.check_fits(host, delta)
    by_class: dict[str, list[int]] = defaultdict(list)
    fan_in: dict[int, list[int]] = defaultdict(list)
    distances: list[int] = []
    for entry in token_map.entries:
        name = _CLASS_OF.get(entry.method, "other") if entry.sources else "unmapped"
        by_class[name].append(entry.target_id)
        if entry.sources:
            fan_in[entry.sources[0][0]].append(entry.target_id)
        if name == "approximate" and entry.evidence and isinstance(entry.evidence[0], int):
            distances.append(entry.evidence[0])
    counts = {name: len(by_class.get(name, ())) for name in CLASSES}
    if by_class.get("other"):
        counts["other"] = len(by_class["other"])

    def row(i: int) -> dict[str, Any]:
        entry = token_map.entries[i]
        j = entry.sources[0][0] if entry.sources else None
        return {"host_id": i, "host_token": host.tokens[i], "delta_id": j,
                "delta_token": delta.tokens[j] if j is not None else None, "evidence": list(entry.evidence)}

    examples = {}
    for name in counts:
        ids = by_class.get(name, [])
        step = max(1, len(ids) // n_examples)
        examples[name] = [row(i) for i in ids[::step][:n_examples]]
    shared = sorted(fan_in.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:n_shared]
    most_shared = [{"delta_id": j, "delta_token": delta.tokens[j], "host_tokens": len(hs),
                    "examples": [host.tokens[h] for h in hs[:5]]} for j, hs in shared if len(hs) > 1]
    histogram = dict(sorted(Counter(distances).items()))
    return CompatibilityReport(
        host=token_map.target.name, delta=token_map.source.name,
        mode="reference" if token_map.params.get("reference") else "default", total=len(token_map.entries),
        counts=counts, distance_histogram=histogram,
        mean_distance=sum(distances) / len(distances) if distances else 0.0,
        max_distance=max(distances, default=0), most_shared=most_shared, examples=examples)
