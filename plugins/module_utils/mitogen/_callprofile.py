# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each incoming call costs this interpreter, for profiling (private).

Owns: ``wrap(run_call)``, used by ``_calls.CallPool`` when this interpreter
started with ``NS_MITOGEN_CALL_PROFILE=<dir>`` in its environment (read once, at
import; unset, nothing of this runs). Each call then appends one JSON line to
``<dir>/calls-<pid>.jsonl``: the function called (``module.qualname``), the CPU
time of this process over the call (``cpu_ms``: every thread, from the call's
start on its pool thread to the end of the work after its reply, so the
broker's writing of the reply and the restoring of process state after a
module run are in), the CPU of waited-for children over it (``children_ms``:
the commands a module ran), and the wall time (``wall_ms``). With
``NS_MITOGEN_CALL_CPROFILE=1`` as well, each call runs under ``cProfile`` (which
slows it: use the line's ``calls``, the number of Python calls, not its times)
and its profile goes to ``<dir>/<function>-<pid>-<n>.prof``.

For a target reached over ssh, the variable can ride on the interpreter:
``ansible_python_interpreter: env NS_MITOGEN_CALL_PROFILE=/var/tmp/p /usr/bin/python3``
(``scripts/worker_profile.py --target-profile`` does that).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any, Callable, Optional

DIRECTORY: Optional[str] = os.environ.get("NS_MITOGEN_CALL_PROFILE") or None
CPROFILE = os.environ.get("NS_MITOGEN_CALL_CPROFILE") == "1"
_SEQ = itertools.count()


def wrap(run_call: Callable[[Any], None]) -> Callable[[Any], None]:
    """``run_call``, measured (see the module docstring) when ``DIRECTORY`` is set."""
    directory = DIRECTORY
    if directory is None:
        return run_call

    def measured(msg: Any) -> None:
        import resource

        name = "?"
        try:
            ref = msg.decode()[0]
            name = "%s.%s" % ref
        except Exception:  # the call itself reports a malformed body
            pass
        profiler = None
        if CPROFILE:
            import cProfile

            profiler = cProfile.Profile()
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, wall = time.process_time(), time.monotonic()
        if profiler is not None:
            profiler.enable()
        try:
            run_call(msg)
        finally:
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            children = after.ru_utime + after.ru_stime - kids.ru_utime - kids.ru_stime
            _record(directory, name, cpu, children, wall, profiler)

    return measured


def _record(directory: str, name: str, cpu: float, children: float, wall: float, profiler: Any) -> None:
    pid, seq = os.getpid(), next(_SEQ)
    line = {
        "fn": name,
        "cpu_ms": round(cpu * 1000, 3),
        "children_ms": round(children * 1000, 3),
        "wall_ms": round(wall * 1000, 3),
    }
    if profiler is not None:
        import pstats

        line["calls"] = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
        profiler.dump_stats(os.path.join(directory, "%s-%d-%d.prof" % (name.rpartition(".")[2], pid, seq)))
    fd = os.open(os.path.join(directory, "calls-%d.jsonl" % pid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)
