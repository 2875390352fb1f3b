"""Reading bilingual dictionary files into :class:`~tokmap_ui.dictionary.Dictionary` objects.

Formats (detected from the content; the suffix only decides JSON vs text):

* TSV/CSV with a header. Word columns are named by language code (``en  nl  source``,
  ``fy  nl  en  count``; ``src=``/``tgt=`` pick two, default the first two, and naming one side
  pairs it with the first other language column) or ``src``/``tgt``
  (also ``source``/``target``, ``word``/``translation``). A ``weight``/``count``/``freq``/``score``
  column becomes the pair weight; other columns (``source``, ``kind``, ...) are ignored.
* Headerless TSV/CSV: the first two columns. Whether line 1 is a header is guessed (every cell a
  language code or a known column name); ``header=True/False`` overrides the guess.
* MUSE-style pairs: ``word translation``, separated by spaces, one pair per line.
* JSON: ``[{"src": .., "tgt": .., "weight": ..}]`` (or language codes as keys), ``[["kat", "cat"]]``,
  ``{"kat": ["cat", "puss"]}``, ``{"kat": "cat"}`` or ``{"kat": {"cat": 0.8, "puss": 0.2}}``
  (:mod:`tokmap_ui.io.dictionary_json`).

Text is strict UTF-8 (a BOM and CRLF are fine); empty, binary, UTF-16 and Latin-1 files are
refused with a fix (:mod:`tokmap_ui.io.files`). A few malformed lines are skipped and listed in
``Dictionary.rejected``; when more than half the lines are bad, or no pair is left, loading fails.
Languages come from the header, else from ``src=``/``tgt=``, else from a file name such as
``en-nl.txt``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tokmap_ui.dictionary import (EXTRA_NAMES, SRC_NAMES, TGT_NAMES, WEIGHT_NAMES, Dictionary,
                                  DictionaryNormalisation, DictionaryReport, RejectedLine, WordPair,
                                  inspect_dictionary, is_language_code, normalise_pairs, parse_weight)
from tokmap_ui.errors import DictionaryError, InputFileError, UnsafeFileError
from tokmap_ui.io.dictionary_json import JSON_FIX, parse_json_dictionary
from tokmap_ui.io.files import read_text, read_text_lines, require_file

_FILE_LANGS = re.compile(r"(?:^|[^a-z])([a-z]{2,3})[-_]([a-z]{2,3})(?=[^a-z]|$)")
_JSON_SUFFIXES = {".json"}
_TEXT_SUFFIXES = {".tsv", ".tab", ".csv", ".txt"}
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", None: "space"}


def load_dictionary(path: str | Path, *, src: str | None = None, tgt: str | None = None,
                    normalisation: DictionaryNormalisation = DictionaryNormalisation(),
                    header: bool | None = None) -> Dictionary:
    """Read a bilingual dictionary file (see the module docstring for the formats).

    Args:
        path: the dictionary file.
        src, tgt: with a header, the columns (or JSON keys) to read as source and target; without
            one, just the language labels.
        normalisation: how words are cleaned (NFKC, whitespace, duplicates... see
            :class:`DictionaryNormalisation`).
        header: force the first line of a text file to be read as a header (True) or as data
            (False); None guesses.

    Raises:
        DictionaryError: naming the file, line or field, and the fix.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.tsv"
        >>> _ = p.write_text("nl\\ten\\nkat\\tcat\\naltĳd\\talways\\n", encoding="utf-8")
        >>> d = load_dictionary(p)
        >>> d.src_lang, d.tgt_lang, [(x.src, x.tgt) for x in d.pairs]
        ('nl', 'en', [('kat', 'cat'), ('altijd', 'always')])
    """
    path = Path(path)
    try:
        require_file(path, "dictionary file")
        if _looks_like_json(path):
            parsed = parse_json_dictionary(read_text(path, "dictionary file"), path, src, tgt)
            raw = _Raw(parsed.pairs, [None] * len(parsed.pairs), [], parsed.src_lang, parsed.tgt_lang,
                       entries=len(parsed.pairs), unit="JSON pairs", fix=JSON_FIX)
        else:
            raw = _parse_text(read_text_lines(path, "dictionary file"), path, src, tgt, header)
    except (DictionaryError, UnsafeFileError):
        raise
    except InputFileError as err:  # same message, but callers can catch DictionaryError
        raise DictionaryError(err.path, err.problem, line=err.line, field=err.field, fix=err.fix) from None
    pairs, duplicates, empties = normalise_pairs(raw.pairs, normalisation, raw.lines)
    rejected = sorted(raw.rejected + empties, key=lambda r: (r.line is None, r.line or 0))
    _check_enough(path, raw, len(pairs), rejected)
    guess = _languages_from_name(path.name)
    src_lang = raw.src_lang or (guess[0] if not raw.tgt_lang else None)
    tgt_lang = raw.tgt_lang or (guess[1] if not raw.src_lang else None)
    return Dictionary(tuple(pairs), src_lang, tgt_lang, path.name, tuple(rejected), duplicates)


def inspect_dictionary_file(path: str | Path, *, src: str | None = None,
                            tgt: str | None = None) -> DictionaryReport:
    """Load ``path`` with default normalisation and summarise it (``.to_dict()``, ``.to_text()``)."""
    return inspect_dictionary(load_dictionary(path, src=src, tgt=tgt))


# --------------------------------------------------------------------------- shared

@dataclass
class _Raw:
    """Pairs as read, before normalisation, with their line numbers (None for JSON)."""

    pairs: list[WordPair] = field(default_factory=list)
    lines: list[int | None] = field(default_factory=list)
    rejected: list[RejectedLine] = field(default_factory=list)
    src_lang: str | None = None
    tgt_lang: str | None = None
    entries: int = 0  # non-blank data lines (or JSON pairs): the base of the "more than half" rule
    unit: str = "lines"
    fix: str = "put one pair per line: word<TAB>translation"


def _check_enough(path: Path, raw: _Raw, usable: int, rejected: list[RejectedLine]) -> None:
    if rejected and (usable == 0 or 2 * len(rejected) > raw.entries):
        first = rejected[0]
        problem = (f"{len(rejected):,} of {raw.entries:,} {raw.unit} are unusable"
                   f" (first: {first.reason}{f' {first.text!r}' if first.text else ''})")
        if usable == 0:
            problem = "has no usable pairs: " + problem
        raise DictionaryError(path, problem, line=first.line, fix=raw.fix)
    if usable == 0:
        raise DictionaryError(path, "has no dictionary pairs (only a header, comments or blank lines)",
                              fix=raw.fix)


def _languages_from_name(name: str) -> tuple[str | None, str | None]:
    """'en-nl.0-5000.txt' -> ('en', 'nl'); names without two language codes -> (None, None)."""
    for match in _FILE_LANGS.finditer(name.lower()):
        if is_language_code(match[1]) and is_language_code(match[2]) and match[1] != match[2]:
            return match[1], match[2]
    return None, None


def _looks_like_json(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES or suffix in _TEXT_SUFFIXES:
        return suffix in _JSON_SUFFIXES
    with open(path, "rb") as handle:
        head = handle.read(4096)
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"[", b"{")


# --------------------------------------------------------------------------- text (TSV, CSV, MUSE)

@dataclass
class _Columns:
    src: int
    tgt: int
    weight: int | None
    src_lang: str | None
    tgt_lang: str | None
    width: int = 2  # cells a space-separated line may have (the header's width, if there is one)


def _parse_text(lines: list[str], path: Path, src: str | None, tgt: str | None,
                header: bool | None) -> _Raw:
    # A leading block of '#' lines is a comment; later '#' lines are words ('#' is a token too).
    start = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), None)
    if start is None:
        raise DictionaryError(path, "has no dictionary lines (only blank or comment lines)",
                              fix="put one pair per line: word<TAB>translation")
    delimiter = _detect_delimiter(lines[start:start + 50])
    split = _splitter(delimiter)
    columns = _header_columns(split(lines[start]), path, src, tgt, header)
    raw = _Raw(fix=_fix_for(delimiter))
    if columns is None:
        columns = _Columns(0, 1, None, src, tgt)
    else:
        start += 1
    raw.src_lang, raw.tgt_lang = columns.src_lang, columns.tgt_lang
    need = max(columns.src, columns.tgt) + 1
    what = "word" if delimiter is None else "column"
    for index in range(start, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        raw.entries += 1
        cells = split(line)
        if len(cells) < need:
            found = f"only {len(cells)} {what}{'s' if len(cells) != 1 else ''}"
            sep = _DELIMITER_NAMES[delimiter]
            raw.rejected.append(RejectedLine(index + 1, f"has {found}, needs {need} ({sep}-separated)",
                                             line[:80]))
            continue
        if delimiter is None and len(cells) > columns.width:
            raw.rejected.append(RejectedLine(
                index + 1, f"has {len(cells)} space-separated words, expected {columns.width} (use a tab between"
                           " the two sides of a multi-word entry)", line[:80]))
            continue
        weight = 1.0
        if columns.weight is not None and columns.weight < len(cells) and cells[columns.weight].strip():
            try:
                weight = parse_weight(cells[columns.weight])
            except ValueError:
                raw.rejected.append(RejectedLine(
                    index + 1, f"weight {cells[columns.weight]!r} is not a number >= 0", line[:80]))
                continue
        raw.pairs.append(WordPair(cells[columns.src], cells[columns.tgt], weight))
        raw.lines.append(index + 1)
    return raw


def _detect_delimiter(sample: list[str]) -> str | None:
    """Tab if any sample line has one; comma if line 1 or half the lines have one; else spaces (None).

    MUSE files never contain tabs, so one tab is enough evidence; a one-column line among tab
    lines must not turn the whole file into space-separated words.
    """
    sample = [line for line in sample if line.strip()]
    if any("\t" in line for line in sample):
        return "\t"
    if "," in sample[0] or 2 * sum("," in line for line in sample) >= len(sample):
        return ","
    return None


def _splitter(delimiter: str | None) -> Callable[[str], list[str]]:
    if delimiter is None:
        return str.split
    if delimiter == "\t":
        return lambda line: line.split("\t")

    def split_csv(line: str) -> list[str]:
        # Quotes are rare in word lists: only pay for the csv module when there is one.
        return next(csv.reader([line])) if '"' in line else line.split(",")
    return split_csv


def _fix_for(delimiter: str | None) -> str:
    if delimiter == ",":
        return "put one pair per line: word,translation (quote cells that contain commas)"
    if delimiter is None:
        return ("put one pair per line: word<TAB>translation (or 'word translation' for one-word"
                " entries)")
    return "put one pair per line: word<TAB>translation (a header line such as 'en<TAB>nl' names the languages)"


def _header_columns(cells: list[str], path: Path, src: str | None, tgt: str | None,
                    header: bool | None) -> _Columns | None:
    """Read the first line as a header if it is one; return the chosen columns, else None."""
    if header is False:
        return None
    names = [c.strip() for c in cells]
    lower = [n.lower() for n in names]
    langs = _distinct([i for i, n in enumerate(names) if is_language_code(n)], lower)
    known = set(WEIGHT_NAMES) | EXTRA_NAMES | set(SRC_NAMES) | set(TGT_NAMES)
    named = src is not None and tgt is not None and src.lower() in lower and tgt.lower() in lower
    src_alias = next((lower.index(n) for n in SRC_NAMES if n in lower), None)
    tgt_alias = next((lower.index(n) for n in TGT_NAMES if n in lower), None)
    if len(langs) >= 2 and all(i in langs or lower[i] in known for i in range(len(names))):
        mode = "languages"
        default_src, default_tgt = langs[0], langs[1]
    elif src_alias is not None and tgt_alias is not None and src_alias != tgt_alias:
        mode, default_src, default_tgt = "aliases", src_alias, tgt_alias
    elif named or header:
        mode, default_src, default_tgt = "forced", 0, 1 if len(names) > 1 else 0
    else:
        return None
    available = ", ".join(repr(n) for n in names)

    def pick(arg: str | None, default: int, side: str) -> tuple[int, str | None]:
        if arg is None:
            return default, names[default] if default in langs or mode == "forced" else None
        if arg.lower() in lower:
            i = lower.index(arg.lower())
            return i, names[i] if i in langs else (None if mode == "aliases" else names[i])
        # fy-NL asked, 'fy' present (or the reverse): match on the base language.
        base = [i for i in langs if lower[i].replace("_", "-").split("-")[0]
                == arg.lower().replace("_", "-").split("-")[0]]
        if len(base) == 1:
            return base[0], names[base[0]]
        if mode == "aliases":  # columns are src/tgt: the argument only labels the language
            return default, arg
        raise DictionaryError(path, f"has no column {arg!r} (asked for as {side}); the header has {available}",
                              line=1, fix=f"pass one of those as {side}, or add a column named {arg!r}")

    src_index, src_lang = pick(src, default_src, "src")
    tgt_index, tgt_lang = pick(tgt, default_tgt, "tgt")
    if mode == "languages" and (src is None or tgt is None):
        # A side not asked for is the first language column that the other side did not take.
        if tgt is None:
            tgt_index = next(i for i in langs if i != src_index)
            tgt_lang = names[tgt_index]
        else:
            src_index = next(i for i in langs if i != tgt_index)
            src_lang = names[src_index]
    if src_index == tgt_index:
        raise DictionaryError(path, f"src and tgt both name column {names[src_index]!r}", line=1,
                              fix=f"pick two different columns out of {available}")
    weight = next((lower.index(n) for n in WEIGHT_NAMES if n in lower), None)
    if weight in (src_index, tgt_index):
        weight = None
    return _Columns(src_index, tgt_index, weight, src_lang, tgt_lang, max(2, len(names)))


def _distinct(indices: list[int], lower: list[str]) -> list[int]:
    seen: set[str] = set()
    kept = []
    for i in indices:
        if lower[i] not in seen:
            seen.add(lower[i])
            kept.append(i)
    return kept
