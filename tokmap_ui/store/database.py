"""Opening the workspace database: location, pragmas, migrations, transactions, error wording.

Durability choice: the database runs in WAL mode with ``synchronous=FULL`` for every write
that records a human decision or a file (review events, projects, artifacts, job states).
With NORMAL, a commit survives a killed process but the last commits can vanish on a power
cut or kernel crash; issue 8 says no decision may ever be lost, and reviewers commit at
human speed, so one fsync per commit is cheap. Job *progress* ticks, which a runner may send
several times a second and which the next tick replaces anyway, commit with NORMAL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import TypeVar
from datetime import datetime, timezone
from pathlib import Path

from tokmap_ui.errors import StoreError
from tokmap_ui.store import schema

DB_NAME = "tokmap.sqlite3"
BUSY_TIMEOUT_S = 15.0  # how long a writer waits for another process's transaction
MIN_SQLITE = (3, 35, 0)  # upsert inside triggers, json_valid(), ALTER TABLE DROP COLUMN
_D = TypeVar("_D", bound="Database")


def workspace_home() -> Path:
    """The workspace folder: ``$TOKMAP_HOME`` if set, else ``./workspace``, made absolute.

    ``TOKMAP_HOME=/data/tm python app.py`` keeps everything in ``/data/tm``; a relative value
    is resolved against the current folder when the store opens.
    """
    return Path(os.environ.get("TOKMAP_HOME") or "workspace").expanduser().resolve()


def utc_now() -> str:
    """Current time as ISO-8601 UTC with milliseconds, e.g. ``2025-01-02T10:00:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Database:
    """One connection to ``home/tokmap.sqlite3``, shared by the threads of one process.

    Use :meth:`open` (also a context manager). All access goes through a lock because the
    Gradio app calls the store from worker threads; statements are short, so this costs little.
    """

    def __init__(self, home: Path, conn: sqlite3.Connection):
        self.home = home
        self.path = home / DB_NAME
        self._conn = conn
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._synchronous: str | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls: type[_D], home: Path | str | None = None) -> _D:
        """Open (creating or migrating if needed) the workspace database in ``home``.

        Raises:
            StoreError: the folder is unusable, the file is not a tokmap database, or it was
                written by a newer tokmap.
        """
        home = workspace_home() if home is None else Path(home).expanduser().resolve()
        path = home / DB_NAME
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(f"this Python links SQLite {sqlite3.sqlite_version}; the workspace needs "
                             f"{'.'.join(map(str, MIN_SQLITE))} or newer. Fix: use a newer Python build "
                             "(python.org or conda builds ship a recent SQLite).")
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"{home}: cannot create the workspace folder ({err.strerror}). "
                             "Fix: set TOKMAP_HOME to a writable folder.") from None
        if path.is_dir():
            raise StoreError(f"{path}: is a folder, expected the workspace database file. "
                             "Fix: move the folder away or set TOKMAP_HOME to another folder.")
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(f"{path}: cannot open the workspace database ({err}). "
                             "Fix: check the folder's permissions or set TOKMAP_HOME.") from None
        store = cls(home, conn)
        try:
            store._configure()
            store._migrate()
        except sqlite3.Error as err:
            conn.close()
            raise store._translate(err) from None
        except BaseException:
            conn.close()
            raise
        return store

    def _configure(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # The first read of the file happens here: a non-SQLite file fails now, not later.
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            # Switching needs a moment of exclusive access; another process opening the same
            # fresh workspace may hold it, and this pragma does not always wait on its own.
            for attempt in range(50):
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or attempt == 49:
                        raise
                    threading.Event().wait(0.1)
        conn.execute("PRAGMA foreign_keys = ON")
        self._set_synchronous(True)

    def _user_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        latest = len(schema.MIGRATIONS)
        if self._user_version() == latest:
            return
        with self._write():
            version = self._user_version()  # re-read: another process may have just migrated
            if version > latest:
                raise StoreError(
                    f"{self.path}: was written by a newer tokmap (schema version {version}; this "
                    f"tokmap knows versions up to {latest}). Fix: upgrade tokmap "
                    "(`pip install -U -r requirements.txt` in its folder), or set TOKMAP_HOME "
                    "to another folder to start a separate workspace.")
            if version < latest:
                schema.apply_migrations(self._conn, version)

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA optimize")
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The ``user_version`` of the open database."""
        with self._lock:
            return self._user_version()

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` rows; ``["ok"]`` for a healthy database."""
        return [row[0] for row in self._query("PRAGMA integrity_check")]

    def _stored_path(self, path: str | Path | None) -> str | None:
        """Paths inside the workspace are stored relative to it, so the workspace can move."""
        if path is None:
            return None
        path = Path(path).expanduser().resolve()
        return path.relative_to(self.home).as_posix() if path.is_relative_to(self.home) else str(path)

    def _full_path(self, stored: str | None) -> Path | None:
        return None if stored is None else self.home / stored

    # ------------------------------------------------------------------ statements
    def _set_synchronous(self, durable: bool) -> None:
        wanted = "FULL" if durable else "NORMAL"
        if self._synchronous != wanted:
            self._conn.execute(f"PRAGMA synchronous = {wanted}")
            self._synchronous = wanted

    @contextlib.contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken with ``BEGIN IMMEDIATE``.

        Taking the write lock before the first read means a read-modify-write (check a
        version, then insert) cannot interleave with another process's; the busy timeout
        makes the second writer wait instead of failing.
        """
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the store is closed. Fix: open it again.")
            try:
                self._set_synchronous(durable)
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise self._translate(err) from None
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from None
                raise

    def _query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run one read statement (its own snapshot in WAL mode) and return all rows."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the store is closed. Fix: open it again.")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise self._translate(err) from None

    def _translate(self, err: sqlite3.Error) -> StoreError:
        """Word an SQLite failure as something a user can act on."""
        text = str(err)
        if "not a database" in text or "malformed" in text or "encrypted" in text:
            return StoreError(
                f"{self.path}: is not a readable tokmap workspace database ({text}). Fix: move "
                "the file aside (tokmap then starts a fresh workspace), restore it from a backup, "
                f"or try `sqlite3 {self.path} .recover`; or set TOKMAP_HOME to another folder.")
        if "locked" in text or "busy" in text:
            return StoreError(
                f"{self.path}: stayed locked by another process for over {BUSY_TIMEOUT_S:.0f} s. "
                "Fix: wait for the other tokmap process (a job or a second app) or stop it.")
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            return StoreError(f"{self.path}: cannot be written ({text}). Fix: check free disk "
                              "space and the folder's permissions, or set TOKMAP_HOME.")
        return StoreError(f"{self.path}: the workspace database refused the operation ({text}).")
