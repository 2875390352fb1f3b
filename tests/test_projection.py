"""Token-map projection: shapes, determinism, the content-hash cache, kNN, errors.

UMAP itself is exercised in a subprocess with ``NUMBA_DISABLE_JIT=1``: the same Python code
paths without 15-35 s of numba compilation per process (the JIT-compiled speed is bench work:
``bench/bench_ui.py --projection``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tokmap_ui import projection as projection_module
from tokmap_ui.errors import ConfigError
from tokmap_ui.io.cache import ArrayCache, content_hash
from tokmap_ui.projection import (SOURCE, TARGET, NeighbourIndex, Projection, ProjectionConfig,
                                  ProjectionMethod, cosine_knn, l2_normalised, nearest_neighbours,
                                  project_tokens)

ROOT = Path(__file__).resolve().parents[1]
PCA = ProjectionConfig(method="pca")


def clustered(n: int, dim: int = 16, seed: int = 0, clusters: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 4
    return (centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def test_pca_shapes_sides_and_ids():
    proj = project_tokens(clustered(30), clustered(20, seed=1), PCA, target_ids=np.arange(100, 120),
                          use_cache=False)
    assert proj.coords.shape == (50, 2) and proj.coords.dtype == np.float32
    assert proj.sides.tolist() == [SOURCE] * 30 + [TARGET] * 20
    assert proj.ids[:30].tolist() == list(range(30)) and proj.ids[30:].tolist() == list(range(100, 120))
    assert (proj.n_source, proj.n_target, proj.method, proj.from_cache) == (30, 20, "pca", False)
    assert proj.point_of("target", 105) == 35 and proj.point_of("source", 3) == 3
    assert proj.point_of("target", 3) is None
    assert proj.points_of(TARGET, [119, 7, 100]).tolist() == [49, -1, 30]
    assert np.isfinite(proj.coords).all() and proj.coords.std(0).min() > 0.1


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    vectors = clustered(40)
    a = project_tokens(torch.from_numpy(vectors[:25]), torch.from_numpy(vectors[25:]), PCA, use_cache=False)
    b = project_tokens(vectors[:25], vectors[25:], PCA, use_cache=False)
    np.testing.assert_array_equal(a.coords, b.coords)


def test_pca_is_deterministic_and_puts_twins_together():
    source = clustered(200, seed=3)
    twins = source + 0.01 * np.random.default_rng(9).normal(size=source.shape).astype(np.float32)
    first = project_tokens(source, twins, PCA, use_cache=False)
    second = project_tokens(source, twins, PCA, use_cache=False)
    np.testing.assert_array_equal(first.coords, second.coords)
    # one space: each target token lands next to its source twin
    gap = np.linalg.norm(first.coords[:200] - first.coords[200:], axis=1)
    spread = np.linalg.norm(first.coords - first.coords.mean(0), axis=1).mean()
    assert np.median(gap) < 0.05 * spread


def test_cache_hit_returns_identical_arrays_without_recomputing(monkeypatch):
    source, target = clustered(5_000, dim=64), clustered(5_000, dim=64, seed=1)
    calls = []
    real = projection_module.LAYOUTS[ProjectionMethod.PCA]

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)  # stand-in for a layout that takes a while, so "faster" is unambiguous
        return real(*args, **kwargs)

    monkeypatch.setitem(projection_module.LAYOUTS, ProjectionMethod.PCA, counted)
    start = time.perf_counter()
    first = project_tokens(source, target, PCA)
    compute_s = time.perf_counter() - start
    start = time.perf_counter()
    again = project_tokens(source, target, PCA)
    hit_s = time.perf_counter() - start
    assert len(calls) == 1 and again.from_cache and not first.from_cache
    np.testing.assert_array_equal(first.coords, again.coords)
    assert again.key == first.key and again.coords.dtype == np.float32
    assert hit_s < compute_s / 2, (hit_s, compute_s)


def test_cache_key_follows_content_and_config(tmp_path):
    cache = ArrayCache(tmp_path / "c")
    source, target = clustered(40), clustered(30, seed=1)
    base = project_tokens(source, target, PCA, cache=cache)
    assert project_tokens(source, target, ProjectionConfig(method="pca", threads=1), cache=cache).from_cache
    changed = source.copy()
    changed[5, 3] += 1e-3
    assert not project_tokens(changed, target, PCA, cache=cache).from_cache
    assert not project_tokens(source, target, ProjectionConfig(method="pca", seed=1), cache=cache).from_cache
    assert not project_tokens(source, target, ProjectionConfig(method="pca", min_dist=0.3), cache=cache).from_cache
    # ids are labels of rows, not part of the layout: same coordinates, new ids
    relabelled = project_tokens(source, target, PCA, cache=cache, source_ids=np.arange(40) + 7)
    assert relabelled.from_cache and relabelled.ids[0] == 7
    np.testing.assert_array_equal(relabelled.coords, base.coords)


def test_use_cache_false_writes_nothing(tmp_path):
    cache = ArrayCache(tmp_path / "c")
    project_tokens(clustered(20), clustered(20, seed=1), PCA, cache=cache, use_cache=False)
    assert not (tmp_path / "c").exists()


def test_default_cache_lives_in_tokmap_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKMAP_HOME", str(tmp_path / "home"))
    proj = project_tokens(clustered(20), clustered(20, seed=1), PCA)
    assert (tmp_path / "home" / "cache" / "projection" / proj.key[:2] / proj.key / "coords.npy").is_file()


def test_damaged_cache_entry_is_recomputed(tmp_path):
    cache = ArrayCache(tmp_path / "c")
    source, target = clustered(30), clustered(30, seed=1)
    first = project_tokens(source, target, PCA, cache=cache)
    (tmp_path / "c" / "projection" / first.key[:2] / first.key / "coords.npy").write_bytes(b"not npy")
    again = project_tokens(source, target, PCA, cache=cache)
    assert not again.from_cache
    np.testing.assert_array_equal(first.coords, again.coords)
    assert project_tokens(source, target, PCA, cache=cache).from_cache


def test_array_cache_roundtrip_and_refusals(tmp_path):
    cache = ArrayCache(tmp_path)
    key = content_hash("x", np.arange(4))
    assert cache.get("ns", key) is None
    cache.put("ns", key, {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.ones(2, np.float16)},
              meta={"note": "hi"})
    got = cache.get("ns", key)
    assert got["a"].dtype == np.int32 and got["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert got["b"].dtype == np.float16 and cache.meta("ns", key) == {"note": "hi"}
    assert not list(tmp_path.glob("ns/*/.*.tmp"))  # no temporary folders left behind
    with pytest.raises(ValueError, match="object"):
        cache.put("ns", content_hash("y"), {"o": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError):
        cache.get("../escape", key)
    assert content_hash(np.zeros(2, np.float32)) != content_hash(np.zeros(2, np.float64))
    assert content_hash("1") != content_hash(1) and content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})


@pytest.mark.parametrize("bad, message", [
    (dict(source=np.zeros((3, 4)), target=np.zeros((3, 5))), "4 dimensions but target vectors 5"),
    (dict(source=np.zeros(4), target=np.zeros((3, 4))), "2-D"),
    (dict(source=np.zeros((0, 4)), target=np.zeros((0, 4))), "no vectors"),
])
def test_bad_inputs_raise_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        project_tokens(bad["source"], bad["target"], PCA, use_cache=False)


def test_non_finite_rows_are_named():
    target = clustered(10)
    target[7, 2] = np.nan
    with pytest.raises(ConfigError, match="target_vectors row 7 has NaN"):
        project_tokens(clustered(10), target, PCA, use_cache=False)
    with pytest.raises(ConfigError, match="source_ids has 3 ids for 10 vectors"):
        project_tokens(clustered(10), clustered(10), PCA, source_ids=[1, 2, 3], use_cache=False)


@pytest.mark.parametrize("kwargs", [dict(method="tsne"), dict(n_neighbors=1), dict(min_dist=1.5),
                                    dict(init="pca"), dict(n_epochs=0), dict(init="")])
def test_bad_config_raises(kwargs):
    with pytest.raises(ConfigError):
        ProjectionConfig(**kwargs)


def test_tiny_inputs_still_get_coordinates():
    proj = project_tokens(np.ones((1, 3)), np.ones((2, 3)), ProjectionConfig(), use_cache=False)
    assert proj.coords.shape == (3, 2) and np.isfinite(proj.coords).all()
    proj = project_tokens(clustered(6), clustered(4), ProjectionConfig(), use_cache=False)  # N <= k: PCA
    assert proj.coords.shape == (10, 2)


def test_cosine_knn_puts_self_first_even_with_duplicates():
    vectors = clustered(60)
    vectors[10] = vectors[11] = vectors[12]  # exact duplicates: faiss may rank a twin before self
    idx, dist = cosine_knn(l2_normalised(vectors), 5)
    assert idx.shape == dist.shape == (60, 5) and idx.dtype == np.int64 and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(60)).all() and (dist[:, 0] == 0).all()
    assert (np.diff(dist[:, 1:], axis=1) >= -1e-6).all() and (dist >= 0).all()
    assert {11, 12} <= set(idx[10, 1:3].tolist())
    assert all(len(set(row)) == 5 for row in idx.tolist())


def test_hnsw_agrees_with_exact_on_clustered_data():
    unit = l2_normalised(clustered(500, dim=32, clusters=20))
    exact, _ = cosine_knn(unit, 10)
    approx, _ = cosine_knn(unit, 10, exact=False)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), approx.tolist())])
    assert recall > 0.9 and (approx[:, 0] == np.arange(500)).all()


def test_nearest_neighbours_excludes_self_and_pads():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], np.float32)
    ids, sims = nearest_neighbours(vectors, [0, 2], k=2)
    assert ids.tolist() == [[1, 2], [1, 0]]
    assert sims[0, 0] == pytest.approx(0.9 / np.hypot(0.9, 0.1), rel=1e-5)
    ids, sims = NeighbourIndex(vectors[:2]).search([0], k=3)
    assert ids.tolist() == [[1, -1, -1]] and np.isneginf(sims[0, 1:]).all()
    index = NeighbourIndex(vectors)
    cross, _ = index.search_vectors(np.array([[0.0, 5.0]]), 1)  # a query from the other vocabulary
    assert cross.tolist() == [[2]]
    with pytest.raises(ConfigError, match="outside 0-3"):
        index.search([4], 1)


UMAP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from tokmap_ui.projection import ProjectionConfig, project_tokens, warm_up_umap
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 4
    x = (centres[rng.integers(0, 4, 120)] + rng.normal(size=(120, 16))).astype(np.float32)
    config = ProjectionConfig(n_neighbors=8, n_epochs=30, seed=7)
    a = project_tokens(x[:70], x[70:], config, use_cache=False)
    b = project_tokens(x[:70], x[70:], config, use_cache=False)
    c = project_tokens(x[:70], x[70:], ProjectionConfig(n_neighbors=8, n_epochs=30, seed=8), use_cache=False)
    cached = [project_tokens(x[:70], x[70:], config).from_cache for _ in range(2)]
    print(json.dumps({"shape": list(a.coords.shape), "dtype": str(a.coords.dtype),
                      "same_seed_equal": bool(np.array_equal(a.coords, b.coords)),
                      "other_seed_differs": not np.allclose(a.coords, c.coords),
                      "finite": bool(np.isfinite(a.coords).all()), "timings": sorted(a.timings),
                      "cached": cached, "numba_cache": os.environ["NUMBA_CACHE_DIR"],
                      "warm_s": warm_up_umap(n_points=60)}))
""")


@pytest.mark.slow
def test_umap_path_is_deterministic_with_a_seed(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(NUMBA_DISABLE_JIT="1", TOKMAP_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", UMAP_SCRIPT], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["shape"] == [120, 2] and out["dtype"] == "float32" and out["finite"]
    assert out["same_seed_equal"] and out["other_seed_differs"]
    assert {"knn_s", "umap_s", "hash_s", "total_s"} <= set(out["timings"])
    assert out["cached"] == [False, True]
    assert out["numba_cache"] == str(tmp_path / "home" / "cache" / "numba")
    assert out["warm_s"] > 0


def test_projection_is_a_plain_record():
    proj = Projection(np.zeros((2, 2), np.float32), np.array([0, 1], np.uint8), np.array([4, 9]), "k" * 16, "pca")
    assert proj.side_name(1) == "target" and proj.point_of("source", 4) == 0 and proj.timings == {}
