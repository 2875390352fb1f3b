"""WECHSEL (Minixhofer et al., NAACL 2022; PyPI ``wechsel`` 0.0.4) on the demo kit's inputs.

Run alone (builds its venv on first use, initialises both models, evaluates, prints its rows
beside ours)::

    python bench/peers/peer_wechsel.py

What WECHSEL is given, exactly what ours gets plus the monolingual text it needs:
* the source model's input-embedding table and tokenizer, the target tokenizer (``nl-bpe``);
* the kit's en-nl dictionary (``assets/dict/en-nl.tsv`` as our loader reads it, written as the
  ``english<TAB>target`` lines WECHSEL reads; header dropped);
* fastText models trained *here* with WECHSEL's own ``train_embeddings`` on the kit's English and
  Dutch training text (its default ``cc.{en,nl}.300.bin`` downloads need the network). Two
  changes to that utility's defaults, both forced: ``tokenize_fn`` is a regular expression
  (``\\w+|[^\\w\\s]``) because its default, NLTK Punkt, needs a data download; ``thread=1`` to
  keep to one core, as every row does. Everything else is WECHSEL's default: cbow, dim 100,
  char 5-grams, 20 epochs; ``apply(..., use_subword_info=True, neighbors=10, temperature=0.1)``.

Inside its venv this file is run as ``python peer_wechsel.py init --source-model DIR
--target-tokenizer DIR --source-table X.safetensors --dictionary D.txt --source-text EN.txt
--target-text NL.txt --out DIR`` and writes ``table.safetensors`` (key ``embeddings``, shape
``(len(target tokenizer), D)``) and ``info.json`` (time, memory, versions, counts). It imports
nothing from tokmap.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

NAME = "wechsel"
REQUIREMENTS = ["wechsel==0.0.4", "transformers==5.23.0"]
NEEDS_TORCH = False  # WECHSEL is numpy/fastText only; transformers only loads the tokenizers
INPUTS = {"source-model": "source-model", "target-tokenizer": "target-tokenizer", "source-table": "source-table",
          "dictionary": "dictionary-pairs", "source-text": "source-text", "target-text": "target-text"}
VERSIONS = ["wechsel", "fasttext", "numpy", "scipy", "scikit-learn", "gensim", "datasets", "transformers",
            "tokenizers", "safetensors"]
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Stand-in for ``nltk.word_tokenize`` (its Punkt model cannot be downloaded here)."""
    return _WORD.findall(text)


def init(argv: list[str]) -> int:
    """The venv side: run WECHSEL and write its table (see the module docstring)."""
    import time
    from importlib.metadata import version

    import numpy as np
    from safetensors.numpy import load_file, save_file
    from transformers import AutoTokenizer
    from wechsel import WECHSEL, train_embeddings

    from meter import Meter, write_info

    p = argparse.ArgumentParser()
    for name in ("source-model", "target-tokenizer", "source-table", "dictionary", "source-text", "target-text",
                 "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--min-count", type=int, default=5, help="fastText minCount (fastText's default 5)")
    args = p.parse_args(argv)
    # train_embeddings fixes minn = maxn = 5 itself (passing them again is a TypeError)
    fasttext_kwargs = {"thread": args.threads, "minCount": args.min_count}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = {}
    with Meter() as meter:
        t = time.perf_counter()
        source_tokenizer = AutoTokenizer.from_pretrained(args.source_model)
        target_tokenizer = AutoTokenizer.from_pretrained(args.target_tokenizer)
        source_matrix = load_file(args.source_table)["embeddings"]                 # (V_s, D) float32
        steps["load inputs"] = time.perf_counter() - t
        t = time.perf_counter()
        source_ft = train_embeddings(args.source_text, tokenize_fn=words, **fasttext_kwargs)
        steps["fastText en"] = time.perf_counter() - t
        t = time.perf_counter()
        target_ft = train_embeddings(args.target_text, tokenize_fn=words, **fasttext_kwargs)
        steps["fastText nl"] = time.perf_counter() - t
        t = time.perf_counter()
        wechsel = WECHSEL(source_ft, target_ft, bilingual_dictionary=args.dictionary)
        steps["align (Procrustes)"] = time.perf_counter() - t
        t = time.perf_counter()
        table, info = wechsel.apply(source_tokenizer, target_tokenizer, source_matrix)  # (V_t, D)
        steps["apply"] = time.perf_counter() - t
    save_file({"embeddings": np.ascontiguousarray(table, dtype=np.float32)}, str(out / "table.safetensors"))
    write_info(out, meter, steps={k: round(v, 3) for k, v in steps.items()},
               versions={p: version(p) for p in VERSIONS},
               counts={"target_tokens": len(target_tokenizer), "not_found (random rows)": len(info.not_found),
                       "fastText words en": len(source_ft.get_words()), "fastText words nl": len(target_ft.get_words())},
               settings={"tokenize_fn": _WORD.pattern, **fasttext_kwargs, "epochs": 20, "dim": 100,
                         "neighbors": 10, "temperature": 0.1, "use_subword_info": True})
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["init"]:
        sys.exit(init(sys.argv[2:]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import main_single

    sys.exit(main_single(NAME))
