# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many request/reply round trips a task made to each target interpreter (private).

Owns: reporting the count a connection kept for one task (``MitogenConnectionBase``
counts each call, put and fetch it sends to an interpreter: one round trip each,
whatever it streams; and, as the multiplexer reports them with each call's reply,
the module requests the target sent across the link meanwhile (``GET_MODULE``
answered by the controller, ``_mux_modules``): one round trip each too). At
``-vvv`` one line per task and host; with ``NS_MITOGEN_ROUND_TRIPS`` set to a file
name, also one JSON line appended there per task and host (``{"host": ...,
"action": ..., "trips": {interpreter: count}, "target_requests": {interpreter:
count}, "total": n, "sources": m}``, ``total`` every link round trip the task
caused, ``sources`` how many of its calls carried a module's source: 0 when the
module was there already, or sent ahead by our strategy), in the order the tasks
ended: what tests and benchmarks read.

Interpreters are named as ``-vvv`` names them (``ssh:user@host``, ``sudo:root``).
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, Optional

ENV = "NS_MITOGEN_ROUND_TRIPS"


def report(
    host: str,
    action: str,
    trips: Dict[str, int],
    say: Callable[..., None],
    asked: Optional[Dict[str, int]] = None,
    sources: int = 0,
) -> None:
    """Show ``trips`` and ``asked`` (interpreter -> count) at -vvv; append them to ``$NS_MITOGEN_ROUND_TRIPS``.

    ``asked``: the module requests the targets sent across the link during the calls;
    ``sources``: how many calls carried a module's source.
    """
    asked = {k: v for k, v in (asked or {}).items() if v}
    total = sum(trips.values()) + sum(asked.values())
    said = ", ".join("%s: %d" % kv for kv in sorted(trips.items()))
    if asked:
        said += "; target requests: " + ", ".join("%s: %d" % kv for kv in sorted(asked.items()))
    say("ns.mitogen: %s: %d round trip(s) (%s)" % (action or "task", total, said), host=host)
    path = os.environ.get(ENV)
    if not path:
        return
    record = {"host": host, "action": action, "trips": trips, "target_requests": asked, "total": total, "sources": sources}
    line = json.dumps(record, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))  # one write: lines of parallel workers never interleave
    finally:
        os.close(fd)
