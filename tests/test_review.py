"""Linguist review of token maps (issue 8): decisions, versions, two processes, kill -9, undo, restore,
re-run conflicts, the effective map, the queue, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokmap_ui.errors import StaleEditError, StoreError, TokenMapError
from tokmap_ui.io.review_workspace import open_reviewed_map, register_map_file, rerun_map
from tokmap_ui.io.tokenmaps import load_token_map, save_token_map
from tokmap_ui.mapping import MapEntry, TokenMap, VocabRef
from tokmap_ui.mapping.review import Decision, RejectedFallback, plan_change
from tokmap_ui.mapping.review_queue import (QueueFilter, review_progress, review_queue, token_frequencies,
                                            uncertainty)
from tokmap_ui.store import Store

REPO = Path(__file__).resolve().parents[1]
METHODS = ("dictionary", "neighbour", "identical", "pm-mined", "unmapped")


def make_base(n: int = 40, n_source: int = 30, seed: int = 0, kind: str = "tiktotok") -> TokenMap:
    """A generated map: mixed methods, 1-3 weighted sources, every fifth entry unmapped."""
    rng = random.Random(seed)
    entries = []
    for i in range(n):
        method = METHODS[i % len(METHODS)]
        if method == "unmapped":
            entries.append(MapEntry(i, f"▁w{i}", (), method))
            continue
        ids = rng.sample(range(n_source), rng.randint(1, 3))
        sources = tuple((s, round(rng.random() + 0.01, 3)) for s in ids)
        evidence = (rng.randint(0, 3),) if method == "pm-mined" else ()
        entries.append(MapEntry(i, f"▁w{i}" if i % 3 else f"w{i}", sources, method, evidence))
    return TokenMap(kind, VocabRef("tgt", n, "t" * 64), VocabRef("src", n_source, "s" * 64), {"seed": seed},
                    tuple(entries))


def registered(tmp_path: Path, base: TokenMap | None = None, name: str = "m") -> tuple[Path, int]:
    """Save ``base`` to a file, register it in a workspace under ``tmp_path``; return (home, map id)."""
    home = tmp_path / "ws"
    file = save_token_map(base or make_base(), tmp_path / f"{name}.json")
    with Store.open(home) as store:
        return home, register_map_file(store, file, "demo", name=name).id


# ---------------------------------------------------------------------------- decisions
def test_plan_change_semantics():
    proposal = MapEntry(3, "▁kat", ((5, 0.7), (6, 0.3)), "dictionary")
    action, approved = plan_change(None, proposal, "ana", status="approved")
    assert action.value == "approve" and approved.sources == proposal.sources and approved.by == "ana"
    action, rejected = plan_change(None, proposal, "ana", status="rejected", comment="false friend")
    assert (action.value, rejected.sources, rejected.comment) == ("reject", None, "false friend")
    action, edited = plan_change(rejected, proposal, "ben", sources=((9, 1.0),))
    assert (action.value, edited.status, edited.sources, edited.comment) == ("edit", "edited", ((9, 1.0),),
                                                                             "false friend")
    _, flagged = plan_change(edited, proposal, "ana", status="flagged")
    assert flagged.sources == ((9, 1.0),)  # a flag keeps the edit
    action, commented = plan_change(None, proposal, "ana", comment="check")
    assert (action.value, commented.status, commented.sources) == ("comment", "auto", None)
    assert plan_change(edited, proposal, "ana", status="auto") == (plan_change(None, proposal, "x", status="auto"))
    assert plan_change(edited, proposal, "ana", status="auto")[1] is None
    assert Decision.from_json(approved.to_json()) == approved
    with pytest.raises(StoreError, match="nothing to change"):
        plan_change(None, proposal, "ana")
    with pytest.raises(StoreError, match="unknown review status 'aproved'"):
        plan_change(None, proposal, "ana", status="aproved")


def test_changes_versions_refusals_and_validation(tmp_path):
    home, map_id = registered(tmp_path)
    with Store.open(home) as store_a, Store.open(home) as store_b:
        ana, ben = open_reviewed_map(store_a, map_id), open_reviewed_map(store_b, map_id)
        entry = ana.approve(1, "ana")
        assert (entry.status, ana.version(1), ana.state(1).reviewer) == ("approved", 1, "ana")
        with pytest.raises(StaleEditError) as info:  # ben read version 0
            ben.reject(1, "ben")
        assert "ana" in str(info.value) and '"approve"' in str(info.value)
        assert ben.version(1) == 1 and ben.entry(1).status == "approved"  # the refusal re-read the entry
        assert ben.reject(1, "ben", comment="no").status == "rejected"
        with pytest.raises(StaleEditError):
            ana.flag(1, "ana", expected_version=1)
        edited = ana.edit(2, "ana", [(4, 2), (7, 1)])
        assert (edited.method, edited.status, edited.sources) == ("manual", "edited", ((4, 2.0), (7, 1.0)))
        with pytest.raises(TokenMapError, match="outside the source vocabulary"):
            ana.edit(2, "ana", [(999, 1.0)])
        with pytest.raises(TokenMapError, match="listed twice"):
            ana.edit(2, "ana", [(4, 1.0), (4, 2.0)])
        with pytest.raises(TokenMapError, match="not a finite number"):
            ana.edit(2, "ana", [(4, float("nan"))])
        with pytest.raises(StoreError, match="has no target id 400"):
            ana.approve(400, "ana")
        assert ben.refresh() == {2} and ben.entry(2) == edited
        assert [e.action for e in ana.history(1)] == ["approve", "reject"]


# ---------------------------------------------------------------------------- two processes
HOT = 6
EDITS = 500


def _random_change(rng: random.Random, n_source: int) -> dict:
    kind = rng.choice(["approved", "rejected", "flagged", "edit", "comment", "auto"])
    if kind == "edit":
        return {"sources": [(s, round(rng.random(), 3)) for s in rng.sample(range(n_source), rng.randint(0, 3))]}
    if kind == "comment":
        return {"comment": f"c{rng.randrange(1000)}"}
    return {"status": kind, "comment": rng.choice([None, "why"])}


def _reviewer(home: str, map_id: int, name: str, seed: int, barrier, results) -> None:
    """500 random changes on a few hot entries, refreshing only now and then (stale reads happen)."""
    rng = random.Random(seed)
    accepted, refused, messages = [], 0, set()
    with Store.open(Path(home)) as store:
        reviewed = open_reviewed_map(store, map_id)
        barrier.wait()
        for _ in range(EDITS):
            if rng.random() < 0.3:
                reviewed.refresh()
            target, change = rng.randrange(HOT), _random_change(rng, reviewed.base.source.vocab_size)
            time.sleep(rng.random() * 0.002)  # a reviewer thinks; the other may write meanwhile
            read = reviewed.version(target)  # the version this change is based on
            try:
                reviewed.change(target, name, **change)
                accepted.append((target, read + 1, change))  # (after the write, refresh may show later ones)
            except StaleEditError as err:
                refused += 1
                messages.add(str(err).split(" did ")[0].split("): ")[-1])  # who made my read stale
    results.put((name, accepted, refused, sorted(messages)))


def test_two_processes_500_random_edits_each_equal_the_serial_replay(tmp_path):
    home, map_id = registered(tmp_path)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_reviewer, args=(str(home), map_id, name, seed, barrier, results))
               for name, seed in (("ana", 1), ("ben", 2))]
    for worker in workers:
        worker.start()
    outcome = {name: (acc, ref, msgs) for name, acc, ref, msgs in (results.get(timeout=120) for _ in workers)}
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    refused = sum(ref for _, ref, _ in outcome.values())
    accepted = {(t, v): (name, change) for name, (acc, _, _) in outcome.items() for t, v, change in acc}
    assert len(accepted) + refused == 2 * EDITS  # every attempt either stored or reported
    assert refused > 0, "the reviewers never collided: the version check was not exercised"
    assert set(outcome["ana"][2]) <= {"ben"} and set(outcome["ben"][2]) <= {"ana"}  # a refusal names the other

    with Store.open(home) as store:
        final = open_reviewed_map(store, map_id)
        events = final.history()
        assert {(e.target_id, e.entry_version): e.reviewer for e in events} == {k: n for k, (n, _) in accepted.items()}
        # serial replay: apply the accepted changes in commit order to the generated map
        replay: dict[int, Decision | None] = {}
        for event in events:
            name, change = accepted[(event.target_id, event.entry_version)]
            sources = change.get("sources")
            action, replay[event.target_id] = plan_change(
                replay.get(event.target_id), final.base.entries[event.target_id], name,
                status=change.get("status"), comment=change.get("comment"),
                sources=None if sources is None else tuple((s, float(w)) for s, w in sources))
            assert action.value == event.action
        assert {t: d for t, d in replay.items() if d is not None} == final.decisions()
        assert store.integrity_check() == ["ok"]


# ---------------------------------------------------------------------------- kill -9
WRITER = """
import sys
from pathlib import Path
from tokmap_ui.io.review_files import import_review
from tokmap_ui.io.review_workspace import open_reviewed_map
from tokmap_ui.store import Store
home, map_id, run = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
store = Store.open(home)
reviewed = open_reviewed_map(store, map_id)
step = 0
while True:
    step += 1
    if step % 2:
        file = home / f"import-{run}-{step}.csv"
        rows = "".join(f"{t},,,flagged,{run} step {step},,\\n" for t in range(100, 300))
        file.write_text("target_id,token,sources,status,comment,reviewer,version\\n" + rows)
        report = import_review(reviewed, file, "writer")
        print(f"batch {len(report.changed)} {run}-{step}", flush=True)
    else:
        t = step % 7
        version = reviewed.version(t) + 1
        reviewed.change(t, "writer", comment=f"{run}-{step}")
        print(f"event {t} {version}", flush=True)
