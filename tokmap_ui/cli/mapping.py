"""``map`` (build a token map: Tik-to-Tok or a baseline) and ``evaluate-map`` (coverage, held-out P@k)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokmap_ui.cli.common import add_column_flags


def register(subparsers: argparse._SubParsersAction) -> None:
    from tokmap_ui.mapping.baselines import MapMethod
    from tokmap_ui.mapping.subword_space import SpaceMethod
    from tokmap_ui.mapping.tiktotok import MappingConfig

    mc = MappingConfig()
    p = subparsers.add_parser(
        "map", help="build a token map from a new (target) tokenizer to a model's (source) tokenizer",
        description="Tik-to-Tok: special tokens by role, dictionary pairs turned into token pairs, identical "
                    "strings, then the nearest source tokens in a joint bilingual subword space, then FVT and "
                    "the mean. Baselines: identical, fvt, mean, random. Writes a tokmap.token-map/1 file.")
    p.add_argument("--source-tokenizer", help="the model's tokenizer (default: the one in --source-model)")
    p.add_argument("--target-tokenizer", required=True, help="the new tokenizer (folder, tokenizer.json, ...)")
    p.add_argument("--dictionary", help="bilingual dictionary, source-language words → target-language words "
                                        "(required for tiktotok)")
    add_column_flags(p, "dictionary")
    p.add_argument("--source-model", help="source model folder: its tokenizer, and its table for --eval-pairs")
    p.add_argument("--text-src", help="monolingual source-language text, one line per paragraph, for the subword "
                                      "space (optional; on the demo kit it made the map worse, see tiktotok.py)")
    p.add_argument("--text-tgt", help="monolingual target-language text (optional, as --text-src)")
    p.add_argument("--parallel", metavar="TSV", help="parallel text with a header row (tiktotok, optional): tokens "
                                                     "aligned in it (IBM Model 1) take their aligned sources")
    p.add_argument("--parallel-src-col", default="en", help="--parallel column of source-language text (default en)")
    p.add_argument("--parallel-tgt-col", default="nl", help="--parallel column of target-language text (default nl)")
    p.add_argument("--method", choices=[m.value for m in MapMethod], default=mc.method.value,
                   help="mapping method (default: tiktotok)")
    p.add_argument("--top-k", type=int, default=mc.top_k, help=f"neighbours per unreached token (default {mc.top_k})")
    p.add_argument("--temperature", type=float, default=mc.temperature,
                   help=f"softmax temperature of neighbour weights (default {mc.temperature})")
    p.add_argument("--space", choices=[m.value for m in SpaceMethod], default=mc.space.value,
                   help="how the joint subword space is learnt (default ppmi-svd)")
    p.add_argument("--space-dim", type=int, default=mc.space_dim, help="dimensions of the subword space")
    p.add_argument("--max-sources", type=int, default=mc.max_sources, help="most sources per dictionary entry")
    p.add_argument("--association", type=float, default=mc.association,
                   help="divide counts by source frequency ** this (0 = raw counts)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other MappingConfig field, e.g. --set whole_words_first=false (repeatable)")
    p.add_argument("--no-direction-check", action="store_true",
                   help="accept a dictionary whose sides seem to fit the other tokenizer better")
    p.add_argument("--seed", type=int, default=mc.seed, help="seed of code-switching and the SVD")
    p.add_argument("--cache-dir", help="cache of the subword space (default: $TOKMAP_HOME/cache)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--eval-pairs", help="held-out pairs: print P@1/P@5 after mapping (needs --source-model)")
    p.add_argument("--out", required=True, help="token-map file to write (.json or .json.gz)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(run=run_map)

    p = subparsers.add_parser(
        "evaluate-map", help="coverage per method and held-out translation precision (P@1, P@5) of a token map",
        description="Embed each held-out target word with the table the map initialises (mean of its tokens' "
                    "rows) and each source word with the source model's table; report P@k of finding a right "
                    "translation among all source words of the pair file.")
    p.add_argument("map", help="token-map file")
    p.add_argument("--source-model", required=True, help="source model folder (its input embeddings are read)")
    p.add_argument("--pairs", help="held-out pairs (source-language word, target-language word)")
    p.add_argument("--target-tokenizer", help="the map's target tokenizer (default: the name stored in the map)")
    p.add_argument("--source-tokenizer", help="the map's source tokenizer (default: the one in --source-model)")
    add_column_flags(p, "pair file")
    p.add_argument("--k", type=int, nargs="+", default=[1, 5], help="the k of P@k (default: 1 5)")
    p.add_argument("--random-std", type=float, default=0.02,
                   help="std of rows of 'random' entries (the model's initializer_range, default 0.02)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run_evaluate_map)


def _dictionary(path: str, src: str | None, tgt: str | None, swap: bool):
    from tokmap_ui.io.dictionaries import load_dictionary

    dictionary = load_dictionary(path, src=src, tgt=tgt)
    return dictionary.reversed() if swap else dictionary


def _source_tokenizer(tokenizer: str | None, model: str | None):
    from tokmap_ui.errors import ConfigError
    from tokmap_ui.io.tokenizers import load_tokenizer

    if not tokenizer and not model:
        raise ConfigError("give --source-tokenizer or --source-model (whose tokenizer is then used)")
    if not tokenizer:
        from tokmap_ui.io.models import resolve_model_dir

        model = resolve_model_dir(model) or model  # names such as kit:minilm stand for a folder
    return load_tokenizer(tokenizer or model)


def _settings(items: list[str]) -> dict:
    """``["top_k=5", "whole_words_first=false"]`` -> typed MappingConfig fields."""
    from dataclasses import fields

    from tokmap_ui.errors import ConfigError
    from tokmap_ui.mapping.tiktotok import MappingConfig

    known = {f.name: type(getattr(MappingConfig(), f.name)) for f in fields(MappingConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(known))}")
        kind = known[name]
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                out[name] = value.lower() in ("true", "1", "yes")
            else:
                out[name] = kind(value) if kind in (int, float) else value
        except ValueError:
            raise ConfigError(f"--set {item!r}: '{value}' is not a valid {kind.__name__}") from None
    return out


def run_map(args: argparse.Namespace) -> int:
    from tokmap_ui.errors import ConfigError
    from tokmap_ui.io.cache import ArrayCache
    from tokmap_ui.io.files import read_text_lines
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import save_token_map
    from tokmap_ui.mapping.tiktotok import MappingConfig, run_mapping
    from tokmap_ui.vocab import Vocabulary

    config = MappingConfig(method=args.method, top_k=args.top_k, temperature=args.temperature, space=args.space,
                           space_dim=args.space_dim, max_sources=args.max_sources, association=args.association,
                           check_direction=not args.no_direction_check, seed=args.seed, **_settings(args.set))
    if args.eval_pairs and not args.source_model:
        raise ConfigError("--eval-pairs needs --source-model (whose embedding table is evaluated)")
    source_tokenizer = _source_tokenizer(args.source_tokenizer, args.source_model)
    target_tokenizer = load_tokenizer(args.target_tokenizer)
    dictionary = _dictionary(args.dictionary, args.src_col, args.tgt_col, args.swap) if args.dictionary else None
    texts = {}
    if args.text_src:
        texts["source_text"] = read_text_lines(args.text_src, "source-language text")
    if args.text_tgt:
        texts["target_text"] = read_text_lines(args.text_tgt, "target-language text")
    if args.parallel:
        from tokmap_ui.io.parallel import load_parallel_tsv

        if config.method.value != "tiktotok":
            raise ConfigError(f"--parallel is used by the tiktotok method only, not {config.method.value}. "
                              "Fix: drop --parallel or use --method tiktotok.")
        parallel = load_parallel_tsv(args.parallel, args.parallel_src_col, args.parallel_tgt_col)
        texts["parallel"] = (parallel.src, parallel.tgt)
    source = Vocabulary.from_tokenizer(source_tokenizer)
    target = Vocabulary.from_tokenizer(target_tokenizer)
    cache = None if args.no_cache else ArrayCache(args.cache_dir)
    run = run_mapping(source_tokenizer, target_tokenizer, dictionary, config, source=source, target=target,
                      cache=cache, **texts)
    path = save_token_map(run.token_map, args.out)
    summary = {"out": str(path), "kind": run.token_map.kind, "entries": len(run.token_map.entries),
               "by_method": run.token_map.stats["by_method"], "seconds": run.timings, "notes": run.notes}
    if args.eval_pairs:
        from tokmap_ui.mapping.evaluate import source_embedding_table, translation_precision

        pairs = _dictionary(args.eval_pairs, args.src_col, args.tgt_col, args.swap)
        scores = translation_precision(run.token_map, source_embedding_table(args.source_model), source_tokenizer,
                                       target_tokenizer, pairs, source=source, target=target)
        summary["translation"] = scores.to_dict()
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    methods = ", ".join(f"{m} {n:,}" for m, n in sorted(summary["by_method"].items(), key=lambda x: -x[1]))
    print(f"wrote {path}: {summary['kind']} map, {summary['entries']:,} entries ({methods})")
    print("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in run.timings.items()))
    for note in run.notes:
        print(f"  note: {note}")
    if args.eval_pairs:
        t = summary["translation"]
        print(f"  held-out translation: P@1 {t['p@1']:.3f}, P@5 {t['p@5']:.3f} "
              f"({t['queries']:,} target words, {t['candidates']:,} candidates)")
    return 0


def run_evaluate_map(args: argparse.Namespace) -> int:
    from tokmap_ui.cli.common import print_report
    from tokmap_ui.errors import TokenMapError
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import load_token_map
    from tokmap_ui.mapping.evaluate import (MapEvaluation, source_embedding_table, summarise_map,
                                            translation_precision)

    token_map = load_token_map(args.map)
    precision = None
    if args.pairs:
        target_spec = args.target_tokenizer or token_map.target.name
        if not args.target_tokenizer and not Path(target_spec).exists():
            raise TokenMapError(args.map, f"the map names its target tokenizer '{target_spec}', which is not a path "
                                          "here", fix="give --target-tokenizer")
        source_tokenizer = _source_tokenizer(args.source_tokenizer, args.source_model)
        pairs = _dictionary(args.pairs, args.src_col, args.tgt_col, args.swap)
        precision = translation_precision(token_map, source_embedding_table(args.source_model), source_tokenizer,
                                          load_tokenizer(target_spec), pairs, tuple(args.k),
                                          random_std=args.random_std)
    print_report(MapEvaluation(summarise_map(token_map), precision), args.json)
    return 0
