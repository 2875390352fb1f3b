"""Cross-model control (CMC) subcommands; for now ``pmmined``: map a host tokenizer onto a delta's.

Example::

    python -m tokmap_ui pmmined --host-tokenizer assets/tokenizers/llama-host \\
        --delta-tokenizer assets/tokenizers/gpt2-template --report --out host2delta.json
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from tokmap_ui.mapping.pmmined import PmMinedConfig

    p = subparsers.add_parser(
        "pmmined", help="map every host token to one delta token (PM-MinED, for CMC decoding)",
        description="Build a PM-MinED token map (target = host, source = delta): exact match, else the "
                    "nearest prefix relative by edit distance. Writes a tokmap.token-map/1 file.")
    p.add_argument("--host-tokenizer", required=True, metavar="H",
                   help="the host model's tokenizer (folder, tokenizer.json, .model, vocab.txt, .zip or hub id)")
    p.add_argument("--delta-tokenizer", required=True, metavar="D",
                   help="the delta model's (= template's) tokenizer")
    p.add_argument("--out", required=True, metavar="MAP.json", help="where to write the map (.json or .json.gz)")
    p.add_argument("--reference", action="store_true", help=_field_help(PmMinedConfig, "reference"))
    for name in ("normalise_markers", "specials_by_role", "byte_fallback", "match_added_tokens"):
        p.add_argument(f"--no-{name.replace('_', '-')}", dest=name, action="store_false",
                       help="turn off: " + _field_help(PmMinedConfig, name))
    p.add_argument("--report", action="store_true", help="print the compatibility report")
    p.add_argument("--json", action="store_true", help="print the report as JSON (with --report)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="token-map cache folder (default $TOKMAP_HOME/cache/token-maps)")
    p.add_argument("--no-cache", action="store_true", help="always rebuild the map")
    p.set_defaults(run=run_pmmined)


def _field_help(cls: type, name: str) -> str:
    """A config field's docstring (the text under it in the class body), as one line of help."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(cls)).body[0].body
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            return " ".join(str(after.value.value).split())
    return name.replace("_", " ")


def run_pmmined(args: argparse.Namespace) -> int:
    from tokmap_ui.cli.common import print_report
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import save_token_map
    from tokmap_ui.mapping.pmmined import (PmMinedConfig, build_pmmined_map, build_pmmined_map_cached,
                                           compatibility_report)
    from tokmap_ui.vocab import Vocabulary

    config = PmMinedConfig(reference=args.reference, normalise_markers=args.normalise_markers,
                           specials_by_role=args.specials_by_role, byte_fallback=args.byte_fallback,
                           match_added_tokens=args.match_added_tokens)
    host = Vocabulary.from_tokenizer(load_tokenizer(args.host_tokenizer), name=str(args.host_tokenizer))
    delta = Vocabulary.from_tokenizer(load_tokenizer(args.delta_tokenizer), name=str(args.delta_tokenizer))
    if args.no_cache:
        token_map = build_pmmined_map(host, delta, config)
    else:
        token_map = build_pmmined_map_cached(host, delta, config, args.cache_dir)
    path = save_token_map(token_map, args.out)
    if args.report:
        print_report(compatibility_report(token_map, host, delta), args.json)
    stats = token_map.stats
    if not (args.report and args.json):
        print(f"wrote {path}: {stats['entries']:,} host tokens, {stats['mapped']:,} mapped, "
              f"{stats['unmapped']:,} unmapped")
    return 0
