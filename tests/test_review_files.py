"""Review files (issue 8): sources cells, JSON/CSV/TSV export -> import round trips, row-level errors,
stale rows, the queue file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tokmap_ui.errors import InputFileError, TokenMapError
from tokmap_ui.io.review_files import (TABLE_COLUMNS, ReviewImportError, export_review, export_review_queue,
                                       format_sources, import_review, parse_sources)
from tokmap_ui.io.review_workspace import open_reviewed_map, register_map_file
from tokmap_ui.io.tokenmaps import load_token_map, save_token_map
from tokmap_ui.mapping import MapEntry, TokenMap
from tokmap_ui.mapping.review_queue import QueueFilter, review_queue
from tokmap_ui.store import Store
from tests.test_review import make_base

# Target tokens a spreadsheet round trip must survive: separators, quotes, escapes, whitespace, newlines.
ODD_TOKENS = {0: "a,b", 1: 'say "hi"', 2: "tab\there", 3: "line\nbreak", 4: " lead", 5: "pipe|colon:", 6: "back\\slash",
              7: "", 8: "=1+1", 9: "ünï😀", 10: "cr\rhere"}
SOURCE_TOKENS = [f"s{i}" for i in range(25)] + ["k|t", "a:b", "x\\y", "new\nline", "tab\t"]


def odd_base() -> TokenMap:
    base = make_base()
    return base.with_entries([MapEntry(t, token, base.entries[t].sources, base.entries[t].method,
                                       base.entries[t].evidence) for t, token in ODD_TOKENS.items()])


def reviewed_workspace(tmp_path: Path, name: str = "m", base: TokenMap | None = None):
    """A store with a registered map and varied decisions by two reviewers; returns (store, reviewed)."""
    store = Store.open(tmp_path / "ws")
    file = save_token_map(base or odd_base(), tmp_path / f"{name}.json")
    rm = open_reviewed_map(store, register_map_file(store, file, "demo", name=name).id)
    rm.approve(1, "ana")
    rm.edit(2, "ben", [(25, 0.1), (26, 1 / 3), (27, 1e-7)], comment='multi\nline, "quoted"')
    rm.reject(3, "ana", comment="false friend")
    rm.flag(5, "ben")
    rm.change(6, "ana", comment="check \\ this | : ")
    rm.edit(7, "ana", [])  # edited to unmapped
    rm.approve(10, "ben")
    rm.reject(10, "ana")  # approved then rejected: the pinned sources stay
    return store, rm


def rows_of(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    text = path.read_bytes().decode("utf-8")  # not read_text: universal newlines would turn "\r" into "\n"
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


# ---------------------------------------------------------------------------- sources cells
def test_sources_cells_round_trip_weird_tokens_and_exact_weights():
    sources = [(25, 0.1), (26, 1 / 3), (27, 1e-7), (28, 2.0), (29, 0.0), (3, 123456.789)]
    cell = format_sources(sources, SOURCE_TOKENS)
    assert cell.startswith("25:k\\|t:0.1|26:a\\:b:0.3333333333333333|27:x\\\\y:1e-07|28:new\\nline:2.0")
    assert parse_sources(cell) == [(s, SOURCE_TOKENS[s], w) for s, w in sources]
    assert format_sources(sources) .startswith("25::0.1|")
    assert parse_sources(" 5 : 0.5 | 6") == [(5, None, 0.5), (6, None, 1.0)]
    assert parse_sources("") == []
    for bad, reason in (("x:1", "source id"), ("5:kat:y", "weight"), ("5:a:b:1", "too many"), ("5:a\\q:1", "escape"),
                        ("5:a\\", "backslash")):
        with pytest.raises(ValueError, match=reason):
            parse_sources(bad)


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.json", "d.json.gz"])
def test_export_then_import_into_the_same_map_changes_nothing(tmp_path, name):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        first = export_review(rm, tmp_path / name, SOURCE_TOKENS)
        before = rm.last_event_id
        report = import_review(rm, first, "carl", source_tokens=SOURCE_TOKENS)
        assert (report.rows, report.changed, report.unchanged, report.errors) == (40, [], 40, [])
        assert rm.last_event_id == before  # nothing written
        again = export_review(rm, tmp_path / f"again-{name}", SOURCE_TOKENS)
        assert again.read_bytes() == first.read_bytes()


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.json"])
def test_export_then_import_into_a_fresh_map_gives_the_same_reviewed_map(tmp_path, name):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        exported = export_review(rm, tmp_path / name, SOURCE_TOKENS)
        fresh = open_reviewed_map(store, register_map_file(store, tmp_path / "m.json", "other").id)
        with pytest.raises(ReviewImportError, match="changed since this file was exported"):
            import_review(fresh, exported, "carl")  # versions belong to the other map
        report = import_review(fresh, exported, "carl", ignore_versions=True, source_tokens=SOURCE_TOKENS)
        assert sorted(report.changed) == sorted(rm.decisions()) and report.applied
        assert fresh.reviewed_token_map() == rm.reviewed_token_map()
        assert {t: d.by for t, d in fresh.decisions().items()} == {t: d.by for t, d in rm.decisions().items()}
        assert {e.reviewer for e in fresh.history()} == {"carl"} and len({e.batch for e in fresh.history()}) == 1
        re_exported = export_review(fresh, tmp_path / f"fresh-{name}", SOURCE_TOKENS)
        if name.endswith(".json"):
            a, b = (json.loads(p.read_text()) for p in (exported, re_exported))
            a["params"]["review"].pop("versions"), b["params"]["review"].pop("versions")
            a["params"]["review"].pop("map"), b["params"]["review"].pop("map")
            assert a == b
        else:
            sep = "\t" if name.endswith(".tsv") else ","
            strip = lambda rows: [{k: v for k, v in r.items() if k != "version"} for r in rows]  # noqa: E731
            assert strip(rows_of(re_exported, sep)) == strip(rows_of(exported, sep))


def test_json_export_is_a_token_map_file_with_review_fields(tmp_path):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        loaded = load_token_map(export_review(rm, tmp_path / "d.json"))
        assert loaded.entries == rm.reviewed_token_map().entries
        assert loaded.entries[3].status == "rejected" and loaded.entries[3].comment == "false friend"
        assert loaded.params["review"]["reviewers"]["2"] == "ben" and loaded.params["review"]["versions"]["10"] == 2
        assert loaded.stats["by_status"] == {"approved": 1, "auto": 34, "edited": 2, "flagged": 1, "rejected": 2}


def test_an_edited_spreadsheet_applies_only_the_edited_rows_as_one_undoable_batch(tmp_path):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        path = export_review(rm, tmp_path / "d.csv", SOURCE_TOKENS)
        rows = rows_of(path)
        rows[11]["status"] = "approved"
        rows[12]["sources"] = "3:s3:0.5|4::0.5"
        rows[13]["comment"] = "nice"
        rows[13]["reviewer"] = "dora"
        rows[14]["status"] = "Flagged"
        rows[15]["status"] = ""  # empty = auto; it is auto already: unchanged
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
        path.write_bytes(buffer.getvalue().encode("utf-8"))
        before = rm.reviewed_token_map()
        report = import_review(rm, path, "carl", source_tokens=SOURCE_TOKENS)
        assert report.changed == [11, 12, 13, 14] and report.unchanged == 36
        assert rm.entry(11).status == "approved" and rm.entry(12).sources == ((3, 0.5), (4, 0.5))
        assert rm.entry(12).status == "edited" and rm.decision(13).by == "dora" and rm.entry(14).status == "flagged"
        assert [e.target_id for e in rm.undo("carl")] == [11, 12, 13, 14]
        assert rm.reviewed_token_map() == before


# ---------------------------------------------------------------------------- refusals
def test_row_errors_name_row_column_and_fix_and_nothing_is_written(tmp_path):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        rm_other = open_reviewed_map(store, rm.map_id)
        path = export_review(rm, tmp_path / "d.csv", SOURCE_TOKENS)
        rm_other.flag(20, "ben")  # after the export
        lines = path.read_bytes().decode("utf-8").split("\n")
        header = lines[0]
        bad = {
            "x,,,approved,,,": ("target_id", "is not a target id"),
            "99,,,approved,,,": ("target_id", "outside the target vocabulary"),
            "11,▁w12,,approved,,,": ("token", "the row says '▁w12'"),
            "12,,3:s3:x,approved,,,": ("sources", "does not end with a weight"),
            "13,,77:1.0,approved,,,": ("sources", "outside the source vocabulary"),
            "14,,3:1.0|3:1.0,approved,,,": ("sources", "listed twice"),
            "15,,3:-1,approved,,,": ("sources", "not a finite number"),
            "16,,3:wrong:1.0,approved,,,": ("sources", "source 3 is 's3'"),
            "17,,,aproved,,,": ("status", "unknown status 'aproved'"),
            "18,,,approved,,,v2": ("version", "not a version number"),
            "20,,,approved,,,0": ("version", "ben did \"flag\""),
            "11,,,flagged,,,": ("target_id", "also appears in row"),
        }
        good = "19,,,approved,,,0"
        path.write_text("\n".join([header, good, *bad]) + "\n", encoding="utf-8")
        before = store.last_event_id(rm.map_id)
        with pytest.raises(ReviewImportError) as info:
            import_review(rm, path, "carl", source_tokens=SOURCE_TOKENS)
        errors = info.value.report.errors
        assert [(e.row, e.column) for e in errors] == [(n, col) for n, (col, _) in enumerate(bad.values(), start=3)]
        for error, (_, text) in zip(errors, bad.values()):
            assert text in error.problem and error.fix
        assert "row 3, column 'target_id'" in str(info.value) and "Fix:" in str(info.value)
        assert store.last_event_id(rm.map_id) == before
        report = import_review(rm, path, "carl", source_tokens=SOURCE_TOKENS, skip_bad_rows=True)
        assert report.changed == [19] and len(report.errors) == len(bad) and rm.entry(19).status == "approved"
        assert "12 rows with errors" in report.to_text()


def test_stale_rows_can_be_forced_and_dry_run_writes_nothing(tmp_path):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        path = export_review(rm, tmp_path / "d.tsv")
        other = open_reviewed_map(store, rm.map_id)
        other.edit(1, "ben", [(9, 1.0)])
        text = path.read_bytes().decode("utf-8").replace("\tapproved\t\tana\t1\n", "\tapproved\tkeep\tana\t1\n")
        path.write_bytes(text.encode("utf-8"))
        with pytest.raises(ReviewImportError, match="ben did \"edit\""):
            import_review(rm, path, "ana")
        report = import_review(rm, path, "ana", ignore_versions=True, dry_run=True)
        assert report.changed == [1] and not report.applied and rm.entry(1).status == "edited"
        import_review(rm, path, "ana", ignore_versions=True)
        assert (rm.entry(1).status, rm.entry(1).comment) == ("approved", "keep")


def test_unreadable_files_and_other_vocabularies_are_refused(tmp_path):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        for name, data, message in (("d.xlsx", b"x", "unknown review-file type"), ("e.csv", b"", "is empty"),
                                    ("l.csv", "target_id\n1\xe9".encode("latin-1"), "not UTF-8"),
                                    ("n.csv", b"token,status\nx,approved\n", "no 'target_id' column")):
            (tmp_path / name).write_bytes(data)
            with pytest.raises(InputFileError, match=message):
                import_review(rm, tmp_path / name, "carl")
        other = make_base(n=41)
        save_token_map(other, tmp_path / "o.json")
        with pytest.raises(TokenMapError, match="another target vocabulary"):
            import_review(rm, tmp_path / "o.json", "carl")
        (tmp_path / "w.csv").write_text("target_id,status,notes\n21,flagged,hello\n")
        report = import_review(rm, tmp_path / "w.csv", "carl")
        assert report.changed == [21] and "notes" in report.warnings[0]


# ---------------------------------------------------------------------------- queue file
def test_queue_file_is_ordered_and_can_be_filled_in_and_imported(tmp_path):
    store, rm = reviewed_workspace(tmp_path)
    with store:
        items = review_queue(rm, QueueFilter(status=("auto",)), limit=5)
        path = export_review_queue(rm, items, tmp_path / "q.csv", SOURCE_TOKENS)
        rows = rows_of(path)
        assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"]
        assert [int(r["target_id"]) for r in rows] == [i.target_id for i in items]
        assert list(rows[0])[:7] == ["rank", "priority", "frequency", "uncertainty", "method", "dictionary_backed",
                                     "conflict"]
        text = path.read_bytes().decode("utf-8").split("\n")
        text[1] = text[1].replace(",auto,", ",approved,")
        path.write_bytes("\n".join(text).encode("utf-8"))
        report = import_review(rm, path, "ana")
        assert report.changed == [items[0].target_id] and not report.warnings
        with pytest.raises(InputFileError, match="a review queue is a table"):
            export_review_queue(rm, items, tmp_path / "q.json")


# ---------------------------------------------------------------------------- with real tokenizers
def test_cli_with_tokenizers_ranks_by_text_frequency_and_checks_source_tokens(tmp_path, monkeypatch, capsys):
    import tokmap_ui.cli as cli_module
    from tests.tiny import corpus_lines, make_bytelevel_bpe
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.mapping.tokenmap import VocabRef
    from tokmap_ui.vocab import Vocabulary

    if "tokmap_ui.cli.review" not in cli_module.COMMAND_MODULES:
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", cli_module.COMMAND_MODULES + ("tokmap_ui.cli.review",))
    folder = make_bytelevel_bpe(tmp_path / "tok", vocab_size=300)
    vocab = Vocabulary.from_tokenizer(load_tokenizer(folder))
    ref = VocabRef.of(vocab)
    identity = TokenMap("identical", ref, ref, {}, tuple(
        MapEntry(i, token, ((i, 1.0),), "identical" if i % 2 else "neighbour") for i, token in enumerate(vocab.tokens)))
    save_token_map(identity, tmp_path / "id.json")
    (tmp_path / "text.txt").write_text("\n".join(corpus_lines(50)) + "\n")

    def run(*argv):
        code = cli_module.main(["review", *map(str, argv)])
        return code, capsys.readouterr()

    assert run("register", tmp_path / "id.json", "--project", "p", "--source-tokenizer", folder,
               "--target-tokenizer", folder)[0] == 0
    code, out = run("list", 1, "--text", tmp_path / "text.txt", "--limit", 5, "--json")
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert code == 0 and len(rows) == 5 and all(r["frequency"] > 0 for r in rows)
    assert [r["priority"] for r in rows] == sorted((r["priority"] for r in rows), reverse=True)
    assert run("export", 1, "--out", tmp_path / "d.csv")[0] == 0
    exported = rows_of(tmp_path / "d.csv")
    the = next(r for r in exported if r["token"] == "Ġthe")
    assert the["sources"] == f"{the['target_id']}:Ġthe:1.0"
    code, out = run("import", 1, tmp_path / "d.csv", "--reviewer", "ana")
    assert code == 0 and "0 changed entries" in out.out
    text = (tmp_path / "d.csv").read_bytes().decode("utf-8").replace(f"{the['target_id']}:Ġthe:1.0,auto",
                                                                     f"{the['target_id']}:Ġtha:1.0,approved")
    (tmp_path / "d.csv").write_bytes(text.encode("utf-8"))
    code, out = run("import", 1, tmp_path / "d.csv", "--reviewer", "ana")
    assert code == 2 and "is 'Ġthe' in the source vocabulary, the cell says 'Ġtha'" in out.err
    other = make_bytelevel_bpe(tmp_path / "tok2", vocab_size=280)
    code, out = run("export", 1, "--out", tmp_path / "e.csv", "--source-tokenizer", other)
    assert code == 2 and "is not the map's source tokenizer" in out.err
