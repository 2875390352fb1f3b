"""Wall time, CPU time and peak memory of one initialisation, measured the same way in every process.

Standard library only: this file is imported inside the peers' throw-away virtual environments
as well as in ours, so every row of the table is measured by the same few lines.

* wall and CPU seconds (CPU includes waited-for child processes, e.g. a peer's ``datasets.map``
  workers);
* peak resident memory of the process (``ru_maxrss``) and of its largest child, and the resident
  memory when the meter started (imports and inputs already loaded), so the table can show how
  much the method itself added.

Example:
    >>> with Meter() as m:
    ...     _ = [0] * 1000
    >>> sorted(m.result())[:3]
    ['children_peak_rss_mib', 'cpu_s', 'peak_rss_mib']
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def rss_mib() -> float:
    """Resident memory of this process now (MiB), from /proc (0.0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Meter:
    """Context manager timing a block; ``result()`` gives the figures as a dict."""

    def __enter__(self) -> "Meter":
        self.rss_start = rss_mib()
        self.t0, self.c0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = _cpu() - self.c0
        self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024       # Linux: kB
        self.children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    def result(self) -> dict[str, float]:
        return {"wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3), "peak_rss_mib": round(self.peak, 1),
                "rss_at_start_mib": round(self.rss_start, 1), "children_peak_rss_mib": round(self.children_peak, 1)}


def write_info(out: Path, meter: Meter, **extra: Any) -> None:
    """``out/info.json``: the meter's figures, the Python version and anything the caller adds."""
    info = {**meter.result(), "python": sys.version.split()[0], **extra}
    (out / "info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
