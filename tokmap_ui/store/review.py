"""Token maps under review: the append-only event log and the per-entry current state.

Optimistic versioning (issue 8): every reviewed entry has a version, 0 before its first
event. A reviewer reads an entry with its version and writes with ``expected_version``; the
write checks the version and inserts the event in one ``BEGIN IMMEDIATE`` transaction, and a
trigger updates ``map_entry_state`` in that same transaction. A stale write is refused with
the other reviewer's change in the message, and nothing is written.

Example:
    >>> # v = store.entry_state(map_id, 17); version = v.version if v else 0
    >>> # store.record_map_event(map_id, 17, "ana", "approve", proposal, approved, version)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokmap_ui.errors import StaleEditError, StoreError
from tokmap_ui.store.database import utc_now
from tokmap_ui.store.projects import ProjectRef, ProjectsMixin
from tokmap_ui.store.records import (KIND_TOKEN_MAP, Artifact, EntryState, MapEvent, ReviewAction,
                                     TokenMapRecord, dumps, loads)


@dataclass(frozen=True)
class MapEdit:
    """One change for :meth:`ReviewMixin.record_map_events` (same meaning as the single call)."""

    target_id: int
    action: ReviewAction | str
    after: Any
    expected_version: int
    before: Any = None
    ref_event_id: int | None = None


class ReviewMixin(ProjectsMixin):
    """Token-map and review-event methods of :class:`~tokmap_ui.store.Store`."""

    # ------------------------------------------------------------------ token maps
    def add_token_map(self, artifact: int | Artifact, *, method: str, target: Mapping[str, Any],
                      source: Mapping[str, Any], name: str | None = None) -> TokenMapRecord:
        """Make a ``token-map`` artifact reviewable.

        Args:
            artifact: the generated map file, registered with kind ``token-map``.
            method: the map's ``kind`` (tiktotok, pm-mined, ...).
            target, source: the file's ``{"name", "vocab_size", "sha256"}`` headers.
            name: unique within the project; defaults to the artifact's name.
        """
        artifact = artifact if isinstance(artifact, Artifact) else self.get_artifact(artifact)
        if artifact.kind != KIND_TOKEN_MAP:
            raise StoreError(f"artifact {artifact.id} ({artifact.path}) is a {artifact.kind!r}, not a "
                             f"{KIND_TOKEN_MAP!r}. Fix: register the map file with kind '{KIND_TOKEN_MAP}'.")
        values = [artifact.project_id, artifact.id, name or artifact.name, method]
        for side, header in (("target", target), ("source", source)):
            missing = {"name", "vocab_size", "sha256"} - set(header)
            if missing:
                raise StoreError(f"token map {side} header lacks {sorted(missing)}. "
                                 "Fix: pass the file's header with name, vocab_size and sha256.")
            values += [str(header["name"]), int(header["vocab_size"]), str(header["sha256"])]
        try:
            with self._write() as conn:
                cursor = conn.execute(
                    "INSERT INTO token_maps (project_id, artifact_id, name, method, target_name, "
                    "target_vocab_size, target_sha256, source_name, source_vocab_size, source_sha256, "
                    "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, utc_now()))
        except StoreError as err:
            if "UNIQUE" in str(err):
                raise StoreError(f"project {artifact.project_id} already has a token map named "
                                 f"'{values[2]}'. Fix: choose another name.") from None
            raise
        return self.get_token_map(int(cursor.lastrowid))

    def get_token_map(self, map_id: int) -> TokenMapRecord:
        """The token map with this id.

        Raises:
            StoreError: no such map.
        """
        rows = self._query("SELECT * FROM token_maps WHERE id = ?", (int(map_id),))
        if not rows:
            raise StoreError(f"no token map with id {map_id} in {self.home}. "
                             "Fix: list the project's token maps and pick one of them.")
        return _token_map(rows[0])

    def list_token_maps(self, project: ProjectRef) -> list[TokenMapRecord]:
        """A project's token maps, oldest first."""
        project_id = self.get_project(project).id
        rows = self._query("SELECT * FROM token_maps WHERE project_id = ? ORDER BY id", (project_id,))
        return [_token_map(row) for row in rows]

    def set_token_map_artifact(self, map_id: int, artifact: int | Artifact) -> TokenMapRecord:
        """Point a map at a re-generated base file; its review events and states stay."""
        artifact = artifact if isinstance(artifact, Artifact) else self.get_artifact(artifact)
        record = self.get_token_map(map_id)
        if artifact.kind != KIND_TOKEN_MAP or artifact.project_id != record.project_id:
            raise StoreError(f"artifact {artifact.id} is not a token map of project {record.project_id}. "
                             "Fix: register the re-generated map in the same project first.")
        with self._write() as conn:
            conn.execute("UPDATE token_maps SET artifact_id = ? WHERE id = ?", (artifact.id, record.id))
        return self.get_token_map(record.id)

    # ------------------------------------------------------------------ events
    def record_map_event(self, map_id: int, target_id: int, reviewer: str, action: ReviewAction | str,
                         before: Any, after: Any, expected_version: int, *,
                         ref_event_id: int | None = None, batch: str | None = None) -> int:
        """Append one review event and update the entry's state; return the entry's new version.

        Args:
            before: the entry as the reviewer saw it. Recorded for an entry's first event; after
                that the store records its own current state, which the version check proves
                is what the reviewer saw.
            after: the entry's new state as JSON (None = back to the generated proposal).
            expected_version: the version the reviewer read (0 for a never-reviewed entry).

        Raises:
            StaleEditError: the entry changed since it was read; names who changed it, when, how.
        """
        edit = MapEdit(target_id, action, after, expected_version, before, ref_event_id)
        return self.record_map_events(map_id, reviewer, [edit], batch=batch)[0]

    def record_map_events(self, map_id: int, reviewer: str, edits: Sequence[MapEdit], *,
                          batch: str | None = None) -> list[int]:
        """Apply several edits all-or-nothing (imports, restoring a whole map); return new versions."""
        reviewer = reviewer.strip()
        if not reviewer:
            raise StoreError("reviewer name is empty. Fix: enter your name before reviewing.")
        actions = [_action(edit.action) for edit in edits]
        self.get_token_map(map_id)
        versions = []
        with self._write() as conn:
            now = utc_now()
            for edit, action in zip(edits, actions):
                current = conn.execute("SELECT version, current, last_event_id FROM map_entry_state "
                                       "WHERE map_id = ? AND target_id = ?", (map_id, edit.target_id)).fetchone()
                version = current["version"] if current else 0
                if edit.expected_version != version:
                    raise self._stale(conn, map_id, edit, version, current)
                before = loads(current["current"]) if current else edit.before
                conn.execute(
                    "INSERT INTO map_events (map_id, target_id, reviewer, time, action, before, after, "
                    "entry_version, ref_event_id, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (map_id, int(edit.target_id), reviewer, now, action, _json(before), _json(edit.after),
                     version + 1, edit.ref_event_id, batch))
                versions.append(version + 1)
        return versions

    def _stale(self, conn: sqlite3.Connection, map_id: int, edit: MapEdit, version: int,
               current: sqlite3.Row | None) -> StaleEditError:
        where = f"token map {map_id}, entry {edit.target_id}"
        if current is None:
            err = StaleEditError(f"{where}: you expected version {edit.expected_version} but the entry "
                                 "has never been reviewed (version 0); nothing was written. "
                                 "Fix: reload the entry and apply your change again.")
            err.last_event = None
        else:
            last = _event(conn.execute("SELECT * FROM map_events WHERE id = ?",
                                       (current["last_event_id"],)).fetchone())
            err = StaleEditError(
                f"{where}: changed since you read it (you read version {edit.expected_version}, it is "
                f"now version {version}): {last.describe()}. Nothing was written. Fix: reload the "
                f"entry, look at {last.reviewer}'s change, and apply yours again if it still holds.")
            err.last_event = last
        err.current_version = version
        return err

    def map_events(self, map_id: int, since: int | None = None, reviewer: str | None = None,
                   target_id: int | None = None) -> list[MapEvent]:
        """Events of a map in commit order; ``since`` = an event id, returns only later ones."""
        sql, params = "SELECT * FROM map_events WHERE map_id = ?", [int(map_id)]
        for column, value in (("id >", since), ("reviewer =", reviewer), ("target_id =", target_id)):
            if value is not None:
                sql += f" AND {column} ?"
                params.append(value)
        return [_event(row) for row in self._query(sql + " ORDER BY id", tuple(params))]

    def last_event_id(self, map_id: int) -> int:
        """Id of the map's newest event (0 if none): a cheap change marker for caches and polling."""
        return int(self._query("SELECT coalesce(max(id), 0) FROM map_events WHERE map_id = ?",
                               (int(map_id),))[0][0])

    def entry_state(self, map_id: int, target_id: int) -> EntryState | None:
        """Current state of one entry, or None if it was never reviewed (version 0)."""
        rows = self._query(_STATE_SQL + " AND s.target_id = ?", (int(map_id), int(target_id)))
        return _state(rows[0]) if rows else None

    def entry_states(self, map_id: int, as_of: int | None = None) -> dict[int, EntryState]:
        """Current state of every reviewed entry, or the state just after event ``as_of``.

        ``as_of`` replays the log, so any earlier state of the map can be viewed (and then
        restored by recording ``restore`` events with ``ref_event_id=as_of``).
        """
        if as_of is None:
            rows = self._query(_STATE_SQL, (int(map_id),))
        else:
            rows = self._query(
                "SELECT map_id, target_id, entry_version AS version, after AS current, "
                "id AS last_event_id, reviewer, time FROM map_events WHERE id IN (SELECT max(id) "
                "FROM map_events WHERE map_id = ? AND id <= ? GROUP BY target_id)", (int(map_id), int(as_of)))
        return {row["target_id"]: _state(row) for row in rows}


