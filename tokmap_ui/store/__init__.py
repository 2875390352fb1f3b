"""SQLite workspace store: projects, artifacts, token-map review log, jobs (issue 2 item 7).

One file, ``$TOKMAP_HOME/tokmap.sqlite3`` (default ``./workspace``), in WAL mode so the app,
the CLI and job processes read while one of them writes. The schema carries a version and an
ordered list of migrations (``schema.py``); every write is one transaction.

Example:
    >>> import tempfile
    >>> with Store.open(tempfile.mkdtemp()) as store:
    ...     store.create_project("demo").name
    'demo'

Modules: ``database`` (opening, pragmas, transactions), ``schema`` (migrations),
``records`` (dataclasses and enums), ``projects``, ``review``, ``jobs`` (the methods).
"""

from __future__ import annotations

from tokmap_ui.store.database import DB_NAME, workspace_home
from tokmap_ui.store.jobs import JobsMixin, process_alive
from tokmap_ui.store.records import (KIND_CHECKPOINT, KIND_CORPUS, KIND_DICTIONARY, KIND_MODEL,
                                     KIND_REPORT, KIND_TOKEN_MAP, KIND_TOKENIZER, Artifact, Device,
                                     EntryState, Job, JobStatus, MapEvent, Project, ReviewAction,
                                     TokenMapRecord)
from tokmap_ui.store.review import MapEdit, ReviewMixin
from tokmap_ui.store.schema import SCHEMA_VERSION


class Store(ReviewMixin, JobsMixin):
    """The workspace database with every method: see the mixins for each group.

    Open with ``Store.open(home=None)``; use as a context manager or call ``close()``.
    """


__all__ = [
    "DB_NAME", "SCHEMA_VERSION", "Artifact", "Device", "EntryState", "Job", "JobStatus", "MapEdit",
    "MapEvent", "Project", "ReviewAction", "Store", "TokenMapRecord", "KIND_CHECKPOINT", "KIND_CORPUS",
    "KIND_DICTIONARY", "KIND_MODEL", "KIND_REPORT", "KIND_TOKEN_MAP", "KIND_TOKENIZER",
    "process_alive", "workspace_home",
]
