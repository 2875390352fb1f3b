"""Plain records the store hands out, and the enums that name review actions and job states.

Rows come back as frozen dataclasses (never ``sqlite3.Row``), so callers in the UI,
the CLI and the job runner never touch SQL. JSON columns arrive already parsed.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ReviewAction(str, enum.Enum):
    """What one audit-log event did to one entry of a token map (issue 8)."""

    APPROVE = "approve"
    REJECT = "reject"
    FLAG = "flag"
    EDIT = "edit"          # sources or weights changed by hand
    COMMENT = "comment"
    RESET = "reset"        # back to the generated proposal
    RESTORE = "restore"    # back to the state after an earlier event (``ref_event_id``)
    UNDO = "undo"          # reverts one event of the same reviewer (``ref_event_id``)
    IMPORT = "import"      # decision read from an exported review file
    CONFLICT = "conflict"  # a re-run changed the proposal under a reviewed decision


class JobStatus(str, enum.Enum):
    """Life cycle of a background job (issue 5)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process vanished (app or machine restart); resumable

    @property
    def finished(self) -> bool:
        """True for states in which no process works on the job."""
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


# Which status may follow which. A succeeded job is final; failed, cancelled and
# interrupted jobs may be queued or run again (resume from their checkpoint).
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
                                  JobStatus.INTERRUPTED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.INTERRUPTED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLED}),
}


class Device(str, enum.Enum):
    """Where a job runs; the runner allows one GPU job at a time."""

    CPU = "cpu"
    GPU = "gpu"


# Artifact kinds used across the project. The store accepts any lower-case slug, so a new
# kind needs no schema change; these constants only avoid typos.
KIND_TOKEN_MAP = "token-map"
KIND_TOKENIZER = "tokenizer"
KIND_DICTIONARY = "dictionary"
KIND_CORPUS = "corpus"
KIND_MODEL = "model"
KIND_CHECKPOINT = "checkpoint"
KIND_REPORT = "report"


def dumps(value: Any) -> str:
    """Canonical JSON for storage: sorted keys, compact, UTF-8 kept readable.

    Strict JSON has no NaN or infinity (SQLite's ``json_valid`` refuses them), yet a diverging
    loss is NaN: such floats are stored as the strings ``"nan"``, ``"inf"``, ``"-inf"``. Paths
    and enums are stored as their text.

    Example:
        >>> dumps({"loss": float("nan"), "step": 3})
        '{"loss":"nan","step":3}'
    """
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"), default=_plain)
    except ValueError:
        return json.dumps(_finite(value), sort_keys=True, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (Path, enum.Enum)):
        return value.value if isinstance(value, enum.Enum) else str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON: {value!r}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def loads(text: str | None) -> Any:
    """Parse a JSON column; SQL NULL becomes None."""
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Project:
    """A named workspace project; ``settings`` is free-form JSON owned by the UI."""

    id: int
    name: str
    created: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    """A file the workspace knows about, with the hash it had when registered."""

    id: int
    project_id: int
    kind: str
    name: str
    path: Path
    sha256: str
    created: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenMapRecord:
    """A reviewable token map: its generated base file plus the vocabularies it joins.

    ``artifact_id`` is the current generated base; a re-run of the mapping points it at a
    new artifact while the review events (keyed by the map's ``id``) stay.
    """

    id: int
    project_id: int
    artifact_id: int
    name: str
    method: str
    target: dict[str, Any]  # {"name", "vocab_size", "sha256"} of the vocabulary being mapped
    source: dict[str, Any]  # same for the vocabulary whose rows/logits are read
    created: str


@dataclass(frozen=True)
class MapEvent:
    """One append-only audit-log event: ``reviewer`` did ``action`` to one entry.

    ``entry_version`` is the entry's version after the event (1 for the first event);
    ``before``/``after`` are the entry as JSON (None = the generated proposal).
    """

    id: int
    map_id: int
    target_id: int
    reviewer: str
    time: str
    action: str
    before: Any
    after: Any
    entry_version: int
    ref_event_id: int | None = None
    batch: str | None = None

    def describe(self) -> str:
        """One line for messages: who, when, what.

        Example:
            >>> MapEvent(1, 1, 17, "ana", "2025-01-02T10:00:00.000Z", "edit", None,
            ...          {"sources": [[5, 1.0]]}, 1).describe()
            'ana did "edit" at 2025-01-02T10:00:00.000Z (now {"sources":[[5,1.0]]})'
        """
        after = dumps(self.after)
        if len(after) > 120:
            after = after[:117] + "..."
        return f'{self.reviewer} did "{self.action}" at {self.time} (now {after})'


@dataclass(frozen=True)
class EntryState:
    """The materialised current state of one reviewed entry (no row = version 0, untouched)."""

    map_id: int
    target_id: int
    version: int
    current: Any
    last_event_id: int
    reviewer: str
    time: str


@dataclass(frozen=True)
class Job:
    """A background job as recorded in the store (the runner owns the process)."""

    id: int
    project_id: int | None
    kind: str
    config: dict[str, Any]
    status: JobStatus
    device: Device
    pid: int | None
    progress: dict[str, Any]
    log_path: Path | None
    checkpoint: Path | None
    artifacts: list[Any]
    error: str | None
    created: str
    started: str | None
    finished: str | None
    updated: str
