"""Any installed become plugin as a persistent interpreter (issue 16), on testbed hosts.

Two plugins ns.mitogen has no code for: ``ns_test_tool`` (a site's own plugin, shipped
only with the tests: its own prompt, ``sudo -S`` underneath) and
``community.general.sudosu`` (a real third-party plugin, from the ``ansible`` wheel:
see ``scripts/setup``). Login ``nsm-sudopw`` (sudo asks for its own password every
time), become ``nsm-su``. The differential playbook ``become_custom.yml`` compares the
registered results with vanilla's; here: one interpreter per become user (same pid for
two tasks), the failures' words equal to vanilla's for the same plugin, fast, and no
password in any argv, log or -vvvv output.
"""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest

from tests.integration.test_ansible_connection import ROOT, inventory, run_playbook

pytestmark = pytest.mark.testbed

PLUGINS = os.path.join(ROOT, "tests", "differential", "playbooks", "become_plugins")
METHODS = ("ns_test_tool", "community.general.sudosu")
WRONG = "nsm-wrong-Pass-0000"


def _inventory(tb, tmp_path, **extra):
    return inventory(
        tb,
        tmp_path / "hosts",
        hosts=("h1",),
        ansible_user=tb.users.sudopw.name,
        ansible_become_user=tb.users.su.name,
        ansible_shell_allow_world_readable_temp="true",  # vanilla's runs only need it (see the differential playbook)
        **extra,
    )


def _run(tmp_path, inv, text, *args, env=None):
    book = tmp_path / "book.yml"
    book.write_text(text)
    environ = {"ANSIBLE_BECOME_PLUGINS": PLUGINS, "ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log")}
    environ.update(env or {})
    return run_playbook(tmp_path, inv, str(book), *args, env=environ)


REUSE = """
- hosts: all
  gather_facts: false
  tasks:
    - {name: "pid 1", ansible.builtin.shell: 'echo "$PPID $(ps -o user= -p $PPID)"', become: true, become_method: METHOD, register: a}
    - {name: "pid 2", ansible.builtin.shell: 'echo "$PPID $(ps -o user= -p $PPID)"', become: true, become_method: METHOD, register: b}
    - name: argv of the become interpreter and each of its ancestors (the tool, the login, sshd)
      ansible.builtin.shell: 'p=$PPID; while [ "$p" -gt 1 ]; do ps -o args= -p $p; p=$(ps -o ppid= -p $p | tr -d " "); done'
      become: true
      become_method: METHOD
      register: ps_target
    - name: argv of this run's processes on the controller (ansible-playbook, workers, mux, ssh)
      ansible.builtin.shell: ps -eww -o args= e | grep -F NSM_B3_RUN=MARKER
      delegate_to: localhost
      vars: {ansible_connection: local, ansible_python_interpreter: PYTHON}
      register: ps_controller
    - ansible.builtin.assert:
        that:
          - a.stdout == b.stdout
          - a.stdout.split()[1] == "nsm-su"
          - ps_target.stdout_lines | select("search", "python") | list | length >= 2
          - ps_controller.stdout_lines | select("search", "ssh ") | list | length >= 1
"""


@pytest.mark.parametrize("method", METHODS)
def test_custom_plugin_runs_two_tasks_in_one_interpreter_and_no_password_shows(testbed, tmp_path, method):
    password = testbed.users.sudopw.password
    inv = _inventory(testbed, tmp_path, ansible_become_pass=password)
    marker = uuid.uuid4().hex  # this run's processes, among those of other runs on the machine
    text = REUSE.replace("METHOD", method).replace("PYTHON", os.path.join(ROOT, ".venv", "bin", "python"))
    logs = tmp_path / "logs"
    env = {"NS_MITOGEN_LOG_DIR": str(logs), "NSM_B3_RUN": marker}
    rc, stats, output = _run(tmp_path, inv, text.replace("MARKER", marker), "-vvvv", env=env)
    assert rc == 0 and stats["h1"]["failed"] == 0, output[-4000:]
    assert "ns.mitogen: interpreter for" in output
    files = [tmp_path / "ansible.log"] + sorted(p for p in logs.rglob("*") if p.is_file())
    assert len(files) > 2  # the mux's and the workers' debug logs too
    for path in files:
        assert password not in path.read_text(errors="replace"), path
    assert password not in output


FAILS = """
- hosts: all
  gather_facts: false
  tasks:
    - {name: "id", ansible.builtin.command: id -un, become: true, become_method: METHOD}
"""


def _failure(tmp_path, inv, method, connection):
    start = time.monotonic()
    rc, stats, output = _run(tmp_path, inv, FAILS.replace("METHOD", method), "-e", "ansible_connection=%s" % connection)
    took = time.monotonic() - start
    assert stats["h1"]["failed"] == 1 and stats["h1"]["unreachable"] == 0, output[-3000:]
    found = re.search(r'"msg": "(?:Task failed: )?([^"\\]*)', output)
    assert found, output[-3000:]
    return found.group(1), took, output


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["wrong", "missing"])
def test_wrong_and_missing_passwords_fail_fast_with_vanillas_words(testbed, tmp_path, method, case):
    extra = {"ansible_become_pass": WRONG} if case == "wrong" else {}
    inv = _inventory(testbed, tmp_path, ansible_timeout="60", **extra)
    ours, took, output = _failure(tmp_path, inv, method, "ns.mitogen.ssh")
    vanilla, _took, _output = _failure(tmp_path, inv, method, "ansible.builtin.ssh")
    assert ours == vanilla == "%s %s password" % ("Incorrect" if case == "wrong" else "Missing", method)
    assert took < 10, output[-3000:]
    assert WRONG not in output and WRONG not in (tmp_path / "ansible.log").read_text()


def test_a_plugin_that_cannot_run_an_interpreter_is_refused_saying_why(testbed, tmp_path):
    inv = _inventory(testbed, tmp_path)
    rc, stats, output = _run(tmp_path, inv, FAILS.replace("METHOD", "runas"))
    assert stats["h1"]["failed"] == 1, output[-3000:]
    assert "become method 'runas' cannot run a persistent interpreter: it runs only on Windows targets" in output
