"""``review``: linguist review of stored token maps from the command line (issue 8).

Every UI review action is scriptable, for batch work and tests::

    tokmap review register nl-map.json --project demo          # prints the map id
    tokmap review list 1 --status auto --low-confidence --limit 20
    tokmap review set 1 17 --status approved --reviewer ana
    tokmap review set 1 18 --sources "2345:0.7,998:0.3" --comment "false friend" --reviewer ana
    tokmap review undo 1 --reviewer ana
    tokmap review export 1 --out decisions.csv ; tokmap review import 1 decisions.csv --reviewer ana
    tokmap review progress 1

The workspace is ``$TOKMAP_HOME`` (default ``./workspace``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

STATUSES = ("auto", "approved", "rejected", "flagged", "edited")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "review", help="review a stored token map: list, set, undo, history, export, import, progress",
        description="Linguist review of token maps stored in the workspace ($TOKMAP_HOME): every decision is an "
                    "event in an append-only audit log; stale writes are refused, never lost.")
    sub = p.add_subparsers(dest="review_command", metavar="ACTION", required=True)

    q = sub.add_parser("register", help="store a generated map file for review; prints its map id")
    q.add_argument("map_file", help="token-map .json or .json.gz")
    q.add_argument("--project", required=True, help="project name (created if missing)")
    q.add_argument("--name", help="name of the map in the project (default: the file name)")
    q.add_argument("--source-tokenizer", help="the map's source tokenizer, so exports show source tokens")
    q.add_argument("--target-tokenizer", help="the map's target tokenizer, for --text frequencies")

    q = sub.add_parser("maps", help="list the stored maps of a project (or of every project)")
    q.add_argument("--project", help="project name or id")

    q = sub.add_parser("list", help="the review queue: entries by priority (frequency x uncertainty), filtered")
    q.add_argument("map_id", type=int)
    _queue_flags(q)
    q.add_argument("--offset", type=int, default=0, help="skip this many rows (paging)")
    q.add_argument("--json", action="store_true", help="print JSON lines")

    q = sub.add_parser("set", help="approve, reject, flag, edit sources or comment one entry")
    q.add_argument("map_id", type=int)
    q.add_argument("target_id", type=int)
    q.add_argument("--status", choices=STATUSES, help="new status (auto = back to the generated proposal)")
    q.add_argument("--sources", help='new sources as "id:weight,id:weight" (an edit); "" = unmapped')
    q.add_argument("--comment", help="comment text ('' clears it)")
    q.add_argument("--use-proposal", action="store_true", help="with --status approved: approve the current "
                   "generated proposal rather than the entry's pinned sources (resolves a re-run conflict)")
    q.add_argument("--reviewer", required=True, help="your name, recorded in the audit log")
    q.add_argument("--expected-version", type=int,
                   help="the entry version your change is based on; refused if someone changed it since")

    q = sub.add_parser("undo", help="revert your latest change (a whole import or restore at once)")
    q.add_argument("map_id", type=int)
    q.add_argument("--reviewer", required=True)
    q.add_argument("--skip-superseded", action="store_true",
                   help="if another reviewer changed the entry since, undo your previous change instead")

    q = sub.add_parser("history", help="the audit log of a map or of one entry")
    q.add_argument("map_id", type=int)
    q.add_argument("target_id", type=int, nargs="?")
    q.add_argument("--reviewer", help="only this reviewer's events")
    q.add_argument("--json", action="store_true", help="print JSON lines")

    q = sub.add_parser("restore", help="make every decision what it was just after an event (from `history`)")
    q.add_argument("map_id", type=int)
    q.add_argument("event_id", type=int, help="event id (0 = before any review)")
    q.add_argument("--reviewer", required=True)

    q = sub.add_parser("export", help="write the decisions: .json/.json.gz (token map), .csv/.tsv (spreadsheet)")
    q.add_argument("map_id", type=int)
    q.add_argument("--out", required=True, help="output file; its suffix picks the format")
    q.add_argument("--effective", action="store_true", help="write the map conversion/decoding should use "
                   "(rejected entries replaced as --rejected says) instead of the review file")
    q.add_argument("--rejected", choices=("unmapped", "proposal", "fallback-map"), default="unmapped",
                   help="with --effective: what replaces a rejected entry (default unmapped)")
    q.add_argument("--fallback", help="with --effective: a token-map file whose entries replace rejected ones")
    q.add_argument("--queue", action="store_true", help="write the filtered review queue (.csv/.tsv) instead")
    _queue_flags(q)

    q = sub.add_parser("import", help="apply a review file's changed rows as one batch (all or nothing)")
    q.add_argument("map_id", type=int)
    q.add_argument("file", help=".json, .json.gz, .csv or .tsv written by `review export` (or edited from one)")
    q.add_argument("--reviewer", required=True)
    q.add_argument("--ignore-versions", action="store_true",
                   help="apply rows even if their entry changed since the export (a file from another map)")
    q.add_argument("--skip-bad-rows", action="store_true", help="apply the valid rows even if others have errors")
    q.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    q.add_argument("--source-tokenizer", help="check source tokens against this tokenizer")

    q = sub.add_parser("rerun", help="adopt a re-generated map: keep decisions, flag conflicts")
    q.add_argument("map_id", type=int)
    q.add_argument("map_file", help="the re-generated token-map file (same vocabularies)")
    q.add_argument("--reviewer", default="tokmap-rerun", help="name on the conflict events")

    q = sub.add_parser("progress", help="reviewed/total per status, conflicts, reviewers")
    q.add_argument("map_id", type=int)
    q.add_argument("--as-of", type=int, help="progress as it was just after this event")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_review)


def _queue_flags(q: argparse.ArgumentParser) -> None:
    q.add_argument("--status", nargs="+", choices=STATUSES, help="only these statuses")
    q.add_argument("--method", nargs="+", help="only these methods (dictionary, neighbour, pm-mined, manual, ...)")
    q.add_argument("--search", help="text in the token, comment or a source token, or an exact target id")
    q.add_argument("--low-confidence", action="store_true", help="only entries with uncertainty >= 0.5")
    backed = q.add_mutually_exclusive_group()
    backed.add_argument("--dictionary", dest="dictionary", action="store_true", default=None,
                        help="only dictionary-backed entries")
    backed.add_argument("--no-dictionary", dest="dictionary", action="store_false", help="only the others")
    q.add_argument("--conflicts", action="store_true", help="only entries a re-run put in conflict")
    q.add_argument("--limit", type=int, help="at most this many rows")
    q.add_argument("--text", help="target-language text file: rank by token frequency in it "
                                  "(needs the target tokenizer given at register or --target-tokenizer)")
    q.add_argument("--target-tokenizer", help="target tokenizer for --text")
    q.add_argument("--source-tokenizer", help="source tokenizer, to show and search source tokens")
    q.add_argument("--as-of", type=int, help="show the decisions as they were just after this event (`history`)")


def run_review(args: argparse.Namespace) -> int:
    from tokmap_ui.store import Store

    with Store.open() as store:
        return int(_ACTIONS[args.review_command](store, args) or 0)


def _open(store, map_id: int, as_of: int | None = None):
    from tokmap_ui.io.review_workspace import open_reviewed_map

    return open_reviewed_map(store, map_id, as_of)


def _source_tokens(store, reviewed, spec: str | None, *, remembered: bool = True):
    from tokmap_ui.io.review_workspace import map_tokenizer_paths, vocabulary_tokens

    spec = spec or (map_tokenizer_paths(store, reviewed.map_id)["source_tokenizer"] if remembered else None)
    return None if not spec else vocabulary_tokens(spec, reviewed.record.source, "source")[0]


def _queue(store, reviewed, args: argparse.Namespace, source_tokens=None) -> list:
    from tokmap_ui.io.files import read_text_lines
    from tokmap_ui.io.review_workspace import map_tokenizer_paths, vocabulary_tokens
    from tokmap_ui.mapping.review_queue import QueueFilter, review_queue, token_frequencies

    frequencies = None
    if args.text:
        spec = args.target_tokenizer or map_tokenizer_paths(store, reviewed.map_id)["target_tokenizer"]
        if not spec:
            from tokmap_ui.errors import ConfigError

            raise ConfigError("--text needs the map's target tokenizer. Fix: add --target-tokenizer PATH.")
        _, tokenizer = vocabulary_tokens(spec, reviewed.record.target, "target")
        frequencies = token_frequencies(tokenizer, read_text_lines(args.text, "text file"), len(reviewed))
    filters = QueueFilter(status=tuple(args.status) if args.status else None,
                          method=tuple(args.method) if args.method else None,
                          low_confidence=True if args.low_confidence else None, dictionary_backed=args.dictionary,
                          conflict=True if args.conflicts else None, search=args.search)
    return review_queue(reviewed, filters, frequencies=frequencies, source_tokens=source_tokens,
                        limit=args.limit, offset=getattr(args, "offset", 0))


def _do_register(store, args: argparse.Namespace) -> None:
    from tokmap_ui.io.review_workspace import register_map_file

    record = register_map_file(store, args.map_file, args.project, name=args.name,
                               source_tokenizer=args.source_tokenizer, target_tokenizer=args.target_tokenizer)
    print(f"map {record.id}: '{record.name}' in project {record.project_id} ({record.method}, "
          f"{record.target['vocab_size']} target tokens)")


def _do_maps(store, args: argparse.Namespace) -> None:
    projects = [store.get_project(args.project)] if args.project else store.list_projects()
    for project in projects:
        for record in store.list_token_maps(project):
            print(f"{record.id:>4}  {project.name:<16} {record.name:<24} {record.method:<10} "
                  f"{record.target['name']} -> {record.source['name']}  events {store.last_event_id(record.id)}")


def _do_list(store, args: argparse.Namespace) -> None:
    from tokmap_ui.io.review_files import format_sources

    reviewed = _open(store, args.map_id, args.as_of)
    tokens = _source_tokens(store, reviewed, args.source_tokenizer, remembered=False)
    for item in _queue(store, reviewed, args, tokens):
        e = item.entry
        row = {"rank": item.rank, "target_id": e.target_id, "token": e.target_token, "status": e.status,
               "method": e.method, "sources": format_sources(e.sources, tokens), "comment": e.comment,
               "reviewer": item.reviewer, "version": item.version, "frequency": item.frequency,
               "uncertainty": item.uncertainty, "priority": item.priority, "conflict": item.conflict}
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            flag = " CONFLICT" if item.conflict else ""
            print(f"{item.rank:>5} {e.target_id:>7} {e.target_token!r:<16} {e.status:<8} {e.method:<10} "
                  f"p={item.priority:<8g} {row['sources'] or '-'}{flag}{'  # ' + e.comment if e.comment else ''}")


def _parse_cli_sources(text: str) -> list[tuple[int, float]]:
    from tokmap_ui.errors import ConfigError
    from tokmap_ui.io.review_files import parse_sources

    try:
        return [(sid, weight) for sid, _, weight in parse_sources(text.replace(",", "|"))]
    except ValueError as err:
        raise ConfigError(f"--sources {text!r}: {err}. "
                          "Fix: write id:weight pairs, e.g. \"2345:0.7,998:0.3\".") from None


def _do_set(store, args: argparse.Namespace) -> None:
    reviewed = _open(store, args.map_id)
    sources = None if args.sources is None else _parse_cli_sources(args.sources)
    entry = reviewed.change(args.target_id, args.reviewer, status=args.status, sources=sources, comment=args.comment,
                            use_proposal=args.use_proposal, expected_version=args.expected_version)
    print(_entry_line(reviewed, entry))


def _entry_line(reviewed, entry) -> str:
    from tokmap_ui.io.review_files import format_sources

    return (f"entry {entry.target_id} {entry.target_token!r}: {entry.status}, {entry.method}, "
            f"sources {format_sources(entry.sources) or '-'}, version {reviewed.version(entry.target_id)}"
            + (f", comment {entry.comment!r}" if entry.comment else ""))


def _do_undo(store, args: argparse.Namespace) -> None:
    reviewed = _open(store, args.map_id)
    events = reviewed.undo(args.reviewer, skip_superseded=args.skip_superseded)
    print(f"undid {len(events)} event(s) of {args.reviewer}: " + ", ".join(
        f"#{e.id} {e.action} on {e.target_id}" for e in events[:10]) + (" ..." if len(events) > 10 else ""))
    for target in sorted({e.target_id for e in events})[:10]:
        print("  " + _entry_line(reviewed, reviewed.entry(target)))


def _do_history(store, args: argparse.Namespace) -> None:
    for event in store.map_events(store.get_token_map(args.map_id).id, reviewer=args.reviewer,
                                  target_id=args.target_id):
        if args.json:
            print(json.dumps(_event_dict(event), ensure_ascii=False))
        else:
            ref = f" (reverts #{event.ref_event_id})" if event.action == "undo" else (
                f" (to #{event.ref_event_id})" if event.ref_event_id else "")
            print(f"#{event.id:<6} {event.time}  {event.reviewer:<14} {event.action:<8} entry {event.target_id} "
                  f"v{event.entry_version}{ref}{'  [' + event.batch + ']' if event.batch else ''}")


def _event_dict(event) -> dict[str, Any]:
    return {"id": event.id, "time": event.time, "reviewer": event.reviewer, "action": event.action,
            "target_id": event.target_id, "version": event.entry_version, "before": event.before,
            "after": event.after, "ref_event_id": event.ref_event_id, "batch": event.batch}


def _do_restore(store, args: argparse.Namespace) -> None:
    reviewed = _open(store, args.map_id)
    changed = reviewed.restore(args.event_id, args.reviewer)
    print(f"restored the decisions as of event {args.event_id}: {changed} entries changed "
          f"(undo with `review undo {args.map_id} --reviewer {args.reviewer}`)")


def _do_export(store, args: argparse.Namespace) -> None:
    from tokmap_ui.io.review_files import export_review, export_review_queue
    from tokmap_ui.io.review_workspace import load_effective_map
    from tokmap_ui.io.tokenmaps import save_token_map

    if args.effective:
        token_map = load_effective_map(store, args.map_id, args.rejected, args.fallback, args.as_of)
        path = save_token_map(token_map, args.out)
        review = token_map.params["review"]
        print(f"wrote the effective map of map {args.map_id} to {path} (as of event {review['as_of_event']}; "
              f"rejected entries: {review['rejected']})")
        return
    reviewed = _open(store, args.map_id, args.as_of)
    tokens = _source_tokens(store, reviewed, args.source_tokenizer)
    if args.queue:
        items = _queue(store, reviewed, args, tokens)
        path, what = export_review_queue(reviewed, items, args.out, tokens), f"review queue ({len(items)} rows)"
    else:
        path, what = export_review(reviewed, args.out, tokens), "review decisions"
    print(f"wrote {what} of map {args.map_id} to {path} (as of event {reviewed.last_event_id})")


def _do_import(store, args: argparse.Namespace) -> int:
    from tokmap_ui.io.review_files import import_review

    reviewed = _open(store, args.map_id)
    tokens = _source_tokens(store, reviewed, args.source_tokenizer)
    report = import_review(reviewed, args.file, args.reviewer, source_tokens=tokens,
                           ignore_versions=args.ignore_versions, skip_bad_rows=args.skip_bad_rows,
                           dry_run=args.dry_run)
    print(report.to_text())
    return 2 if report.errors else 0


def _do_rerun(store, args: argparse.Namespace) -> None:
    from tokmap_ui.io.review_workspace import rerun_map

    conflicts = rerun_map(store, args.map_id, args.map_file, args.reviewer)
    print(f"map {args.map_id} now uses {args.map_file}; every decision kept; {len(conflicts)} in conflict"
          + (f": {conflicts[:20]}" if conflicts else ""))


def _do_progress(store, args: argparse.Namespace) -> None:
    from tokmap_ui.mapping.review_queue import review_progress

    progress = review_progress(_open(store, args.map_id, args.as_of))
    if args.json:
        json.dump(progress.to_dict(), sys.stdout, ensure_ascii=False)
        print()
    else:
        print(progress.to_text())


_ACTIONS = {"register": _do_register, "maps": _do_maps, "list": _do_list, "set": _do_set, "undo": _do_undo,
            "history": _do_history, "restore": _do_restore, "export": _do_export, "import": _do_import,
            "rerun": _do_rerun, "progress": _do_progress}
