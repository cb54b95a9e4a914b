"""Fixtures of the in-process runner tests (test_runner*.py): one Session per test
module, one local target interpreter shared by its tests, a Runner per test; and of
the multiplexer tests (test_mux_*.py): a stand-in playbook process for a mux to serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux
from tests.integration.runner_support import ALLOW, TARGET_PY, Runner
from tests.processes import child_pids


@pytest.fixture(scope="module")
def session():
    s = api.Session(allow_imports=ALLOW, connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def target(session):
    """One interpreter shared by every local test: state left by one test would show."""
    return session.local(python=TARGET_PY)


@pytest.fixture
def runner(target, tmp_path):
    return Runner(target, tmp_path)


@pytest.fixture
def playbook():
    """A stand-in for ansible-playbook: the mux serves it, and exits when it is gone."""
    before = child_pids()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        muxes = child_pids() - before - {proc.pid}
        deadline = time.monotonic() + 10
        while muxes and time.monotonic() < deadline:  # each mux exits once its playbook is gone
            muxes = {pid for pid in muxes if os.waitpid(pid, os.WNOHANG) == (0, 0)}
            time.sleep(0.05)
        assert not muxes, "the mux did not exit with its playbook process"
        path = _mux.socket_path(proc.pid)
        assert not os.path.exists(path), "the mux left its socket behind"
        assert not os.path.exists(path + ".lock"), "the mux left its lock file behind"