"""


def test_kill_minus_nine_of_a_reviewer_keeps_every_committed_change(tmp_path):
    home, map_id = registered(tmp_path, make_base(n=320))
    rng = random.Random(0)
    committed_events, committed_batches = set(), 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for run in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(map_id), f"run{run}"],
                                  stdout=subprocess.PIPE, text=True, env=env)
        lines = [writer.stdout.readline() for _ in range(4)]
        time.sleep(rng.random() * 0.05)
        os.kill(writer.pid, signal.SIGKILL)
        lines += writer.stdout.readlines()
        writer.wait()
        assert writer.returncode == -signal.SIGKILL, lines
        for line in lines:
            kind, *rest = line.split()
            if kind == "event":
                committed_events.add((int(rest[0]), int(rest[1])))
            elif kind == "batch":
                assert rest[0] == "200"
                committed_batches += 1
        with Store.open(home) as store:
            assert store.integrity_check() == ["ok"]
            reviewed = open_reviewed_map(store, map_id)  # opens and reads every decision
            events = reviewed.history()
            assert committed_events <= {(e.target_id, e.entry_version) for e in events if e.batch is None}
            per_batch: dict[str, int] = {}
            for event in events:
                if event.batch:
                    per_batch[event.batch] = per_batch.get(event.batch, 0) + 1
            assert len(per_batch) >= committed_batches and set(per_batch.values()) <= {200}  # never partial
            last = {e.target_id: e for e in events}
            assert {t: Decision.from_json(e.after) for t, e in last.items()} == reviewed.decisions()


# ---------------------------------------------------------------------------- undo and earlier states
def test_undo_is_per_reviewer_and_never_reverts_another_reviewers_event(tmp_path):
    home, map_id = registered(tmp_path)
    with Store.open(home) as store:
        rm = open_reviewed_map(store, map_id)
        rm.approve(1, "ana")
        rm.edit(2, "ben", [(3, 1.0)])
        rm.change(3, "ana", comment="hm")
        rm.flag(1, "ben")
        assert [e.target_id for e in rm.undo("ana")] == [3]
        assert rm.decision(3) is None and rm.entry(2).status == "edited" and rm.entry(1).status == "flagged"
        with pytest.raises(StaleEditError, match="ben did \"flag\""):  # ana's approve of 1 is under ben's flag
            rm.undo("ana")
        assert rm.entry(1).status == "flagged"
        with pytest.raises(StoreError, match="nothing left to undo"):
            rm.undo("ana", skip_superseded=True)
        assert [e.target_id for e in rm.undo("ben")] == [1]  # ben's flag goes, ana's approve is back
        assert rm.entry(1).status == "approved" and rm.entry(2).status == "edited"
        assert [e.target_id for e in rm.undo("ana")] == [1] and rm.decision(1) is None
        rm.approve(5, "ana")
        rm.reject(5, "ana")
        rm.undo("ana")
        assert rm.entry(5).status == "approved"  # a stack: undo walks back one change at a time
        rm.undo("ana")
        assert rm.decision(5) is None and rm.entry(2).status == "edited"


def test_view_and_restore_an_earlier_state_then_undo_the_restore(tmp_path):
    home, map_id = registered(tmp_path)
    with Store.open(home) as store:
        rm = open_reviewed_map(store, map_id)
        rm.approve(1, "ana")
        rm.edit(2, "ana", [(3, 1.0)], comment="x")
        mark = rm.last_event_id
        then = rm.reviewed_token_map()
        rm.reject(1, "ben")
        rm.flag(4, "ben")
        rm.reset(2, "ana")
        assert rm.reviewed_token_map(as_of=mark) == then  # view without changing anything
        assert rm.reviewed_token_map() != then
        view = open_reviewed_map(store, map_id, as_of=mark)
        assert view.reviewed_token_map() == then and review_progress(view).by_status["edited"] == 1
        assert view.version(1) == 1 and view.refresh() == set()
        with pytest.raises(StoreError, match="read-only view"):
            view.flag(3, "carl")
        assert rm.restore(mark, "carl") == 3
        assert rm.reviewed_token_map() == then
        restores = [e for e in rm.history() if e.action == "restore"]
        assert len(restores) == 3 and {e.ref_event_id for e in restores} == {mark}
        assert len({e.batch for e in restores}) == 1
        assert rm.restore(mark, "carl") == 0
        rm.undo("carl")  # the whole restore is one batch
        assert rm.entry(1).status == "rejected" and rm.entry(4).status == "flagged" and rm.decision(2) is None
        assert rm.restore(0, "carl") == 2 and rm.decisions() == {}


# ---------------------------------------------------------------------------- re-run
def test_rerun_keeps_decisions_and_flags_conflicts(tmp_path):
    base = make_base()
    home, map_id = registered(tmp_path, base)
    with Store.open(home) as store:
        rm = open_reviewed_map(store, map_id)
        rm.approve(1, "ana")                     # its proposal will change -> conflict, approval kept
        rm.edit(2, "ana", [(9, 1.0)])             # its proposal stays -> no conflict
        rm.reject(6, "ben")                       # its proposal will change -> conflict
        rm.change(7, "ben", comment="look")       # comment only: follows the new proposal quietly
        changed = {1: ((20, 1.0),), 6: ((21, 1.0),), 7: ((22, 1.0),), 8: ((23, 1.0),)}
        new = TokenMap(base.kind, base.target, base.source, {"seed": 1}, tuple(
            MapEntry(e.target_id, e.target_token, changed.get(e.target_id, e.sources), "neighbour" if e.target_id
                     in changed else e.method, e.evidence) for e in base.entries))
        new_file = save_token_map(new, tmp_path / "rerun.json")
        assert rerun_map(store, map_id, new_file) == [1, 6]
        rm = open_reviewed_map(store, map_id)
        assert rm.base == new
        one = rm.entry(1)
        assert (one.status, one.sources, one.method) == ("approved", base.entries[1].sources, "manual")
        assert rm.decision(1).conflict == {"previous": [list(p) for p in base.entries[1].sources],
                                           "proposal": [[20, 1.0]]}
        assert rm.entry(2).sources == ((9, 1.0),) and rm.decision(2).conflict is None
        assert rm.entry(7).sources == ((22, 1.0),) and rm.entry(7).comment == "look"
        assert rm.entry(8).sources == ((23, 1.0),)  # unreviewed entries take the new proposal
        assert sorted(i.target_id for i in review_queue(rm, QueueFilter(conflict=True))) == [1, 6]
        assert review_progress(rm).conflicts == 2
        assert {e.reviewer for e in rm.history() if e.action == "conflict"} == {"tokmap-rerun"}
        n_events = rm.last_event_id
        assert rerun_map(store, map_id, new_file) == [] and store.last_event_id(map_id) == n_events
        fixed = rm.approve(1, "ana", use_proposal=True)  # accept the new proposal: conflict resolved
        assert fixed.sources == ((20, 1.0),) and rm.decision(1).conflict is None
        other = make_base(n=41)
        with pytest.raises(TokenMapError, match="target vocabulary"):
            rerun_map(store, map_id, save_token_map(other, tmp_path / "other.json"))


# ---------------------------------------------------------------------------- effective map
def test_effective_map_rejected_fallbacks_and_manual_wins(tmp_path):
    import torch

    base = make_base()
    home, map_id = registered(tmp_path, base)
    with Store.open(home) as store:
        rm = open_reviewed_map(store, map_id)
        rm.reject(1, "ana")
        rm.edit(2, "ana", [(5, 1.0)])
        rm.approve(3, "ana")
        unmapped = rm.effective_token_map()
        assert (unmapped.entries[1].sources, unmapped.entries[1].method, unmapped.entries[1].status) == \
            ((), "unmapped", "rejected")
        assert unmapped.entries[2].sources == ((5, 1.0),) and unmapped.entries[2].method == "manual"
        assert unmapped.entries[3] == rm.entry(3) and unmapped.entries[4] == base.entries[4]
        assert unmapped.params["review"]["rejected"] == "unmapped"
        assert rm.effective_token_map("proposal").entries[1].sources == base.entries[1].sources
        fallback = TokenMap("mean", base.target, base.source, {}, tuple(
            MapEntry(i, e.target_token, ((0, 1.0),), "mean") for i, e in enumerate(base.entries)))
        taken = rm.effective_token_map(RejectedFallback.FALLBACK_MAP, fallback).entries[1]
        assert (taken.sources, taken.method) == (((0, 1.0),), "mean")
        with pytest.raises(TokenMapError, match="none was given"):
            rm.effective_token_map("fallback-map")
        rows = torch.arange(30, dtype=torch.float32).unsqueeze(1)  # (V_source, 1): row i holds i
        out = unmapped.apply_to_rows(rows)
        assert out[2, 0].item() == 5.0 and out[1, 0].item() == pytest.approx(rows.mean().item())


# ---------------------------------------------------------------------------- queue and progress
class _FakeTokenizer:
    class _Encoding:
        def __init__(self, ids):
            self.ids = ids

    def encode_batch(self, lines, add_special_tokens=False):
        return [self._Encoding([int(w) for w in line.split()]) for line in lines]


def test_queue_priority_filters_paging_and_progress(tmp_path):
    base = make_base()
    home, map_id = registered(tmp_path, base)
    with Store.open(home) as store:
        rm = open_reviewed_map(store, map_id)
        assert uncertainty(base.entries[4]) == 1.0 and uncertainty(MapEntry(0, "a", ((1, 1.0),), "identical")) == 0
        assert uncertainty(MapEntry(0, "a", ((1, 1.0), (2, 1.0)), "neighbour")) == 0.55
        assert uncertainty(MapEntry(0, "abcd", ((1, 1.0),), "pm-mined", (2,))) == 0.5  # edit distance 2 of 4
        freq = token_frequencies(_FakeTokenizer(), ["1 1 1 1 2", "1 3", "39 1"], len(rm))
        assert freq[1] == 6 and freq[39] == 1 and freq.sum() == 9
        queue = review_queue(rm, frequencies=freq)
        assert [i.rank for i in queue] == list(range(1, 41))
        assert [i.priority for i in queue] == sorted((i.priority for i in queue), reverse=True)
        assert queue[0].target_id == 1 and queue[0].frequency == 6  # a frequent dictionary token first
        assert review_queue(rm, frequencies=freq, limit=5, offset=5) == queue[5:10]
        rm.approve(0, "ana")
        rm.change(5, "ben", comment="Seems Odd")
        only = lambda **kw: sorted(i.target_id for i in review_queue(rm, QueueFilter(**kw)))  # noqa: E731
        assert only(status=("approved",)) == [0]
        assert only(method=("unmapped",)) == list(range(4, 40, 5))
        assert set(only(low_confidence=True)) >= set(range(4, 40, 5))
        assert all(i % 5 == 0 for i in only(dictionary_backed=True))
        assert only(search="odd") == [5] and only(search="▁W11") == [11] and only(search="17") == [17]
        assert only(search="srctok7", ) == []
        tokens = [f"srctok{i}" for i in range(30)]
        hits = [i.target_id for i in review_queue(rm, QueueFilter(search="srctok7"), source_tokens=tokens)]
        assert hits and all(any(s == 7 for s, _ in rm.entry(t).sources) for t in hits)
        progress = review_progress(rm)
        assert (progress.total, progress.reviewed, progress.by_status["approved"], progress.by_status["auto"]) == \
            (40, 1, 1, 39)
        assert progress.by_reviewer == {"ana": 1} and "reviewed 1/40" in progress.to_text()


# ---------------------------------------------------------------------------- registering
def test_register_refuses_reviewed_files_and_detects_a_changed_base(tmp_path):
    base = make_base()
    home, map_id = registered(tmp_path, base)
    reviewed = base.with_entries([MapEntry(1, base.entries[1].target_token, (), "manual", status="approved")])
    with Store.open(home) as store:
        with pytest.raises(TokenMapError, match="carries review decisions"):
            register_map_file(store, save_token_map(reviewed, tmp_path / "r.json"), "demo")
        with pytest.raises(StoreError, match="already has a token map named 'm'"):
            register_map_file(store, tmp_path / "m.json", "demo")
        artifact = store.get_artifact(store.get_token_map(map_id).artifact_id)
        assert artifact.path.is_relative_to(home)  # a copy: the user's file may change, the base may not
        artifact.path.write_text(artifact.path.read_text().replace('"seed":0', '"seed":9'))
        with pytest.raises(StoreError, match="changed after it was registered"):
            open_reviewed_map(store, map_id)


# ---------------------------------------------------------------------------- CLI
@pytest.fixture()
def cli(monkeypatch, capsys):
    import tokmap_ui.cli as cli_module

    if "tokmap_ui.cli.review" not in cli_module.COMMAND_MODULES:
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", cli_module.COMMAND_MODULES + ("tokmap_ui.cli.review",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_module.main(["review", *map(str, argv)])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_cli_review_round(tmp_path, cli):
    base = make_base()
    file = save_token_map(base, tmp_path / "nl.json")
    code, out, _ = cli("register", file, "--project", "demo")
    assert code == 0 and out.startswith("map 1: 'nl'")
    code, out, _ = cli("list", 1, "--status", "auto", "--limit", 3, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 3 and rows[0]["priority"] >= rows[-1]["priority"]
    assert cli("set", 1, 3, "--status", "approved", "--reviewer", "ana")[0] == 0
    code, out, _ = cli("set", 1, 4, "--sources", "2:0.7,9:0.3", "--comment", "better", "--reviewer", "ben",
                       "--expected-version", 0)
    assert code == 0 and "edited, manual, sources 2::0.7|9::0.3, version 1" in out
    code, _, err = cli("set", 1, 3, "--status", "rejected", "--reviewer", "ben", "--expected-version", 0)
    assert code == 2 and "ana did \"approve\"" in err and "Traceback" not in err
    code, _, err = cli("set", 1, 4, "--sources", "2:x", "--reviewer", "ben")
    assert code == 2 and "does not end with a weight" in err
    assert "undid 1 event(s) of ana" in cli("undo", 1, "--reviewer", "ana")[1]
    code, out, _ = cli("history", 1)
    assert code == 0 and [line.split()[3] for line in out.splitlines()] == ["approve", "edit", "undo"]
    assert cli("export", 1, "--out", tmp_path / "d.csv")[0] == 0
    text = (tmp_path / "d.csv").read_text().replace("4,▁w4,2::0.7|9::0.3,edited,better,ben,1",
                                                    "4,▁w4,2::0.7|9::0.3,approved,fine,ben,1")
    (tmp_path / "d.csv").write_text(text)
    code, out, _ = cli("import", 1, tmp_path / "d.csv", "--reviewer", "ana")
    assert code == 0 and "imported 1 changed entries" in out
    code, out, _ = cli("progress", 1, "--json")
    assert json.loads(out)["by_status"]["approved"] == 1
    code, out, _ = cli("progress", 1, "--json", "--as-of", 1)
    assert json.loads(out)["by_status"] == {"auto": 39, "approved": 1, "edited": 0, "rejected": 0, "flagged": 0}
    assert cli("export", 1, "--out", tmp_path / "q.tsv", "--queue", "--limit", 5)[0] == 0
    assert len((tmp_path / "q.tsv").read_text().splitlines()) == 6
    assert cli("set", 1, 5, "--status", "rejected", "--reviewer", "ana")[0] == 0
    assert cli("export", 1, "--out", tmp_path / "eff.json", "--effective")[0] == 0
    assert load_token_map(tmp_path / "eff.json").entries[5].sources == ()
    fallback = save_token_map(TokenMap("mean", base.target, base.source, {}, tuple(
        MapEntry(i, e.target_token, ((0, 1.0),), "mean") for i, e in enumerate(base.entries))), tmp_path / "mean.json")
    assert cli("export", 1, "--out", tmp_path / "eff2.json", "--effective", "--fallback", fallback)[0] == 0
    assert load_token_map(tmp_path / "eff2.json").entries[5].sources == ((0, 1.0),)
    assert cli("rerun", 1, file)[0] == 0 and cli("maps")[1].split()[:3] == ["1", "demo", "nl"]
    code, _, err = cli("list", 7)
    assert code == 2 and "no token map with id 7" in err
