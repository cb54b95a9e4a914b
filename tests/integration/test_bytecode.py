"""Compiled code sent beside module_utils' source over local links to the same Python (``_bytecode``).

Real interpreters: the system ``/usr/bin/python3`` shares the controller's magic
number (both 3.11), pyenv's 3.12 does not; a real ssh target of the testbed and
sudo interpreters behind it. Counted by each importer's ``modules_compiled`` /
``modules_from_code`` (``_child.stats``).
"""

from __future__ import annotations

import sys

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from tests.integration import remote_helpers as rh
from tests.integration.runner_support import ALLOW, Runner, comparable, decode, module_path, write_module
from tests.testbed.pythons import pythons
from tests.unavailable import unavailable

SAME = "/usr/bin/python3"
OTHER = next((pythons()[v] for v in ("3.12", "3.8", "3.13") if v in pythons()), None)

# Raises inside a module_util, so the traceback walks code that came marshalled;
# reported as a module reports one (fail_json's ``exception``).
RAISES = """
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.validation import check_type_int


def main():
    module = AnsibleModule(argument_spec=dict())
    try:
        check_type_int("not a number")
    except TypeError as exc:
        module.fail_json(msg=str(exc), traceback_text=traceback.format_exc())


if __name__ == "__main__":
    main()
"""


@pytest.fixture
def session():
    s = api.Session(allow_imports=ALLOW, connect_timeout=60)
    try:
        yield s
    finally:
        s.close()


def _ssh(session, testbed, python, user=None):
    return session.ssh(
        testbed["h1"].address,
        username=user or testbed.users.sudo.name,
        identity_file=str(testbed.key),
        known_hosts_file=str(testbed.known_hosts),
        python=python,
    )


def _runs(ctx, tmp_path):
    """ping, command and the raising module on ``ctx``: their results, comparable across Pythons."""
    tmp_path.mkdir()
    runner = Runner(ctx, tmp_path)
    ping = decode(runner.run(module_path("ping"), {})["stdout"])
    command = comparable(decode(runner.run(module_path("command"), {"_raw_params": "echo from code"})["stdout"]))
    raised = runner.run(write_module(tmp_path, "raises_in_utils", RAISES), {})
    return ping, command, raised


def _traceback(raised):
    """The module's failure as Ansible reads it: the traceback's text."""
    assert raised["rc"] == 1, raised
    return decode(raised["stdout"])["traceback_text"]


def _assert_traceback_has_source(raised):
    text = _traceback(raised)
    # the module_util's own line, read from the source that travelled with the code
    assert "master:" in text and "validation.py" in text and "raise TypeError(" in text, text


def _assert_from_code(ctx):
    stats = ctx.call(rh.stats)
    assert "ansible.module_utils.basic" in stats["cached_modules"]
    assert stats["modules_compiled"] == 0, stats
    assert stats["modules_from_code"] >= 40, stats  # basic's closure, the runner's modules


def _assert_compiled(ctx):
    stats = ctx.call(rh.stats)
    assert stats["modules_from_code"] == 0 and stats["modules_compiled"] >= 40, stats


def test_a_local_interpreter_of_our_python_runs_sent_code_another_compiles(session, tmp_path):
    same = session.local(python=SAME)  # not this process's interpreter: the same magic number
    assert same.call(rh.identity)["python"][:2] == list(sys.version_info[:2])
    results = _runs(same, tmp_path / "same")
    _assert_from_code(same)
    _assert_traceback_has_source(results[2])
    assert results[0]["ping"] == "pong" and results[1]["stdout"] == "from code", results

    if OTHER is None:
        unavailable("needs a Python with another magic number (pyenv's 3.12, 3.8 or 3.13)")
    other = session.local(python=OTHER)
    assert other.call(rh.identity)["python"][:2] != list(sys.version_info[:2])
    other_results = _runs(other, tmp_path / "other")
    _assert_compiled(other)
    _assert_traceback_has_source(other_results[2])
    assert other_results[:2] == results[:2]
    assert _traceback(other_results[2]).splitlines()[-1] == _traceback(results[2]).splitlines()[-1]


@pytest.mark.testbed
def test_an_ssh_target_gets_source_its_become_interpreters_the_code_it_ran(session, testbed, tmp_path):
    login = _ssh(session, testbed, SAME)
    assert login.call(rh.identity)["python"][:2] == list(sys.version_info[:2])
    _runs(login, tmp_path / "login")
    _assert_compiled(login)  # across a network: source only (code would be ~2.8x the bytes)
    # a become interpreter behind it, on its machine: the code the login one ran
    root = session.sudo(via=login)
    root_results = _runs(root, tmp_path / "root")
    _assert_from_code(root)
    _assert_traceback_has_source(root_results[2])
    other = session.sudo(via=login, username=testbed.users.key.name)
    _runs(other, tmp_path / "other")
    _assert_from_code(other)
