"""sudo under ansible-playbook (issue 16): failures as vanilla reports them.

The same playbook runs through vanilla (``ansible.builtin.ssh`` with pipelining,
whose result shape playbooks check) and through ``ns.mitogen.ssh``, on the same
testbed host. A wrong or a missing password fails the task with vanilla's words
(then our diagnosis, naming method, user, login and host) in under 10 s with a 60 s
timeout. sudo itself failing (a flag it does not know, a user not in sudoers, no
such become user, no such program) is a module failure as vanilla's: the same
``msg``, ``rc`` and sudo's own words in ``module_stderr``. A flag that cannot apply
to a persistent interpreter is refused, saying why.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

FAULT_BOUND = 10.0


@pytest.fixture(scope="module")
def results(testbed, tmp_path_factory):
    """Registered results of become_sudo_failures.yml: {"vanilla": ..., "ours": ...}."""
    out = {}
    for name, connection, env in (
        ("vanilla", "ssh", {"ANSIBLE_PIPELINING": "1"}),
        ("ours", "ns.mitogen.ssh", {}),
    ):
        tmp = tmp_path_factory.mktemp(name)
        inv = inventory(testbed, tmp / "hosts", hosts=("h1",), ansible_connection=connection)
        rc, stats, output = run_playbook(tmp, inv, "become_sudo_failures.yml", "-e", "out=%s" % (tmp / "out.json"), env=env)
        assert rc == 0 and stats["h1"]["ignored"] == 8, output[-4000:]
        out[name] = json.loads((tmp / "out.json").read_text())
    return out


@pytest.mark.parametrize("case,words", [("wrong", "Incorrect sudo password"), ("missing", "Missing sudo password")])
def test_wrong_and_missing_sudo_password_fail_with_vanillas_words(results, case, words):
    ours, vanilla = results["ours"][case], results["vanilla"][case]
    assert vanilla["msg"] == "Task failed: %s" % words  # what vanilla says, as this ansible-core words it
    assert ours["failed"] and not ours.get("unreachable")
    first, diagnosis = ours["msg"].split("\n", 1)
    assert first == vanilla["msg"]
    assert "sudo:root via ssh:nsm-sudopw@" in diagnosis  # method, become user, login user and host
    assert float(results["ours"]["seconds"][case]) < FAULT_BOUND


@pytest.mark.parametrize("case", ["badflag", "none", "user"])
def test_sudo_itself_failing_is_a_module_failure_as_vanillas(results, case):
    ours, vanilla = results["ours"][case], results["vanilla"][case]
    for key in ("failed", "msg", "rc", "module_stdout", "module_stderr"):
        assert ours.get(key) == vanilla.get(key), key


def test_missing_become_exe_is_a_module_failure_with_status_127(results):
    ours, vanilla = results["ours"]["exe"], results["vanilla"]["exe"]
    for key in ("failed", "msg", "rc", "module_stdout"):
        assert ours.get(key) == vanilla.get(key), key
    assert "/nonexistent/sudo" in ours["module_stderr"] and "No such file or directory" in ours["module_stderr"]


def test_raw_with_sudo_refusing_the_user_fails_with_its_status_and_words(results):
    ours, vanilla = results["ours"]["raw"], results["vanilla"]["raw"]
    assert ours["rc"] == vanilla["rc"] == 1 and ours["msg"] == vanilla["msg"]
    assert ours["stderr"] == "nsm-s-none is not in the sudoers file.\n"  # vanilla: on stdout, through its pty


def test_a_flag_that_cannot_apply_is_refused_saying_why(results):
    ours, vanilla = results["ours"]["refused"], results["vanilla"]["refused"]
    assert vanilla["rc"] == 1 and "usage: sudo" in vanilla["module_stderr"]  # vanilla: sudo's usage text
    assert ours["failed"] and "sudo's -u cannot apply to a persistent interpreter" in ours["msg"]
    assert "become_user" in ours["msg"]
