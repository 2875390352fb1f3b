"""Tik-to-Tok's dictionary step: word pairs -> token-pair counts -> per-entry weights; input checks.

Each pair (plus its lower-case and Capitalised variants where such a variant is a single target
token) is tokenised as a word by both tokenizers:
single tokens count 1:1; a multi-token pair splits its weight half all-to-all, half in order
(trans-tokenizers' rule, research/tiktotok.md §3.1), so every target token of the word receives
the pair's whole weight. Counts accumulate; :func:`association_weights` divides them by
``source_frequency ** association`` (pieces that every word contains, ``##s`` or ``the``,
otherwise swamp the rest; 0.5 was best on the demo kit's dev split) and keeps the strongest
``max_sources`` per entry.

Example:
    >>> found = dictionary_counts(pairs, src_tok, tgt_tok, src_vocab, tgt_vocab, config)  # doctest: +SKIP
    >>> found.counts[tgt_vocab.id_of("Ġkat"), src_vocab.id_of("cat")]                     # doctest: +SKIP
    3.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from tokmap_ui.dictionary import Dictionary
from tokmap_ui.errors import DictionaryError
from tokmap_ui.mapping.baselines import word_ids
from tokmap_ui.vocab import Vocabulary

if TYPE_CHECKING:  # pragma: no cover
    from tokmap_ui.mapping.tiktotok import MappingConfig

EVIDENCE_PAIRS = 3  # dictionary pairs quoted in an entry's evidence


@dataclass
class DictionaryCounts:
    """What the dictionary step found: ``counts`` ``(V_t, V_s)`` and, per target id, the top pairs."""

    counts: sp.csr_matrix
    whole: sp.csr_matrix
    """``(V_t, V_s)`` the part of ``counts`` from pairs whose target word is this one token."""
    top_pairs: dict[int, list[tuple[int, float]]]
    pairs_per_target: np.ndarray
    used: int
    skipped: int
    whole_top_pairs: dict[int, list[tuple[int, float]]]
    whole_pairs_per_target: np.ndarray


def direction_score(dictionary: Dictionary, source_tokenizer: Any, target_tokenizer: Any, source: Vocabulary,
                    target: Vocabulary, sample: int = 2000) -> float:
    """log of how much better the source tokenizer fits the dictionary's source words than its target words.

    Characters per token of each side under each tokenizer; vocabulary size cancels in the ratio.
    Positive: the columns are the right way round; clearly negative: they are swapped.
    """
    def chars_per_token(tokenizer: Any, vocab: Vocabulary, words: list[str]) -> float:
        pieces = sum(max(len(ids), 1) for ids in word_ids(tokenizer, vocab, words))
        return sum(map(len, words)) / max(pieces, 1)

    src = sorted({p.src for p in dictionary.pairs})[:: max(1, len(dictionary.pairs) // sample)]
    tgt = sorted({p.tgt for p in dictionary.pairs})[:: max(1, len(dictionary.pairs) // sample)]
    fit_src = chars_per_token(source_tokenizer, source, src) / chars_per_token(target_tokenizer, target, src)
    fit_tgt = chars_per_token(source_tokenizer, source, tgt) / chars_per_token(target_tokenizer, target, tgt)
    return math.log(fit_src / fit_tgt)


def check_dictionary(dictionary: Dictionary | None, source_tokenizer: Any, target_tokenizer: Any,
                     source: Vocabulary, target: Vocabulary, check_direction: bool = True) -> None:
    """Raise :class:`DictionaryError` for an empty dictionary or one whose columns are swapped."""
    name = getattr(dictionary, "name", "dictionary")
    if dictionary is None or not dictionary.pairs:
        raise DictionaryError(name, "has no word pairs, so Tik-to-Tok has nothing to learn from",
                              fix="give a bilingual dictionary (source-language word, target-language word), "
                                  "or choose --method fvt / identical / mean, which need none")
    if check_direction:
        score = direction_score(dictionary, source_tokenizer, target_tokenizer, source, target)
        if score < -0.1:
            langs = f" ({dictionary.src_lang} → {dictionary.tgt_lang})" if dictionary.src_lang else ""
            raise DictionaryError(
                name, f"looks reversed{langs}: its source words fit the target tokenizer '{target.name}' and its "
                      f"target words fit the source tokenizer '{source.name}' (fit score {score:.2f} < -0.1)",
                fix="swap the columns (--swap on the command line, Dictionary.reversed() in Python, or name them "
                    "with --src-col/--tgt-col), or pass --no-direction-check if this is intended")


# ----------------------------------------------------------------------------- dictionary step

def _capitalised(word: str) -> str:
    return word[:1].upper() + word[1:]


def dictionary_counts(dictionary: Dictionary, source_tokenizer: Any, target_tokenizer: Any, source: Vocabulary,
                      target: Vocabulary, config: MappingConfig) -> DictionaryCounts:
    """Turn every pair into token pairs (single 1:1; multi-token half all-to-all, half in order)."""
    forms: list[tuple[int, str, str, float, bool]] = []
    for k, pair in enumerate(dictionary.pairs):
        forms.append((k, pair.src, pair.tgt, pair.weight, False))
        if config.case_variants:
            variants = {(pair.src.lower(), pair.tgt.lower()), (_capitalised(pair.src), _capitalised(pair.tgt))}
            forms += [(k, s, t, pair.weight, True) for s, t in sorted(variants - {(pair.src, pair.tgt)})]
        if config.text_start_variants:  # "\x00" marks the form a word takes at the start of a text
            forms += [(k, pair.src, "\x00" + t, pair.weight, True)
                      for t in sorted({pair.tgt, _capitalised(pair.tgt), pair.tgt.lower()})]
    src_words = sorted({f[1] for f in forms})
    tgt_words = sorted({f[2] for f in forms if not f[2].startswith("\x00")})
    starts = sorted({f[2] for f in forms if f[2].startswith("\x00")})
    src_ids = dict(zip(src_words, word_ids(source_tokenizer, source, src_words)))
    tgt_ids = dict(zip(tgt_words, word_ids(target_tokenizer, target, tgt_words)))
    tgt_ids.update(zip(starts, word_ids(target_tokenizer, target, [w[1:] for w in starts], after_space=False)))
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    owner: list[int] = []
    whole_rows: list[int] = []
    whole_cols: list[int] = []
    whole_vals: list[float] = []
    whole_owner: list[int] = []
    share = config.in_order_share
    used = set()
    for k, s_word, t_word, weight, variant in forms:
        e, n = src_ids[s_word], tgt_ids[t_word]
        if not e or not n or weight <= 0:
            continue
        if variant and len(n) > 1:
            # A case variant counts only where it is one target token ("ĠKat"): split variants
            # ("ĠK" + "at") only add noise to pieces lower-case words share (dev P@1 0.298 -> 0.306).
            continue
        used.add(k)
        if len(n) == 1:
            whole_rows += [n[0]] * len(e)
            whole_cols += e
            whole_vals += [weight / len(e)] * len(e)
            whole_owner += [k] * len(e)
        if len(e) == 1 and len(n) == 1:
            rows.append(n[0]), cols.append(e[0]), vals.append(weight), owner.append(k)
            continue
        each = (1 - share) * weight / len(e)
        for i in n:
            rows += [i] * len(e)
            cols += e
            vals += [each] * len(e)
            owner += [k] * len(e)
        span = len(e) * len(n) // math.gcd(len(e), len(n))
        step = share * weight * len(n) / span
        rows += [n[p * len(n) // span] for p in range(span)]
        cols += [e[p * len(e) // span] for p in range(span)]
        vals += [step] * span
        owner += [k] * span
    r, c, v, o = (np.asarray(x) for x in (rows, cols, vals, owner))
    counts = sp.csr_matrix((v.astype(np.float64), (r, c)), shape=(len(target), len(source)))
    counts.sum_duplicates()
    whole = sp.csr_matrix((np.asarray(whole_vals, np.float64), (whole_rows, whole_cols)), shape=counts.shape)
    whole.sum_duplicates()
    top_pairs, per_target = _top_pairs(r, o, v, len(target), len(dictionary.pairs))
    whole_top, whole_per_target = _top_pairs(np.asarray(whole_rows, np.int64), np.asarray(whole_owner, np.int64),
                                             np.asarray(whole_vals), len(target), len(dictionary.pairs))
    return DictionaryCounts(counts, whole, top_pairs, per_target, len(used), len(dictionary.pairs) - len(used),
                            whole_top, whole_per_target)


def _top_pairs(rows: np.ndarray, owners: np.ndarray, vals: np.ndarray, n_target: int, n_pairs: int
               ) -> tuple[dict[int, list[tuple[int, float]]], np.ndarray]:
    """Per target id, the pairs that gave it most weight (for evidence), and how many pairs reached it."""
    if len(rows) == 0:
        return {}, np.zeros(n_target, np.int64)
    key = rows.astype(np.int64) * max(n_pairs, 1) + owners
    uniq, inverse = np.unique(key, return_inverse=True)
    mass = np.bincount(inverse, weights=vals)
    t, k = uniq // max(n_pairs, 1), uniq % max(n_pairs, 1)
    per_target = np.bincount(t, minlength=n_target)
    order = np.lexsort((-mass, t))
    rank = np.arange(len(order)) - np.searchsorted(t[order], t[order])
    keep = order[rank < EVIDENCE_PAIRS]
    top: dict[int, list[tuple[int, float]]] = {}
    for ti, ki, m in zip(t[keep].tolist(), k[keep].tolist(), mass[keep].tolist()):
        top.setdefault(ti, []).append((ki, m))
    return top, per_target


def association_weights(counts: sp.csr_matrix, identical: dict[int, int], config: MappingConfig) -> sp.csr_matrix:
    """Counts (+ identical smoothing) divided by source frequency ** association, top ``max_sources`` per row."""
    counts = counts.tocsr().astype(np.float64)
    if identical and config.identical_weight > 0:
        reached = np.diff(counts.indptr) > 0
        t = np.array([i for i in identical if reached[i]], np.int64)
        s = np.array([identical[i] for i in t.tolist()], np.int64)
        counts = counts + sp.csr_matrix((np.full(len(t), config.identical_weight), (t, s)), shape=counts.shape)
    freq = np.asarray(counts.sum(0)).ravel() + 1.0
    weighted = (counts @ sp.diags(freq ** -config.association)).tocoo()
    order = np.lexsort((-weighted.data, weighted.row))
    rows = weighted.row[order]
    rank = np.arange(len(order)) - np.searchsorted(rows, rows)
    keep = order[rank < config.max_sources]
    kept = sp.csr_matrix((weighted.data[keep], (weighted.row[keep], weighted.col[keep])), shape=counts.shape)
    totals = np.asarray(kept.sum(1)).ravel()
    return (sp.diags(np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)) @ kept).tocsr()


