"""West Frisian through a Dutch pivot, direct vs pivot, on the demo kit: maps, retrieval, words, loss per byte.

Usage (from the repository root; ~12 min on one core, ~1 min without the fine-tunes)::

    python bench/frisian_pivot.py [--steps 48] [--skip-finetune] [--workdir workspace/bench/frisian]
                                  [--out bench/results/frisian]

What it builds (Tik-to-Tok maps, default settings; map files in ``--workdir/maps``):

* ``fy-nl``: Frisian ``fy-bpe`` tokens onto Dutch ``nl-bpe`` tokens, with ``dict/fy-nl.tsv`` (2,984 pairs);
* ``nl-<model>``: Dutch tokens onto the model's English tokens, with ``dict/en-nl.tsv`` (41k pairs);
* ``pivot``: ``fy-nl ∘ nl-<model>`` (:func:`tokmap_ui.mapping.compose.compose_maps`, FVT fallback);
* ``direct``: Frisian tokens straight onto the model's, with the fy–en side of ``dict/fy-nl-en.tsv``
  (1,720 triples, the only Frisian–English pairs there are);
* ``fvt``: the FVT baseline (the model's tokenizer splits each Frisian token).

for two models: all-MiniLM-L6-v2 (``kit:minilm``) and the kit's ``tiny-en-gpt2``. Then it prints:

1. the held-out parallel splits (rows, shortest English segment, overlap with the Frisian training text);
2. coverage of each map (entries per method);
3. en–fy sentence retrieval with converted MiniLM on ``parallel/fy-en.dev.tsv`` and ``.test.tsv``
   (330 segments each, every candidate ranked): unconverted MiniLM, fvt, direct, pivot;
4. held-out word translation ``dict/fy-en.test.tsv`` (fy word → en word, P@1/P@5 among all English
   words of the file) with the tables each map initialises, for both models;
5. fy loss per byte of converted tiny-en-gpt2 before and after the same short fine-tune on
   ``text/fy/train.txt`` (``compare-init``: tiktotok-pivot, tiktotok (direct), fvt, mean, random).

Everything printed is also written to ``--out/output.txt`` and ``--out/results.json``; the
compare-init table, curves and JSON to ``--out/compare_init/``. Torch, BLAS and the tokenizers
run on one thread (``--threads``), as on the project's shared 2-core machines.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KIT = Path("assets")  # relative: main() runs in ROOT, so paths in the results read the same on every machine
MODELS = {"minilm": "kit:minilm", "gpt2": str(KIT / "models" / "tiny-en-gpt2")}
LINES: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    LINES.append(text)


def table(header: list[str], rows: list[list[str]]) -> None:
    say("| " + " | ".join(header) + " |")
    say("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        say("| " + " | ".join(row) + " |")
    say()


# ------------------------------------------------------------------------------------------- maps

def build_maps(workdir: Path) -> dict[str, dict[str, object]]:
    """Every map of both models (cached in ``workdir/maps``); returns ``{model: {name: TokenMap}}``."""
    from tokmap_ui.io.cache import ArrayCache
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.models import resolve_model_dir
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import load_token_map, save_token_map
    from tokmap_ui.mapping.compose import ComposeConfig, compose_maps
    from tokmap_ui.mapping.tiktotok import MappingConfig, run_mapping
    from tokmap_ui.vocab import Vocabulary

    folder = workdir / "maps"
    folder.mkdir(parents=True, exist_ok=True)
    cache = ArrayCache(workdir / "cache")
    fy_tok, nl_tok = load_tokenizer(KIT / "tokenizers" / "fy-bpe"), load_tokenizer(KIT / "tokenizers" / "nl-bpe")
    fy, nl = Vocabulary.from_tokenizer(fy_tok), Vocabulary.from_tokenizer(nl_tok)
    dicts = {"fy-nl": load_dictionary(KIT / "dict" / "fy-nl.tsv", src="nl", tgt="fy"),
             "en-nl": load_dictionary(KIT / "dict" / "en-nl.tsv", src="en", tgt="nl"),
             "en-fy": load_dictionary(KIT / "dict" / "fy-nl-en.tsv", src="en", tgt="fy")}
    tiktotok, fvt = MappingConfig(), MappingConfig(method="fvt")

    def cached(name: str, build) -> object:
        path = folder / f"{name}.json.gz"
        if path.is_file():
            return load_token_map(path)
        tick = time.perf_counter()
        token_map = build()
        save_token_map(token_map, path)
        say(f"built {name}: {time.perf_counter() - tick:.1f} s")
        return token_map

    fy_nl = cached("fy-nl", lambda: run_mapping(nl_tok, fy_tok, dicts["fy-nl"], tiktotok, source=nl, target=fy,
                                                cache=cache).token_map)
    out: dict[str, dict[str, object]] = {}
    for model, spec in MODELS.items():
        en_tok = load_tokenizer(resolve_model_dir(spec))
        en = Vocabulary.from_tokenizer(en_tok)
        nl_en = cached(f"nl-{model}", lambda: run_mapping(en_tok, nl_tok, dicts["en-nl"], tiktotok, source=en,
                                                          target=nl, cache=cache).token_map)
        maps = {"fy-nl": fy_nl, f"nl-{model}": nl_en}
        maps["pivot"] = cached(f"fy-{model}.pivot", lambda: compose_maps(
            [fy_nl, nl_en], ComposeConfig(fallback="fvt"), names=["fy-nl", f"nl-{model}"], target_vocab=fy,
            source_vocab=en, source_tokenizer=en_tok))
        maps["direct"] = cached(f"fy-{model}.direct", lambda: run_mapping(
            en_tok, fy_tok, dicts["en-fy"], tiktotok, source=en, target=fy, cache=cache).token_map)
        maps["fvt"] = cached(f"fy-{model}.fvt", lambda: run_mapping(en_tok, fy_tok, None, fvt, source=en,
                                                                    target=fy).token_map)
        out[model] = maps
    return out


# -------------------------------------------------------------------------------------- sections

def check_splits() -> dict[str, object]:
    from tokmap_ui.io.files import read_text_lines
    from tokmap_ui.io.parallel import load_parallel_tsv

    train = set(read_text_lines(KIT / "text" / "fy" / "train.txt", "text"))
    rows, found = [], {}
    for split in ("dev", "test"):
        text = load_parallel_tsv(KIT / "parallel" / f"fy-en.{split}.tsv", "en", "fy")
        words = [len(s.split()) for s in text.src]
        overlap = sum(s in train for s in text.tgt)
        found[split] = {"rows": len(text), "min_en_words": min(words), "fy_in_train": overlap}
        rows.append([f"fy-en.{split}", f"{len(text)}", f"{min(words)}", f"{sum(words) / len(words):.1f}", f"{overlap}"])
    say("## Held-out parallel splits (Firefox UI strings aligned by message id)")
    say()
    table(["file", "segments", "min English words", "mean English words", "fy side in fy/train.txt"], rows)
    return found


def coverage(maps: dict[str, dict[str, object]]) -> None:
    say("## Coverage (entries per method)")
    say()
    methods = ["special", "identical", "dictionary", "neighbour", "fvt", "mean", "unmapped"]
    rows = []
    for model, group in maps.items():
        for name, token_map in group.items():
            if name == "fy-nl" and model != "minilm":
                continue
            by = token_map.stats["by_method"]
            label = name if name.startswith(("fy-nl", "nl-")) else f"fy-{model} {name}"
            rows.append([label, f"{len(token_map.entries):,}"] + [f"{by.get(m, 0):,}" for m in methods])
    table(["map", "entries"] + methods, rows)


def retrieval(maps: dict[str, object]) -> dict[str, object]:
    from tokmap_ui.convert import ConvertConfig, convert_model_with_report
    from tokmap_ui.io.models import load_model
    from tokmap_ui.io.parallel import load_parallel_tsv
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.mapping.retrieval import RetrievalConfig, evaluate_retrieval
    from tokmap_ui.vocab import Vocabulary

    fy_tok = load_tokenizer(KIT / "tokenizers" / "fy-bpe")
    fy = Vocabulary.from_tokenizer(fy_tok)
    source, source_tok = load_model(MODELS["minilm"], task="base")
    en = Vocabulary.from_tokenizer(source_tok)
    converted = {}
    for name in ("fvt", "direct", "pivot"):
        model, tokenizer, _ = convert_model_with_report(copy.deepcopy(source), en, fy_tok, fy, maps[name],
                                                        ConvertConfig(), source_tokenizer=source_tok)
        converted[name] = (model.eval(), tokenizer)
    found: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("dev", "test"):
        text = load_parallel_tsv(KIT / "parallel" / f"fy-en.{split}.tsv", "en", "fy")
        config = RetrievalConfig(n=len(text))
        scores = {}
        for name, (model, tokenizer) in converted.items():
            report = evaluate_retrieval(model, tokenizer, source, source_tok, text.src, text.tgt,
                                        config if name == "fvt" else RetrievalConfig(n=len(text), baseline=False),
                                        src_lang="en", tgt_lang="fy")
            if report.baseline is not None:
                scores["unconverted MiniLM"] = report.baseline
            scores[f"converted, {name} map"] = report.converted
        found[split] = scores
    say("## en–fy sentence retrieval, converted all-MiniLM-L6-v2 (fy query → its English segment)")
    say()
    rows = []
    for name in found["dev"]:
        rows.append([name] + [f"{found[s][name][k]:.3f}" for s in ("dev", "test") for k in ("p_at_1", "p_at_5", "mrr")])
    table(["model", "dev P@1", "dev P@5", "dev MRR", "test P@1", "test P@5", "test MRR"], rows)
    n = {s: int(found[s]["unconverted MiniLM"]["n"]) for s in found}
    say(f"Candidates: {n['dev']} (dev), {n['test']} (test); every English segment of the split is a candidate.")
    say()
    return found


def words(maps: dict[str, dict[str, object]]) -> dict[str, object]:
    from tokmap_ui.dictionary import Dictionary
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.models import resolve_model_dir
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.mapping.evaluate import source_embedding_table, translation_precision

    fy_tok = load_tokenizer(KIT / "tokenizers" / "fy-bpe")
    pairs = load_dictionary(KIT / "dict" / "fy-en.test.tsv", src="en", tgt="fy")
    different = Dictionary.from_pairs([(p.src, p.tgt) for p in pairs.pairs if p.src.casefold() != p.tgt.casefold()],
                                      src_lang="en", tgt_lang="fy")
    found: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for model, spec in MODELS.items():
        folder = resolve_model_dir(spec)
        rows_table, en_tok = source_embedding_table(folder), load_tokenizer(folder)
        found[model] = {}
        for name in ("fvt", "direct", "pivot"):
            every = translation_precision(maps[model][name], rows_table, en_tok, fy_tok, pairs)
            other = translation_precision(maps[model][name], rows_table, en_tok, fy_tok, different)
            found[model][name] = {"all": every.to_dict(), "not_identical": other.to_dict()}
            rows.append([model, name, f"{every.p_at[1]:.3f}", f"{every.p_at[5]:.3f}", f"{other.p_at[1]:.3f}",
                         f"{other.p_at[5]:.3f}", f"{every.queries} / {other.queries}"])
    say("## Held-out word translation, dict/fy-en.test.tsv (fy word → English word among all English words)")
    say()
    table(["model table", "map", "P@1", "P@5", "P@1 (fy ≠ en)", "P@5 (fy ≠ en)", "fy words (all / fy ≠ en)"], rows)
    say("`fy ≠ en`: the pairs whose two words differ (the file also holds identical UI words: ctrl, custom, ...).")
    say()
    return found


def finetune(maps_dir: Path, workdir: Path, out: Path, args: argparse.Namespace) -> dict[str, object]:
    from tokmap_ui.train.compare import CompareConfig, compare_init, results_table

    run_dir = workdir / "compare_init"
    shutil.rmtree(run_dir, ignore_errors=True)  # fine-tunes refuse to overwrite a finished run: start afresh
    config = CompareConfig(model=MODELS["gpt2"], target_tokenizer=str(KIT / "tokenizers" / "fy-bpe"),
                           train=str(KIT / "text" / "fy" / "train.txt"), valid=str(KIT / "text" / "fy" / "valid.txt"),
                           out=str(run_dir), methods=("tiktotok-pivot", "tiktotok", "fvt", "mean", "random"),
                           reference="random", steps=args.steps, batch_size=8, block_size=128, lr=1e-3,
                           eval_every=max(1, args.steps // 8), max_eval_texts=200, threads=args.threads, seed=0,
                           maps=(("tiktotok-pivot", str(maps_dir / "fy-gpt2.pivot.json.gz")),
                                 ("tiktotok", str(maps_dir / "fy-gpt2.direct.json.gz"))))
    result = compare_init(config, on_event=lambda r: r.get("event") == "arm" and print(f"  arm {r['method']}",
                                                                                        flush=True))
    say("## fy loss per byte of converted tiny-en-gpt2, before and after the same short fine-tune")
    say()
    say("tiktotok-pivot = the pivot map, tiktotok = the direct map (fy–en triples); fine-tune on "
        "text/fy/train.txt, loss per byte on the first 200 lines of text/fy/valid.txt.")
    say()
    for line in results_table(result).splitlines():
        say(line)
    target = out / "compare_init"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("table.md", "results.json", "curves.png", "curves.html"):
        shutil.copyfile(run_dir / name, target / name)
    return result.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="workspace/bench/frisian",
                        help="maps, caches and fine-tune runs (not committed; relative to the repository root)")
    parser.add_argument("--out", default="bench/results/frisian", help="results folder (relative to the root)")
    parser.add_argument("--steps", type=int, default=48, help="fine-tuning steps per init method")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--skip-finetune", action="store_true", help="maps, retrieval and words only (~1 min)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    import torch

    torch.set_num_threads(args.threads)
    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    say("# West Frisian through a Dutch pivot: `python bench/frisian_pivot.py`")
    say()
    results: dict[str, object] = {"splits": check_splits()}
    maps = build_maps(workdir)
    say()
    coverage(maps)
    results["retrieval"] = retrieval(maps["minilm"])
    results["words"] = words(maps)
    if not args.skip_finetune:
        results["compare_init"] = finetune(workdir / "maps", workdir, out, args)
    say(f"Total {time.perf_counter() - start:.0f} s with {args.threads} torch thread(s).")
    from tokmap_ui.io.files import atomic_write_text

    atomic_write_text(out / "output.txt", "\n".join(LINES) + "\n")
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
