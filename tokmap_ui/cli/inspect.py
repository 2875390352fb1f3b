"""``inspect-tokenizer`` and ``inspect-dictionary``: what is in a file, before you use it."""

from __future__ import annotations

import argparse

from tokmap_ui.cli.common import print_report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect-tokenizer", help="report a tokenizer's kind, size, specials, markers and round-trip",
        description="Load a tokenizer (HF folder, tokenizer.json, SentencePiece .model, WordPiece vocab.txt, "
                    "GPT-2 vocab.json+merges.txt, a .zip of these, or a hub id when online) and report on it.")
    p.add_argument("path", help="tokenizer file, folder, .zip or hub id")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run_inspect_tokenizer)

    p = subparsers.add_parser(
        "inspect-dictionary", help="report a bilingual dictionary's pairs, words, duplicates and rejected lines",
        description="Load a bilingual dictionary (TSV/CSV with header, 2-column TSV, MUSE pairs, JSON) and report on it.")
    p.add_argument("path", help="dictionary file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run_inspect_dictionary)


def run_inspect_tokenizer(args: argparse.Namespace) -> int:
    from tokmap_ui.io.tokenizers import inspect_tokenizer_file

    print_report(inspect_tokenizer_file(args.path), args.json)
    return 0


def run_inspect_dictionary(args: argparse.Namespace) -> int:
    from tokmap_ui.io.dictionaries import inspect_dictionary_file

    print_report(inspect_dictionary_file(args.path), args.json)
    return 0
