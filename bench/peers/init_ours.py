"""Our side of the peer benchmark: one map method's initialised table, timed like the peers'.

Run by ``common.py`` in the main environment, one process per (method, model), exactly as a peer
runs in its venv::

    python bench/peers/init_ours.py --method tiktotok --source-model DIR --target-tokenizer DIR \\
        --source-table X.safetensors --dictionary assets/dict/en-nl.tsv --out DIR

Timed (after imports): load both tokenizers and the dictionary, build the map with
``run_mapping`` (no cache), and turn it into the ``(V_t, D)`` table a conversion starts from
(``evaluate.target_rows``: mapped rows, the mean for unmapped ones, seeded N(0, 0.02) for
``random``). Writes ``table.safetensors`` (key ``embeddings``), ``map.json.gz`` and ``info.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("method", "source-model", "target-tokenizer", "source-table", "dictionary", "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    from importlib.metadata import version

    import torch
    from safetensors.torch import load_file, save_file

    from meter import Meter, write_info
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import save_token_map
    from tokmap_ui.mapping.evaluate import target_rows
    from tokmap_ui.mapping.tiktotok import MappingConfig, run_mapping

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    with Meter() as meter:
        t = time.perf_counter()
        source_tokenizer = load_tokenizer(args.source_model)
        target_tokenizer = load_tokenizer(args.target_tokenizer)
        dictionary = load_dictionary(args.dictionary, src="en", tgt="nl") if args.method == "tiktotok" else None
        source_rows = load_file(args.source_table)["embeddings"]                  # (V_s, D) float32
        steps["load inputs"] = time.perf_counter() - t
        t = time.perf_counter()
        run = run_mapping(source_tokenizer, target_tokenizer, dictionary, MappingConfig(method=args.method))
        steps["map"] = time.perf_counter() - t
        t = time.perf_counter()
        table = target_rows(run.token_map, source_rows)                          # (V_t, D)
        steps["table"] = time.perf_counter() - t
    save_file({"embeddings": table.float().contiguous()}, str(out / "table.safetensors"))
    save_token_map(run.token_map, out / "map.json.gz")
    write_info(out, meter, steps={k: round(v, 3) for k, v in steps.items()},
               map_steps={k: round(float(v), 3) for k, v in run.timings.items()},
               versions={p: version(p) for p in ("torch", "transformers", "tokenizers", "numpy", "scipy")},
               counts={"target_tokens": len(target_tokenizer), "by_method": run.token_map.stats["by_method"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
