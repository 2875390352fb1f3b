"""Small helpers shared by the subcommand modules: JSON output, report printing, repeated flags."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def print_report(report: Any, as_json: bool) -> None:
    """Print a report object that has ``to_dict()`` and ``to_text()``."""
    if as_json:
        json.dump(report.to_dict(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.to_text())


def add_column_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """``--src-col``, ``--tgt-col`` and ``--swap`` for a two-language word file (``what``: "dictionary", ...)."""
    parser.add_argument("--src-col", help=f"{what} column (header name) of source-language words")
    parser.add_argument("--tgt-col", help=f"{what} column (header name) of target-language words")
    parser.add_argument("--swap", action="store_true", help=f"read the {what} the other way round")
