"""Source and target tokens in one 2-D map: faiss cosine kNN, then UMAP (or PCA), cached.

Both sets of vectors must live in one space (e.g. source embedding rows and converted target
rows), so one layout of their union shows which target tokens sit near which source tokens.

Pipeline (``method="umap"``): L2-normalise, exact (``IndexFlatIP``) or HNSW cosine kNN with faiss,
then ``umap.UMAP(precomputed_knn=...)`` so UMAP skips its own NN-descent. ``method="pca"`` is the
fast fallback (seconds at 100k points) for tests and a first look. Results are cached by a hash
of the input bytes and config (``tokmap_ui.io.cache``); the kNN graph is cached on its own, so a
new ``min_dist`` reuses it.

Neighbour search (``cosine_knn``, ``NeighbourIndex``, ``nearest_neighbours``) lives in
``tokmap_ui.neighbours`` and is re-exported here. Numba compiles UMAP on first use in each
process (12-35 s here): :func:`warm_up_umap` does it early, in a background thread at app start,
with ``NUMBA_CACHE_DIR`` inside the workspace.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> proj = project_tokens(rng.normal(size=(30, 8)), rng.normal(size=(20, 8)),
    ...                       ProjectionConfig(method="pca"), use_cache=False)
    >>> proj.coords.shape, proj.coords.dtype.name, proj.n_source, proj.n_target
    ((50, 2), 'float32', 30, 20)
    >>> proj.side_name(30), int(proj.ids[30])
    ('target', 0)
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from tokmap_ui.errors import ConfigError
from tokmap_ui.io.cache import ArrayCache, content_hash, default_cache_root
from tokmap_ui.neighbours import NeighbourIndex, as_matrix, cosine_knn, l2_normalised, nearest_neighbours

SOURCE, TARGET = 0, 1
SIDE_NAMES = ("source", "target")
Progress = Callable[[float, str], None]


class ProjectionMethod(str, Enum):
    """How the 2-D layout is computed."""

    UMAP = "umap"
    PCA = "pca"


@dataclass(frozen=True)
class ProjectionConfig:
    """Settings of one token-map layout (all but ``threads`` are part of the cache key)."""

    method: ProjectionMethod = ProjectionMethod.UMAP
    """umap: faiss cosine kNN + UMAP (about 1-3 min for 100k points on 2 cores); pca: the two
    principal axes of the L2-normalised vectors (seconds), for tests and a first look."""
    n_neighbors: int = 15
    """k of the kNN graph = UMAP n_neighbors: larger keeps more global structure, costs more."""
    min_dist: float = 0.1
    """UMAP min_dist: how tightly points may pack (0.0-0.99)."""
    init: str = "auto"
    """UMAP initial layout: spectral, random, or auto = spectral up to 20k points, random above
    (measured at 100k x 384 on 2 cores: spectral init costs 1-6 extra minutes for the same kNN
    preservation)."""
    seed: int | None = 0
    """Random seed: same input + seed = same layout. None runs UMAP on all cores (faster,
    layout differs between runs)."""
    exact_knn_max: int = 20_000
    """Up to this many points the kNN is exact (faiss IndexFlatIP, O(N^2 D)); above, HNSW."""
    hnsw_m: int = 32
    """HNSW graph degree (above exact_knn_max)."""
    hnsw_ef_search: int = 64
    """HNSW search breadth: higher is closer to exact and slower."""
    n_epochs: int | None = None
    """UMAP optimisation epochs; None = UMAP's default (200 above 10k points, else 500)."""
    threads: int | None = None
    """CPU threads for faiss and numba; None = all."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", ProjectionMethod(self.method))
        except ValueError:
            raise ConfigError(f"projection method {self.method!r} is unknown; choose one of "
                              f"{[m.value for m in ProjectionMethod]}") from None
        for ok, problem in [
                (2 <= self.n_neighbors <= 200, f"n_neighbors={self.n_neighbors}: choose 2-200 (15 is usual)"),
                (0.0 <= self.min_dist < 1.0, f"min_dist={self.min_dist}: choose 0.0-0.99 (0.1 is usual)"),
                (self.init in ("auto", "spectral", "random"), f"init={self.init!r}: choose auto, spectral or random"),
                (self.n_epochs is None or self.n_epochs >= 1, f"n_epochs={self.n_epochs}: must be positive"),
                (self.exact_knn_max >= 0 and self.hnsw_m >= 4 and self.hnsw_ef_search >= 1,
                 "exact_knn_max must be >= 0, hnsw_m >= 4 and hnsw_ef_search >= 1")]:
            if not ok:
                raise ConfigError(f"projection setting {problem}")

    def key_fields(self) -> dict[str, Any]:
        """The fields that change the coordinates (the cache key)."""
        fields = asdict(self)
        fields["method"] = self.method.value
        fields.pop("threads")
        return fields


@dataclass(frozen=True, eq=False)
class Projection:
    """A 2-D layout of source and target tokens: source rows first, then target rows."""

    coords: np.ndarray  # (N, 2) float32
    sides: np.ndarray  # (N,) uint8: SOURCE or TARGET
    ids: np.ndarray  # (N,) int64: token id within its side's vocabulary
    key: str  # content hash of the inputs and config: the cache key, also a cheap identity
    method: str
    timings: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False

    @property
    def n_source(self) -> int:
        return int((self.sides == SOURCE).sum())

    @property
    def n_target(self) -> int:
        return int((self.sides == TARGET).sum())

    def side_name(self, point: int) -> str:
        return SIDE_NAMES[int(self.sides[point])]

    def point_of(self, side: str | int, token_id: int) -> int | None:
        """Row of the point for ``token_id`` on ``side`` ("source"/"target" or 0/1), or None."""
        points = self.points_of(side, [token_id])
        return int(points[0]) if points[0] >= 0 else None

    def points_of(self, side: str | int, token_ids: Any) -> np.ndarray:
        """Rows of many tokens of one side at once, (K,) int64; -1 where a token is not drawn."""
        side = SIDE_NAMES.index(side) if isinstance(side, str) else int(side)
        rows = np.flatnonzero(self.sides == side)  # (N_side,)
        wanted = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return np.full(wanted.shape, -1, np.int64)
        order = np.argsort(self.ids[rows], kind="stable")
        sorted_ids = self.ids[rows][order]
        pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        return np.where(sorted_ids[pos] == wanted, rows[order][pos], -1).astype(np.int64)


def configure_numba() -> str:
    """Point numba's on-disk JIT cache into the workspace (before umap/numba is imported)."""
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if not cache_dir:
        cache_dir = str(default_cache_root() / "numba")
        os.environ["NUMBA_CACHE_DIR"] = cache_dir
    os.makedirs(cache_dir, exist_ok=True)
    if "numba" in sys.modules:  # imported already (by someone else): make it re-read the env
        from numba.core import config as numba_config

        if numba_config.CACHE_DIR != cache_dir:
            numba_config.reload_config()
    return cache_dir


