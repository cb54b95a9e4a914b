"""Every name the original Mitogen documents is honoured here, or warned about, or refused.

Walks ``_original.VARIABLES`` and ``_original.ENVIRONMENT`` (the one list): a play with
all of them set, on real testbed hosts, under the built-in linear strategy with
``ns.mitogen.ssh`` and under ``ns.mitogen.linear`` with hosts on ``ssh``. Each ``WARN``
name gives its warning exactly once per run, whatever the number of hosts and tasks;
each ``HONOURED`` name changes what the connection does (checked here through
``mitogen_get_stack`` (``HONOURED_CHECKS``), or by the test ``HONOURED_ELSEWHERE`` names).
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.ns.mitogen.plugins.plugin_utils import _original
from tests.integration.test_ansible_connection import ROOT, inventory, run_playbook

pytestmark = pytest.mark.testbed

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ns.mitogen.mitogen_get_stack:
      register: stack
    - ansible.builtin.command: "true"
      changed_when: false
    - ansible.builtin.command: "true"
      changed_when: false
    - ansible.builtin.copy:
        content: "{{ stack.result | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

# value to set -> what the first hop's spec must then hold
HONOURED_CHECKS = {
    "mitogen_ssh_compression": ("false", lambda spec: spec["compression"] is False),
    "mitogen_ssh_debug_level": ("2", lambda spec: spec["verbosity"] == 2),
    "mitogen_ssh_keepalive_interval": ("15", lambda spec: spec["keepalive_interval"] == 15),
    "mitogen_ssh_keepalive_count": ("4", lambda spec: spec["keepalive_count"] == 4),
    # what fork does is checked by tests/integration/test_zygote.py (module pid, interpreter pid)
    "mitogen_task_isolation": ("fork", lambda spec: True),
}


# name -> the test that checks it is honoured
HONOURED_ELSEWHERE = {"mitogen_via": "tests/integration/test_via.py"}


def _flat(text: str) -> str:
    return " ".join(text.split())  # Ansible wraps warnings at the terminal's width


def test_the_checks_cover_every_honoured_name():
    honoured = {name for name, entry in _original.VARIABLES.items() if entry.status == _original.HONOURED}
    assert honoured == set(HONOURED_CHECKS) | set(HONOURED_ELSEWHERE)


@pytest.mark.parametrize("strategy", ["ansible.builtin.linear", "ns.mitogen.linear"])
def test_every_original_name_is_honoured_warned_or_refused(testbed, tmp_path, strategy):
    unused = {name: "1" for name, entry in _original.VARIABLES.items() if entry.status == _original.WARN}
    honoured = {name: value for name, (value, _check) in HONOURED_CHECKS.items()}
    connection = "ns.mitogen.ssh" if strategy == "ansible.builtin.linear" else "ssh"
    inv = inventory(testbed, tmp_path / "hosts", ansible_connection=connection)
    extra = " ".join("%s=%s" % kv for kv in {**unused, **honoured}.items())
    text = (tmp_path / "hosts").read_text()
    text = text.replace("h2 ansible_host=%s" % testbed["h2"].address, "h2 ansible_host=%s %s" % (testbed["h2"].address, extra))
    (tmp_path / "hosts").write_text(text)
    (tmp_path / "play.yml").write_text(PLAY)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {name: "1" for name in _original.ENVIRONMENT}
    env["ANSIBLE_STRATEGY"] = strategy
    env["ANSIBLE_PLAYBOOK_DIR"] = ROOT
    rc, stats, output = run_playbook(tmp_path, inv, str(tmp_path / "play.yml"), "-e", "out_dir=%s" % out_dir, env=env)
    flat = _flat(output)

    assert stats["h1"]["failed"] == 0 and stats["h2"]["failed"] == 0 and stats["h1"]["ok"] == 4, output[-3000:]
    for table in (_original.VARIABLES, _original.ENVIRONMENT):
        for name, entry in table.items():
            if entry.status == _original.WARN:
                assert flat.count(_flat(entry.text)) == 1, "%s: warned %d times" % (name, flat.count(_flat(entry.text)))
            elif entry.status == _original.HONOURED:
                assert _flat(entry.text) not in flat
    spec = json.loads((out_dir / "h2.json").read_text())[0]
    for name, (_value, check) in HONOURED_CHECKS.items():
        assert check(spec), (name, spec)
    assert json.loads((out_dir / "h1.json").read_text())[0]["compression"] is True  # the default, where not set


def test_bare_mitogen_strategy_name_works_through_the_shim_directory(testbed, tmp_path):
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\nstrategy_plugins = %s\nstrategy = mitogen\n" % os.path.join(ROOT, "strategy_plugins"))
    inv = inventory(testbed, tmp_path / "hosts", ansible_connection="ssh")
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "out").mkdir()
    rc, stats, output = run_playbook(
        tmp_path, inv, str(tmp_path / "play.yml"), "-e", "out_dir=%s" % (tmp_path / "out"), env={"ANSIBLE_CONFIG": str(cfg)}
    )
    assert rc == 0, output[-3000:]
    # the stack comes from ns.mitogen.ssh: the host was switched to it
    assert json.loads((tmp_path / "out" / "h1.json").read_text())[0]["method"] == "ssh"
