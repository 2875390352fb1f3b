"""Small helpers shared by the subcommand modules: JSON output and report printing."""

from __future__ import annotations

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
