"""Cosine nearest neighbours with faiss: the kNN graph for UMAP and the explorer's neighbour lists.

Vectors are L2-normalised float32, so inner product = cosine similarity (faiss ``IndexFlatIP``
exact, or ``IndexHNSWFlat`` when N^2 is too many). Never numpy ``X @ X.T`` on big matrices: it
crashed OpenBLAS at 30k x 384 on these machines (DESIGN.md, known traps).

Example:
    >>> import numpy as np
    >>> ids, sims = nearest_neighbours(np.array([[1, 0], [0.9, 0.1], [0, 1]], np.float32), [2], k=1)
    >>> ids.tolist()
    [[1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tokmap_ui.errors import ConfigError


def as_matrix(vectors: Any, name: str) -> np.ndarray:
    """(N, D) float32 C-contiguous copy-if-needed of a numpy array or torch tensor."""
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().float().numpy()
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D (tokens, dims) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ConfigError(f"{name} row {row} has NaN or infinite values; fix or drop that token's "
                          "vector (a diverged training run?)")
    return arr


def l2_normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32, a new array."""
    out = np.array(vectors, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)  # (N, 1)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _faiss_index(unit: np.ndarray, exact: bool = True, hnsw_m: int = 32, ef_search: int = 64):
    import faiss  # imported when used: the core stays light to import

    dim = unit.shape[1]
    if exact:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.hnsw.efSearch = ef_search
    index.add(unit)
    return index


def cosine_knn(unit: np.ndarray, k: int, *, exact: bool = True, hnsw_m: int = 32,
               ef_search: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Self-kNN of unit rows: ``(indices (N, k) int64, cosine distances (N, k) float32)``.

    ``exact`` uses faiss ``IndexFlatIP`` (O(N^2 D)); otherwise HNSW (graph degree ``hnsw_m``,
    search breadth ``ef_search``). Column 0 is always the point itself at distance 0, as UMAP's
    ``precomputed_knn`` requires (faiss may list an exact duplicate first). Missing HNSW hits are
    -1, which UMAP skips.
    """
    n = unit.shape[0]
    index = _faiss_index(unit, exact, hnsw_m, max(ef_search, 2 * k))
    sims, idx = index.search(unit, k)  # (N, k) each
    rows = np.arange(n, dtype=np.int64)[:, None]
    not_self = idx != rows
    order = np.argsort(~not_self, axis=1, kind="stable")[:, : k - 1]  # non-self hits, in rank order
    rest_idx = np.take_along_axis(idx, order, axis=1)
    rest_dist = np.clip(1.0 - np.take_along_axis(sims, order, axis=1), 0.0, 2.0)
    rest_dist[rest_idx < 0] = 2.0
    indices = np.hstack([rows, rest_idx]).astype(np.int64)
    dists = np.hstack([np.zeros((n, 1), np.float32), rest_dist]).astype(np.float32)
    return indices, dists


class NeighbourIndex:
    """Cosine nearest neighbours among a fixed set of vectors (the explorer's entry panel).

    Build once per vocabulary (normalising 50k x 384 takes ~0.1 s), then query per click.

    Example:
        >>> import numpy as np
        >>> index = NeighbourIndex(np.array([[1, 0], [0.9, 0.1], [0, 1]], np.float32))
        >>> ids, sims = index.search([0], k=1)
        >>> ids.tolist()
        [[1]]
    """

    def __init__(self, vectors: Any):
        self.unit = l2_normalised(as_matrix(vectors, "vectors"))  # (N, D)
        self.index = _faiss_index(self.unit)

    def __len__(self) -> int:
        return self.unit.shape[0]

    def search(self, query_ids: Any, k: int, exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of rows ``query_ids``: ``(ids (Q, k) int64, cosine similarities (Q, k))``.

        Rows with fewer than k other points are padded with id -1 and similarity -inf.
        """
        query_ids = np.asarray(query_ids, dtype=np.int64).reshape(-1)
        if query_ids.size and (query_ids.min() < 0 or query_ids.max() >= len(self)):
            raise ConfigError(f"token id {int(query_ids.max())} is outside 0-{len(self) - 1}")
        ids, sims = self.search_vectors(self.unit[query_ids], k + int(exclude_self), normalise=False)
        if not exclude_self:
            return ids, sims
        keep = ids != query_ids[:, None]  # drop each query itself, wherever it ranked
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        ids, sims = np.take_along_axis(ids, order, 1), np.take_along_axis(sims, order, 1)
        dropped = ~np.take_along_axis(keep, order, 1)  # a row whose k+1 hits were all itself
        ids[dropped], sims[dropped] = -1, -np.inf
        return ids, sims

    def search_vectors(self, queries: Any, k: int, normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of arbitrary query vectors (e.g. a target token among source tokens)."""
        queries = as_matrix(queries, "queries")
        if normalise:
            queries = l2_normalised(queries)
        k = max(1, int(k))
        sims, ids = self.index.search(queries, min(k, len(self)))  # (Q, k)
        if k > len(self):
            pad = k - len(self)
            ids = np.hstack([ids, np.full((len(queries), pad), -1)])
            sims = np.hstack([sims, np.full((len(queries), pad), -np.inf, np.float32)])
        sims[ids < 0] = -np.inf
        return ids.astype(np.int64), sims.astype(np.float32)


def nearest_neighbours(vectors: Any, query_ids: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine kNN of rows ``query_ids`` among ``vectors`` (self excluded); see NeighbourIndex."""
    return NeighbourIndex(vectors).search(query_ids, k)
