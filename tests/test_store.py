"""Workspace store: migrations, refusals, projects/artifacts, review log, jobs, concurrency, crashes."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tokmap_ui.errors import InputFileError, StaleEditError, StoreError
from tokmap_ui.io.files import sha256_file
from tokmap_ui.store import (DB_NAME, KIND_TOKEN_MAP, SCHEMA_VERSION, JobStatus, MapEdit, Store,
                             process_alive, schema, workspace_home)

REPO = Path(__file__).resolve().parents[1]
VOCAB = {"name": "v", "vocab_size": 100, "sha256": "0" * 64}


def make_map(store: Store, tmp_path: Path, name: str = "m") -> int:
    """A project with one registered token map; returns the map id."""
    project = store.create_project(f"p-{name}")
    file = tmp_path / f"{name}.json"
    file.write_text('{"format": "tokmap.token-map/1"}')
    artifact = store.add_artifact(project, KIND_TOKEN_MAP, name, file)
    return store.add_token_map(artifact, method="tiktotok", target=VOCAB, source=VOCAB).id


# ---------------------------------------------------------------------------- opening and migrations
def test_workspace_home_from_env_or_default(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKMAP_HOME", str(tmp_path / "ws"))
    assert workspace_home() == tmp_path / "ws"
    monkeypatch.delenv("TOKMAP_HOME")
    monkeypatch.chdir(tmp_path)
    assert workspace_home() == tmp_path / "workspace"
    with Store.open() as store:
        assert store.path == tmp_path / "workspace" / DB_NAME


def test_fresh_database_settings_and_reopen(tmp_path):
    with Store.open(tmp_path) as first, Store.open(tmp_path) as second:
        first.create_project("demo")
        assert [p.name for p in second.list_projects()] == ["demo"]
        assert second.schema_version == SCHEMA_VERSION
        conn = first._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with Store.open(tmp_path) as again:  # open after close: no migration, data kept
        assert again.get_project("DEMO").name == "demo"
        assert again.integrity_check() == ["ok"]


def test_old_version_is_migrated_keeping_data(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute("BEGIN")
    schema.apply_migrations(conn, 0, 1)  # as a tokmap that only knew projects and artifacts
    conn.execute("INSERT INTO projects (name, created) VALUES ('old', '2020-01-01T00:00:00.000Z')")
    conn.execute("COMMIT")
    conn.close()
    with Store.open(tmp_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_project("old").created.startswith("2020")
        job = store.create_job("finetune", {"steps": 3}, project="old")
        assert job.status is JobStatus.QUEUED
        map_id = make_map(store, tmp_path)
        assert store.record_map_event(map_id, 1, "ana", "approve", None, {"status": "approved"}, 0) == 1


def test_failed_migration_leaves_old_version(tmp_path, monkeypatch):
    with Store.open(tmp_path) as store:
        store.create_project("keep")
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (
        "CREATE TABLE extra (x INTEGER);\nCREATE TABLE projects (y INTEGER);",))
    with pytest.raises(StoreError, match="already exists"):
        Store.open(tmp_path)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0
    conn.close()


def test_newer_version_is_refused(tmp_path):
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 4}")
    conn.close()
    with pytest.raises(StoreError) as info:
        Store.open(tmp_path)
    message = str(info.value)
    assert str(tmp_path / DB_NAME) in message and "newer tokmap" in message
    assert f"schema version {SCHEMA_VERSION + 4}" in message and "Fix:" in message


@pytest.mark.parametrize("content", [os.urandom(4096), b"just some text, not a database\n" * 50])
def test_corrupt_file_is_refused(tmp_path, content):
    (tmp_path / DB_NAME).write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store.open(tmp_path)
    message = str(info.value)
    assert str(tmp_path / DB_NAME) in message and "not a readable tokmap workspace" in message
    assert "Fix: move the file aside" in message
    assert (tmp_path / DB_NAME).read_bytes() == content  # never overwritten


def test_unusable_home_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="TOKMAP_HOME"):
        Store.open(tmp_path / "file")
    (tmp_path / "ws" / DB_NAME).mkdir(parents=True)
    with pytest.raises(StoreError, match="is a folder"):
        Store.open(tmp_path / "ws")


# ---------------------------------------------------------------------------- projects and artifacts
def test_projects_crud(tmp_path):
    with Store.open(tmp_path) as store:
        demo = store.create_project("demo", {"lang": "nl"})
        store.create_project("second")
        with pytest.raises(StoreError, match="already exists.*Fix"):
            store.create_project("Demo")
        with pytest.raises(StoreError, match="empty"):
            store.create_project("  ")
        assert store.get_project(demo.id) == store.get_project("demo") == demo
        assert [p.name for p in store.list_projects()] == ["demo", "second"]
        with pytest.raises(StoreError, match="no project 'nope'.*projects: demo, second"):
            store.get_project("nope")
        assert store.update_project_settings(demo, {"lang": "af"}).settings == {"lang": "af"}


def test_artifacts_crud(tmp_path):
    with Store.open(tmp_path / "ws") as store:
        project = store.create_project("demo")
        outside = tmp_path / "dict.tsv"
        outside.write_text("kat\tcat\n")
        dictionary = store.add_artifact(project, "dictionary", "nl-en", outside, meta={"pairs": 1})
        assert dictionary.sha256 == sha256_file(outside) and dictionary.path == outside
        assert dictionary.meta == {"pairs": 1}
        folder = tmp_path / "tok"
        folder.mkdir()
        (folder / "vocab.txt").write_text("a\nb\n")
        first = store.add_artifact(project, "tokenizer", "tok", folder).sha256
        (folder / "extra.txt").write_text("c")
        assert store.add_artifact(project, "tokenizer", "tok", folder).sha256 != first
        with pytest.raises(InputFileError, match="missing.json.*not found"):
            store.add_artifact(project, "model", "m", tmp_path / "missing.json")
        with pytest.raises(StoreError, match="slug"):
            store.add_artifact(project, "Bad Kind", "x", outside)
        saved = store.save_artifact(project, "report", "table.csv", b"a,b\n1,2\n")
        assert saved.path.read_bytes() == b"a,b\n1,2\n" and saved.path.is_relative_to(store.home)
        assert not list(saved.path.parent.glob(".*.tmp"))  # atomic write left no temp file
        raw = store._query("SELECT path FROM artifacts WHERE id = ?", (saved.id,))[0][0]
        assert not raw.startswith("/")  # stored relative: the workspace can move
        with pytest.raises(StoreError, match="plain file name"):
            store.save_artifact(project, "report", "../escape.csv", b"x")
        assert [a.kind for a in store.list_artifacts("demo")] == ["dictionary", "tokenizer", "tokenizer",
                                                                  "report"]
        assert [a.id for a in store.list_artifacts("demo", "report")] == [saved.id]
        with pytest.raises(StoreError, match="not a 'token-map'"):
            store.add_token_map(dictionary, method="tiktotok", target=VOCAB, source=VOCAB)


# ---------------------------------------------------------------------------- review log
def test_events_versions_and_stale_write(tmp_path):
    with Store.open(tmp_path) as ana_store, Store.open(tmp_path) as ben_store:
        map_id = make_map(ana_store, tmp_path)
        proposal = {"sources": [[5, 1.0]], "status": "auto"}
        assert ana_store.record_map_event(map_id, 17, "ana", "approve", proposal,
                                          {"sources": [[5, 1.0]], "status": "approved"}, 0) == 1
        # ben read version 0 before ana's write: refused, naming ana, her action and time
        with pytest.raises(StaleEditError) as info:
            ben_store.record_map_event(map_id, 17, "ben", "reject", proposal, {"status": "rejected"}, 0)
        message = str(info.value)
        event = ana_store.map_events(map_id)[0]
        assert "ana" in message and '"approve"' in message and event.time in message
        assert "version 1" in message and "Nothing was written" in message and "Fix:" in message
        assert info.value.last_event == event and info.value.current_version == 1
        assert len(ana_store.map_events(map_id)) == 1
        assert ben_store.record_map_event(map_id, 17, "ben", "edit", {"ignored": 1},
                                          {"sources": [[6, 1.0]]}, 1) == 2
        events = ana_store.map_events(map_id)
        assert [e.before for e in events] == [proposal, {"sources": [[5, 1.0]], "status": "approved"}]
        assert [e.entry_version for e in events] == [1, 2]
        state = ana_store.entry_state(map_id, 17)
        assert (state.version, state.current, state.reviewer) == (2, {"sources": [[6, 1.0]]}, "ben")
        assert ana_store.entry_state(map_id, 18) is None
        with pytest.raises(StaleEditError, match="never been reviewed"):
            ana_store.record_map_event(map_id, 18, "ana", "flag", None, {}, 3)
        with pytest.raises(StoreError, match="unknown review action 'bless'"):
            ana_store.record_map_event(map_id, 18, "ana", "bless", None, {}, 0)
        with pytest.raises(StoreError, match="reviewer name is empty"):
            ana_store.record_map_event(map_id, 18, " ", "flag", None, {}, 0)


def test_batch_history_filters_and_restore(tmp_path):
    with Store.open(tmp_path) as store:
        map_id = make_map(store, tmp_path)
        store.record_map_events(map_id, "ana", [MapEdit(t, "approve", {"s": "a"}, 0) for t in range(3)],
                                batch="b1")
        mark = store.last_event_id(map_id)
        store.record_map_event(map_id, 0, "ben", "reject", None, {"s": "r"}, 1)
        with pytest.raises(StaleEditError):  # second edit stale: the first is not written either
            store.record_map_events(map_id, "ana", [MapEdit(1, "flag", {"s": "f"}, 1),
                                                     MapEdit(0, "flag", {"s": "f"}, 1)])
        assert store.last_event_id(map_id) == mark + 1
        assert [e.target_id for e in store.map_events(map_id, reviewer="ana")] == [0, 1, 2]
        assert [e.reviewer for e in store.map_events(map_id, since=mark)] == ["ben"]
        assert [e.entry_version for e in store.map_events(map_id, target_id=0)] == [1, 2]
        assert {e.batch for e in store.map_events(map_id, reviewer="ana")} == {"b1"}
        earlier = store.entry_states(map_id, as_of=mark)
        assert {t: s.current for t, s in earlier.items()} == {0: {"s": "a"}, 1: {"s": "a"}, 2: {"s": "a"}}
        assert store.entry_states(map_id)[0].current == {"s": "r"}
        store.record_map_event(map_id, 0, "ana", "restore", None, earlier[0].current, 2,
                               ref_event_id=earlier[0].last_event_id)
        assert store.entry_states(map_id)[0].current == {"s": "a"}
        assert store.map_events(map_id)[-1].ref_event_id == earlier[0].last_event_id


def test_event_log_is_append_only_in_the_database(tmp_path):
    with Store.open(tmp_path) as store:
        map_id = make_map(store, tmp_path)
        store.record_map_event(map_id, 1, "ana", "approve", None, {"x": 1}, 0)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    for sql in ("UPDATE map_events SET reviewer = 'eve'", "DELETE FROM map_events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    with pytest.raises(sqlite3.IntegrityError, match="stale entry version"):  # bypassing the API
        conn.execute("INSERT INTO map_events (map_id, target_id, reviewer, time, action, entry_version) "
                     "VALUES (?, 1, 'eve', 't', 'edit', 1)", (map_id,))
    assert conn.execute("SELECT reviewer FROM map_events").fetchall() == [("ana",)]
    conn.close()


def test_threads_share_one_store(tmp_path):
    with Store.open(tmp_path) as store:
        map_id = make_map(store, tmp_path)

        def work(target: int) -> None:
            for version in range(10):
                store.record_map_event(map_id, target, f"t{target}", "edit", None, {"v": version}, version)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {t: s.version for t, s in store.entry_states(map_id).items()} == {0: 10, 1: 10, 2: 10, 3: 10}


# ---------------------------------------------------------------------------- two processes
HOT_ENTRIES = 4
EDITS_PER_REVIEWER = 200


def _reviewer(home: str, map_id: int, name: str, seed: int, barrier, results) -> None:
    """Read an entry, think for a moment, write with the version read; count refusals."""
    rng = random.Random(seed)
    accepted, refusals, message = [], 0, ""
    with Store.open(Path(home)) as store:
        barrier.wait()
        for step in range(EDITS_PER_REVIEWER):
            target = rng.randrange(HOT_ENTRIES)
            state = store.entry_state(map_id, target)
            after = {"sources": [[rng.randrange(1000), round(rng.random(), 3)]], "by": name, "step": step}
            time.sleep(rng.random() * 0.002)
            try:
                version = store.record_map_event(map_id, target, name, rng.choice(["edit", "approve", "flag"]),
                                                 None, after, state.version if state else 0)
                accepted.append([target, version, after])
            except StaleEditError as err:
                refusals, message = refusals + 1, str(err)
    results.put((name, accepted, refusals, message))


def test_two_processes_random_versioned_edits_lose_nothing(tmp_path):
    with Store.open(tmp_path) as store:
        map_id = make_map(store, tmp_path)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_reviewer, args=(str(tmp_path), map_id, name, seed, barrier, results))
               for name, seed in (("ana", 1), ("ben", 2))]
    for worker in workers:
        worker.start()
    outcome = {name: (accepted, refusals, message)
               for name, accepted, refusals, message in (results.get(timeout=60) for _ in workers)}
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    accepted = [tuple([name, t, v, json.dumps(a, sort_keys=True)])
                for name, (rows, _, _) in outcome.items() for t, v, a in rows]
    refused = sum(r for _, r, _ in outcome.values())
    assert len(accepted) + refused == 2 * EDITS_PER_REVIEWER
    assert refused > 0, "the reviewers never collided; the test did not exercise the version check"
    for name, (_, refusals, message) in outcome.items():
        other = "ben" if name == "ana" else "ana"
        assert not refusals or other in message  # only the other reviewer can make my read stale

    with Store.open(tmp_path) as store:
        events = store.map_events(map_id)
        stored = sorted((e.reviewer, e.target_id, e.entry_version, json.dumps(e.after, sort_keys=True))
                        for e in events)
        assert stored == sorted(accepted)  # every accepted edit is there, nothing else
        replay: dict[int, tuple[int, object]] = {}
        for event in events:  # serial replay in commit order
            version, current = replay.get(event.target_id, (0, None))
            assert event.entry_version == version + 1 and event.before == current
            replay[event.target_id] = (event.entry_version, event.after)
        assert {t: (s.version, s.current) for t, s in store.entry_states(map_id).items()} == replay


# ---------------------------------------------------------------------------- kill -9
WRITER = """
import sys
from pathlib import Path
from tokmap_ui.store import MapEdit, Store
store = Store.open(Path(sys.argv[1]))
map_id, step = int(sys.argv[2]), 0
versions = {t: s.version for t, s in store.entry_states(map_id).items()}  # earlier runs' writes
while True:
    step += 1
    if step % 2:
        targets = range(100, 600)  # a long transaction: 500 events or none
        edits = [MapEdit(t, "edit", {"step": step}, versions.get(t, 0)) for t in targets]
        for t, v in zip(targets, store.record_map_events(map_id, "writer", edits, batch=f"{sys.argv[3]}-{step}")):
            versions[t] = v
        print(f"batch {sys.argv[3]}-{step}", flush=True)
    else:
        t = step % 7
        versions[t] = store.record_map_event(map_id, t, "writer", "flag", None, {"step": step},
                                             versions.get(t, 0))
        print(f"event {t} {versions[t]}", flush=True)
