"""Background jobs: one subprocess per job running the CLI, followed through the store.

A job is ``python -m tokmap_ui <argv>`` (fine-tune, conversion, delta training, ...). It is
started by a small runner, ``python -m tokmap_ui.jobs run <id>``, in its own session, so it
outlives the app or shell that started it. The runner tees the command's output into
``$TOKMAP_HOME/jobs/<id>/job.log``, turns its JSON-lines progress events (see
:mod:`tokmap_ui.train.progress`) into the job's ``progress``, ``checkpoint`` and ``artifacts``
in the store, and records the final status. No daemon: whoever looks at the jobs (the app's
timer, ``tokmap jobs list``) calls :func:`refresh`, which notices dead processes and starts
queued jobs — one GPU job at a time, ``max_cpu`` CPU jobs at a time.

What the UI reads from ``store.get_job(id).progress`` (all optional until the events arrive):
the ``start`` fields (``total_steps``, ``start_step``, ...), the latest ``step`` fields
(``step``, ``loss``, ``lr``, ``tokens_per_s``, ``eta_s``), ``losses`` = ``[[step, loss], ...]``
(thinned to at most 1000 points), ``evals`` = ``[[step, loss_per_byte, loss_per_token], ...]``,
``last_eval`` (the whole eval event), ``checkpoint_step``, ``done`` and ``attempt`` (1, then
+1 per resume). ``job.checkpoint`` is the newest checkpoint, ``job.artifacts`` a list of
``{"path", "kind"}``, ``job.error`` the command's one-line error when it failed.

Example:
    >>> job_id = start_job(store, "finetune", ["finetune", "--model", "m", ...])   # doctest: +SKIP
    >>> refresh(store); store.get_job(job_id).progress["step"]                     # doctest: +SKIP
    12
    >>> cancel(store, job_id).status                                               # doctest: +SKIP
    <JobStatus.CANCELLED: 'cancelled'>
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokmap_ui.errors import ConfigError, StoreError
from tokmap_ui.store import Device, Job, JobStatus, Store, process_alive, workspace_home
from tokmap_ui.train.progress import parse_event

RESUMABLE_KINDS = frozenset({"finetune", "delta-train", "train-delta", "compare-init"})
CANCEL_GRACE_S = 5.0          # SIGTERM, then SIGKILL after this long
PROGRESS_INTERVAL_S = 0.5     # the runner writes step events to the store at most this often
MAX_CURVE_POINTS = 1000       # loss points kept in a job's progress for live plots
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_launched: dict[int, subprocess.Popen] = {}  # runner processes this process started, to reap them


def job_dir(store: Store, job_id: int) -> Path:
    """``$TOKMAP_HOME/jobs/<id>``: the job's log and runner output."""
    return Path(store.home) / "jobs" / str(job_id)


def start_job(store: Store, kind: str, argv: Sequence[str], project: Any = None, device: str | Device = "cpu",
              *, module: str = "tokmap_ui", resumable: bool | None = None, max_cpu: int = 1) -> int:
    """Queue ``python -m <module> <argv>`` as a job and start it if a slot is free; return its id.

    Args:
        kind: what the job does (``finetune``, ``convert``, ...), shown in lists.
        argv: the CLI arguments, starting with the subcommand.
        project: project name or id the job belongs to (optional).
        device: ``cpu`` or ``gpu``; one GPU job runs at a time, CPU jobs queue for ``max_cpu`` slots.
        resumable: whether :func:`resume` re-launches with ``--resume`` (default: by ``kind``).
    """
    argv = [str(a) for a in argv]
    if not argv:
        raise ConfigError("a job needs a command. Fix: give the subcommand and its arguments.")
    if resumable is None:
        resumable = kind in RESUMABLE_KINDS
    config = {"argv": argv, "module": module, "resume_flag": "--resume" if resumable else None}
    job = store.create_job(kind, config, project=project, device=device)
    folder = job_dir(store, job.id)
    folder.mkdir(parents=True, exist_ok=True)
    store.update_job(job.id, log_path=folder / "job.log")
    start_queued_jobs(store, max_cpu=max_cpu)
    return job.id


def _launch(store: Store, job: Job) -> None:
    folder = job_dir(store, job.id)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TOKMAP_HOME=str(store.home), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p))
    if job.device is Device.CPU:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job must not take the GPU slot's memory
    try:
        with open(folder / "runner.log", "ab") as runner_log:
            proc = subprocess.Popen([sys.executable, "-m", "tokmap_ui.jobs", "run", str(job.id)],
                                    stdin=subprocess.DEVNULL, stdout=runner_log, stderr=subprocess.STDOUT,
                                    env=env, cwd=str(store.home), start_new_session=True, close_fds=True)
    except OSError as err:
        store.update_job(job.id, status=JobStatus.FAILED, error=f"could not start the job process: {err}")
        return
    _launched[proc.pid] = proc
    store.update_job(job.id, status=JobStatus.RUNNING, pid=proc.pid, error=None)


