"""pytest fixtures for the testbed.

Owns: `testbed` (session scope: hosts h1, h2, h3 with h3 private behind h2,
no added latency) and `make_testbed` (function scope factory:
`make_testbed(**kwargs)` -> started `Testbed`, torn down at test end).
Both skip, with the reason, when the machine cannot host a testbed (not root,
or no network namespaces); both tear down even when the test fails.

``podman`` (session scope): a ``containers.Podman`` for real containers (skips, or
fails under CI, where podman cannot run).

Import them into a conftest.py: `from tests.testbed.fixtures import testbed, make_testbed`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.unavailable import unavailable

from .containers import Podman
from .containers import unavailable_reason as containers_unavailable_reason
from .testbed import Testbed


def unsupported_reason() -> str | None:
    """Why this machine cannot run a testbed, or None if it can."""
    if os.geteuid() != 0:
        return "the SSH testbed needs root (network namespaces, useradd, sshd)"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "the SSH testbed needs `ip netns` (iproute2) and unshare (util-linux)"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
        subprocess.run(["unshare", "--net", "--mount", "true"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "network/mount namespaces are not available here (`ip netns`/unshare failed)"
    return None


def _skip_if_unsupported() -> None:
    reason = unsupported_reason()
    if reason is not None:
        unavailable(reason)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """Three hosts: h1, h2 reachable from the controller, h3 only through h2."""
    _skip_if_unsupported()
    tb = Testbed(hosts=3, rtt_ms=0, private={"h3": "h2"})
    try:
        tb.start()
        yield tb
    finally:
        tb.close()


@pytest.fixture
def make_testbed() -> Iterator[Callable[..., Testbed]]:
    """Factory for a test's own testbed(s): make_testbed(hosts=2, rtt_ms=50, ...)."""
    _skip_if_unsupported()
    made: list[Testbed] = []

    def factory(**kwargs: Any) -> Testbed:
        tb = Testbed(**kwargs)
        made.append(tb)
        return tb.start()

    try:
        yield factory
    finally:
        errors = []
        for tb in reversed(made):
            try:
                tb.close()
            except Exception as exc:  # keep tearing down the others
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """This session's podman setup (containers made by tests are removed at its end)."""
    reason = containers_unavailable_reason()
    if reason is not None:
        unavailable(reason)
    engine = Podman()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def podman_docker(podman: Podman) -> Podman:
    """``podman`` with its Docker-compatible API running (``podman.docker_host``), for the
    real docker CLI (``podman.docker_executable`` carries ``DOCKER_HOST``)."""
    podman.docker_api()
    return podman
