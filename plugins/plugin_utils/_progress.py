# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a large file transfer, shown at ``-v`` (private).

Owns: ``Throttle``, which the multiplexer calls after each chunk of a put or a fetch
and which passes on at most one report every ``interval`` seconds, for files of
``MINIMUM`` bytes or more (``{"done", "total", "elapsed"}``, to the worker that asked:
``_mux_server``); and ``line()``, the words the worker shows for one: bytes done and
total, rate, time left.

``NS_MITOGEN_PROGRESS_INTERVAL`` (seconds, default 5) sets the interval; tests set a
short one. Never imports Ansible: the multiplexer uses it too.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

ENV = "NS_MITOGEN_PROGRESS_INTERVAL"
MINIMUM = 64 * 1024 * 1024
DEFAULT_INTERVAL = 5.0
MIB = 1024.0 * 1024.0


def interval() -> float:
    """The seconds between two reports (``NS_MITOGEN_PROGRESS_INTERVAL``, else 5)."""
    try:
        value = float(os.environ.get(ENV) or DEFAULT_INTERVAL)
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


class Throttle:
    """``progress(done, total)`` for ``_files``: a report to ``send`` every ``every`` seconds at most."""

    def __init__(self, send: Callable[[Dict[str, Any]], None], every: float, minimum: int = MINIMUM) -> None:
        self._send = send
        self._every = every
        self._minimum = minimum
        self._start: Optional[float] = None
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = self._last = now
        if total < self._minimum or now - self._last < self._every:
            return
        self._last = now
        self._send({"done": done, "total": total, "elapsed": now - self._start})


def line(what: str, report: Dict[str, Any]) -> str:
    """``what``: 48.0 of 100.0 MiB (48%), 95.3 MiB/s, 1 s left."""
    done, total, elapsed = int(report["done"]), int(report["total"]), float(report["elapsed"])
    rate = done / elapsed if elapsed > 0 else 0.0
    left = "%d s left" % round((total - done) / rate) if rate > 0 else "time left unknown"
    return "%s: %.1f of %.1f MiB (%d%%), %.1f MiB/s, %s" % (
        what,
        done / MIB,
        total / MIB,
        100 * done // max(total, 1),
        rate / MIB,
        left,
    )
