"""Progress events as JSON lines (for the job runner and the UI) and a tqdm bar on a terminal.

Every long-running command speaks the same small protocol, one JSON object per line with an
``event`` key, so :mod:`tokmap_ui.jobs` can follow any of them without knowing what they do:

=============  ===============================================================================
``start``      ``total_steps``, ``start_step`` (> 0 when resuming), free-form settings
``step``       ``step``, ``loss``, ``lr``, ``tokens_per_s``, ``eta_s``
``eval``       ``step`` and the :class:`~tokmap_ui.train.data.EvalResult` fields
``checkpoint`` ``step``, ``path`` (the runner records it so a job can be resumed from it)
``artifact``   ``path``, ``kind`` (a file or folder the job produced)
``done``       ``step``, ``out`` and a summary; the last line of a successful run
=============  ===============================================================================

Where the lines go: on a terminal a tqdm bar is drawn and JSON goes only to a file (the
run's ``progress.jsonl``); otherwise (a pipe, as under the job runner) JSON goes to stdout,
flushed per line. ``--progress-jsonl PATH`` adds a file in both cases.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(stream=out, tty=False)
    >>> p.emit("step", step=1, loss=2.5)
    >>> out.getvalue()
    '{"event": "step", "step": 1, "loss": 2.5}\\n'
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

EventCallback = Callable[[dict[str, Any]], None]


def _clean(value: Any) -> Any:
    """JSON-safe value: NaN/inf become None (JSON has no NaN), floats keep 6 significant digits."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def parse_event(line: str) -> dict[str, Any] | None:
    """The event in one output line, or None if the line is not a progress event.

    Example:
        >>> parse_event('{"event": "step", "step": 3}')
        {'event': 'step', 'step': 3}
        >>> parse_event("Some warning") is None
        True
    """
    line = line.strip()
    if not line.startswith("{") or '"event"' not in line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("event"), str) else None


class Progress:
    """Writes progress events to stdout / a file / a callback, and draws a bar on a terminal.

    Args:
        stream: where JSON lines go when not on a terminal (default ``sys.stdout``).
        jsonl_path: also append every event to this file.
        tty: force terminal mode on or off (default: ``stream.isatty()``).
        on_event: called with every event dict (the UI and tests use this).
        fallback_jsonl: file for JSON lines in terminal mode when ``jsonl_path`` is not given.
        quiet: neither bar nor stdout JSON (files and callback still receive events).
    """

    def __init__(self, stream: TextIO | None = None, jsonl_path: str | Path | None = None, *,
                 tty: bool | None = None, on_event: EventCallback | None = None,
                 fallback_jsonl: str | Path | None = None, quiet: bool = False):
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(tty) if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.on_event = on_event
        self.quiet = quiet
        path = jsonl_path or (fallback_jsonl if self.tty else None)
        self.jsonl_path = Path(path) if path else None
        self._file: TextIO | None = None
        self._bar = None

    def _open_file(self) -> TextIO | None:
        if self.jsonl_path is not None and self._file is None:
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.jsonl_path, "a", encoding="utf-8")  # append: a resumed run continues it
        return self._file

    def emit(self, event: str, **fields: Any) -> None:
        """Send one event to every destination."""
        record = {"event": event, **_clean(fields)}
        line = json.dumps(record, ensure_ascii=False)
        handle = self._open_file()
        if handle is not None:
            handle.write(line + "\n")
            handle.flush()
        if self.on_event is not None:
            self.on_event(record)
        if self.quiet:
            return
        if self.tty:
            self._draw(record)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _draw(self, record: dict[str, Any]) -> None:
        from tqdm import tqdm

        kind = record["event"]
        if kind == "start":
            self._bar = tqdm(total=record.get("total_steps"), initial=record.get("start_step", 0),
                             unit="step", file=self.stream, dynamic_ncols=True)
        elif kind == "step" and self._bar is not None:
            self._bar.update(record["step"] - self._bar.n)
            self._bar.set_postfix(loss=record.get("loss"), lr=record.get("lr"), refresh=False)
        elif kind in ("eval", "checkpoint", "artifact", "done"):
            detail = {k: v for k, v in record.items() if k != "event"}
            text = f"{kind}: " + ", ".join(f"{k}={v}" for k, v in detail.items()
                                          if k in ("step", "loss_per_token", "loss_per_byte", "perplexity",
                                                   "path", "out"))
            if self._bar is not None:
                self._bar.write(text)
            else:
                self.stream.write(text + "\n")

    def close(self) -> None:
        """Close the bar and the file (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
