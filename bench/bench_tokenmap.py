"""Benchmark the TokenMap artifact: apply a 50k x 50k map to embedding rows; save and load a 150k map.

Usage: ``python bench/bench_tokenmap.py [--dim 768]``. Goals: apply < 1 s, load of 150k entries < 2 s.
Reports CPU seconds (one thread) and wall seconds (which include other load on a shared machine).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tokmap_ui.io.tokenmaps import load_token_map, save_token_map  # noqa: E402
from tokmap_ui.mapping import MapEntry, TokenMap, VocabRef, paused_gc  # noqa: E402


def random_map(n_target: int, n_source: int, per_row: int, seed: int = 0) -> TokenMap:
    """A Tik-to-Tok-like map: ``per_row`` weighted sources per entry, 5% unmapped."""
    rng = random.Random(seed)
    entries = []
    for i in range(n_target):
        if rng.random() < 0.05:
            entries.append(MapEntry(i, f"tok{i}", (), "unmapped"))
            continue
        weights = [rng.random() for _ in range(per_row)]
        total = sum(weights)
        entries.append(MapEntry(i, f"▁tok{i}", tuple((rng.randrange(n_source), round(w / total, 6))
                                                     for w in weights), "neighbour", (round(rng.random(), 4),)))
    return TokenMap("tiktotok", VocabRef("new", n_target, "t" * 64), VocabRef("old", n_source, "s" * 64),
                    {"k": per_row}, tuple(entries))


def timed(label: str, fn):
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    print(f"{label:<44}{time.process_time() - c0:8.3f} s CPU {time.perf_counter() - t0:8.3f} s wall")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=768)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    small = random_map(50_000, 50_000, 3)
    rows = torch.randn(50_000, args.dim)
    timed(f"apply_to_rows 50k x 50k, 3 sources, D={args.dim} (cold)", lambda: small.apply_to_rows(rows))
    timed(f"apply_to_rows again (weights cached)", lambda: small.apply_to_rows(rows))
    with paused_gc():
        big = timed("build a 150k-entry map in memory", lambda: random_map(150_000, 32_000, 3))
    with tempfile.TemporaryDirectory() as folder:
        for name in ("map.json", "map.json.gz"):
            path = Path(folder) / name
            timed(f"save_token_map {name}", lambda: save_token_map(big, path))
            print(f"{'':<44}{path.stat().st_size / 1e6:8.1f} MB")
            loaded = timed(f"load_token_map {name} (strict)", lambda: load_token_map(path))
            assert loaded.entries == big.entries
    return 0


if __name__ == "__main__":
    sys.exit(main())
