"""Run one command and account for the controller CPU of everything it started.

Usage (the Ansible benchmark runs every ``ansible-playbook`` through it)::

    python -m benchmarks.supervise --result OUT.json [--log LOG] [--cwd DIR] \\
        [--close-control-masters DIR] -- COMMAND...

Why a separate process: ``ansible-playbook`` leaves helpers behind that no rusage
call of its own covers, because they outlive it detached from it (their own
session, reparented away): the ns.mitogen multiplexer with its ssh processes, or
the ssh ControlPersist masters of vanilla Ansible. This process makes itself a
*child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so every such orphan of the
command is reparented to it instead of to init. It then

1. runs the command (stdout and stderr to ``--log``), timing it: ``wall_s``;
2. closes every ssh ControlMaster socket found in ``--close-control-masters``
   (``ssh -O exit``), as ControlPersist would after its timeout;
3. reaps every orphan (``wait4``, which gives each one's CPU including its own
   reaped children) until none is left, within ``REAP_TIMEOUT`` seconds.

The result (JSON) splits the controller CPU into the command itself (including the
children it reaped: Ansible's workers, its ssh clients) and each orphan, and
excludes the ``ssh -O exit`` clients of step 2 and this process's own interpreter.
Processes that are not descendants of the command (the testbed's sshd and the
target-side interpreters) are never counted. Exit status 0 means the accounting
is complete (the command's own status is in the result); 1 means an orphan would
not go away (it is then sent SIGTERM, by pid, and the result says so).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.harness import child_pids

PR_SET_CHILD_SUBREAPER = 36
REAP_TIMEOUT = 20.0


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def close_control_masters(directory: Optional[Path]) -> List[str]:
    """``ssh -O exit`` every ControlMaster socket in ``directory``; the sockets closed."""
    closed: List[str] = []
    if directory is None or not directory.is_dir():
        return closed
    for path in sorted(directory.iterdir()):
        if stat.S_ISSOCK(path.lstat().st_mode):
            argv = ["ssh", "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "exit", "nsm-bench"]
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
            closed.append(path.name)
    return closed


def reap_orphans(deadline: float) -> List[Dict[str, Any]]:
    """Wait for every remaining child (all orphans by now); their names and CPU."""
    names: Dict[int, str] = {}
    reaped: List[Dict[str, Any]] = []
    while True:
        for pid in child_pids():
            names.setdefault(pid, comm(pid))
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped.append(
                {
                    "pid": pid,
                    "comm": names.get(pid, "?"),
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                    "status": os.waitstatus_to_exitcode(status),
                }
            )
            continue
        if time.monotonic() > deadline:
            stuck = child_pids()
            for pid in stuck:
                os.kill(pid, signal.SIGTERM)
            raise TimeoutError("orphans still running after %.0f s: %s" % (REAP_TIMEOUT, [(p, comm(p)) for p in stuck]))
        time.sleep(0.01)


def supervise(command: Sequence[str], log: Path, masters_dir: Optional[Path], cwd: Optional[Path] = None) -> Dict[str, Any]:
    become_subreaper()
    cpu0 = children_cpu_s()
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        rc = proc.wait()
        wall = time.perf_counter() - t0
    command_cpu = children_cpu_s() - cpu0
    t1 = time.perf_counter()
    cpu1 = children_cpu_s()
    closed = close_control_masters(masters_dir)
    closers_cpu = children_cpu_s() - cpu1  # the `ssh -O exit` clients: not the command's cost
    orphans = reap_orphans(time.monotonic() + REAP_TIMEOUT)
    return {
        "rc": rc,
        "wall_s": wall,
        "command_cpu_s": command_cpu,
        "orphans": orphans,
        "orphans_cpu_s": sum(o["cpu_s"] for o in orphans),
        "cpu_s": command_cpu + sum(o["cpu_s"] for o in orphans),
        "control_masters_closed": closed,
        "closers_cpu_s": closers_cpu,
        "teardown_s": time.perf_counter() - t1,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.supervise", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--log", type=Path, default=Path(os.devnull), help="the command's stdout and stderr")
    parser.add_argument("--cwd", type=Path, help="working directory of the command")
    parser.add_argument("--close-control-masters", type=Path, help="directory of ssh ControlMaster sockets to close")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    try:
        result = supervise(command, args.log, args.close_control_masters, args.cwd)
    except TimeoutError as exc:
        args.result.write_text(json.dumps({"error": str(exc)}) + "\n")
        return 1
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
