"""Benchmark the token map UI (issue 7 goals) and the projection behind it.

Usage (from the repository root)::

    python bench/bench_ui.py [--points 50000] [--loads 3] [--clicks 10] [--labels] [--no-queue]
    python bench/bench_ui.py --projection 10000,50000 [--dim 384] [--init auto] [--skip-ui]

UI part: launches the standalone token map demo (``token_map_demo.demo_blocks``) with
``--points`` source + ``--points`` target tokens and drives it in headless Debian chromium
(Playwright, ``/usr/bin/chromium``). It prints, against the goals of issue 7:

* first paint: ``page.goto`` -> the plot drawn (the component sets ``data-ready``), median of
  ``--loads`` fresh pages; goal <= 5 s;
* click -> entry: a real mouse click on a point -> the Python handler's entry (label and 5
  nearest neighbours on each side) shown in the DOM; median and max of ``--clicks``; goal <= 1 s;
* lasso -> selection shown, and the payload size sent to the browser.

Projection part (``--projection``): ``project_tokens`` with UMAP on synthetic clustered
token-embedding-like vectors (N + N points of ``--dim`` dimensions), cache off, after a
``warm_up_umap()``; then the same call again as a cache hit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

GOAL_FIRST_PAINT_S = 5.0
GOAL_CLICK_S = 1.0
READY = "#map .tmp-root[data-ready]:not([data-ready=''])"
CHROMIUM = os.environ.get("TOKMAP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def verdict(value: float, goal: float) -> str:
    return f"{'OK  ' if value <= goal else 'SLOW'} ({value / goal:.2f} x goal {goal:g} s)"


def bench_ui(points: int, loads: int, clicks: int, labels: bool, queue: bool) -> None:
    import socket

    from playwright.sync_api import sync_playwright

    from tokmap_ui.ui.components.token_map_demo import ISLAND, demo_blocks, demo_data
    from tokmap_ui.ui.components.token_map_plot import plot_payload

    data = demo_data(points)
    start = time.perf_counter()
    plain = plot_payload(data.projection)
    build_s = time.perf_counter() - start
    sizes = [len(json.dumps(v, ensure_ascii=False).encode()) / 1e6 for v in
             (plain, plot_payload(data.projection, labels=data.labels, max_label_points=10**9))]
    print(f"== UI: {points:,} source + {points:,} target points, hover labels {'on' if labels else 'off'}, "
          f"handlers {'queued' if queue else 'unqueued'}")
    print(f"payload: {sizes[0]:.2f} MB without hover labels (built in {build_s:.2f} s), {sizes[1]:.2f} MB with")

    start = time.perf_counter()
    demo = demo_blocks(points, labels=labels, max_label_points=10**9, queue=queue)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    print(f"demo built and launched in {time.perf_counter() - start:.1f} s")
    url = f"http://127.0.0.1:{port}/"
    n = 2 * points
    lonely, island = points, n - ISLAND + 3
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            paints, in_page = [], []
            for _ in range(loads):
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                start = time.perf_counter()
                page.goto(url, wait_until="commit")
                page.wait_for_selector(READY, timeout=120_000)
                paints.append(time.perf_counter() - start)
                in_page.append(float(page.get_attribute("#map .tmp-root", "data-first-paint-ms")) / 1000)
                page.close()
            first = statistics.median(paints)
            print(f"first paint (goto -> plot drawn), median of {loads}: {first:.2f} s "
                  f"{verdict(first, GOAL_FIRST_PAINT_S)}  [each: {', '.join(f'{t:.2f}' for t in paints)}; "
                  f"in-page clock {statistics.median(in_page):.2f} s]", flush=True)

            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.wait_for_selector(READY, timeout=120_000)
            times = []
            for i in range(clicks):
                point = lonely if i % 2 == 0 else island
                xy = page.evaluate(f"document.querySelector('#map .tmp-plot').tokmap.pixelOf({point})")
                before = page.inner_text("#entry")
                start = time.perf_counter()
                page.mouse.click(*xy)
                page.wait_for_function("b => document.querySelector('#entry').innerText !== b", arg=before,
                                       timeout=30_000)
                times.append(time.perf_counter() - start)
            med, worst = statistics.median(times), max(times)
            print(f"click -> entry shown, median of {clicks}: {med:.3f} s {verdict(med, GOAL_CLICK_S)}; "
                  f"max {worst:.3f} s", flush=True)

            # Lasso a quarter of the map (a few blobs: tens of thousands of points).
            corners = [(-1, -15), (15, -15), (15, 1), (-1, 1)]
            pixels = [page.evaluate("([x, y]) => document.querySelector('#map .tmp-plot').tokmap.toPixel(x, y)",
                                    c) for c in corners]
            start = time.perf_counter()
            page.mouse.move(*pixels[0])
            page.mouse.down()
            for x, y in pixels[1:] + pixels[:1]:
                page.mouse.move(x, y, steps=8)
            page.mouse.up()
            page.wait_for_function("document.querySelector('#selection textarea').value.includes('selected')",
                                   timeout=120_000)
            lasso_s = time.perf_counter() - start
            selected = page.eval_on_selector("#selection textarea", "el => el.value").split(" points")[0]
            print(f"lasso of {selected} points -> selection shown: {lasso_s:.2f} s (includes drawing the lasso; "
                  "headless chromium --disable-gpu renders WebGL on the CPU, and plotly redraws every "
                  "point at each lasso step)")
            browser.close()
    finally:
        demo.close()


def synthetic_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Clustered, low-rank, noisy rows: closer to token embeddings than isotropic noise."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(64, dim)).astype(np.float32)
    centres = rng.normal(size=(300, 64)).astype(np.float32)
    z = centres[rng.integers(0, 300, n)] + 0.6 * rng.normal(size=(n, 64)).astype(np.float32)
    return (z @ basis + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)).astype(np.float32)


def bench_projection(sizes: list[int], dim: int, init: str, seed: int | None) -> None:
    import tempfile

    from tokmap_ui.io.cache import ArrayCache
    from tokmap_ui.projection import ProjectionConfig, configure_numba, project_tokens, warm_up_umap

    os.environ.setdefault("TOKMAP_HOME", tempfile.mkdtemp(prefix="tokmap-bench-"))
    print(f"== projection: UMAP, D={dim}, init={init}, seed={seed}, {os.cpu_count()} CPUs")
    print(f"warm_up_umap (numba JIT, NUMBA_CACHE_DIR={configure_numba()}): {warm_up_umap():.1f} s")
    config = ProjectionConfig(init=init, seed=seed)
    cache = ArrayCache(tempfile.mkdtemp(prefix="tokmap-bench-cache-"))
    for n in sizes:
        source, target = synthetic_vectors(n, dim, 1), synthetic_vectors(n, dim, 2)
        start = time.perf_counter()
        proj = project_tokens(source, target, config, cache=cache)
        total = time.perf_counter() - start
        parts = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in proj.timings.items() if k != "total_s")
        knn = "exact" if 2 * n <= config.exact_knn_max else "HNSW"
        start = time.perf_counter()
        again = project_tokens(source, target, config, cache=cache)
        hit = time.perf_counter() - start
        assert again.from_cache and np.array_equal(again.coords, proj.coords)
        print(f"{n:,} + {n:,} points ({knn} kNN): {total:.1f} s ({parts}); cache hit {hit:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=50_000, help="points per side (default 50,000)")
    parser.add_argument("--loads", type=int, default=3, help="page loads timed for first paint")
    parser.add_argument("--clicks", type=int, default=10, help="clicks timed")
    parser.add_argument("--labels", action="store_true",
                        help="send hover labels whatever the size (plot_payload drops them above 20k points)")
    parser.add_argument("--no-queue", action="store_true", help="click/lasso handlers with queue=False")
    parser.add_argument("--projection", default="", help="comma-separated N per side, e.g. 10000,50000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--init", default="auto", choices=["auto", "spectral", "random"])
    parser.add_argument("--seed", type=int, default=0, help="UMAP random_state; -1 = none (parallel)")
    parser.add_argument("--skip-ui", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_ui:
        bench_ui(args.points, args.loads, args.clicks, labels=args.labels, queue=not args.no_queue)
    if args.projection:
        sizes = [int(s) for s in args.projection.split(",") if s.strip()]
        bench_projection(sizes, args.dim, args.init, None if args.seed < 0 else args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