SPECTRAL_INIT_MAX = 20_000  # above this, spectral init costs minutes and buys no kNN preservation


def _init(config: ProjectionConfig, n: int) -> str:
    if config.init == "auto":
        return "spectral" if n <= SPECTRAL_INIT_MAX else "random"
    return config.init


def _umap_layout(unit: np.ndarray, config: ProjectionConfig, cache: ArrayCache | None,
                 progress: Progress, timings: dict[str, float]) -> np.ndarray:
    n = unit.shape[0]
    k = min(config.n_neighbors, n - 1)
    knn_key = content_hash("knn", unit, k, config.exact_knn_max, config.hnsw_m, config.hnsw_ef_search)
    cached = cache.get("knn", knn_key) if cache else None
    start = time.perf_counter()
    if cached is not None:
        indices, dists = cached["indices"].astype(np.int64), cached["dists"]
    else:
        kind = "exact" if n <= config.exact_knn_max else "HNSW"
        progress(0.05, f"{kind} cosine kNN of {n:,} points (k={k})")
        indices, dists = cosine_knn(unit, k, exact=n <= config.exact_knn_max, hnsw_m=config.hnsw_m,
                                    ef_search=config.hnsw_ef_search)
        if cache:
            cache.put("knn", knn_key, {"indices": indices.astype(np.int32), "dists": dists})
    timings["knn_s"] = time.perf_counter() - start

    progress(0.3, f"UMAP layout of {n:,} points")
    start = time.perf_counter()
    configure_numba()
    import umap  # heavy (numba): imported only when a layout is really computed

    with warnings.catch_warnings():
        # "no NNDescent index, transform unavailable" and "n_jobs overridden by random_state":
        # both expected here (we never call transform; the seed is the user's choice).
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_neighbors=k, n_components=2, metric="cosine", min_dist=config.min_dist,
                            init=_init(config, n), random_state=config.seed, n_epochs=config.n_epochs,
                            n_jobs=config.threads or -1, precomputed_knn=(indices, dists, None),
                            low_memory=True, verbose=False)
        coords = reducer.fit_transform(unit)
    timings["umap_s"] = time.perf_counter() - start
    return np.asarray(coords, dtype=np.float32)


def _pca_layout(unit: np.ndarray, config: ProjectionConfig, cache: ArrayCache | None,
                progress: Progress, timings: dict[str, float]) -> np.ndarray:
    import torch

    progress(0.1, f"PCA of {unit.shape[0]:,} points")
    start = time.perf_counter()
    data = torch.from_numpy(unit)
    q = min(4, *data.shape)
    with torch.random.fork_rng(devices=[]):  # pca_lowrank draws a random sketch: seed it locally
        torch.manual_seed(config.seed if config.seed is not None else 0)
        _, _, axes = torch.pca_lowrank(data, q=q, center=True, niter=4)  # axes (D, q)
    coords = ((data - data.mean(0)) @ axes[:, :2]).numpy()  # (N, 2)
    coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))  # D == 1 gives one axis
    # An axis's sign is arbitrary: make each axis's largest |coordinate| positive for stable pictures.
    signs = np.sign(coords[np.abs(coords).argmax(0), np.arange(2)])
    coords = coords * np.where(signs == 0, 1, signs)
    timings["pca_s"] = time.perf_counter() - start
    return coords.astype(np.float32)


