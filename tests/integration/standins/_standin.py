"""What every stand-in engine shares (imported by the scripts beside it; stdlib only).

A stand-in is an executable named as a container engine's tool (``lxc-attach``,
``lxc``, ``incus``, ``jexec``, ``kubectl``, ``machinectl``, ``lxc-info``) for the
engines that cannot run on this machine. It

* records its argv (and the environment variables in ``NSM_STANDIN_ENV``) as one JSON
  line in ``$NSM_STANDIN_LOG``, when set;
* checks that its argv has the engine's shape, exiting 2 with ``standin: bad argv``
  and what was wrong otherwise (so a wrong command line fails the test that made it);
* simulates the engine's failures, with the engine's own words and exit status, for
  the names ``missing`` (no such container/pod/jail/instance), ``stopped`` (not
  running) and ``nope`` (no such namespace, project, remote or context);
* otherwise runs the command locally, in its place (``exec``), so the command's
  status is the engine's, as with the real tools.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, NoReturn

MISSING, STOPPED, NOPE = "missing", "stopped", "nope"


def record(tool: str) -> None:
    path = os.environ.get("NSM_STANDIN_LOG")
    if not path:
        return
    env = {k: os.environ.get(k) for k in os.environ.get("NSM_STANDIN_ENV", "").split(",") if k}
    with open(path, "a") as fp:
        fp.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "env": env}) + "\n")


def bad(why: str) -> NoReturn:
    sys.stderr.write("standin: bad argv: %s: %r\n" % (why, sys.argv[1:]))
    sys.exit(2)


def fail(text: str, status: int = 1) -> NoReturn:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    sys.exit(status)


def run(command: List[str]) -> NoReturn:
    if not command:
        bad("no command")
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        fail("%s: %s" % (command[0], exc.strerror), 127)
