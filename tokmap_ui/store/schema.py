"""The workspace schema as an ordered list of migrations; ``PRAGMA user_version`` = steps applied.

Rules for whoever adds a step (never edit a released step, append a new one):

* a step is a string of SQL statements run inside the opening transaction, so a failure
  leaves the database at its old version;
* add tables and columns (``ALTER TABLE ... ADD COLUMN``); copying a table into a new shape
  needs ``PRAGMA foreign_keys=OFF`` outside the transaction, so avoid it;
* enumerations (review actions, job states, artifact kinds) are checked in Python, not by
  ``CHECK`` constraints, so a new value needs no migration.

The first release is split by concern (files, review log, jobs) so each step reads on its
own and tests can build a database that stops part-way, as an older tokmap would have left it.
"""

from __future__ import annotations

import sqlite3

_FILES = """
CREATE TABLE projects (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(trim(name)) > 0),
    created  TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings))
);

-- A file or folder the workspace knows about. `path` is relative to the workspace
-- folder when it lies inside it (so a workspace can be moved), absolute otherwise.
CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
    created    TEXT NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta))
);
CREATE INDEX artifacts_by_project ON artifacts(project_id, kind, id);

-- A reviewable token map. Review events hang off this row, not off the artifact, so a
-- re-run of the mapping can point `artifact_id` at a new generated file and keep them.
CREATE TABLE token_maps (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id        INTEGER NOT NULL REFERENCES projects(id),
    artifact_id       INTEGER NOT NULL REFERENCES artifacts(id),
    name              TEXT NOT NULL,
    method            TEXT NOT NULL,
    target_name       TEXT NOT NULL,
    target_vocab_size INTEGER NOT NULL,
    target_sha256     TEXT NOT NULL,
    source_name       TEXT NOT NULL,
    source_vocab_size INTEGER NOT NULL,
    source_sha256     TEXT NOT NULL,
    created           TEXT NOT NULL,
    UNIQUE (project_id, name)
);
"""

_REVIEW = """
-- Append-only audit log (issue 8). `entry_version` is the entry's version after the event;
-- UNIQUE(map, target, version) makes a lost update impossible even for a buggy writer.
-- `ref_event_id` names the event an undo reverts or a restore returns to; `batch` groups
-- the events of one bulk operation (import, restore of a whole map).
CREATE TABLE map_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    map_id        INTEGER NOT NULL REFERENCES token_maps(id),
    target_id     INTEGER NOT NULL CHECK (target_id >= 0),
    reviewer      TEXT NOT NULL CHECK (length(trim(reviewer)) > 0),
    time          TEXT NOT NULL,
    action        TEXT NOT NULL,
    before        TEXT CHECK (before IS NULL OR json_valid(before)),
    after         TEXT CHECK (after IS NULL OR json_valid(after)),
    entry_version INTEGER NOT NULL CHECK (entry_version >= 1),
    ref_event_id  INTEGER REFERENCES map_events(id),
    batch         TEXT,
    UNIQUE (map_id, target_id, entry_version)
);
CREATE INDEX map_events_by_map ON map_events(map_id, id);
CREATE INDEX map_events_by_reviewer ON map_events(map_id, reviewer, id);

-- Materialised current state of every reviewed entry (absent = version 0, the proposal).
-- Only the trigger below writes it, inside the transaction that inserts the event.
CREATE TABLE map_entry_state (
    map_id        INTEGER NOT NULL REFERENCES token_maps(id),
    target_id     INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    current       TEXT CHECK (current IS NULL OR json_valid(current)),
    last_event_id INTEGER NOT NULL REFERENCES map_events(id),
    PRIMARY KEY (map_id, target_id)
) WITHOUT ROWID;

CREATE TRIGGER map_events_no_update BEFORE UPDATE ON map_events
BEGIN
    SELECT RAISE(ABORT, 'map_events is append-only: record a new event instead of changing one');
END;

CREATE TRIGGER map_events_no_delete BEFORE DELETE ON map_events
BEGIN
    SELECT RAISE(ABORT, 'map_events is append-only: events are never deleted');
END;

-- The optimistic check, enforced by the database as well as by the Python code.
CREATE TRIGGER map_events_version_check BEFORE INSERT ON map_events
WHEN NEW.entry_version != 1 + coalesce(
    (SELECT version FROM map_entry_state WHERE map_id = NEW.map_id AND target_id = NEW.target_id), 0)
BEGIN
    SELECT RAISE(ABORT, 'stale entry version');
END;

CREATE TRIGGER map_events_apply AFTER INSERT ON map_events
BEGIN
    INSERT INTO map_entry_state (map_id, target_id, version, current, last_event_id)
    VALUES (NEW.map_id, NEW.target_id, NEW.entry_version, NEW.after, NEW.id)
    ON CONFLICT (map_id, target_id) DO UPDATE
        SET version = excluded.version, current = excluded.current,
            last_event_id = excluded.last_event_id;
END;
"""

_JOBS = """
-- Background jobs (issue 5). `pid_identity` (boot id + process start time) tells a live
-- job process from an unrelated process that reused its pid after a restart.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER REFERENCES projects(id),
    kind         TEXT NOT NULL,
    config       TEXT NOT NULL CHECK (json_valid(config)),
    status       TEXT NOT NULL,
    device       TEXT NOT NULL DEFAULT 'cpu',
    pid          INTEGER,
    pid_identity TEXT,
    progress     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(progress)),
    log_path     TEXT,
    checkpoint   TEXT,
    artifacts    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(artifacts)),
    error        TEXT,
    created      TEXT NOT NULL,
    started      TEXT,
    finished     TEXT,
    updated      TEXT NOT NULL
);
CREATE INDEX jobs_by_status ON jobs(status, device, id);
CREATE INDEX jobs_by_project ON jobs(project_id, id);
"""

MIGRATIONS: tuple[str, ...] = (_FILES, _REVIEW, _JOBS)
SCHEMA_VERSION = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split SQL into complete statements (trigger bodies contain ``;`` so a plain split fails).

    Example:
        >>> split_statements("CREATE TABLE a(x);\\nCREATE TABLE b(y);")
        ['CREATE TABLE a(x);', 'CREATE TABLE b(y);']
    """
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(l.strip().startswith("--") for l in pending.strip().splitlines()):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]}")
    return statements


def apply_migrations(conn: sqlite3.Connection, start: int, stop: int | None = None) -> None:
    """Run steps ``start..stop-1`` (default: to the end) and set ``user_version``.

    The caller holds the transaction. ``executescript`` would commit it first, so the
    statements run one by one.
    """
    stop = len(MIGRATIONS) if stop is None else stop
    for step in MIGRATIONS[start:stop]:
        for statement in split_statements(step):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(stop)}")
