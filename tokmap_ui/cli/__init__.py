"""The command line: ``python -m tokmap_ui SUBCOMMAND ...`` (also installed as ``tokmap``).

Thin by design: each subcommand parses its flags, builds one config object and
makes one library call. Subcommands live in small modules of this package,
grouped by concern; each module has ``register(subparsers)`` that adds its
parsers with ``set_defaults(run=...)``. A ``run`` function returns an exit code.

Exit codes: 0 success, 2 bad input (a one-line message on stderr, never a
traceback), 1 a bug (traceback, so it can be reported).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tokmap_ui import __version__
from tokmap_ui.errors import TokmapError

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "tokmap_ui.cli.inspect",
    "tokmap_ui.cli.mapping",
    "tokmap_ui.cli.compose",
    "tokmap_ui.cli.review",
    "tokmap_ui.cli.convert",
    "tokmap_ui.cli.train",
    "tokmap_ui.cli.compare",
    "tokmap_ui.cli.cmc",
    "tokmap_ui.cli.delta",
    "tokmap_ui.cli.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokmap",
        description="Move language models across vocabularies: Tik-to-Tok conversion, "
                    "cross-model control (CMC) and reviewable token maps.")
    parser.add_argument("--version", action="version", version=f"tokmap {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this directly)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except TokmapError as err:
        print(f"tokmap {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `tokmap ... | head` closed the pipe: not an error. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"tokmap {args.command}: interrupted", file=sys.stderr)
        return 130