def start_queued_jobs(store: Store, max_cpu: int = 1) -> list[int]:
    """Start queued jobs, oldest first, while slots are free; return the ids started."""
    running = store.list_jobs(status=JobStatus.RUNNING)
    gpu_busy = any(job.device is Device.GPU for job in running)
    cpu_running = sum(job.device is Device.CPU for job in running)
    started = []
    for job in sorted(store.list_jobs(status=JobStatus.QUEUED), key=lambda j: j.id):
        if job.device is Device.GPU:
            if gpu_busy:
                continue
            gpu_busy = True
        else:
            if cpu_running >= max_cpu:
                continue
            cpu_running += 1
        _launch(store, job)
        started.append(job.id)
    return started


def _reap() -> None:
    """Collect exit statuses of runners we started, so they do not linger as zombies."""
    for pid, proc in list(_launched.items()):
        if proc.poll() is not None:
            del _launched[pid]


def recover_interrupted(store: Store) -> list[Job]:
    """Mark running jobs whose runner process is gone as interrupted (call at app start)."""
    _reap()
    return store.mark_running_jobs_interrupted()


def refresh(store: Store, max_cpu: int = 1) -> list[Job]:
    """Notice dead jobs, start queued ones; return all jobs, newest first. Cheap: call it on every poll."""
    recover_interrupted(store)
    start_queued_jobs(store, max_cpu=max_cpu)
    return store.list_jobs()


def poll(store: Store, job_id: int, max_cpu: int = 1) -> Job:
    """:func:`refresh`, then the job's current record."""
    refresh(store, max_cpu=max_cpu)
    return store.get_job(job_id)


def wait(store: Store, job_id: int, timeout_s: float = 60.0, interval_s: float = 0.2) -> Job:
    """Poll until the job is finished or ``timeout_s`` passes; return its record."""
    deadline = time.monotonic() + timeout_s
    job = poll(store, job_id)
    while not job.status.finished and time.monotonic() < deadline:
        time.sleep(interval_s)
        job = poll(store, job_id)
    return job


def tail(store: Store, job_id: int, n: int = 20) -> list[str]:
    """The last ``n`` lines of the job's log (empty before it has written anything)."""
    job = store.get_job(job_id)
    if job.log_path is None or not Path(job.log_path).is_file():
        return []
    with open(job.log_path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return text.splitlines()[-n:] if n > 0 else []


def _group_alive(pgid: int) -> bool:
    """True while any process of the job's process group is running (zombies do not count)."""
    _reap()
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):  # fields: state, ppid, pgrp, ...
            return True
    return False


