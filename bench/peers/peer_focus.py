"""FOCUS (Dobler & de Melo, EMNLP 2023; PyPI ``deepfocus`` 1.0.1) on the demo kit's inputs.

Run alone (builds its venv on first use, initialises both models, evaluates, prints its rows
beside ours)::

    python bench/peers/peer_focus.py

What FOCUS is given: the source model's input-embedding table and tokenizer, the target tokenizer
(``nl-bpe``) and, for its token-level fastText (the mode of the paper), the kit's Dutch training
text ``assets/text/nl/train.txt``. FOCUS uses no dictionary. Settings are the package defaults
(``auxiliary_embedding_mode="fasttext-tokenlevel"``, 3 epochs, dim 100, min count 10,
``exact_match_all=True``, ``match_symbols=False``, ``fuzzy_match_all=False``, seed 42) except
``processes=1`` (one core, as every row). ``XDG_CACHE_HOME`` points into the run folder, so its
tokenised-text and fastText caches start empty and the time includes training them.

Inside its venv this file is run as ``python peer_focus.py init --source-model DIR
--target-tokenizer DIR --source-table X.safetensors --target-text NL.txt --out DIR`` and writes
``table.safetensors`` (key ``embeddings``) and ``info.json``. It imports nothing from tokmap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "focus"
REQUIREMENTS = ["deepfocus==1.0.1", "transformers==5.23.0"]
NEEDS_TORCH = True  # FOCUS works on torch tensors (and entmax)
INPUTS = {"source-model": "source-model", "target-tokenizer": "target-tokenizer", "source-table": "source-table",
          "target-text": "target-text"}  # no dictionary: FOCUS does not use one
VERSIONS = ["deepfocus", "fasttext", "torch", "numpy", "numba", "fastdist", "entmax", "datasets", "transformers",
            "tokenizers", "safetensors"]


def init(argv: list[str]) -> int:
    """The venv side: run FOCUS and write its table (see the module docstring)."""
    import time
    from importlib.metadata import version

    import torch
    from deepfocus import FOCUS
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from meter import Meter, write_info

    p = argparse.ArgumentParser()
    for name in ("source-model", "target-tokenizer", "source-table", "target-text", "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--min-count", type=int, default=10, help="fasttext_model_min_count (package default 10)")
    p.add_argument("--epochs", type=int, default=3, help="fasttext_model_epochs (package default 3)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    steps = {}
    with Meter() as meter:
        t = time.perf_counter()
        source_tokenizer = AutoTokenizer.from_pretrained(args.source_model)
        target_tokenizer = AutoTokenizer.from_pretrained(args.target_tokenizer)
        source_embeddings = load_file(args.source_table)["embeddings"]            # (V_s, D) float32
        steps["load inputs"] = time.perf_counter() - t
        t = time.perf_counter()
        table = FOCUS(target_tokenizer=target_tokenizer, source_tokenizer=source_tokenizer,
                      source_embeddings=source_embeddings, target_training_data_path=args.target_text,
                      processes=args.threads, fasttext_model_min_count=args.min_count,
                      fasttext_model_epochs=args.epochs, verbosity="info")                  # (V_t, D)
        steps["FOCUS (fastText + init)"] = time.perf_counter() - t
    save_file({"embeddings": table.float().contiguous()}, str(out / "table.safetensors"))
    write_info(out, meter, steps={k: round(v, 3) for k, v in steps.items()},
               versions={p: version(p) for p in VERSIONS},
               counts={"target_tokens": len(target_tokenizer)},
               settings={"auxiliary_embedding_mode": "fasttext-tokenlevel", "processes": args.threads,
                         "fasttext_model_epochs": args.epochs, "fasttext_model_dim": 100,
                         "fasttext_model_min_count": args.min_count,
                         "exact_match_all": True, "match_symbols": False, "fuzzy_match_all": False, "seed": 42})
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["init"]:
        sys.exit(init(sys.argv[2:]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import main_single

    sys.exit(main_single(NAME))