LAYOUTS: dict[ProjectionMethod, Callable[..., np.ndarray]] = {
    ProjectionMethod.UMAP: _umap_layout,
    ProjectionMethod.PCA: _pca_layout,
}


def _ids(ids: Any, n: int, name: str) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] != n:
        raise ConfigError(f"{name} has {ids.shape[0]} ids for {n} vectors; give one id per row")
    return ids


def project_tokens(source_vectors: Any, target_vectors: Any, config: ProjectionConfig = ProjectionConfig(),
                   *, source_ids: Any = None, target_ids: Any = None, cache: ArrayCache | None = None,
                   use_cache: bool = True, progress: Progress | None = None) -> Projection:
    """Lay out source (N_s, D) and target (N_t, D) vectors together in 2-D.

    Args:
        source_vectors: (N_s, D) numpy array or torch tensor.
        target_vectors: (N_t, D), same D (the same embedding space).
        config: method and settings.
        source_ids, target_ids: token id of each row (default 0..N-1), e.g. when only a subset
            of a vocabulary is drawn.
        cache: where to look up / store results (default ``$TOKMAP_HOME/cache``).
        use_cache: False computes afresh and stores nothing.
        progress: ``progress(fraction, message)`` callback for job progress.

    Returns:
        A Projection: coords (N_s + N_t, 2) float32, source rows first.
    """
    report = progress or (lambda fraction, message: None)
    source = as_matrix(source_vectors, "source_vectors")
    target = as_matrix(target_vectors, "target_vectors")
    if source.shape[1] != target.shape[1]:
        raise ConfigError(f"source vectors have {source.shape[1]} dimensions but target vectors "
                          f"{target.shape[1]}; project vectors from one embedding space")
    n_s, n_t = source.shape[0], target.shape[0]
    sides = np.concatenate([np.full(n_s, SOURCE, np.uint8), np.full(n_t, TARGET, np.uint8)])
    ids = np.concatenate([_ids(source_ids, n_s, "source_ids"), _ids(target_ids, n_t, "target_ids")])
    if n_s + n_t == 0:
        raise ConfigError("there are no vectors to project; give at least one source or target token")

    timings: dict[str, float] = {}
    start = time.perf_counter()
    key = content_hash("projection", source, target, config.key_fields())
    timings["hash_s"] = time.perf_counter() - start
    store = (cache or ArrayCache()) if use_cache else None
    hit = store.get("projection", key) if store else None
    if hit is not None:
        report(1.0, "layout loaded from cache")
        return Projection(hit["coords"], sides, ids, key, config.method.value, timings, from_cache=True)

    unit = l2_normalised(np.concatenate([source, target]))  # (N, D)
    if config.threads:
        import faiss

        faiss.omp_set_num_threads(int(config.threads))
    if unit.shape[0] < 4:  # too few points for a neighbour graph: a spread-out line is honest
        coords = np.stack([np.arange(unit.shape[0], dtype=np.float32), np.zeros(unit.shape[0], np.float32)], 1)
    else:
        method = config.method if unit.shape[0] > config.n_neighbors else ProjectionMethod.PCA
        coords = LAYOUTS[method](unit, config, store, report, timings)
    timings["total_s"] = time.perf_counter() - start
    if store:
        store.put("projection", key, {"coords": coords}, meta={"timings": timings, "n_source": n_s,
                                                             "n_target": n_t, **config.key_fields()})
    report(1.0, "layout done")
    return Projection(coords, sides, ids, key, config.method.value, timings, from_cache=False)


def warm_up_umap(n_points: int = 300, config: ProjectionConfig = ProjectionConfig()) -> float:
    """Compile UMAP's numba functions now; seconds taken. At app start, in a background thread:
    ``threading.Thread(target=warm_up_umap, daemon=True).start()``."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    unit = l2_normalised(rng.normal(size=(n_points, 16)).astype(np.float32))
    warm = ProjectionConfig(n_neighbors=min(config.n_neighbors, n_points - 1), init=config.init,
                            seed=config.seed, n_epochs=10)
    _umap_layout(unit, warm, None, lambda fraction, message: None, {})
    return time.perf_counter() - start


__all__ = ["LAYOUTS", "SIDE_NAMES", "SOURCE", "TARGET", "NeighbourIndex", "Projection", "ProjectionConfig",
           "ProjectionMethod", "configure_numba", "cosine_knn", "l2_normalised", "nearest_neighbours",
           "project_tokens", "warm_up_umap"]
