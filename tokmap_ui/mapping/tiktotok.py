"""Tik-to-Tok (Remy et al. 2023): map every target token to weighted source tokens.

The dictionary step and the input checks are in :mod:`tokmap_ui.mapping.dictionary_step`, the
joint subword space in :mod:`tokmap_ui.mapping.subword_space`, the baselines in
:mod:`tokmap_ui.mapping.baselines`.

The steps, each recorded as the entry's ``method`` with its ``evidence`` (research/tiktotok.md):

1. ``special``: special tokens by role (``role:eos``; bos↔cls and eos↔sep stand in for each other);
2. ``identical`` for numbers and punctuation: the same text in the source vocabulary, copied
   whatever the dictionary says (WordPiece's untrained ``##,`` avoided);
3. ``dictionary``: every pair (plus case and text-start forms that are one target token) is
   tokenised as a word by both tokenizers; single tokens count 1:1, multi-token words split their
   weight half all-to-all, half in order (the trans-tokenizers rule); counts accumulate. A token
   that *is* a whole dictionary word takes only those pairs; a word-like token reached only as a
   piece of longer words prefers an identical source string if there is one; the ``max_sources``
   strongest sources are kept (:mod:`tokmap_ui.mapping.dictionary_step`);
4. ``identical``: the same text (after the source's case folding) for tokens no pair reaches;
5. ``neighbour``: the ``top_k`` nearest source tokens in the joint bilingual subword space
   (:mod:`tokmap_ui.mapping.subword_space`, learnt from the pairs and optional monolingual text),
   weighted ``softmax(sim / temperature)``;
6. ``fvt`` (the source tokenizer's split of the token's text), then ``mean``;
7. ``aligned`` (only with parallel text): every non-special token seen at least
   ``align_min_count`` times in IBM Model 1 token alignments of the parallel segments
   (:mod:`tokmap_ui.mapping.alignment`) takes its ``align_top_k`` aligned source tokens instead,
   weighted by expected counts: seen in context beside its translation beats every step above.

Defaults were chosen on the demo kit's dev splits (MiniLM -> nl-bpe, FreeDict en-nl). The two
measures disagree: held-out word translation P@1 prefers broad entries (50 sources, counts
divided by source frequency ** 0.5: 0.306), while converted-MiniLM sentence retrieval, the
use the map is for, prefers sharp ones (10 raw-count sources, whole words first: retrieval
P@1 0.54 against 0.33, word P@1 0.17 against 0.31). The defaults are the sharp ones; both
settings beat every baseline on both measures. Of the subword spaces, PPMI-SVD on the dictionary
alone won (dev retrieval P@1 0.54; n-gram Procrustes 0.41; PPMI-SVD with code-switched kit text
0.30; no neighbour step, FVT instead, 0.42), so monolingual text is optional and off by default.
Parallel text is the strongest evidence when there is some: with the kit's 20k LibreOffice
pairs (``map --parallel assets/parallel/en-nl.train.tsv``; disjoint from the evaluation
segments, same domain) the aligned step takes 7.4k of 16k tokens and converted-MiniLM retrieval
P@1 rises from 0.54 to 0.94 (dev) and from 0.55 to 0.95 (test); word P@1 stays 0.16.

Weights are normalised per entry. Bad input raises :class:`~tokmap_ui.errors.DictionaryError`
(empty dictionary, one in the wrong direction, none of it tokenisable); harmless oddities
(no shared strings, no special tokens) become ``stats["notes"]``.

Example:
    >>> tm = build_token_map(src_tok, tgt_tok, dictionary, MappingConfig(top_k=3))  # doctest: +SKIP
    >>> tm.stats["by_method"]                                                      # doctest: +SKIP
    {'dictionary': 5614, 'fvt': 12, 'identical': 802, 'neighbour': 9567, 'special': 5}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from tokmap_ui.dictionary import Dictionary
from tokmap_ui.errors import ConfigError, DictionaryError
from tokmap_ui.mapping.baselines import (MapMethod, build_baseline, fvt_evidence, fvt_sources, identical_sources,
                                         neighbour_candidates, special_sources, word_ids)
from tokmap_ui.mapping.dictionary_step import (DictionaryCounts, association_weights, check_dictionary,
                                               dictionary_counts, direction_score)
from tokmap_ui.mapping.subword_space import (SpaceMethod, SpaceSettings, code_switched, nearest_sources,
                                             text_cooccurrence, train_space)
from tokmap_ui.mapping.tokenmap import EntryMethod, MapEntry, TokenMap, VocabRef
from tokmap_ui.vocab import Vocabulary

@dataclass(frozen=True)
class MappingConfig:
    """Settings of ``tokmap map`` (field docstrings are the CLI and UI help)."""

    method: MapMethod = MapMethod.TIKTOTOK
    """Method family: tiktotok | identical | fvt | mean | random."""
    top_k: int = 3
    """Nearest source tokens averaged for a target token no dictionary pair reaches (the authors' blog: 3)."""
    temperature: float = 0.1
    """Neighbour weights are softmax(similarity / temperature); small = trust the nearest (WECHSEL: 0.1)."""
    max_sources: int = 10
    """Keep at most this many source tokens per dictionary-mapped entry (the strongest)."""
    association: float = 0.0
    """Divide dictionary counts by (source token frequency) ** this; 0 = raw counts."""
    in_order_share: float = 0.5
    """Share of a multi-token pair's weight split in order (the rest goes all-to-all)."""
    case_variants: bool = True
    """Also count each pair in lower case and Capitalised, where that form is a single target token."""
    text_start_variants: bool = True
    """Also count each target word as the first word of a text (no leading space), where that is one token."""
    identical_weight: float = 1.0
    """Count added for a source token with the same text as the target token (smoothing)."""
    space: SpaceMethod = SpaceMethod.PPMI_SVD
    """How the joint subword space is learnt: ppmi-svd | ngram-procrustes."""
    space_dim: int = 200
    """Dimensions of the joint subword space."""
    shared_ngrams: bool = True
    """Compose unseen tokens of both languages from one character n-gram table (cognates meet)."""
    ngram_length_power: float = 0.0
    """Weight of a character n-gram in composing an unseen token grows as length ** this."""
    text_window: int = 2
    """Co-occurrence window (tokens) in code-switched monolingual text."""
    code_switch_rate: float = 0.5
    """Share of dictionary words swapped for a translation in monolingual text."""
    max_text_lines: int = 50_000
    """Read at most this many lines of each monolingual text (time bound)."""
    min_similarity: float = 0.0
    """Neighbours less similar than this are not used (the token falls back to FVT)."""
    whole_words_first: bool = True
    """A token that is a whole dictionary word takes only those pairs, not pieces of longer words."""
    split_pairs: bool = True
    """Use pairs whose target word is several tokens (False: such tokens go to the neighbour step)."""
    identical_first: bool = False
    """Map identical words before dictionary evidence (numbers and punctuation always go first)."""
    identical_over_pieces: bool = True
    """Prefer an identical string to evidence that comes only from longer words the token is a piece of."""
    direct_dictionary: bool = True
    """Map tokens the dictionary reaches directly; False sends them through the subword space too (ablation)."""
    check_direction: bool = True
    """Refuse a dictionary whose sides fit the other tokenizer better (swapped columns)."""
    align_min_count: float = 3.0
    """Parallel text only: a token aligned at least this often (expected count) takes its aligned sources."""
    align_top_k: int = 3
    """Parallel text only: aligned source tokens kept per entry (shares below align_min_share dropped)."""
    align_min_share: float = 0.05
    """Parallel text only: least share of a token's alignments a kept source must have."""
    align_iterations: int = 5
    """Parallel text only: IBM Model 1 EM iterations."""
    seed: int = 0
    """Seed of code-switching and the SVD."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", MapMethod(self.method))
        object.__setattr__(self, "space", SpaceMethod(self.space))
        checks = [(self.top_k >= 1, "top_k must be ≥ 1"), (self.temperature > 0, "temperature must be > 0"),
                  (self.max_sources >= 1, "max_sources must be ≥ 1"), (self.space_dim >= 2, "space_dim must be ≥ 2"),
                  (0 <= self.in_order_share <= 1, "in_order_share must be in [0, 1]"),
                  (0 <= self.code_switch_rate <= 1, "code_switch_rate must be in [0, 1]"),
                  (self.text_window >= 1, "text_window must be ≥ 1"), (self.association >= 0, "association must be ≥ 0"),
                  (self.align_top_k >= 1, "align_top_k must be ≥ 1"),
                  (self.align_iterations >= 1, "align_iterations must be ≥ 1")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_params(self) -> dict[str, Any]:
        """JSON-able form, recorded in the map's ``params``."""
        return {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(self).items()}


@dataclass
class MappingRun:
    """A map plus how long each step took (seconds) and notes for the user."""

    token_map: TokenMap
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- the whole map

def _items(vocab: Vocabulary) -> list[tuple[str, bool]]:
    return [("" if vocab.is_special[i] else text, bool(start))
            for i, (text, start) in enumerate(zip(vocab.canonical, vocab.starts_word.tolist()))]


def text_sequences(dictionary: Dictionary, source_tokenizer: Any, target_tokenizer: Any, source: Vocabulary,
                   target: Vocabulary, source_text: Sequence[str], target_text: Sequence[str],
                   config: MappingConfig) -> list[np.ndarray]:
    """Code-switched token sequences of both texts in the joint id space (target ids, then source + V_t)."""
    to_src: dict[str, list[str]] = {}
    to_tgt: dict[str, list[str]] = {}
    for pair in dictionary.pairs:
        to_src.setdefault(pair.tgt.lower(), []).append(pair.src)
        to_tgt.setdefault(pair.src.lower(), []).append(pair.tgt)
    tgt_words: Callable = lambda words: word_ids(target_tokenizer, target, words)  # noqa: E731
    src_words: Callable = lambda words: word_ids(source_tokenizer, source, words)  # noqa: E731
    n_t, limit = len(target), config.max_text_lines
    return (code_switched(list(target_text)[:limit], to_src, tgt_words, src_words, 0, n_t,
                          config.code_switch_rate, config.seed)
            + code_switched(list(source_text)[:limit], to_tgt, src_words, tgt_words, n_t, 0,
                            config.code_switch_rate, config.seed + 1))


def run_tiktotok(source_tokenizer: Any, target_tokenizer: Any, dictionary: Dictionary | None,
                 config: MappingConfig = MappingConfig(), *, source: Vocabulary | None = None,
                 target: Vocabulary | None = None, source_text: Sequence[str] = (),
                 target_text: Sequence[str] = (), cache: Any = None,
                 parallel: tuple[Sequence[str], Sequence[str]] | None = None) -> MappingRun:
    """Build a Tik-to-Tok map; see the module docstring for the steps.

    Args:
        source_tokenizer: the model's tokenizer (rows are read from its vocabulary).
        target_tokenizer: the new tokenizer (one entry per token).
        dictionary: pairs with ``src`` in the source language and ``tgt`` in the target language.
        config: the knobs.
        source, target: :class:`Vocabulary` views (built when None).
        source_text, target_text: monolingual lines for the subword space (optional).
        cache: an :class:`~tokmap_ui.io.cache.ArrayCache` for the subword space, or None.
        parallel: ``(source-language segments, target-language segments)``, aligned pairs, for the
            ``aligned`` step (optional).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    source = source or Vocabulary.from_tokenizer(source_tokenizer)
    target = target or Vocabulary.from_tokenizer(target_tokenizer)
    lap("vocabularies")
    check_dictionary(dictionary, source_tokenizer, target_tokenizer, source, target, config.check_direction)
    lap("checks")
    notes: list[str] = []
    specials = special_sources(target, source)
    identical = {i: j for i, j in identical_sources(target, source, source_tokenizer).items() if i not in specials}
    if not target.is_special.any():
        notes.append(f"the target tokenizer '{target.name}' declares no special tokens: step 1 mapped nothing")
    if not identical:
        notes.append("the two vocabularies share no token text: no identical matches")
    lap("specials+identical")
    found = dictionary_counts(dictionary, source_tokenizer, target_tokenizer, source, target, config)
    if found.used == 0:
        raise DictionaryError(dictionary.name, f"none of its {len(dictionary.pairs):,} pairs could be tokenised by "
                                               "both tokenizers (every word became unknown/special tokens)",
                              fix="check that the tokenizers match the dictionary's languages")
    weights = association_weights(_evidence(found, identical, target, config), identical, config)
    lap("dictionary")
    reached = (np.diff(weights.indptr) > 0) & ~target.is_special
    for i in specials:
        reached[i] = False
    if not config.direct_dictionary:
        weights = sp.csr_matrix(weights.shape)
        reached[:] = False
        identical = {}
    todo = np.array([i for i in range(len(target)) if not reached[i] and i not in specials and i not in identical
                     and target.tokens[i]], np.int64)
    sequences = []
    if len(source_text) or len(target_text):
        sequences = text_sequences(dictionary, source_tokenizer, target_tokenizer, source, target,
                                   source_text, target_text, config)
    cooc = (text_cooccurrence(sequences, len(target) + len(source), config.text_window) if sequences else None)
    lap("text")
    settings = SpaceSettings(method=config.space, dim=config.space_dim, shared_ngrams=config.shared_ngrams,
                             ngram_length_power=config.ngram_length_power, seed=config.seed)
    space = train_space(found.counts, _items(target), _items(source), settings, cooc, cache)
    lap("space" + (" (cached)" if space.cached else ""))
    ids, sims = nearest_sources(space, todo, neighbour_candidates(source), config.top_k, cache)
    lap("neighbours")
    entries = _assemble(target, source, source_tokenizer, dictionary, found, weights, specials, identical,
                        todo, ids, sims, space.target_has, config)
    lap("fallback+entries")
    n_aligned = None
    if parallel is not None:
        from tokmap_ui.mapping.alignment import align_tokens, aligned_entries, tokenize_segments

        table = align_tokens(tokenize_segments(source_tokenizer, parallel[0]),
                             tokenize_segments(target_tokenizer, parallel[1]), len(source), len(target),
                             iterations=config.align_iterations)
        entries, n_aligned = aligned_entries(entries, table, config.align_min_count, config.align_top_k,
                                             config.align_min_share)
        lap("aligned")
    stats_note = [f"{found.skipped:,} of {len(dictionary.pairs):,} dictionary pairs could not be tokenised"] \
        if found.skipped else []
    token_map = TokenMap(MapMethod.TIKTOTOK.value, VocabRef.of(target), VocabRef.of(source), config.to_params(),
                         tuple(entries))
    token_map.stats["notes"] = notes + stats_note
    token_map.stats["dictionary"] = {"pairs": len(dictionary.pairs), "pairs_used": found.used,
                                     "targets_reached": int(reached.sum())}
    if n_aligned is not None:
        token_map.stats["parallel"] = {"segments": len(parallel[0]), "targets_aligned": n_aligned}
    lap("tokenmap")
    return MappingRun(token_map, timings, notes + stats_note)


def _evidence(found: DictionaryCounts, identical: dict[int, int], target: Vocabulary, config: MappingConfig
              ) -> sp.csr_matrix:
    """The counts each entry is built from: whole-word pairs first, identical strings first (see config)."""
    counts = found.counts.tocsr()
    has_whole = np.diff(found.whole.tocsr().indptr) > 0
    if config.whole_words_first:
        counts = (sp.diags((~has_whole).astype(np.float64)) @ counts + found.whole).tocsr()
    if not config.split_pairs:
        counts = (sp.diags(has_whole.astype(np.float64)) @ counts).tocsr()
    first = [i for i in identical if config.identical_first or not any(c.isalpha() for c in target.canonical[i])
             or (config.identical_over_pieces and not has_whole[i])]
    if first:  # numbers and punctuation are the same in every language: copy them, whatever pairs say
        keep = np.ones(counts.shape[0])
        keep[first] = 0.0
        counts = (sp.diags(keep) @ counts).tocsr()
    counts.eliminate_zeros()
    return counts


def _assemble(target: Vocabulary, source: Vocabulary, source_tokenizer: Any, dictionary: Dictionary,
              found: DictionaryCounts, weights: sp.csr_matrix, specials: dict[int, tuple[int, str]],
              identical: dict[int, int], todo: np.ndarray, ids: np.ndarray, sims: np.ndarray,
              has_vector: np.ndarray, config: MappingConfig) -> list[MapEntry]:
    entries: list[MapEntry | None] = [None] * len(target)
    tokens = target.tokens
    for i, (j, why) in specials.items():
        entries[i] = MapEntry(i, tokens[i], ((j, 1.0),), EntryMethod.SPECIAL, (why,))
    pairs = dictionary.pairs
    indptr, indices, data = weights.indptr, weights.indices, weights.data
    for i in np.flatnonzero(np.diff(indptr) > 0).tolist():
        if entries[i] is not None or target.is_special[i]:
            continue
        row = sorted(zip(indices[indptr[i]:indptr[i + 1]].tolist(), data[indptr[i]:indptr[i + 1]].tolist()),
                     key=lambda x: -x[1])
        if config.whole_words_first and found.whole_pairs_per_target[i]:
            evidence = [f"whole-word pairs:{int(found.whole_pairs_per_target[i])}"]
            quoted = found.whole_top_pairs.get(i, ())
        else:
            evidence = [f"pairs:{int(found.pairs_per_target[i])}"]
            quoted = found.top_pairs.get(i, ())
        evidence += [f"pair:{pairs[k].src}→{pairs[k].tgt}:{m:.3g}" for k, m in quoted]
        if i in identical:
            evidence.append(f"identical:{source.tokens[identical[i]]}")
        entries[i] = MapEntry(i, tokens[i], tuple((s, round(w, 6)) for s, w in row), EntryMethod.DICTIONARY,
                              tuple(evidence))
    for i, j in identical.items():
        if entries[i] is None:
            entries[i] = MapEntry(i, tokens[i], ((j, 1.0),), EntryMethod.IDENTICAL, (f"identical:{source.tokens[j]}",))
    leftover = []
    for row, i in enumerate(todo.tolist()):
        ok = (ids[row] >= 0) & (sims[row] >= config.min_similarity)
        if entries[i] is not None or not has_vector[i] or not ok.any():
            leftover.append(i)
            continue
        near, sim = ids[row][ok], sims[row][ok]
        w = np.exp((sim - sim.max()) / config.temperature)
        w = w / w.sum()
        entries[i] = MapEntry(i, tokens[i], tuple(zip(near.tolist(), np.round(w, 6).tolist())),
                              EntryMethod.NEIGHBOUR,
                              tuple(f"nn:{source.tokens[s]}:{x:.3f}" for s, x in zip(near.tolist(), sim.tolist())))
    waiting = set(leftover)
    leftover += [i for i in range(len(target)) if entries[i] is None and i not in waiting]
    split = fvt_sources(target, source, source_tokenizer, leftover)
    for i in leftover:
        pieces = split.get(i)
        if pieces:
            merged: dict[int, float] = {}
            for p in pieces:
                merged[p] = merged.get(p, 0.0) + 1.0 / len(pieces)
            entries[i] = MapEntry(i, tokens[i], tuple(merged.items()), EntryMethod.FVT, (fvt_evidence(source, pieces),))
        else:
            entries[i] = MapEntry(i, tokens[i], (), EntryMethod.MEAN, ("mean",))
    return entries  # type: ignore[return-value]


# ----------------------------------------------------------------------------- registry

def run_mapping(source_tokenizer: Any, target_tokenizer: Any, dictionary: Dictionary | None = None,
                config: MappingConfig = MappingConfig(), **kwargs: Any) -> MappingRun:
    """Build a map with ``config.method`` (see :data:`MAP_METHODS`); keyword arguments as :func:`run_tiktotok`."""
    return MAP_METHODS[MapMethod(config.method)](source_tokenizer, target_tokenizer, dictionary, config, **kwargs)


def build_token_map(source_tokenizer: Any, target_tokenizer: Any, dictionary: Dictionary | None = None,
                    config: MappingConfig = MappingConfig(), **kwargs: Any) -> TokenMap:
    """:func:`run_mapping` without the timings: just the :class:`TokenMap`."""
    return run_mapping(source_tokenizer, target_tokenizer, dictionary, config, **kwargs).token_map


def _baseline_runner(method: MapMethod) -> Callable[..., MappingRun]:
    def run(source_tokenizer: Any, target_tokenizer: Any, dictionary: Dictionary | None, config: MappingConfig,
            *, source: Vocabulary | None = None, target: Vocabulary | None = None, **_: Any) -> MappingRun:
        start = time.perf_counter()
        token_map = build_baseline(method, source_tokenizer, target_tokenizer, source, target,
                                   params={"method": method.value})
        return MappingRun(token_map, {"total": round(time.perf_counter() - start, 3)}, [])
    return run


MAP_METHODS: dict[MapMethod, Callable[..., MappingRun]] = {
    MapMethod.TIKTOTOK: run_tiktotok,
    **{m: _baseline_runner(m) for m in (MapMethod.IDENTICAL, MapMethod.FVT, MapMethod.MEAN, MapMethod.RANDOM)},
}