_STATE_SQL = ("SELECT s.map_id, s.target_id, s.version, s.current, s.last_event_id, e.reviewer, e.time "
              "FROM map_entry_state s JOIN map_events e ON e.id = s.last_event_id WHERE s.map_id = ?")


def _action(value: ReviewAction | str) -> str:
    try:
        return ReviewAction(value).value
    except ValueError:
        raise StoreError(f"unknown review action {value!r}. "
                         f"Fix: use one of {', '.join(a.value for a in ReviewAction)}.") from None


def _json(value: Any) -> str | None:
    return None if value is None else dumps(value)


def _state(row: sqlite3.Row) -> EntryState:
    return EntryState(map_id=row["map_id"], target_id=row["target_id"], version=row["version"],
                      current=loads(row["current"]), last_event_id=row["last_event_id"],
                      reviewer=row["reviewer"], time=row["time"])


def _event(row: sqlite3.Row) -> MapEvent:
    return MapEvent(id=row["id"], map_id=row["map_id"], target_id=row["target_id"], reviewer=row["reviewer"],
                    time=row["time"], action=row["action"], before=loads(row["before"]),
                    after=loads(row["after"]), entry_version=row["entry_version"],
                    ref_event_id=row["ref_event_id"], batch=row["batch"])


def _token_map(row: sqlite3.Row) -> TokenMapRecord:
    side = {p: {"name": row[f"{p}_name"], "vocab_size": row[f"{p}_vocab_size"], "sha256": row[f"{p}_sha256"]}
            for p in ("target", "source")}
    return TokenMapRecord(id=row["id"], project_id=row["project_id"], artifact_id=row["artifact_id"],
                          name=row["name"], method=row["method"], target=side["target"],
                          source=side["source"], created=row["created"])
