"""The joint bilingual subword space of Tik-to-Tok's generalisation step.

Tik-to-Tok maps target tokens that no dictionary pair reaches to their nearest source tokens in a
space where *every token of both vocabularies* has a vector (research/tiktotok.md §1.2, step 3:
"bilingual character n-gram embeddings"). Two ways of learning that space live here, chosen by
:class:`SpaceMethod` (the comparison on the demo kit is in the mapping report of issue 4):

``ppmi-svd`` (default)
    Count how often target and source tokens occur in the same dictionary pair (and, when
    monolingual text is given, within a few tokens of each other in *code-switched* text:
    sentences where dictionary words were replaced by their translations), weight the counts by
    positive PMI and factorise with a truncated SVD. A target row ``u`` and a source row ``v``
    then score ``u·v ≈ PPMI(t, s)``. Tokens no pair or sentence reaches get the
    fastText-style sum of their character n-gram vectors, each n-gram vector being the mean of
    the vectors of the seen tokens that contain it, so ``Ġgebruikt`` lands near ``Ġgebruiken``.
``ngram-procrustes``
    Hashed character n-gram vectors (a random projection), shared by both languages so cognates
    start close, then an orthogonal map fitted on the dictionary's token pairs (Procrustes, as in
    WECHSEL) rotates the target side onto the source side.

Arrays are float32, rows L2-normalised; rows of tokens without a vector are zero and flagged in
``*_has``. Results are cached in an :class:`~tokmap_ui.io.cache.ArrayCache` keyed by the hash of
every input, so a second run with the same vocabularies, dictionary and text skips training.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> counts = sp.csr_matrix(np.eye(3, dtype=np.float32))
    >>> items = [("kat", True), ("hond", True), ("huis", True)]
    >>> space = train_space(counts, items, [("cat", True), ("dog", True), ("house", True)],
    ...                     SpaceSettings(dim=2))
    >>> space.target.shape, bool(space.source_has.all())
    ((3, 2), True)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
import scipy.sparse as sp

Items = Sequence[tuple[str, bool]]  # (canonical text, starts a word) per token id


class SpaceMethod(str, Enum):
    """How the joint bilingual subword space is learnt."""

    PPMI_SVD = "ppmi-svd"
    NGRAM_PROCRUSTES = "ngram-procrustes"


@dataclass(frozen=True)
class SpaceSettings:
    """Knobs of the space (a slice of ``MappingConfig``)."""

    method: SpaceMethod = SpaceMethod.PPMI_SVD
    dim: int = 200
    ngram_min: int = 3
    ngram_max: int = 5
    ngram_smoothing: float = 1.0
    ngram_length_power: float = 0.0
    shared_ngrams: bool = True
    """Compose both sides from one n-gram table, so cognates meet (True: dev retrieval P@1 0.500
    against 0.486), or each side from its own seen tokens (False)."""
    seed: int = 0


@dataclass(frozen=True)
class SubwordSpace:
    """Token vectors of both vocabularies in one space.

    Attributes:
        target: ``(V_t, d)`` float32, L2-normalised rows (zero where ``target_has`` is False).
        source: ``(V_s, d)`` float32, likewise.
        target_has, source_has: ``(V,)`` bool, which tokens have a vector.
        seconds: training time (0 when read from the cache).
        cached: True when read from the cache.
    """

    target: np.ndarray
    source: np.ndarray
    target_has: np.ndarray
    source_has: np.ndarray
    seconds: float = 0.0
    cached: bool = False
    key: str | None = None
    """Cache key of the space (None when not cached); neighbour searches are cached under it too."""


# ----------------------------------------------------------------------------- helpers

def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def ngram_features(items: Items, settings: SpaceSettings, vocab: dict[str, int] | None = None,
                   grow: bool = True) -> tuple[sp.csr_matrix, dict[str, int]]:
    """``(len(items), n_grams)`` 0/1 matrix of lower-cased character n-grams of each token.

    ``<`` marks a word start and ``#`` prefixes the whole token as one more feature (fastText's
    ``<where>`` trick), e.g. ``("kat", True)`` -> ``<k, ka, at, <ka, kat, <kat, #<kat``.
    """
    vocab = {} if vocab is None else vocab
    rows: list[int] = []
    cols: list[int] = []
    lo, hi = settings.ngram_min, settings.ngram_max
    for r, (text, start) in enumerate(items):
        if not text:
            continue
        word = ("<" if start else "") + text.lower()
        grams = {word[i:i + n] for n in range(lo, hi + 1) for i in range(len(word) - n + 1)}
        grams.add("#" + word)
        for gram in grams:
            j = vocab.get(gram)
            if j is None:
                if not grow:
                    continue
                j = vocab[gram] = len(vocab)
            rows.append(r)
            cols.append(j)
    data = np.ones(len(rows), np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(items), max(len(vocab), 1))), vocab


def ppmi(counts: sp.spmatrix, context_power: float = 0.75) -> sp.csr_matrix:
    """Positive PMI of a count matrix, with context-distribution smoothing (Levy et al. 2015)."""
    coo = counts.tocoo()
    positive = coo.data > 0
    coo = sp.coo_matrix((coo.data[positive], (coo.row[positive], coo.col[positive])), shape=coo.shape)
    total = float(coo.data.sum())
    if total <= 0:
        return sp.csr_matrix(coo.shape, dtype=np.float32)
    rows = np.asarray(coo.sum(1)).ravel()
    cols = np.asarray(coo.sum(0)).ravel() ** context_power
    cols = cols / cols.sum() * total
    value = np.log(coo.data * total / (rows[coo.row] * cols[coo.col]))
    keep = value > 0
    return sp.csr_matrix((value[keep].astype(np.float32), (coo.row[keep], coo.col[keep])), shape=coo.shape)


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Run numpy's BLAS/LAPACK on one thread.

    On these shared 2-core machines OpenBLAS with 2 threads slowed a 30k x 110 QR from 0.7 s
    to 9.6 s when other jobs ran (threads spin-waiting for a busy core); one thread is
    barely slower on an idle machine and never pathological.
    """
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn (umap-learn)
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _truncated_svd(matrix: sp.csr_matrix, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.utils.extmath import randomized_svd  # scikit-learn comes with umap-learn

    dim = max(1, min(dim, min(matrix.shape) - 1))
    return randomized_svd(matrix, dim, n_iter=4, random_state=seed)


# ----------------------------------------------------------------------------- methods

def _compose(vectors: np.ndarray, seen: np.ndarray, items: Items, settings: SpaceSettings) -> np.ndarray:
    """Give unseen tokens the idf-weighted sum of their n-grams' vectors (n-gram = mean of seen tokens)."""
    features, vocab = ngram_features(items, settings)                 # (V, G)
    seen_features = features[seen]
    count = np.asarray(seen_features.sum(0)).ravel()                  # (G,)
    grams = (seen_features.T @ _l2(vectors[seen])) / (count[:, None] + settings.ngram_smoothing)  # (G, d)
    idf = (np.log((1 + seen.sum()) / (1 + count)) + 1).astype(np.float32)
    length = np.zeros(features.shape[1], np.float32)
    length[list(vocab.values())] = [len(g) for g in vocab]
    weight = idf * (count > 0) * length ** settings.ngram_length_power  # long n-grams (stems) say more
    composed = _l2(np.asarray(features @ sp.diags(weight) @ grams, dtype=np.float32))
    return np.where(seen[:, None], _l2(vectors), composed).astype(np.float32)


def _ppmi_svd(counts: sp.csr_matrix, target: Items, source: Items, settings: SpaceSettings,
              cooccurrence: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
    n_t, n_s = counts.shape
    if cooccurrence is None:
        # Bipartite: rows are target tokens, columns source tokens; u·v ≈ PPMI(t, s).
        u, sigma, vt = _truncated_svd(ppmi(counts), settings.dim, settings.seed)
        target_vecs, source_vecs = u * np.sqrt(sigma), vt.T * np.sqrt(sigma)
    else:
        # One square matrix over both vocabularies: dictionary pairs in the off-diagonal
        # blocks plus code-switched window counts everywhere.
        joint = sp.bmat([[None, counts], [counts.T, None]], format="csr") + cooccurrence
        u, sigma, vt = _truncated_svd(ppmi(joint), settings.dim, settings.seed)
        target_vecs, source_vecs = (u * np.sqrt(sigma))[:n_t], (vt.T * np.sqrt(sigma))[n_t:]
    if not settings.shared_ngrams:  # each side composes from its own seen tokens only
        target_vecs, source_vecs = (target_vecs.astype(np.float32), source_vecs.astype(np.float32))
        return (_compose(target_vecs, np.linalg.norm(target_vecs, axis=1) > 1e-6, target, settings),
                _compose(source_vecs, np.linalg.norm(source_vecs, axis=1) > 1e-6, source, settings))
    vectors = np.vstack([target_vecs, source_vecs]).astype(np.float32)   # (V_t + V_s, d)
    seen = np.linalg.norm(vectors, axis=1) > 1e-6
    composed = _compose(vectors, seen, list(target) + list(source), settings)
    return composed[:n_t], composed[n_t:]


def _ngram_procrustes(counts: sp.csr_matrix, target: Items, source: Items,
                      settings: SpaceSettings) -> tuple[np.ndarray, np.ndarray]:
    n_t = len(target)
    features, _ = ngram_features(list(target) + list(source), settings)   # (V_t + V_s, G)
    df = np.asarray((features > 0).sum(0)).ravel()
    idf = (np.log((1 + features.shape[0]) / (1 + df)) + 1).astype(np.float32)
    rng = np.random.default_rng(settings.seed)
    projection = rng.choice(np.array([-1.0, 1.0], np.float32), size=(features.shape[1], settings.dim))
    vectors = _l2(np.asarray(features @ sp.diags(idf) @ projection, dtype=np.float32))
    target_vecs, source_vecs = vectors[:n_t], vectors[n_t:]
    pairs = counts.tocoo()
    if pairs.nnz:
        # Orthogonal Procrustes on the weighted token pairs: argmin_Q Σ w ||t Q - s||².
        w = np.sqrt(pairs.data / np.asarray(counts.sum(1)).ravel()[pairs.row]).astype(np.float32)[:, None]
        left, _, right = np.linalg.svd((target_vecs[pairs.row] * w).T @ (source_vecs[pairs.col] * w))
        target_vecs = _l2(target_vecs @ (left @ right))
    return target_vecs.astype(np.float32), source_vecs.astype(np.float32)


def train_space(counts: sp.csr_matrix, target: Items, source: Items, settings: SpaceSettings = SpaceSettings(),
                cooccurrence: sp.csr_matrix | None = None, cache=None) -> SubwordSpace:
    """Learn the joint space from dictionary token-pair counts (and optional text co-occurrence).

    Args:
        counts: ``(V_t, V_s)`` how strongly target token t and source token s co-occur in
            dictionary pairs.
        target, source: ``(canonical, starts_word)`` of every token, by id.
        settings: method and sizes.
        cooccurrence: ``(V_t + V_s, V_t + V_s)`` window counts in code-switched text (target ids
            first, then source ids offset by ``V_t``), or None. Ignored by ``ngram-procrustes``.
        cache: an :class:`~tokmap_ui.io.cache.ArrayCache`, or None for no caching.
    """
    method = SpaceMethod(settings.method)
    key = None
    if cache is not None:
        from tokmap_ui.io.cache import content_hash

        parts = [counts.indptr, counts.indices, counts.data.astype(np.float32)]
        if cooccurrence is not None and method is SpaceMethod.PPMI_SVD:
            co = cooccurrence.tocsr()
            parts += [co.indptr, co.indices, co.data.astype(np.float32)]
        key = content_hash("subword-space/1", {**asdict(settings), "method": method.value},
                           "\x00".join(t for t, _ in target), np.array([s for _, s in target]),
                           "\x00".join(t for t, _ in source), np.array([s for _, s in source]), *parts)
        hit = cache.get("subword-space", key)
        if hit is not None:
            return SubwordSpace(hit["target"], hit["source"], hit["target_has"], hit["source_has"], 0.0, True, key)
    start = time.perf_counter()
    counts = counts.tocsr().astype(np.float32)
    with one_blas_thread():
        if method is SpaceMethod.PPMI_SVD:
            target_vecs, source_vecs = _ppmi_svd(counts, target, source, settings, cooccurrence)
        else:
            target_vecs, source_vecs = _ngram_procrustes(counts, target, source, settings)
    target_has = np.linalg.norm(target_vecs, axis=1) > 1e-6
    source_has = np.linalg.norm(source_vecs, axis=1) > 1e-6
    seconds = time.perf_counter() - start
    if cache is not None and key is not None:
        cache.put("subword-space", key, {"target": target_vecs, "source": source_vecs,
                                         "target_has": target_has, "source_has": source_has},
                  meta={"seconds": round(seconds, 3), "method": method.value})
    return SubwordSpace(target_vecs, source_vecs, target_has, source_has, seconds, False, key)


def nearest_sources(space: SubwordSpace, queries: np.ndarray, allowed: np.ndarray, k: int, cache=None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest allowed source tokens of each query target id (cosine, faiss IndexFlatIP).

    With a ``cache`` and a cached space, the result is cached too (the search is the slow part
    of a re-run: 22k queries against 50k tokens take ~7 s on one core).

    Returns:
        ``(ids, sims)``, both ``(len(queries), k)``; ids are -1 where fewer than k candidates exist.
    """
    key = None
    if cache is not None and space.key is not None:
        from tokmap_ui.io.cache import content_hash

        key = content_hash("subword-neighbours/1", space.key, np.asarray(queries, np.int64),
                           np.asarray(allowed, bool), int(k))
        hit = cache.get("subword-neighbours", key)
        if hit is not None:
            return hit["ids"], hit["sims"]
    ids, sims = _search(space, queries, allowed, k)
    if key is not None:
        cache.put("subword-neighbours", key, {"ids": ids, "sims": sims})
    return ids, sims


def _search(space: SubwordSpace, queries: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    candidates = np.flatnonzero(allowed & space.source_has)
    n = len(queries)
    if n == 0 or len(candidates) == 0 or k < 1:
        return np.full((n, max(k, 0)), -1, np.int64), np.zeros((n, max(k, 0)), np.float32)
    index = faiss.IndexFlatIP(space.source.shape[1])
    index.add(np.ascontiguousarray(space.source[candidates], dtype=np.float32))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # as one_blas_thread(): 2 threads on 2 shared cores were 1.6x slower
    try:
        sims, found = index.search(np.ascontiguousarray(space.target[queries], dtype=np.float32), k)
    finally:
        faiss.omp_set_num_threads(threads)
    ids = np.where(found >= 0, candidates[np.maximum(found, 0)], -1)
    return ids, sims.astype(np.float32)


def text_cooccurrence(sequences: Sequence[np.ndarray], size: int, window: int) -> sp.csr_matrix:
    """Symmetric ``(size, size)`` counts of ids at most ``window`` positions apart, weighted 1/distance."""
    rows, cols, vals = [], [], []
    for seq in sequences:
        for d in range(1, window + 1):
            if len(seq) > d:
                rows.append(seq[:-d])
                cols.append(seq[d:])
                vals.append(np.full(len(seq) - d, 1.0 / d, np.float32))
    if not rows:
        return sp.csr_matrix((size, size), dtype=np.float32)
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    upper = sp.csr_matrix((v, (r, c)), shape=(size, size))
    return (upper + upper.T).tocsr()


def code_switched(lines: Sequence[str], translations: dict[str, list[str]], own: Callable[[list[str]], list[list[int]]],
                  other: Callable[[list[str]], list[list[int]]], own_offset: int, other_offset: int, rate: float,
                  seed: int) -> list[np.ndarray]:
    """Token-id sequences of ``lines`` with dictionary words swapped for a translation at ``rate``.

    ``own``/``other`` tokenise words in word-initial form with the line's own tokenizer and with
    the other language's; ids are shifted by the offsets into the joint id space. Words are
    split on whitespace and matched case-insensitively with surrounding punctuation stripped.
    """
    rng = np.random.default_rng(seed)
    own_words: dict[str, int] = {}
    other_words: dict[str, int] = {}
    plan: list[list[tuple[bool, str]]] = []
    for line in lines:
        out = []
        for word in line.split():
            key = word.strip(".,;:!?()[]\"'«»").lower()
            options = translations.get(key)
            if options and rng.random() < rate:
                out.append((True, options[int(rng.integers(len(options)))]))
                other_words.setdefault(out[-1][1], len(other_words))
            else:
                out.append((False, word))
                own_words.setdefault(word, len(own_words))
        plan.append(out)
    own_ids = [np.asarray(x, np.int64) + own_offset for x in own(list(own_words))] if own_words else []
    other_ids = [np.asarray(x, np.int64) + other_offset for x in other(list(other_words))] if other_words else []
    sequences = []
    for out in plan:
        parts = [other_ids[other_words[w]] if swapped else own_ids[own_words[w]] for swapped, w in out]
        if parts:
            sequences.append(np.concatenate(parts))
    return sequences
