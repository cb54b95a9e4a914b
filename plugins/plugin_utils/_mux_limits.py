# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The multiplexer's open-file limit (private; see ``_mux``).

Owns: raising the mux's ``RLIMIT_NOFILE`` soft limit to its hard limit as it starts
(``raise_nofile``; ``planned_nofile`` tells the process forking the mux what that will
do, for its -vvv line), and refusing a new context with a clear error, naming the
limit and how to raise it, when the descriptors left cannot cover it (``check_room``,
``OutOfFiles``), rather than an ``EMFILE`` traceback from wherever the next
descriptor was wanted (a pipe to ssh, a worker's socket, a log file).

What a context costs here: its child program's pipes (stdin, stdout, stderr: ssh's
descriptors, ``PER_CONTEXT``) for a first hop; nothing for a hop reached through
another context. ``RESERVE`` is kept free for everything else: the workers'
sockets (one per Ansible fork), log files, a file being pushed or fetched.
Uses nothing of Ansible's.
"""

from __future__ import annotations

import errno
import os
import resource
from typing import Tuple

#: descriptors a first-hop context holds in the mux (measured: 3, see the test)
PER_CONTEXT = 3
#: descriptors kept free for everything else (workers' sockets, logs, file transfers)
RESERVE = 64
HOW_TO_RAISE = (
    "raise the open-file hard limit of the user running ansible-playbook (`ulimit -Hn 65536` in the shell "
    "that starts it, as root; `nofile` in /etc/security/limits.conf; LimitNOFILE= for a systemd "
    "service; `--ulimit nofile=...` for a container), or lower forks"
)


class OutOfFiles(Exception):
    """The mux cannot open the descriptors one more context needs."""


def planned_nofile() -> Tuple[int, int]:
    """(soft limit now, soft limit the mux will have): ``raise_nofile`` in a fork of this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, _target(soft, hard)


def started_message() -> str:
    """What -vvv says as this process starts the mux (a fork of it)."""
    before, after = planned_nofile()
    return "ns.mitogen: multiplexer started, its open-file limit (RLIMIT_NOFILE) %d (from %d)" % (after, before)


def _target(soft: int, hard: int) -> int:
    if hard == resource.RLIM_INFINITY:  # not settable as a soft limit above nr_open
        try:
            with open("/proc/sys/fs/nr_open") as fp:
                return max(soft, int(fp.read()))
        except (OSError, ValueError):
            return soft
    return max(soft, hard)


def raise_nofile() -> Tuple[int, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to the hard limit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _target(soft, hard)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return soft, soft
    return soft, target


def open_fds() -> int:
    """How many descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own
    except OSError:
        return 0


def check_room(contexts: int = 1) -> None:
    """Raise ``OutOfFiles`` unless ``contexts`` more first-hop contexts fit under the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = open_fds()
    if used + contexts * PER_CONTEXT + RESERVE > soft:
        raise OutOfFiles(describe(used, soft, hard))


def describe(used: int, soft: int, hard: int) -> str:
    """The error: the limit, what is in use, and how to raise it."""
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return (
        "the ns.mitogen multiplexer (pid %d) is out of open files: %d in use, its open-file limit "
        "(RLIMIT_NOFILE) is %d (hard limit %s; it keeps %d free and each host's connection needs %d), "
        "so it cannot connect to more hosts at once" % (os.getpid(), used, soft, shown, RESERVE, PER_CONTEXT)
    )


def is_out_of_files(exc: BaseException) -> bool:
    """An ``EMFILE``/``ENFILE``, raised as it is or reported in an error's text."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return True
    return os.strerror(errno.EMFILE) in str(exc) or os.strerror(errno.ENFILE) in str(exc)
