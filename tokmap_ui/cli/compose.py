"""``compose`` (chain token maps through pivot vocabularies: fy→nl ∘ nl→en = fy→en)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from tokmap_ui.mapping.compose import ComposeConfig, PivotFallback

    cc = ComposeConfig()
    p = subparsers.add_parser(
        "compose", help="compose token maps through a pivot vocabulary (fy→nl ∘ nl→en = fy→en)",
        description="Chain maps whose vocabularies line up (each map's source tokenizer is the next map's target "
                    "tokenizer, checked by the vocabulary hashes stored in the files): weights multiply and sum "
                    "over the pivot tokens, each entry keeps its strongest sources, and its evidence records "
                    "both hops. Target tokens the pivot cannot reach fall back as --fallback says.")
    p.add_argument("maps", nargs="+", metavar="MAP",
                   help="token-map files in chain order: first the new language's map onto the pivot (fy→nl), "
                        "then the pivot's map onto the model (nl→en), ...")
    p.add_argument("--out", required=True, help="token-map file to write (.json or .json.gz)")
    p.add_argument("--top-k", type=int, default=cc.top_k, help=f"most sources per entry (default {cc.top_k})")
    p.add_argument("--min-share", type=float, default=cc.min_share,
                   help="drop sources with less than this share of an entry (default 0: keep all top-k)")
    p.add_argument("--fallback", choices=[f.value for f in PivotFallback], default=cc.fallback.value,
                   help="target tokens the pivot cannot reach: unmapped (conversion's fallback row), mean, fvt "
                        "(split by the source tokenizer; needs both tokenizers), map (entries of --fallback-map)")
    p.add_argument("--fallback-map", help="map with the same target and source as the result (e.g. a direct "
                                          "fy→en map), for --fallback map")
    p.add_argument("--target-tokenizer", help="the first map's target tokenizer (for --fallback fvt; default: "
                                              "the path stored in the map, if it exists)")
    p.add_argument("--source-tokenizer", help="the last map's source tokenizer or model (token strings in the "
                                              "evidence, --fallback fvt; default: the path stored in the map)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(run=run_compose)


def _tokenizer(spec: str | None, stored: str, wanted: bool):
    """Load ``spec``; else, when ``wanted``, the tokenizer path stored in the map if it loads; else None."""
    from tokmap_ui.errors import TokmapError
    from tokmap_ui.io.tokenizers import load_tokenizer

    if spec:
        return load_tokenizer(spec)
    if wanted and Path(stored).exists():
        try:
            return load_tokenizer(stored)
        except TokmapError:
            return None  # the map names a path that is no tokenizer (any more): no token strings, no fvt
    return None


def run_compose(args: argparse.Namespace) -> int:
    from tokmap_ui.errors import ConfigError, TokenMapError
    from tokmap_ui.io.tokenmaps import load_token_map, save_token_map
    from tokmap_ui.mapping.compose import ComposeConfig, PivotFallback, compose_maps
    from tokmap_ui.vocab import Vocabulary

    config = ComposeConfig(top_k=args.top_k, min_share=args.min_share, fallback=args.fallback)
    if len(args.maps) < 2:
        raise ConfigError("compose needs at least two maps. Fix: give a chain such as fy-nl.json nl-en.json")
    maps = [load_token_map(path) for path in args.maps]
    fallback_map = load_token_map(args.fallback_map) if args.fallback_map else None
    if config.fallback is PivotFallback.MAP and fallback_map is None:
        raise ConfigError("--fallback map needs --fallback-map FILE (a map with the result's target and source)")
    fvt = config.fallback is PivotFallback.FVT
    source_tok = _tokenizer(args.source_tokenizer, maps[-1].source.name, True)
    target_tok = _tokenizer(args.target_tokenizer, maps[0].target.name, fvt)
    source_vocab = Vocabulary.from_tokenizer(source_tok) if source_tok is not None else None
    target_vocab = Vocabulary.from_tokenizer(target_tok) if target_tok is not None else None
    if source_vocab is not None and not args.source_tokenizer and not fvt:
        ref = maps[-1].source
        if (len(source_vocab), source_vocab.sha256) != (ref.vocab_size, ref.sha256):
            source_vocab = None  # the stored path now holds another tokenizer: quote ids instead of strings
    if source_vocab is not None and (len(source_vocab), source_vocab.sha256) != (maps[-1].source.vocab_size,
                                                                               maps[-1].source.sha256):
        raise TokenMapError(args.source_tokenizer or maps[-1].source.name,
                            f"is not the source vocabulary of {args.maps[-1]} ({len(source_vocab):,} tokens, "
                            f"sha256 {source_vocab.sha256[:12]}… instead of {maps[-1].source.vocab_size:,}, "
                            f"{maps[-1].source.sha256[:12]}…)", fix="give the tokenizer the last map was built with")
    token_map = compose_maps(maps, config, names=list(args.maps), target_vocab=target_vocab,
                             source_vocab=source_vocab, source_tokenizer=source_tok, fallback_map=fallback_map)
    path = save_token_map(token_map, args.out)
    summary = {"out": str(path), "kind": token_map.kind, "entries": len(token_map.entries),
               "chain": [f"{m.target.name} → {m.source.name}" for m in maps],
               "by_method": token_map.stats["by_method"], "pivot": token_map.stats["pivot"]}
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    methods = ", ".join(f"{m} {n:,}" for m, n in sorted(summary["by_method"].items(), key=lambda x: -x[1]))
    pivot = summary["pivot"]
    print(f"wrote {path}: {len(maps)}-map chain, {summary['entries']:,} entries ({methods})")
    print(f"  reached through the pivot: {pivot['reached']:,}; fallback ({pivot['fallback']}): {pivot['unreached']:,}")
    return 0
