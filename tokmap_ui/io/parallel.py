"""Parallel text: a TSV with a header naming language columns, one aligned segment a row.

Example file (``assets/parallel/en-nl.test.tsv``)::

    id<TAB>en<TAB>nl
    help#1<TAB>What is Access2Base?<TAB>Wat is Access2Base?

Rows with a missing or empty cell in either chosen column are skipped and counted, not fatal:
real aligned data has a few. A missing column, an empty file or nothing usable is an error that
names the file and the columns it does have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tokmap_ui.errors import InputFileError
from tokmap_ui.io.files import read_text_lines


@dataclass(frozen=True)
class ParallelText:
    """Aligned segments of two languages: ``src[i]`` translates ``tgt[i]``."""

    path: str
    src_col: str
    tgt_col: str
    src: tuple[str, ...]
    tgt: tuple[str, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.src)


def load_parallel_tsv(path: str | Path, src_col: str, tgt_col: str) -> ParallelText:
    """Read the ``src_col`` and ``tgt_col`` columns of a parallel TSV with a header row.

    Raises:
        InputFileError: missing file, no header, a column not in the header (the message lists
            the columns there are), or no row with both cells filled.
    """
    lines = read_text_lines(path, "parallel TSV")
    header = lines[0].split("\t") if lines else []
    if len(header) < 2:
        raise InputFileError(path, "has no tab-separated header row", line=1,
                             fix="start the file with a header naming the language columns, e.g. 'id\\ten\\tnl'")
    columns = [name.strip() for name in header]
    for col, flag in ((src_col, "--src-col"), (tgt_col, "--tgt-col")):
        if col not in columns:
            raise InputFileError(path, f"has no column '{col}' (its columns are: {', '.join(columns)})",
                                 line=1, field=col, fix=f"pass {flag} with one of those columns")
    if src_col == tgt_col:
        raise InputFileError(path, f"source and target column are both '{src_col}'", field=src_col,
                             fix="choose two different language columns")
    i_src, i_tgt = columns.index(src_col), columns.index(tgt_col)
    need = max(i_src, i_tgt) + 1
    src: list[str] = []
    tgt: list[str] = []
    skipped = {"short_row": 0, "empty_cell": 0}
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) < need:
            skipped["short_row"] += 1
            continue
        a, b = cells[i_src].strip(), cells[i_tgt].strip()
        if not a or not b:
            skipped["empty_cell"] += 1
            continue
        src.append(a)
        tgt.append(b)
    if not src:
        raise InputFileError(path, f"has no row with both '{src_col}' and '{tgt_col}' filled",
                             fix="check the file is tab-separated with one segment pair a row")
    return ParallelText(str(path), src_col, tgt_col, tuple(src), tuple(tgt),
                        {k: v for k, v in skipped.items() if v})
