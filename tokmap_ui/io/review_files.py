"""Review files: export a reviewed map's decisions and import them back (issue 8).

Three shapes, chosen by the file name:

* ``.json`` / ``.json.gz``: the TokenMap file (``tokmap.token-map/1``) with each entry's
  ``status`` and ``comment``; ``params.review`` lists who decided each reviewed entry and
  its version. It stays a valid token-map file.
* ``.csv`` / ``.tsv``: one row per target token for spreadsheets::

      target_id,token,sources,status,comment,reviewer,version
      17,▁kat,2345:kat:0.71|998:cat:0.29,approved,,ana,2

  ``sources`` are ``id:token:weight`` joined by ``|``; the token part is informative (empty
  when the source vocabulary is unknown) and ``\\``, ``|``, ``:``, tab and newline in it are
  backslash-escaped. ``id:weight`` and a bare ``id`` (weight 1) are accepted on import.
* a review *queue* file (:func:`export_review_queue`): the same columns after ``rank``,
  ``priority``, ``frequency``, ``uncertainty``, ``method``, ``dictionary_backed``, ``conflict``
  (informative, ignored on import), so a reviewer can fill in a queue and import it.

Import checks every row (target id, token, sources, status, version) and reports each problem
with its row, column and fix. With no errors the changed rows are applied as one all-or-nothing
batch; with errors nothing is written, unless ``skip_bad_rows`` applies the valid rows.
A row whose ``version`` is older than the entry's (someone changed it since the export) is an
error that names the other reviewer's change. Exporting and importing the file into a map with
the same proposals gives the same reviewed entries and the same file.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
from pathlib import Path
from typing import Any, Sequence

from tokmap_ui.errors import InputFileError, StaleEditError, TokenMapError
from tokmap_ui.io.files import atomic_write_bytes, atomic_write_text, decode_text, require_file, sha256_file
from tokmap_ui.io.tokenmaps import token_map_to_json
from tokmap_ui.mapping.review import ReviewedMap
from tokmap_ui.mapping.review_decision import Decision, decision_from_fields, format_sources, parse_sources
from tokmap_ui.mapping.review_queue import QueueItem
from tokmap_ui.mapping.tokenmap import STATUSES, TokenMap
from tokmap_ui.store import ReviewAction

TABLE_COLUMNS = ("target_id", "token", "sources", "status", "comment", "reviewer", "version")
QUEUE_INFO = ("rank", "priority", "frequency", "uncertainty", "method", "dictionary_backed", "conflict")
_INFO = frozenset(QUEUE_INFO)
MAX_REPORTED = 50  # row errors listed in a refusal message (all are in the report)


def file_kind(path: str | Path) -> str:
    """``json``, ``csv`` or ``tsv`` from the file name; anything else is refused."""
    name = Path(path).name.lower()
    for suffix, kind in ((".json", "json"), (".json.gz", "json"), (".csv", "csv"), (".tsv", "tsv")):
        if name.endswith(suffix):
            return kind
    raise InputFileError(path, "has an unknown review-file type", fix="name it .json, .json.gz, .csv or .tsv")


# ---------------------------------------------------------------------------- export
def _row(reviewed: ReviewedMap, target_id: int, source_tokens: Sequence[str] | None) -> list[str]:
    entry, decision = reviewed.entry(target_id), reviewed.decision(target_id)
    return [str(target_id), entry.target_token, format_sources(entry.sources, source_tokens), entry.status,
            entry.comment, decision.by if decision else "", str(reviewed.version(target_id))]


def _table_text(header: Sequence[str], rows: Sequence[Sequence[str]], kind: str) -> str:
    buffer, delimiter = io.StringIO(), "\t" if kind == "tsv" else ","
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    # QUOTE_MINIMAL only quotes the "\n" line end: a row holding a bare "\r" is quoted in full.
    quoted = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for row in rows:
        (quoted if any("\r" in cell for cell in row) else writer).writerow(row)
    return buffer.getvalue()


def review_json(reviewed: ReviewedMap) -> TokenMap:
    """The reviewed map with ``params.review``: the map's name and who decided each entry, at which version."""
    current = reviewed.reviewed_token_map()
    decisions = reviewed.decisions()
    review = {"map": reviewed.record.name,
              "reviewers": {str(t): d.by for t, d in sorted(decisions.items())},
              "versions": {str(t): reviewed.version(t) for t in sorted(decisions)}}
    return TokenMap(current.kind, current.target, current.source, {**current.params, "review": review},
                    current.entries)


