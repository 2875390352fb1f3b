"""Shared helpers of the demo-kit builder (``scripts/build_demo_kit.py``).

Normalisation, seeded block splits and the few file writers every part of the
builder uses. The builder is a maintainer's tool: it reads the shared Debian
data (``--data``) and writes the committed kit under ``assets/``; nothing in
``tokmap_ui`` imports it.
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/build_demo_kit.py` from anywhere
    sys.path.insert(0, str(REPO))

from tokmap_ui.io.files import atomic_write_text  # noqa: E402

SEED = 20261128
_WS = re.compile(r"\s+")
_MARKUP = re.compile(r"<[/!a-zA-Z][^>]*>|&[a-z]+;|\{\{|\}\}|\$\{|%\d*\$?[sSd]\b")
_COLUMNS = re.compile(r"\S {4,}\S")  # man-page tables and headers laid out in columns


def norm(text: str) -> str:
    """NFKC (FreeDict writes the ``ĳ`` ligature), literal ``\\n``/``\\t`` escapes to spaces, one space."""
    text = unicodedata.normalize("NFKC", text).replace("\\n", " ").replace("\\t", " ")
    return _WS.sub(" ", text).strip()


def key(text: str) -> str:
    """Comparison key for "the same segment": normalised and case-folded."""
    return norm(text).casefold()


def letter_ratio(text: str) -> float:
    """Share of letters among the non-space characters (low for code, tables, version strings)."""
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / max(1, len(chars))


def clean_line(raw: str, min_words: int, min_chars: int) -> str | None:
    """One cleaned paragraph, or None when the line is too short, markup or a column layout."""
    if _COLUMNS.search(raw.strip()):
        return None
    line = norm(raw)
    if len(line) < min_chars or len(line.split()) < min_words:
        return None
    if _MARKUP.search(line) or letter_ratio(line) < 0.7:
        return None
    return line


def rng_for(name: str) -> random.Random:
    """A random generator seeded by the global ``SEED`` and a stable name (not Python's salted hash)."""
    return random.Random(f"{SEED}:{name}")


def blocks(lines: Sequence[str], size: int) -> list[list[str]]:
    """Consecutive runs of ``size`` lines, so held-out text is not interleaved with training text."""
    return [list(lines[i:i + size]) for i in range(0, len(lines), size)]


def nbytes(lines: Iterable[str]) -> int:
    """UTF-8 bytes of the lines written one per line (newline included)."""
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a TSV written with csv quoting (the shared files quote fields with ``"``)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return rows[0], rows[1:]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """One line per item, newline-terminated, written atomically."""
    lines = list(lines)
    for number, line in enumerate(lines, 1):
        if "\n" in line or "\r" in line:
            raise ValueError(f"{path}: item {number} contains a line break")
    text = "".join(f"{line}\n" for line in lines)
    atomic_write_text(path, text)


def write_tsv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Plain TSV (no quoting: fields never hold tabs or newlines, checked); returns the row count."""
    out = ["\t".join(header)]
    for row in rows:
        if any(("\t" in f or "\n" in f or not f) for f in row):
            raise ValueError(f"{path}: bad field in {row!r}")
        out.append("\t".join(row))
    write_lines(path, out)
    return len(out) - 1


def write_json(path: Path, data: object) -> None:
    """Pretty JSON with a trailing newline, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def load_build_info(assets: Path) -> dict:
    """The records of earlier builds (``assets/build_info.json``), or {}."""
    path = assets / "build_info.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def update_build_info(assets: Path, part: str, info: dict) -> None:
    """Record what a part of the build did (timings, counts, seed) in ``assets/build_info.json``."""
    data = load_build_info(assets)
    data[part] = info
    write_json(assets / "build_info.json", dict(sorted(data.items())))


class Timer:
    """Wall-clock seconds since creation: ``t = Timer(); ...; t()``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 1)
