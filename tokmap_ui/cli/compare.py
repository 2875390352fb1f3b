"""``compare-init``: the same fine-tune budget from each init method, with a table and loss curves."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare-init", help="fine-tune from each init method (tiktotok, fvt, mean, random) and compare",
        description="Convert the model with each method's token map, fine-tune each for the same steps on the "
                    "same data, and write table.md, results.json, curves.html and curves.png to --out.")
    p.add_argument("--model", required=True, help="source model folder")
    p.add_argument("--target-tokenizer", required=True, help="target tokenizer")
    p.add_argument("--dictionary", help="bilingual dictionary, source language first (tiktotok needs it)")
    p.add_argument("--train", required=True, help="target-language training text")
    p.add_argument("--valid", required=True, help="target-language validation text")
    p.add_argument("--methods", nargs="+", default=["tiktotok", "fvt", "mean", "random"],
                   help="init methods; the first is measured against --reference")
    p.add_argument("--reference", default="random", help="method whose final loss the first must reach")
    p.add_argument("--steps", type=int, default=60, help="fine-tuning steps per method")
    p.add_argument("--batch", type=int, default=4, help="blocks per step")
    p.add_argument("--block-size", type=int, default=64, help="tokens per block")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0 = steps // 8)")
    p.add_argument("--max-eval-texts", type=int, default=200, help="validation lines per evaluation")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--map", action="append", default=[], metavar="NAME=FILE",
                   help="convert arm NAME with this token-map file instead of building a map (repeatable); NAME "
                        "may be a method (tiktotok=FILE) or a new label listed in --methods (tiktotok-pivot=FILE)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run_compare_init)


def run_compare_init(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from tokmap_ui.errors import ConfigError
    from tokmap_ui.train.compare import CompareConfig, compare_init, results_table

    hf_logging.disable_progress_bar()
    maps = []
    for item in args.map:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--map {item!r}: expected NAME=FILE, e.g. tiktotok-pivot=fy-en.pivot.json.gz")
        maps.append((name.strip(), path.strip()))
    config = CompareConfig(model=args.model, target_tokenizer=args.target_tokenizer, train=args.train,
                           valid=args.valid, out=args.out, methods=tuple(args.methods), reference=args.reference,
                           dictionary=args.dictionary, steps=args.steps, batch_size=args.batch,
                           block_size=args.block_size, lr=args.lr, eval_every=args.eval_every,
                           max_eval_texts=args.max_eval_texts, threads=args.threads, seed=args.seed,
                           maps=tuple(maps))

    def show(record: dict) -> None:  # JSON lines for the job runner: arm starts, evals, step losses
        if record.get("event") in ("arm", "eval", "step", "done"):
            print(json.dumps({k: v for k, v in record.items() if k != "out"}), file=sys.stderr, flush=True)

    result = compare_init(config, on_event=show)
    print(results_table(result))
    return 0