def export_review(reviewed: ReviewedMap, path: str | Path, source_tokens: Sequence[str] | None = None) -> Path:
    """Write every entry's decision to ``path`` (.json, .json.gz, .csv or .tsv) atomically."""
    path, kind = Path(path), file_kind(path)
    if kind == "json":
        data = token_map_to_json(review_json(reviewed)).encode("utf-8")
        if path.name.endswith(".gz"):
            data = gzip.compress(data, compresslevel=6, mtime=0)
        atomic_write_bytes(path, data)
    else:
        rows = [_row(reviewed, t, source_tokens) for t in range(len(reviewed))]
        atomic_write_text(path, _table_text(TABLE_COLUMNS, rows, kind))
    return path


def export_review_queue(reviewed: ReviewedMap, items: Sequence[QueueItem], path: str | Path,
                        source_tokens: Sequence[str] | None = None) -> Path:
    """Write a review queue (see :func:`~tokmap_ui.mapping.review_queue.review_queue`) as .csv or .tsv."""
    path, kind = Path(path), file_kind(path)
    if kind == "json":
        raise InputFileError(path, "a review queue is a table", fix="name the queue file .csv or .tsv")
    rows = [[str(i.rank), repr(i.priority), str(i.frequency), repr(i.uncertainty), i.entry.method,
             "yes" if i.dictionary_backed else "no", json.dumps(i.conflict) if i.conflict else "",
             *_row(reviewed, i.target_id, source_tokens)] for i in items]
    atomic_write_text(path, _table_text(QUEUE_INFO + TABLE_COLUMNS, rows, kind))
    return path


# ---------------------------------------------------------------------------- import
@dataclasses.dataclass(frozen=True)
class RowError:
    """One problem in an imported file: where (row as a spreadsheet numbers it, column) and the fix."""

    row: int
    column: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        return f"row {self.row}, column '{self.column}': {self.problem}" + (f". Fix: {self.fix}" if self.fix else "")


@dataclasses.dataclass
class ImportReport:
    """What an import did: rows read, entries changed (written or, on refusal, not), unchanged, errors."""

    path: Path
    rows: int = 0
    changed: list[int] = dataclasses.field(default_factory=list)
    unchanged: int = 0
    errors: list[RowError] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    applied: bool = False

    def to_text(self) -> str:
        verb = "imported" if self.applied else "would import"
        lines = [f"{self.path}: {self.rows} rows, {verb} {len(self.changed)} changed entries, "
                 f"{self.unchanged} unchanged, {len(self.errors)} rows with errors"]
        lines += [f"  warning: {w}" for w in self.warnings] + [f"  {e}" for e in self.errors[:MAX_REPORTED]]
        if len(self.errors) > MAX_REPORTED:
            lines.append(f"  ... and {len(self.errors) - MAX_REPORTED} more")
        return "\n".join(lines)


class ReviewImportError(InputFileError):
    """An import refused because of row errors; ``report`` has every error."""

    def __init__(self, report: ImportReport):
        self.report = report
        shown = "; ".join(str(e) for e in report.errors[:MAX_REPORTED])
        more = f"; ... and {len(report.errors) - MAX_REPORTED} more" if len(report.errors) > MAX_REPORTED else ""
        super().__init__(report.path, f"{len(report.errors)} rows have errors, nothing was imported: {shown}{more}",
                         fix="correct those rows (or import with skip-bad-rows to apply only the valid ones)")


