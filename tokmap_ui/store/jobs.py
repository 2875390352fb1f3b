"""Job records (issue 5): what runs, with which config, how far it got, where its files are.

The job runner (``tokmap_ui/jobs.py``) owns the processes; this module only records them.
At app start, :meth:`JobsMixin.mark_running_jobs_interrupted` turns jobs whose process is
gone into ``interrupted`` so the UI offers to resume them from their checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokmap_ui.errors import StoreError
from tokmap_ui.store.database import utc_now
from tokmap_ui.store.projects import ProjectRef, ProjectsMixin
from tokmap_ui.store.records import JOB_TRANSITIONS, Device, Job, JobStatus, dumps, loads

_UNSET: Any = object()


def process_identity(pid: int) -> str | None:
    """``boot-id:start-ticks`` of a live process on Linux (None elsewhere or if it is gone).

    A pid alone is not an identity: after a reboot, or in a long session, the number is
    reused by unrelated processes. Boot id plus start time is unique per process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is [0], starttime [19]
    return f"{boot}:{fields[19]}"


def process_alive(pid: int | None, identity: str | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when ``identity`` is known, is the same process."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):  # exited, waiting to be reaped: it does no more work
            return False
    except OSError:
        pass
    return identity is None or process_identity(pid) in (None, identity)


class JobsMixin(ProjectsMixin):
    """Job methods of :class:`~tokmap_ui.store.Store`."""

    def create_job(self, kind: str, config: Mapping[str, Any] | Any, *, project: ProjectRef | None = None,
                   device: Device | str = Device.CPU, log_path: str | Path | None = None,
                   checkpoint: str | Path | None = None) -> Job:
        """Record a queued job. ``config`` is a mapping or one of the frozen config dataclasses."""
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            config = dataclasses.asdict(config)
        device = _enum(Device, device, "device")
        project_id = None if project is None else self.get_project(project).id
        now = utc_now()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (project_id, kind, config, status, device, log_path, checkpoint, "
                "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, kind, dumps(dict(config)), JobStatus.QUEUED.value, device.value,
                 self._stored_path(log_path), self._stored_path(checkpoint), now, now))
        return self.get_job(int(cursor.lastrowid))

    def update_job(self, job_id: int, *, status: JobStatus | str | None = None,
                   progress: Mapping[str, Any] | None = None, pid: int | None = _UNSET,
                   log_path: str | Path | None = _UNSET, checkpoint: str | Path | None = _UNSET,
                   artifacts: Sequence[Any] | None = None, error: str | None = _UNSET) -> Job:
        """Change a job's fields; unmentioned fields keep their value.

        Entering ``running`` stamps ``started`` and entering a finished state stamps
        ``finished``. Setting ``pid`` also records the process identity (see
        :func:`process_identity`). A progress-only update commits without fsync (see
        ``database.py``).

        Raises:
            StoreError: unknown job, or a status change the life cycle forbids (for example a
                cancelled job reported as succeeded by a runner that lost the race).
        """
        sets: dict[str, Any] = {}
        new_status = None if status is None else _enum(JobStatus, status, "status")
        if progress is not None:
            sets["progress"] = dumps(dict(progress))
        if pid is not _UNSET:
            sets["pid"] = pid
            sets["pid_identity"] = None if pid is None else process_identity(pid)
        if log_path is not _UNSET:
            sets["log_path"] = self._stored_path(log_path)
        if checkpoint is not _UNSET:
            sets["checkpoint"] = self._stored_path(checkpoint)
        if artifacts is not None:
            sets["artifacts"] = dumps(list(artifacts))
        if error is not _UNSET:
            sets["error"] = error
        durable = new_status is not None or bool(set(sets) - {"progress"})
        with self._write(durable=durable) as conn:
            row = _job_row(conn, job_id, self.home)
            now = utc_now()
            if new_status is not None and new_status != JobStatus(row["status"]):
                old = JobStatus(row["status"])
                if new_status not in JOB_TRANSITIONS[old]:
                    raise StoreError(f"job {job_id} is {old.value}; it cannot become {new_status.value}. "
                                     "Fix: reload the job list; queue a new run to repeat a finished job.")
                sets["status"] = new_status.value
                if new_status is JobStatus.RUNNING:
                    sets.update(started=now, finished=None)
                elif new_status.finished:
                    sets["finished"] = now
            sets["updated"] = now
            assignments = ", ".join(f"{column} = ?" for column in sets)
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*sets.values(), int(job_id)))
        return self.get_job(job_id)

    def get_job(self, job_id: int) -> Job:
        """The job with this id.

        Raises:
            StoreError: no such job.
        """
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (int(job_id),))
        if not rows:
            raise StoreError(f"no job with id {job_id} in {self.home}. Fix: list the jobs and pick one.")
        return self._job(rows[0])

    def list_jobs(self, project: ProjectRef | None = None, status: JobStatus | str | None = None,
                  device: Device | str | None = None) -> list[Job]:
        """Jobs, newest first, filtered by project, status and device."""
        sql, params = "SELECT * FROM jobs WHERE 1", []
        if project is not None:
            sql += " AND project_id = ?"
            params.append(self.get_project(project).id)
        if status is not None:
            sql += " AND status = ?"
            params.append(_enum(JobStatus, status, "status").value)
        if device is not None:
            sql += " AND device = ?"
            params.append(_enum(Device, device, "device").value)
        return [self._job(row) for row in self._query(sql + " ORDER BY id DESC", tuple(params))]

    def mark_running_jobs_interrupted(self) -> list[Job]:
        """Mark ``running`` jobs whose process is gone as ``interrupted``; return them.

        Called at app start: after a crash or reboot no runner is left to report the end.
        """
        with self._write() as conn:
            rows = conn.execute("SELECT id, pid, pid_identity FROM jobs WHERE status = ?",
                                (JobStatus.RUNNING.value,)).fetchall()
            gone = [row["id"] for row in rows if not process_alive(row["pid"], row["pid_identity"])]
            now = utc_now()
            for job_id in gone:
                conn.execute(
                    "UPDATE jobs SET status = ?, finished = ?, updated = ?, error = ? WHERE id = ?",
                    (JobStatus.INTERRUPTED.value, now, now, "its process stopped without reporting "
                     "an end (app or machine restart); resume it from its last checkpoint", job_id))
        return [self.get_job(job_id) for job_id in gone]

    def _job(self, row: sqlite3.Row) -> Job:
        return Job(id=row["id"], project_id=row["project_id"], kind=row["kind"], config=loads(row["config"]),
                   status=JobStatus(row["status"]), device=Device(row["device"]), pid=row["pid"],
                   progress=loads(row["progress"]), log_path=self._full_path(row["log_path"]),
                   checkpoint=self._full_path(row["checkpoint"]), artifacts=loads(row["artifacts"]), error=row["error"],
                   created=row["created"], started=row["started"], finished=row["finished"],
                   updated=row["updated"])


def _job_row(conn: sqlite3.Connection, job_id: int, home: Path) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (int(job_id),)).fetchone()
    if row is None:
        raise StoreError(f"no job with id {job_id} in {home}. Fix: list the jobs and pick one.")
    return row


def _enum(cls: type, value: Any, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise StoreError(f"unknown job {what} {value!r}. "
                         f"Fix: use one of {', '.join(m.value for m in cls)}.") from None
