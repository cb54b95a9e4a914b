"""Shared pytest set-up: import path of the collection, and the leak check.

The collection is imported as ``ansible_collections.ns.mitogen`` from a link farm
in ``.build/collections`` pointing at this checkout, so tests run against the
working tree exactly as Ansible would load it.

``no_leaks`` (autouse) fails any test that leaves behind a thread, a file
descriptor or a child process that was not there when it started.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")


def _link_collection() -> None:
    ns_dir = os.path.join(COLLECTIONS, "ansible_collections", "ns")
    link = os.path.join(ns_dir, "mitogen")
    os.makedirs(ns_dir, exist_ok=True)
    if not os.path.islink(link) or os.readlink(link) != ROOT:
        tmp = link + ".%d" % os.getpid()
        os.symlink(ROOT, tmp)
        os.replace(tmp, link)


_link_collection()
for path in (COLLECTIONS, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

from tests.processes import child_pids  # noqa: E402 - after sys.path is set

pytest_plugins = ["tests.testbed.fixtures"]


def _fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def _describe_fd(fd: int) -> str:
    try:
        return "%d -> %s" % (fd, os.readlink("/proc/self/fd/%d" % fd))
    except OSError:
        return str(fd)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest):
    """Fail the test if it leaks threads, file descriptors or child processes."""
    threads, fds, children = _threads(), _fds(), child_pids()
    yield
    deadline = time.monotonic() + 10.0
    while True:
        extra_threads = [t for t in _threads() - threads if t.is_alive()]
        extra_fds = _fds() - fds
        extra_children = child_pids() - children
        if not (extra_threads or extra_fds or extra_children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if extra_threads:
        problems.append("threads: %s" % ", ".join(sorted(t.name for t in extra_threads)))
    if extra_fds:
        problems.append("fds: %s" % ", ".join(_describe_fd(fd) for fd in sorted(extra_fds)))
    if extra_children:
        problems.append("child processes: %s" % sorted(extra_children))
    if problems:
        pytest.fail("test leaked " + "; ".join(problems), pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (1 GiB transfers, minutes each) run in the full matrix only
    (``NSM_FULL_MATRIX=1``), which keeps the default run, and CI, within its time."""
    if os.environ.get("NSM_FULL_MATRIX"):
        return
    skip = pytest.mark.skip(reason="slow: NSM_FULL_MATRIX=1 runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