def cancel(store: Store, job_id: int, grace_s: float = CANCEL_GRACE_S) -> Job:
    """Stop a job: queued → cancelled at once; running → SIGTERM its process group, SIGKILL after
    ``grace_s``; the job is ``cancelled`` when this returns.

    Raises:
        ConfigError: the job has already finished.
    """
    recover_interrupted(store)  # a stale "running" record (pid gone or reused) must not be signalled
    job = store.get_job(job_id)
    if job.status is JobStatus.QUEUED:
        return store.update_job(job_id, status=JobStatus.CANCELLED)
    if job.status is JobStatus.INTERRUPTED:
        return store.update_job(job_id, status=JobStatus.CANCELLED)
    if job.status is not JobStatus.RUNNING:
        raise ConfigError(f"job {job_id} is already {job.status.value}; there is nothing to cancel.")
    if job.pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, signal.SIGTERM)  # the runner leads its own session: pgid == pid
        deadline = time.monotonic() + grace_s
        while _group_alive(job.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(job.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)
    job = store.get_job(job_id)
    # RUNNING: the runner died before it could say so. INTERRUPTED: a concurrent refresh() (the app's
    # timer) saw the dead process first and took it for a crash; the user asked for a cancel.
    if job.status in (JobStatus.RUNNING, JobStatus.INTERRUPTED):
        with contextlib.suppress(StoreError):
            job = store.update_job(job_id, status=JobStatus.CANCELLED, error="cancelled by the user")
    start_queued_jobs(store)
    return store.get_job(job_id)


def resume(store: Store, job_id: int, max_cpu: int = 1) -> Job:
    """Queue an interrupted, cancelled or failed job again; it continues from its last checkpoint.

    Raises:
        ConfigError: the job is queued, running or succeeded.
    """
    job = store.get_job(job_id)
    if job.status not in (JobStatus.INTERRUPTED, JobStatus.CANCELLED, JobStatus.FAILED):
        raise ConfigError(f"job {job_id} is {job.status.value}; only interrupted, cancelled or failed jobs "
                          "can be resumed.")
    progress = dict(job.progress, resume=bool(job.config.get("resume_flag")),
                    attempt=int(job.progress.get("attempt", 1)) + 1)
    store.update_job(job_id, status=JobStatus.QUEUED, progress=progress, error=None)
    start_queued_jobs(store, max_cpu=max_cpu)
    return store.get_job(job_id)


# ---------------------------------------------------------------- the runner process

class _Follower:
    """Folds the command's events into the job's progress record, writing to the store sparingly."""

    def __init__(self, store: Store, job: Job):
        self.store, self.job_id = store, job.id
        self.progress: dict[str, Any] = dict(job.progress)
        self.progress.setdefault("attempt", 1)
        self.artifacts = list(job.artifacts)
        self.last_write = 0.0

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        fields = {k: v for k, v in event.items() if k != "event"}
        urgent = kind != "step"
        checkpoint = None
        if kind == "start":
            self.progress.update(fields)
        elif kind == "step":
            self.progress.update(fields)
            curve = self.progress.setdefault("losses", [])
            if fields.get("loss") is not None:
                curve.append([fields.get("step"), fields["loss"]])
                if len(curve) > MAX_CURVE_POINTS:
                    del curve[1::2]  # thin out evenly, keep the first point
        elif kind == "eval":
            self.progress["last_eval"] = fields
            self.progress.setdefault("evals", []).append(
                [fields.get("step"), fields.get("loss_per_byte"), fields.get("loss_per_token")])
        elif kind == "checkpoint":
            self.progress["checkpoint_step"] = fields.get("step")
            checkpoint = fields.get("path")
        elif kind == "artifact":
            item = {"path": fields.get("path"), "kind": fields.get("kind")}
            if item not in self.artifacts:
                self.artifacts.append(item)
        elif kind == "done":
            self.progress["done"] = fields
        else:
            self.progress.setdefault("events", {})[str(kind)] = fields
        now = time.monotonic()
        if urgent or now - self.last_write >= PROGRESS_INTERVAL_S:
            self.flush(checkpoint)

    def flush(self, checkpoint: str | None = None) -> None:
        extra = {} if checkpoint is None else {"checkpoint": checkpoint}
        self.store.update_job(self.job_id, progress=self.progress, artifacts=self.artifacts, **extra)
        self.last_write = time.monotonic()


def _error_line(lines: list[str]) -> str:
    for line in reversed(lines):
        if ": error:" in line:
            return line.strip()[:500]
    for line in reversed(lines):
        if line.strip() and parse_event(line) is None:
            return line.strip()[:500]
    return "the command failed without a message"


def run_job(job_id: int, home: str | Path | None = None) -> int:
    """Body of ``python -m tokmap_ui.jobs run <id>``: run the command, follow it, record the end."""
    store = Store.open(home)
    job = store.get_job(job_id)
    argv = list(job.config["argv"])
    flag = job.config.get("resume_flag")
    if flag and job.progress.get("resume") and flag not in argv:
        argv.append(flag)
    cancelled = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal cancelled
        cancelled = True
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    log_path = Path(job.log_path or job_dir(store, job_id) / "job.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    follower = _Follower(store, job)
    recent: list[str] = []
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ python -m {job.config.get('module', 'tokmap_ui')} {' '.join(argv)}\n")
        log.flush()
        child = subprocess.Popen([sys.executable, "-m", job.config.get("module", "tokmap_ui"), *argv],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, encoding="utf-8", errors="replace", bufsize=1)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        for line in child.stdout:
            log.write(line)
            log.flush()
            recent = (recent + [line])[-50:]
            event = parse_event(line)
            if event is not None:
                try:
                    follower.event(event)
                except StoreError:
                    pass  # a busy database must not kill the job; the next event retries
        code = child.wait()
        log.write(f"[exit code {code}]\n")
    follower.flush()
    if cancelled:
        status, error = JobStatus.CANCELLED, "cancelled by the user"
    elif code == 0:
        status, error = JobStatus.SUCCEEDED, None
    else:
        status, error = JobStatus.FAILED, _error_line(recent)
    with contextlib.suppress(StoreError):  # cancel() may have recorded the end already
        store.update_job(job_id, status=status, error=error)
    store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokmap_ui.jobs",
                                     description="Job runner (started by tokmap; not meant to be run by hand).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run job ID and record its progress and end in the store")
    run.add_argument("job_id", type=int)
    args = parser.parse_args(argv)
    return run_job(args.job_id, workspace_home())


if __name__ == "__main__":
    sys.exit(main())
