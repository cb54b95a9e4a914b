"""Run one command so that nothing it starts outlives it (a child subreaper).

Owns the process life cycle of one differential run; `runner.py` starts it as

    python reaper.py REPORT CONTROL_DIR -- ansible-playbook ...

and reads REPORT afterwards.  The reaper makes itself a child subreaper
(PR_SET_CHILD_SUBREAPER), so every process the command leaves behind - even
one that detached with setsid, like an ssh ControlPersist master or a
multiplexer daemon - is re-parented to it.  After the command exits it:

1. asks each ssh master with a socket in CONTROL_DIR to exit (`ssh -O exit`);
2. waits up to GRACE seconds for the remaining descendants to exit;
3. kills (SIGKILL, by pid) and reaps whatever is still there;
4. writes REPORT: {"rc": <exit status>, "leftovers": [<command lines>]}.

SIGTERM (the runner's timeout) kills the command's process group and every
descendant, then writes the report with rc null.  Standard library only (and
`tests/processes.py`).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the checkout's tests package
from tests.processes import child_pids  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
GRACE = 5.0
MASTER_EXIT_TIMEOUT = 10.0


def _children() -> dict[int, str]:
    """{pid: command line} of this process's live children."""
    found = {}
    for pid in child_pids():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if state != "Z":
            found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _reap() -> None:
    while True:
        try:
            pid, _unused = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def close_ssh_masters(control_dir: Path) -> None:
    """Ask every ssh master with a socket in control_dir to exit; wait; remove the dir."""
    sockets = [p for p in control_dir.iterdir() if p.is_socket()] if control_dir.is_dir() else []
    for sock in sockets:
        subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "nsm-diff-master"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=MASTER_EXIT_TIMEOUT,
            check=False,
        )
    deadline = time.monotonic() + MASTER_EXIT_TIMEOUT
    while any(p.exists() for p in sockets) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)  # a master removes its socket as it exits
    shutil.rmtree(control_dir, ignore_errors=True)


def _kill_all(pgid: int | None) -> list[str]:
    """SIGKILL the command's group and every child; reap; return the children's command lines."""
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed = []
    for _n in range(50):  # children of killed children are re-parented here too
        alive = _children()
        if not alive:
            break
        for pid, cmd in alive.items():
            killed.append(cmd)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
        _reap()
    _reap()
    return killed


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: reaper.py REPORT CONTROL_DIR -- COMMAND...\n")
        return 2
    report, control_dir, command = Path(argv[0]), Path(argv[1]), argv[3:]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed\n")
        return 2
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=0)

    def on_term(signum: int, frame: object) -> None:
        _kill_all(proc.pid)
        close_ssh_masters(control_dir)
        report.write_text(json.dumps({"rc": None, "leftovers": []}))
        os._exit(1)

    signal.signal(signal.SIGTERM, on_term)
    rc = proc.wait()
    close_ssh_masters(control_dir)
    deadline = time.monotonic() + GRACE
    while _children() and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)
    leftovers = _kill_all(None)
    report.write_text(json.dumps({"rc": rc, "leftovers": leftovers}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
