# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-process debug log files, on when ``NS_MITOGEN_LOG_DIR`` is set (private).

Owns: where each controller process of a run writes its ``ns.mitogen.*`` records at
DEBUG: ``<dir>/mux-<pid>.log`` for the multiplexer (which also receives every
target interpreter's records, named after the target) and ``<dir>/worker-<pid>.log``
for each Ansible worker that used an ns.mitogen connection (one line per request
to the multiplexer, with its duration). Nothing is written on targets.

Rules it keeps: log files are private to their owner (0600, also when the file or
its directory existed before with looser modes: the directory is the user's own
business, its files are made private); nothing that is logged carries a secret
(connection specs go through ``api.redacted``; task data is never logged).

Never imports Ansible: the multiplexer uses it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Iterator, Optional

ENV = "NS_MITOGEN_LOG_DIR"
FORMAT = "%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s: %(message)s"

_started_in: Optional[int] = None  # the pid that set up logging (workers are forked)


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def start(kind: str) -> None:
    """Send this process's ``ns.mitogen`` records to ``<dir>/<kind>-<pid>.log`` (once)."""
    global _started_in
    directory = os.environ.get(ENV)
    if not directory or _started_in == os.getpid():
        return
    _started_in = os.getpid()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "%s-%d.log" % (kind, os.getpid()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an earlier process of the same pid keeps its mode
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("ns.mitogen")
    logger.handlers[:] = [handler]  # a forked worker inherits its parent's: replace it
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


@contextlib.contextmanager
def timed(log: logging.Logger, fmt: str, *args: Any) -> Iterator[None]:
    """Log ``fmt % args`` with how long the block took, and whether it raised."""
    started = time.monotonic()
    outcome = "failed"
    try:
        yield
        outcome = "ok"
    finally:
        log.debug(fmt + " -> %s (%.1f ms)", *args, outcome, (time.monotonic() - started) * 1000)