"""


def test_kill_minus_nine_mid_stream_keeps_every_committed_event(tmp_path):
    with Store.open(tmp_path) as store:
        map_id = make_map(store, tmp_path)
    rng = random.Random(0)
    committed_events, committed_batches = set(), set()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for run in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(map_id), f"run{run}"],
                                  stdout=subprocess.PIPE, text=True, env=env)
        lines = [writer.stdout.readline() for _ in range(6)]
        time.sleep(rng.random() * 0.05)
        os.kill(writer.pid, signal.SIGKILL)
        lines += writer.stdout.readlines()
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        for line in lines:
            kind, *rest = line.split()
            if kind == "batch":
                committed_batches.add(rest[0])
            else:
                committed_events.add((int(rest[0]), int(rest[1])))

        conn = sqlite3.connect(tmp_path / DB_NAME)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with Store.open(tmp_path) as store:
            assert store.integrity_check() == ["ok"]
            events = store.map_events(map_id)
            present = {(e.target_id, e.entry_version) for e in events if e.batch is None}
            assert committed_events <= present
            per_batch: dict[str, int] = {}
            for event in events:
                if event.batch:
                    per_batch[event.batch] = per_batch.get(event.batch, 0) + 1
            assert committed_batches <= set(per_batch)
            assert set(per_batch.values()) == {500}  # all or nothing, never a partial batch
            states = store.entry_states(map_id)
            for target in {e.target_id for e in events}:
                versions = [e.entry_version for e in events if e.target_id == target]
                assert versions == list(range(1, len(versions) + 1))
                assert states[target].version == len(versions)


# ---------------------------------------------------------------------------- jobs
@dataclasses.dataclass(frozen=True)
class TinyConfig:
    steps: int = 3
    out: Path = Path("run")


def test_job_life_cycle(tmp_path):
    with Store.open(tmp_path) as store:
        project = store.create_project("demo")
        job = store.create_job("finetune", TinyConfig(), project=project, device="gpu",
                               log_path=tmp_path / "logs" / "1.log")
        assert (job.status, job.device.value, job.config) == (JobStatus.QUEUED, "gpu", {"steps": 3, "out": "run"})
        assert job.log_path == tmp_path / "logs" / "1.log" and job.started is None
        running = store.update_job(job.id, status="running", pid=os.getpid())
        assert running.started and running.finished is None and running.pid == os.getpid()
        ticked = store.update_job(job.id, progress={"step": 2, "loss": float("nan")})
        assert ticked.progress == {"step": 2, "loss": "nan"} and ticked.status is JobStatus.RUNNING
        done = store.update_job(job.id, status=JobStatus.SUCCEEDED, artifacts=[7],
                                checkpoint=tmp_path / "ckpt")
        assert done.finished and done.artifacts == [7] and done.checkpoint == tmp_path / "ckpt"
        with pytest.raises(StoreError, match="is succeeded; it cannot become running"):
            store.update_job(job.id, status="running")
        with pytest.raises(StoreError, match="unknown job status 'paused'"):
            store.update_job(job.id, status="paused")
        with pytest.raises(StoreError, match="no job with id 999"):
            store.get_job(999)
        other = store.create_job("convert", {"x": 1})
        assert [j.id for j in store.list_jobs()] == [other.id, job.id]
        assert [j.id for j in store.list_jobs(project="demo")] == [job.id]
        assert [j.id for j in store.list_jobs(status="queued", device="cpu")] == [other.id]


def test_running_jobs_with_dead_processes_become_interrupted(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    with Store.open(tmp_path) as store:
        dead = store.create_job("finetune", {})
        store.update_job(dead.id, status="running", pid=finished.pid)
        alive = store.create_job("finetune", {})
        store.update_job(alive.id, status="running", pid=os.getpid())
        no_pid = store.create_job("convert", {})
        store.update_job(no_pid.id, status="running")
        queued = store.create_job("convert", {})
        marked = store.mark_running_jobs_interrupted()
        assert sorted(j.id for j in marked) == sorted([dead.id, no_pid.id])
        assert store.get_job(dead.id).status is JobStatus.INTERRUPTED and "resume" in marked[0].error
        assert store.get_job(alive.id).status is JobStatus.RUNNING
        assert store.get_job(queued.id).status is JobStatus.QUEUED
        assert store.update_job(dead.id, status="running").status is JobStatus.RUNNING  # resume
    assert process_alive(os.getpid()) and not process_alive(finished.pid)
    assert not process_alive(os.getpid(), "another-boot:1")  # a reused pid is not our job
