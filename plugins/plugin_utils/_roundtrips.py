# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many request/reply round trips a task made to each target interpreter (private).

Owns: reporting the count a connection kept for one task (``MitogenConnectionBase``
counts each call, put and fetch it sends to an interpreter: one round trip each,
whatever it streams). At ``-vvv`` one line per task and host; with
``NS_MITOGEN_ROUND_TRIPS`` set to a file name, also one JSON line appended there per
task and host (``{"host": ..., "action": ..., "trips": {interpreter: count}, "total": n}``), in the
order the tasks ended: what tests and benchmarks read.

Interpreters are named as ``-vvv`` names them (``ssh:user@host``, ``sudo:root``).
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict

ENV = "NS_MITOGEN_ROUND_TRIPS"


def report(host: str, action: str, trips: Dict[str, int], say: Callable[..., None]) -> None:
    """Show ``trips`` (interpreter -> count) at -vvv; append them to ``$NS_MITOGEN_ROUND_TRIPS``."""
    total = sum(trips.values())
    say(
        "ns.mitogen: %s: %d round trip(s) (%s)"
        % (action or "task", total, ", ".join("%s: %d" % kv for kv in sorted(trips.items()))),
        host=host,
    )
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"host": host, "action": action, "trips": trips, "total": total}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))  # one write: lines of parallel workers never interleave
    finally:
        os.close(fd)
