"""Build the offline demo kit under ``assets/`` from the shared Debian data.

Usage (from the repository root; the whole build takes about an hour on 2 CPU cores)::

    python scripts/build_demo_kit.py                       # everything, in order
    python scripts/build_demo_kit.py --only text dicts     # rebuild some parts
    python scripts/build_demo_kit.py --only models --model gpt2 --minutes 25

Parts, in dependency order: ``parallel`` (held-out parallel segments), ``text``
(train/valid slices, minus those segments), ``dicts`` (dictionaries and held-out
word splits), ``tokenizers`` (trained on the text), ``models`` (tiny GPT-2 and
Llama trained on the English text), ``manifest`` (file list with sizes and
SHA-256 in ``assets/MANIFEST.tsv``, and the table in ``assets/README.md``; always
rewritten after any other part). Each part records its counts and timings in
``assets/build_info.json``. Everything is seeded (``--seed``); model training
stops at a step budget or a CPU-time budget (``--minutes`` on ``--threads``
cores), so the step count reached is recorded.

This is a maintainer's tool: CI never runs it, and it is the only code in the
repository allowed to read ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on shared cores spinning burns the CPU budget.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _kit_common as common  # noqa: E402

PARTS = ["parallel", "text", "dicts", "tokenizers", "models", "manifest"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=common.REPO.parent / "shared" / "data",
                        help="the shared data folder (default: ../shared/data beside the repo)")
    parser.add_argument("--assets", type=Path, default=common.REPO / "assets", help="output folder")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="parts to build")
    parser.add_argument("--seed", type=int, default=common.SEED, help="seed of every split and training run")
    parser.add_argument("--tokenizer", nargs="+", default=None,
                        help="with --only tokenizers: which ones (en-bytebpe en-metaspace nl-bpe fy-bpe)")
    parser.add_argument("--model", nargs="+", choices=["gpt2", "llama"], default=["gpt2", "llama"],
                        help="with --only models: which models to train")
    parser.add_argument("--minutes", type=float, default=25.0,
                        help="training budget per model in minutes on --threads dedicated cores, counted as "
                             "CPU time of the process (minutes * 60 * threads CPU-seconds)")
    parser.add_argument("--max-steps", type=int, default=2000, help="step budget per model")
    parser.add_argument("--wall-cap", type=float, default=150.0,
                        help="hard wall-clock cap per model in minutes (a busy shared CPU stretches wall time)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (= cores the budget assumes)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.SEED = args.seed
    assets: Path = args.assets
    if any(p in args.only for p in ("parallel", "text", "dicts")) and not (args.data / "README.md").exists():
        print(f"error: {args.data} is not the shared data folder; give --data", file=sys.stderr)
        return 2
    only = set(args.only) | {"manifest"}  # the manifest always follows a rebuild
    for part in PARTS:
        if part not in only:
            continue
        timer = common.Timer()
        print(f"== {part}", flush=True)
        if part == "parallel":
            from _kit_text import build_parallel
            info = build_parallel(args.data, assets)
        elif part == "text":
            from _kit_text import build_text
            info = build_text(args.data, assets)
        elif part == "dicts":
            from _kit_dict import build_dicts
            info = build_dicts(args.data, assets)
        elif part == "tokenizers":
            from _kit_tokenizers import build_tokenizers
            info = build_tokenizers(assets, set(args.tokenizer) if args.tokenizer else None)
        elif part == "models":
            from _kit_models import build_models
            info = build_models(assets, args.model, minutes=args.minutes, max_steps=args.max_steps,
                                threads=args.threads, seed=args.seed, wall_cap_minutes=args.wall_cap)
        else:
            from _kit_manifest import write_manifest
            info = write_manifest(assets)
        if part in ("tokenizers", "models"):  # rebuilt one at a time: merge, keep the others' records
            old = common.load_build_info(assets).get(part, {})
            info = {**old, **info}
        if part != "manifest":  # the manifest hashes build_info.json: it must be written last
            info = {**info, "seconds": timer(), "seed": args.seed} if part != "models" else info
            common.update_build_info(assets, part, info)
        print(f"   done in {timer()} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
