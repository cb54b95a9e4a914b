"""The hop connections ns.mitogen.sudo, su and doas: the controller's own accounts.

Each runs the shared connection target (targets/connection_<method>/runme.sh) as the
testbed's ``nsm-sudo`` account, becoming ``nsm-key`` on top; and a play checks who
runs the tasks, the stack, the original name (``mitogen_sudo``) and that one
interpreter serves every task.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_ansible_connection import run_playbook
from tests.integration.test_connection_targets import host_lines, run_target
from tests.unavailable import unavailable

pytestmark = pytest.mark.testbed

METHODS = ["sudo", "su", "doas"]

PLAY = """
- hosts: hop
  gather_facts: false
  tasks:
    - ansible.builtin.command: id -un
      register: who
      changed_when: false
    - ansible.builtin.command: python3 -c "import os; print(os.getppid())"
      register: pid1
      changed_when: false
    - ansible.builtin.command: python3 -c "import os; print(os.getppid())"
      register: pid2
      changed_when: false
    - ansible.builtin.command: id -un
      register: became
      become: true
      become_user: "{{ other }}"
      changed_when: false
    - ns.mitogen.mitogen_get_stack:
      register: stack
      become: true
      become_user: "{{ other }}"
    - ansible.builtin.assert:
        that:
          - who.stdout == hop_user
          - pid1.stdout == pid2.stdout
          - became.stdout == other
          - stack.result | map(attribute='method') | list == [method, 'sudo']
          - stack.result[0].username == hop_user
"""


def need(method: str) -> None:
    if method == "doas" and not any(os.access(os.path.join(d, "doas"), os.X_OK) for d in ("/usr/bin", "/usr/sbin", "/bin")):
        unavailable("doas is not installed on this machine (scripts/setup installs opendoas)")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "name, strategy",
    [
        ("ns.mitogen.%s", "ansible.builtin.linear"),
        ("ns.mitogen.mitogen_%s", "ansible.builtin.linear"),  # meta/runtime.yml
        ("mitogen_%s", "ns.mitogen.linear"),  # the original's bare name, under our strategy
    ],
)
def test_hop_connection_runs_tasks_as_its_user(testbed, tmp_path, method, name, strategy):
    need(method)
    inv = tmp_path / "hosts"
    inv.write_text(
        host_lines("hop", ["ctl"])
        + "[hop:vars]\nansible_connection=%s\nansible_user=%s\nansible_python_interpreter=/usr/bin/python3\n"
        % (name % method, testbed.users.sudo.name)
    )
    (tmp_path / "play.yml").write_text(PLAY)
    extra = "hop_user=%s other=%s method=%s" % (testbed.users.sudo.name, testbed.users.key.name, method)
    rc, stats, output = run_playbook(
        tmp_path, str(inv), str(tmp_path / "play.yml"), "-e", extra, env={"ANSIBLE_STRATEGY": strategy}
    )
    assert rc == 0 and stats["ctl"]["failed"] == 0 and stats["ctl"]["ok"] == 6, output[-3000:]


@pytest.mark.parametrize("method", METHODS)
def test_connection_hop_target(testbed, tmp_path: Path, method):
    need(method)
    inventory = host_lines(method, ["%s-nsm" % method]) + (
        "[%s:vars]\nansible_connection=ns.mitogen.%s\nansible_user=%s\nansible_python_interpreter=/usr/bin/python3\n"
        "connection_persistent=true\nconnection_become_user=%s\n"
        # the testbed's accounts have their homes inside the hosts, not on the controller
        "ansible_remote_tmp=/tmp\n" % (method, method, testbed.users.sudo.name, testbed.users.key.name)
    )
    recap = run_target("connection_%s" % method, inventory, tmp_path)
    host = "%s-nsm" % method
    assert recap[host]["failed"] == 0 and recap[host]["ok"] >= 18, recap