def _read_table(path: Path, kind: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    data = require_file(path, "review file").read_bytes()
    try:  # not decode_text: it folds a "\r" inside a quoted token into "\n"
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = decode_text(data, path)  # raises the explanatory error
    if "\x00" in text[:8192]:
        raise InputFileError(path, "is a binary file, not text", fix="give a UTF-8 .csv or .tsv file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",")
    try:
        header = [h.strip() for h in next(reader)]
        rows = [(number, dict(zip(header, cells))) for number, cells in enumerate(reader, start=2)
                if any(cell.strip() for cell in cells)]
    except StopIteration:
        raise InputFileError(path, "has no header row",
                             fix=f"start with the header {','.join(TABLE_COLUMNS)}") from None
    except csv.Error as err:
        raise InputFileError(path, f"is not a valid {kind.upper()} file ({err})", line=reader.line_num,
                             fix="save it again from the spreadsheet as UTF-8 " + kind.upper()) from None
    return header, rows


def _read_json(path: Path, reviewed: ReviewedMap) -> tuple[list[str], list[tuple[int, dict[str, Any]]], dict]:
    raw = require_file(path, "review file").read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenMapError(path, f"is not UTF-8 JSON ({err})",
                            fix="give a .json file written by `review export`") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise TokenMapError(path, "is not a token-map file (no 'entries' list)", field="entries",
                            fix="give a .json file written by `review export`")
    for side in ("target", "source"):
        want, got = getattr(reviewed.base, side), data.get(side) or {}
        if (got.get("vocab_size"), got.get("sha256")) != (want.vocab_size, want.sha256):
            raise TokenMapError(path, f"was made for another {side} vocabulary ('{got.get('name')}', "
                                f"{got.get('vocab_size')} tokens) than map {reviewed.map_id} ('{want.name}', "
                                f"{want.vocab_size} tokens)", field=side,
                                fix="import it into the map it was exported from")
    review = (data.get("params") or {}).get("review") or {}
    rows = []
    for index, item in enumerate(data["entries"]):
        if not isinstance(item, dict):
            item = {"target_id": f"entry {index} is not an object"}
        tid = str(item.get("target_id"))
        rows.append((index, {"target_id": item.get("target_id"), "token": item.get("target_token", ""),
                             "sources": item.get("sources", []), "status": item.get("status", "auto"),
                             "comment": item.get("comment", ""),
                             "reviewer": (review.get("reviewers") or {}).get(tid, ""),
                             "version": (review.get("versions") or {}).get(tid, 0 if "versions" in review else "")}))
    return list(TABLE_COLUMNS), rows, review


def import_review(reviewed: ReviewedMap, path: str | Path, reviewer: str, *,
                  source_tokens: Sequence[str] | None = None, ignore_versions: bool = False,
                  skip_bad_rows: bool = False, dry_run: bool = False) -> ImportReport:
    """Check a review file against the map and apply its changed rows as one batch.

    Args:
        reviewer: who imports (the events' reviewer); a row's ``reviewer`` cell, when filled, is
            kept as who decided.
        source_tokens: the source vocabulary's strings, to check the token part of sources.
        ignore_versions: apply rows even if the entry changed since the export (a file from another map).
        skip_bad_rows: apply the valid rows even when others have errors.
        dry_run: check and report only.

    Raises:
        ReviewImportError: rows have errors and ``skip_bad_rows`` is off (nothing written).
        StaleEditError: another reviewer wrote between the check and the write (nothing written).
    """
    path = Path(path)
    kind = file_kind(path)
    report = ImportReport(path)
    if kind == "json":
        header, rows, _ = _read_json(path, reviewed)
    else:
        header, rows = _read_table(path, kind)
    if "target_id" not in header:
        raise InputFileError(path, "has no 'target_id' column", fix=f"use the header {','.join(TABLE_COLUMNS)}")
    unknown = [h for h in header if h not in TABLE_COLUMNS and h not in _INFO]
    if unknown:
        report.warnings.append(f"columns {unknown} are not review columns and were ignored")
    reviewed.refresh()
    report.rows = len(rows)
    seen: dict[int, int] = {}
    changes: list[tuple[int, ReviewAction, Decision | None]] = []
    for number, row in rows:
        outcome = _check_row(reviewed, number, row, seen, source_tokens, ignore_versions, reviewer.strip(), kind)
        if isinstance(outcome, RowError):
            report.errors.append(outcome)
        elif outcome is None:
            report.unchanged += 1
        else:
            changes.append(outcome)
            report.changed.append(outcome[0])
    if report.errors and not skip_bad_rows:
        raise ReviewImportError(report)
    if dry_run:
        return report
    batch = f"import-{sha256_file(path)[:12]}-{reviewed.last_event_id}"
    try:
        reviewed.apply_decisions(reviewer, changes, batch=batch)
    except StaleEditError as err:
        raise StaleEditError(f"{path}: nothing was imported because another reviewer wrote while it was "
                             f"being checked ({err}). Fix: import the file again.") from None
    report.applied = True
    return report


def _check_row(reviewed: ReviewedMap, number: int, row: dict[str, Any], seen: dict[int, int],
               source_tokens: Sequence[str] | None, ignore_versions: bool, importer: str, kind: str):
    """A row's change ``(target_id, IMPORT, decision)``, None if unchanged, or a RowError."""
    raw_id = row.get("target_id")
    try:
        target_id = int(str(raw_id).strip())
    except ValueError:
        return RowError(number, "target_id", f"{raw_id!r} is not a target id", "write the token's id as a whole number")
    if not 0 <= target_id < len(reviewed):
        return RowError(number, "target_id", f"{target_id} is outside the target vocabulary "
                        f"(ids 0..{len(reviewed) - 1})", "use the ids of the exported file")
    if target_id in seen:
        return RowError(number, "target_id", f"target {target_id} also appears in row {seen[target_id]}",
                        "keep one row per target token")
    seen[target_id] = number
    current = reviewed.entry(target_id)
    token = row.get("token")
    if token not in (None, "") and token != current.target_token:
        return RowError(number, "token", f"target {target_id} is {current.target_token!r} in the map, the row says "
                        f"{token!r}", "check that the rows were not shifted; restore the id or the token")
    sources = current.sources
    if row.get("sources") is not None:
        sources, problem = _row_sources(row["sources"], reviewed.base.source.vocab_size, source_tokens, kind)
        if problem:
            return RowError(number, "sources", problem,
                            "write sources as id:token:weight joined by '|', e.g. 5:kat:0.7")
    status = current.status
    if row.get("status") is not None:
        status = str(row["status"]).strip().lower() or "auto"
        if status not in STATUSES:
            return RowError(number, "status", f"unknown status {row['status']!r}",
                            f"use one of {', '.join(sorted(STATUSES))}")
    comment = current.comment if row.get("comment") is None else str(row["comment"])
    if (sources, status, comment) == (current.sources, current.status, current.comment):
        return None
    version = str(row.get("version") if row.get("version") is not None else "").strip()
    if version and not ignore_versions:
        if not version.isdigit():
            return RowError(number, "version", f"{version!r} is not a version number", "leave the exported value")
        if int(version) != reviewed.version(target_id):
            state = reviewed.state(target_id)
            last = reviewed.history(target_id)[-1] if state else None
            who = last.describe() if last else "the entry was reset"
            return RowError(number, "version", f"target {target_id} changed since this file was exported (file version "
                            f"{version}, now {reviewed.version(target_id)}: {who})",
                            "export again and redo this row, or clear its version cell to overwrite that change")
    by = str(row.get("reviewer") or "").strip() or importer
    decision = decision_from_fields(reviewed.base.entries[target_id], status, sources, comment, by)
    return target_id, ReviewAction.IMPORT, decision


def _row_sources(cell: Any, size: int, source_tokens: Sequence[str] | None, kind: str):
    """``(sources, problem)`` for a sources cell (text) or a JSON ``[[id, weight], ...]`` list."""
    if kind == "json":
        if not isinstance(cell, list) or not all(isinstance(p, list) and len(p) == 2 for p in cell):
            return (), f"{cell!r} is not a list of [source_id, weight] pairs"
        parsed = [(p[0], None, p[1]) for p in cell]
        if not all(type(s) is int and type(w) in (int, float) for s, _, w in parsed):
            return (), f"{cell!r} has a non-number id or weight"
    else:
        try:
            parsed = parse_sources(str(cell))
        except ValueError as err:
            return (), str(err)
    out, seen = [], set()
    for sid, token, weight in parsed:
        if not 0 <= sid < size:
            return (), f"source id {sid} is outside the source vocabulary (size {size})"
        if not 0.0 <= float(weight) < float("inf"):
            return (), f"weight {weight} for source {sid} is not a finite number ≥ 0"
        if sid in seen:
            return (), f"source id {sid} is listed twice"
        if token and source_tokens is not None and sid < len(source_tokens) and source_tokens[sid] != token:
            return (), f"source {sid} is {source_tokens[sid]!r} in the source vocabulary, the cell says {token!r}"
        seen.add(sid)
        out.append((sid, float(weight)))
    return tuple(out), None
