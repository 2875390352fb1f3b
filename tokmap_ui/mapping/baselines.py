"""Simple token maps and the steps Tik-to-Tok shares with them.

Shared steps (used by :mod:`tokmap_ui.mapping.tiktotok` too):

* :func:`special_sources`: special tokens by role (``bos``/``cls``, ``eos``/``sep``, ``pad``,
  ``unk``, ``mask``), else the same special string;
* :func:`identical_sources`: the same canonical text across marker styles (``Ġkat``, ``▁kat``
  and WordPiece ``kat`` are all ``("kat", word start)``), after the source tokenizer's own case
  and accent folding (uncased BERT: ``ĠKat`` -> ``kat``);
* :func:`fvt_sources`: FVT (Gee et al. 2022), the source tokens the source tokenizer splits the
  target token's text into, continuation pieces kept as continuations (``at`` -> ``##at``);
* :func:`word_ids`: a word's tokens in word-initial form (as after a space).

Baselines, all returning a :class:`~tokmap_ui.mapping.tokenmap.TokenMap` (specials by role in
each, except ``random``):

* ``identical``: shared strings copied, every other row the mean (a "copy-overlap" baseline);
* ``fvt``: every token decomposed with the source tokenizer, mean if nothing is left;
* ``mean``: every row the mean source row (an empty ``sources`` list; consumers fill the mean);
* ``random``: transformers' old resize default: every entry has ``method="random"`` and no
  sources, and conversion draws N(0, initializer_range) rows, seeded (transformers #6562).

Example:
    >>> token_map = build_baseline(MapMethod.FVT, src_tok, tgt_tok)      # doctest: +SKIP
    >>> token_map.entries[123].method, token_map.entries[123].evidence     # doctest: +SKIP
    ('fvt', ('fvt:kat|##ten',))
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import numpy as np

from tokmap_ui.mapping.tokenmap import EntryMethod, MapEntry, TokenMap, VocabRef
from tokmap_ui.vocab import Vocabulary, WordMarker

ROLE_FALLBACKS = {"bos": ("bos", "cls"), "cls": ("cls", "bos"), "eos": ("eos", "sep"), "sep": ("sep", "eos"),
                  "pad": ("pad",), "unk": ("unk",), "mask": ("mask",)}
_BYTE_ESCAPE = re.compile(r"<0x[0-9A-F]{2}>")
_UNUSED = re.compile(r"^(\[unused\d+\]|<unused\d+>|<extra_id_\d+>)$")


class MapMethod(str, Enum):
    """Method families of ``tokmap map --method`` (the registry is in :mod:`tokmap_ui.mapping.tiktotok`)."""

    TIKTOTOK = "tiktotok"
    IDENTICAL = "identical"
    FVT = "fvt"
    MEAN = "mean"
    RANDOM = "random"


# ----------------------------------------------------------------------------- shared steps

def word_ids(tokenizer: Any, vocab: Vocabulary, words: Sequence[str], after_space: bool = True) -> list[list[int]]:
    """Token ids of each word as it is tokenised after a space (word-initial form).

    Special tokens (an ``[UNK]``) and leading bare word-start markers (a lone ``▁`` or ``Ġ``
    some tokenizers emit before a word) are dropped; a word of only those gives ``[]``. With
    ``after_space=False`` the word is tokenised as the first word of a text (GPT-2 style
    tokenizers then give ``Kat``, not ``ĠKat``).

    Example:
        >>> word_ids(gpt2_style, vocab, ["katten"])     # doctest: +SKIP
        [[1234, 56]]                                     # Ġkat, ten
    """
    if not words:
        return []
    encoded = encode_batch(tokenizer, [" " + w for w in words] if after_space else list(words))
    size = len(vocab)
    drop = set(np.flatnonzero(vocab.is_special).tolist())
    bare = set(np.flatnonzero(vocab.starts_word).tolist()) & {i for i, t in enumerate(vocab.canonical) if t == ""}
    out = []
    for ids in encoded:
        if drop.intersection(ids) or max(ids, default=0) >= size:
            ids = [i for i in ids if i < size and i not in drop]
        while ids and ids[0] in bare:
            ids = ids[1:]
        out.append(ids)
    return out


def encode_batch(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens (the Rust tokenizer directly: 3x faster than ``__call__``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # no offsets: faster
        return [e.ids for e in encode(list(texts), add_special_tokens=False)]
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def source_folding(tokenizer: Any) -> Callable[[str], str]:
    """The case/accent folding the source tokenizer applies to its input (uncased BERT: lower + no accents).

    Probed on two strings instead of calling the normaliser on tokens, because normalisers may
    also add markers (Llama's prepends ``▁``).
    """
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    if normalizer is None:
        return lambda text: text
    lower = normalizer.normalize_str("Ab").endswith("ab")
    strip = normalizer.normalize_str("é").endswith("e")

    def fold(text: str) -> str:
        if lower:
            text = text.lower()
        if strip:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
        return text

    return fold


def special_sources(target: Vocabulary, source: Vocabulary) -> dict[int, tuple[int, str]]:
    """Target special id -> (source id, evidence) by role, with bos↔cls and eos↔sep as stand-ins."""
    out: dict[int, tuple[int, str]] = {}
    roles_of: dict[int, list[str]] = {}
    for role, i in target.special_roles.items():
        roles_of.setdefault(i, []).append(role)
    for i in [int(x) for x in target.is_special.nonzero()[0]]:
        for role in roles_of.get(i, ()):
            found = next((r for r in ROLE_FALLBACKS.get(role, (role,)) if r in source.special_roles), None)
            if found is not None:
                out[i] = (source.special_roles[found], f"role:{role}" + ("" if found == role else f"->{found}"))
                break
        else:
            j = source.id_of(target.tokens[i])
            if j is not None and source.is_special[j]:
                out[i] = (j, "string")
    return out


def _has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


def identical_sources(target: Vocabulary, source: Vocabulary, source_tokenizer: Any = None) -> dict[int, int]:
    """Target id -> source id of a non-special source token with the same canonical text and word-start flag.

    The text is matched as is, then folded the way the source tokenizer folds its input. Tokens
    without letters (numbers, punctuation) also match across the word-start flag, because
    WordPiece splits punctuation off as its own word.
    """
    index = {key: [i for i in ids if not source.is_special[i]] for key, ids in source.ids_by_canonical().items()}
    fold = source_folding(source_tokenizer) if source_tokenizer is not None else (lambda text: text)
    wordpiece = source.marker is WordMarker.WORDPIECE
    out = {}
    for i, (text, start) in enumerate(zip(target.canonical, target.starts_word.tolist())):
        if target.is_special[i] or not text:
            continue
        candidates = [(text, start), (fold(text), start)]
        if not _has_letters(text):
            # WordPiece splits punctuation off as a word of its own, so its "##," rows are never
            # trained: a word-start "," is the one to copy.
            other = [(text, not start), (fold(text), not start)]
            candidates = other + candidates if wordpiece and not start else candidates + other
        for key in candidates:
            ids = index.get(key)
            if ids:
                out[i] = ids[0]
                break
    return out


def fvt_sources(target: Vocabulary, source: Vocabulary, source_tokenizer: Any,
                ids: Sequence[int] | None = None) -> dict[int, list[int]]:
    """FVT: target id -> the source ids its text splits into (empty lists left out).

    Word-start tokens are split by the source tokenizer as a word after a space. Continuation
    tokens are split greedily (longest match first, as WordPiece does) into the source's
    continuation tokens, so ``ten`` becomes ``##ten`` and never the word ``ten`` (a tokenizer
    cannot be asked to split text as the middle of a word). Byte escapes (``<0xC3>``) are
    dropped: their text is not the token's text.
    """
    ids = [i for i in (range(len(target)) if ids is None else ids) if not target.is_special[i] and target.canonical[i]]
    texts = {i: _BYTE_ESCAPE.sub("", target.canonical[i]) for i in ids}
    initial = [i for i in ids if target.starts_word[i] and texts[i]]
    out = {i: pieces for i, pieces in zip(initial, word_ids(source_tokenizer, source, [texts[i] for i in initial]))
           if pieces}
    inner_index = {text: i for (text, start), group in source.ids_by_canonical().items() if not start and text
                   for i in group[:1] if not source.is_special[i]}
    longest = max(map(len, inner_index), default=0)
    symbols = [i for i in ids if not target.starts_word[i] and texts[i] and not _has_letters(texts[i])
               and source.marker is WordMarker.WORDPIECE]  # "##," is never trained (see identical_sources)
    out.update({i: p for i, p in zip(symbols, word_ids(source_tokenizer, source, [texts[i] for i in symbols])) if p})
    for i in ids:
        if not target.starts_word[i] and texts[i] and i not in out:
            pieces = _greedy(texts[i], inner_index, longest)
            if pieces:
                out[i] = pieces
    return out


def _greedy(text: str, index: dict[str, int], longest: int) -> list[int]:
    """Longest-match-first split of ``text`` into ``index`` entries; characters nothing covers are skipped."""
    pieces, pos = [], 0
    while pos < len(text):
        for length in range(min(longest, len(text) - pos), 0, -1):
            j = index.get(text[pos:pos + length])
            if j is not None:
                pieces.append(j)
                pos += length
                break
        else:
            pos += 1
    return pieces


def neighbour_candidates(source: Vocabulary) -> np.ndarray:
    """``(V_s,)`` bool: source tokens that may stand for a target token (not special, a hole or ``[unusedN]``)."""
    return np.fromiter((bool(t) and not _UNUSED.match(t) for t in source.tokens), bool, len(source)) & ~source.is_special


def fvt_evidence(source: Vocabulary, pieces: Sequence[int]) -> str:
    return "fvt:" + "|".join(source.tokens[p] for p in pieces)


# ----------------------------------------------------------------------------- baselines

def _special_entries(target: Vocabulary, source: Vocabulary) -> dict[int, MapEntry]:
    return {i: MapEntry(i, target.tokens[i], ((j, 1.0),), EntryMethod.SPECIAL, (why,))
            for i, (j, why) in special_sources(target, source).items()}


def _mean(target: Vocabulary, i: int, why: str = "mean") -> MapEntry:
    return MapEntry(i, target.tokens[i], (), EntryMethod.MEAN, (why,))


def build_baseline(method: MapMethod | str, source_tokenizer: Any, target_tokenizer: Any,
                   source: Vocabulary | None = None, target: Vocabulary | None = None,
                   params: dict | None = None) -> TokenMap:
    """Build one of the baseline maps (``identical``, ``fvt``, ``mean``, ``random``).

    Args:
        method: which baseline.
        source_tokenizer, target_tokenizer: transformers fast tokenizers.
        source, target: their :class:`Vocabulary` views (built when None).
        params: recorded in the map (the job config).
    """
    method = MapMethod(method)
    source = source or Vocabulary.from_tokenizer(source_tokenizer)
    target = target or Vocabulary.from_tokenizer(target_tokenizer)
    params = dict(params or {"method": method.value})
    n = len(target)
    if method is MapMethod.RANDOM:
        entries = [MapEntry(i, target.tokens[i], (), EntryMethod.RANDOM, ("init:normal(0,initializer_range)",))
                   for i in range(n)]
        return TokenMap(method.value, VocabRef.of(target), VocabRef.of(source), params, tuple(entries))
    entries_by_id = _special_entries(target, source)
    if method is MapMethod.IDENTICAL:
        for i, j in identical_sources(target, source, source_tokenizer).items():
            if i not in entries_by_id:
                entries_by_id[i] = MapEntry(i, target.tokens[i], ((j, 1.0),), EntryMethod.IDENTICAL,
                                            (f"identical:{source.tokens[j]}",))
    elif method is MapMethod.FVT:
        todo = [i for i in range(n) if i not in entries_by_id]
        for i, pieces in fvt_sources(target, source, source_tokenizer, todo).items():
            weight = 1.0 / len(pieces)
            merged: dict[int, float] = {}
            for p in pieces:
                merged[p] = merged.get(p, 0.0) + weight
            entries_by_id[i] = MapEntry(i, target.tokens[i], tuple(merged.items()), EntryMethod.FVT,
                                        (fvt_evidence(source, pieces),))
    entries = [entries_by_id.get(i) or _mean(target, i) for i in range(n)]
    return TokenMap(method.value, VocabRef.of(target), VocabRef.of(source), params, tuple(entries))
