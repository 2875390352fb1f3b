"""The whole peer benchmark in one run: every row on the same machine at the same moment.

Usage (from the repository root; about 15 minutes on one free core, peer venvs built on first use)::

    python bench/peers/run_all.py [--methods tiktotok wechsel focus fvt mean random] [--no-pmmined]

Prints the quality, cost and ratio tables, where ours is not ahead, the PM-MinED comparison and
any peer that could not run (with its error), and writes the numbers to
``bench/peers/results.json`` (``results-test.json`` with ``--split test``; a copy and the printed
tables under ``workspace/bench/peers/``). See README.md beside
this file for the design and the committed results.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
for key, value in {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                   "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}.items():
    os.environ.setdefault(key, value)

import common  # noqa: E402
import table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(common.ALL_METHODS),
                        choices=list(common.ALL_METHODS), help="rows to run (tiktotok is the reference)")
    parser.add_argument("--no-pmmined", action="store_true", help="skip the PM-MinED comparison")
    parser.add_argument("--steps", type=int, default=common.Settings.steps, help="fine-tune steps")
    parser.add_argument("--split", choices=("dev", "test"), default="dev",
                        help="held-out word pairs and sentences to score on (ours was tuned on dev)")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/peers/results[-test].json)")
    args = parser.parse_args(argv)
    methods = tuple(dict.fromkeys(["tiktotok", *args.methods]))
    results = common.run(methods, common.Settings(steps=args.steps, split=args.split), pmmined=not args.no_pmmined)
    text = table.render(results)
    print("\n" + text)
    suffix = "" if args.split == "dev" else f"-{args.split}"
    common.save(results, args.out or HERE / f"results{suffix}.json")
    common.save(results, common.WORK / f"results{suffix}.json")
    (common.WORK / f"table{suffix}.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
