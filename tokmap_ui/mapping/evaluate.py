"""How good is a token map? Coverage per method, and held-out translation precision.

:func:`summarise_map` counts entries per method, sources per entry and weight entropy.

:func:`translation_precision` is the intrinsic test of an initialised embedding table: for word
pairs *not used to build the map*, embed each target word with the table the map initialises
(``token_map.apply_to_rows(source rows)``; the mean of its tokens' rows) and each source word
with the source model's own table (the mean of its tokens' rows), then ask whether the nearest
source word by cosine is a right translation. P@k counts a query as a hit when any of its
translations is among the k nearest of all source words in the pair set. Unmapped entries get
the mean source row (as conversion does by default) and ``random`` entries N(0, std) rows,
seeded, as transformers' old resize default.

Example:
    >>> rows = source_embedding_table(minilm_dir)                                   # doctest: +SKIP
    >>> translation_precision(tm, rows, src_tok, tgt_tok, dev_pairs).p_at[1]        # doctest: +SKIP
    0.29
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tokmap_ui.dictionary import Dictionary
from tokmap_ui.errors import DictionaryError, TokenMapError
from tokmap_ui.mapping.baselines import word_ids
from tokmap_ui.mapping.tokenmap import TokenMap
from tokmap_ui.vocab import Vocabulary


@dataclass(frozen=True)
class MapSummary:
    """Coverage of a map: entries per method (count and share), sources per entry, weight entropy."""

    kind: str
    entries: int
    mapped: int
    by_method: dict[str, int]
    mean_sources_per_mapped_entry: float
    mean_weight_entropy: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "entries": self.entries, "mapped": self.mapped, "by_method": dict(self.by_method),
                "coverage": {m: round(n / max(self.entries, 1), 4) for m, n in self.by_method.items()},
                "mean_sources_per_mapped_entry": round(self.mean_sources_per_mapped_entry, 3),
                "mean_weight_entropy": round(self.mean_weight_entropy, 4)}

    def to_text(self) -> str:
        methods = ", ".join(f"{m} {n:,} ({n / max(self.entries, 1):.1%})" for m, n in
                            sorted(self.by_method.items(), key=lambda x: -x[1]))
        return (f"{self.kind} map: {self.entries:,} entries, {self.mapped:,} with sources\n"
                f"  by method: {methods}\n"
                f"  sources per mapped entry: {self.mean_sources_per_mapped_entry:.2f}; "
                f"weight entropy: {self.mean_weight_entropy:.3f} nats")


def summarise_map(token_map: TokenMap) -> MapSummary:
    """Coverage numbers of ``token_map`` (recomputed, so edited maps are counted right)."""
    stats = token_map.compute_stats()
    return MapSummary(token_map.kind, stats["entries"], stats["mapped"], dict(stats["by_method"]),
                      stats["mean_sources_per_mapped_entry"], stats["mean_weight_entropy"])


@dataclass(frozen=True)
class TranslationPrecision:
    """Held-out translation precision: P@k over ``queries`` target words and ``candidates`` source words."""

    queries: int
    candidates: int
    p_at: dict[int, float]
    skipped: int = 0
    examples: tuple[tuple[str, str, str], ...] = field(default=())
    """A few ``(target word, a right translation, nearest source word)`` triples."""

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "candidates": self.candidates, "skipped": self.skipped,
                **{f"p@{k}": round(v, 4) for k, v in self.p_at.items()},
                "examples": [list(e) for e in self.examples]}

    def to_text(self) -> str:
        scores = ", ".join(f"P@{k} {v:.3f}" for k, v in self.p_at.items())
        lines = [f"held-out translation: {scores} ({self.queries:,} target words, {self.candidates:,} candidate "
                 f"source words, {self.skipped} skipped)"]
        lines += [f"  {q} → {p}  (right: {g})" for q, g, p in self.examples]
        return "\n".join(lines)


def _word_vectors(rows: Any, ids: list[list[int]]) -> tuple[Any, np.ndarray]:
    """Mean row of each word's tokens ``(N, D)`` (L2-normalised) and a mask of words with tokens."""
    import torch

    ok = np.array([bool(x) for x in ids])
    lengths = torch.tensor([len(x) for x in ids if x], dtype=torch.long)
    flat = torch.tensor([i for x in ids if x for i in x], dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    sums = torch.zeros(len(lengths), rows.shape[1]).index_add_(0, owner, rows[flat].float())
    vectors = sums / lengths[:, None]
    return torch.nn.functional.normalize(vectors, dim=1), ok


def target_rows(token_map: TokenMap, source_rows: Any, random_std: float = 0.02, seed: int = 0) -> Any:
    """The ``(V_t, D)`` table a conversion would start from: mapped rows, the mean, or seeded N(0, std) for ``random``."""
    import torch

    rows = token_map.apply_to_rows(torch.as_tensor(source_rows).float())
    randoms = [e.target_id for e in token_map.entries if e.method == "random"]
    if randoms:
        generator = torch.Generator().manual_seed(seed)
        rows[randoms] = torch.normal(0.0, random_std, (len(randoms), rows.shape[1]), generator=generator)
    return rows


def translation_precision(token_map: TokenMap, source_rows: Any, source_tokenizer: Any, target_tokenizer: Any,
                          pairs: Dictionary, ks: tuple[int, ...] = (1, 5), *, source: Vocabulary | None = None,
                          target: Vocabulary | None = None, random_std: float = 0.02, seed: int = 0,
                          n_examples: int = 5) -> TranslationPrecision:
    """P@k of finding a target word's translation among all source words of ``pairs`` (see module docstring).

    Args:
        token_map: the map under test (target = new tokenizer, source = the model's).
        source_rows: ``(V_s, D)`` input embeddings of the source model.
        source_tokenizer, target_tokenizer: the map's two tokenizers.
        pairs: held-out pairs, ``src`` in the source language, ``tgt`` in the target language.
        ks: the k of P@k.
        random_std: std of rows of ``random`` entries (the model's initializer_range).
    """
    import torch

    source = source or Vocabulary.from_tokenizer(source_tokenizer)
    target = target or Vocabulary.from_tokenizer(target_tokenizer)
    token_map.check_fits(target, source)
    if not pairs.pairs:
        raise DictionaryError(pairs.name, "has no word pairs to evaluate on", fix="give a held-out pair file")
    source_rows = torch.as_tensor(source_rows)
    if source_rows.shape[0] < len(source):
        raise TokenMapError(None, f"the source table has {source_rows.shape[0]} rows but the source tokenizer "
                                  f"has {len(source)} tokens", fix="give the model that belongs to the source tokenizer")
    gold: dict[str, set[str]] = {}
    for p in pairs.pairs:
        gold.setdefault(p.tgt, set()).add(p.src)
    candidates = sorted({p.src for p in pairs.pairs})
    queries = sorted(gold)
    cand_vecs, cand_ok = _word_vectors(source_rows[: len(source)], word_ids(source_tokenizer, source, candidates))
    cand_words = [w for w, ok in zip(candidates, cand_ok) if ok]
    table = target_rows(token_map, source_rows[: len(source)], random_std, seed)
    query_vecs, query_ok = _word_vectors(table, word_ids(target_tokenizer, target, queries))
    query_words = [w for w, ok in zip(queries, query_ok) if ok]
    k_max = min(max(ks), len(cand_words))
    hits = {k: 0 for k in ks}
    examples = []
    position = {w: i for i, w in enumerate(cand_words)}
    for start in range(0, len(query_words), 1024):
        top = (query_vecs[start:start + 1024] @ cand_vecs.T).topk(k_max, dim=1).indices.tolist()
        for word, found in zip(query_words[start:start + 1024], top):
            right = {position[g] for g in gold[word] if g in position}
            for k in ks:
                hits[k] += bool(right.intersection(found[:k]))
            if len(examples) < n_examples and len(query_words) > n_examples:
                examples.append((word, sorted(gold[word])[0], cand_words[found[0]]))
    n = len(query_words)
    return TranslationPrecision(n, len(cand_words), {k: hits[k] / n if n else 0.0 for k in ks},
                                skipped=len(queries) - n + len(candidates) - len(cand_words), examples=tuple(examples))


def source_embedding_table(model_dir: str | Path) -> Any:
    """The ``(V, D)`` input-embedding table of a model folder, read from its safetensors only."""
    from tokmap_ui.io.models import read_embedding_table

    return read_embedding_table(model_dir)


@dataclass(frozen=True)
class MapEvaluation:
    """Everything ``tokmap evaluate-map`` reports."""

    summary: MapSummary
    precision: TranslationPrecision | None

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.to_dict(),
                "translation": self.precision.to_dict() if self.precision else None}

    def to_text(self) -> str:
        return self.summary.to_text() + ("\n" + self.precision.to_text() if self.precision else "")
