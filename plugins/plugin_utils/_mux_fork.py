# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Making the multiplexer's process: a detached fork of the caller (private; see ``_mux``).

Owns: ``fork_detached()`` (the fork, and what the child drops of its parent:
session, descriptors, signal handlers, inherited objects). What the child runs is
the caller's (``_mux_server.main``). Uses nothing of Ansible's.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import warnings
from typing import Callable

LOG = logging.getLogger("ns.mitogen.mux")


def _collections_root() -> str:
    # .../ansible_collections/ns/mitogen/plugins/plugin_utils/_mux_server.py -> dir holding ansible_collections
    here = os.path.abspath(__file__)
    for _n in range(6):
        here = os.path.dirname(here)
    return here


def fork_detached(keep_fd: int, run: Callable[[], None]) -> int:
    """Fork a process of its own that runs ``run()``; the caller goes on at once with its pid.

    A fork starts with the core already imported: a new interpreter spent 0.1 s on
    imports on a quiet machine and 0.3 s beside a busy playbook process, all of it
    on the first task's path. The child leaves the caller's session, and of the
    caller's descriptors keeps only ``keep_fd`` (see ``_detach``). It never returns
    into the caller's code.
    """
    with warnings.catch_warnings():
        # 3.12+ warns of fork() in a threaded process; the child only runs the mux.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        _detach(keep_fd)
        if _collections_root() not in sys.path:  # this copy of the core is the one served
            sys.path.insert(0, _collections_root())
        run()
        status = 0
    except BaseException:  # nothing to report to: stdio is /dev/null
        LOG.exception("the multiplexer failed")
    finally:
        os._exit(status)  # never the caller's atexit handlers, nor its stack


def _detach(keep_fd: int) -> None:
    """Make the forked child a process of its own.

    Every descriptor it inherited but ``keep_fd`` is pointed at /dev/null rather than
    closed: no pipe a reader of the caller waits on (its stdout, a result queue)
    stays open here, and an inherited object that closes its descriptor later cannot
    close one of the mux's that took its number. The inherited objects are frozen
    out of the garbage collector, so none is finalized (or flushes a buffer) here.
    """
    os.setsid()  # no terminal's Ctrl-C: the mux ends when its playbook process does
    null = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in (keep_fd, null):
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed
                os.dup2(null, fd, inheritable=fd <= 2)
    os.close(null)
    # ansible's Display wraps the inherited sys.stdout/stderr writes in its lock, which
    # this process may inherit held for ever (2.16 forks workers inside it): a warning
    # logged by the broker thread (logging's last resort writes to sys.stderr) hung the
    # mux. Fresh objects over the same /dev/null descriptors.
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    gc.freeze()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    os.chdir("/")
