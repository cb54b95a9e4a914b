"""Functions run inside a container by the container transports' tests (stdlib only:
they are imported there, through the importer)."""

from __future__ import annotations

import os


def mounts() -> str:
    """This process's mount table."""
    with open("/proc/self/mounts") as fp:
        return fp.read()


def pid1() -> str:
    """The command line of pid 1 in this process's pid namespace."""
    with open("/proc/1/cmdline", "rb") as fp:
        return fp.read().replace(b"\0", b" ").decode().strip()


def write_and_check(path: str) -> bool:
    """Write ``path``; whether it then exists (here)."""
    with open(path, "w") as fp:
        fp.write("inside")
    return os.path.exists(path)
