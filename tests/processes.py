"""This process's children, as the kernel lists them (for leak checks and reaping)."""

from __future__ import annotations

import os


def child_pids() -> set[int]:
    """Every child of every thread of this process, zombies included."""
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/children" % tid) as fp:
                pids.update(int(p) for p in fp.read().split())
        except OSError:  # a thread that ended meanwhile
            pass
    return pids
