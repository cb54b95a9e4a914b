"""``ansible_python_interpreter`` in the shell-like forms vanilla accepts, on real hosts.

Each form runs a module and a become task under ``ns.mitogen.ssh``. Vanilla's rules
moved: ansible-core 2.16 hands the setting to a shell unquoted (shell syntax and words
work, a path with spaces does not), 2.17+ quotes it as one word (a path with spaces
works, nothing else does); ns.mitogen accepts both. The unquoted path runs under
vanilla too, for comparison. The helper files live in /var/tmp, which testbed hosts
share with the controller.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook

pytestmark = pytest.mark.testbed

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: /usr/bin/env
      register: env_out
      changed_when: false
    - ansible.builtin.command: id -un
      become: true
      register: become_out
      changed_when: false
    - ansible.builtin.copy:
        content: "{{ env_out.stdout_lines | select('match', '^NSM_FORM=') | list | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
    - ansible.builtin.assert:
        that: become_out.stdout == 'root'
"""


@pytest.fixture
def helpers():
    """/var/tmp/nsm-forms-X/: an activate script and a Python under a path with a space."""
    base = "/var/tmp/nsm-forms-%s" % uuid.uuid4().hex[:8]
    os.makedirs(base + "/my python/bin")
    os.chmod(base, 0o755)
    os.chmod(base + "/my python", 0o755)
    os.symlink("/usr/bin/python3", base + "/my python/bin/python3")
    with open(base + "/activate", "w") as fp:
        fp.write("export NSM_FORM=sourced\n")
    os.chmod(base + "/activate", 0o644)
    try:
        yield base
    finally:
        shutil.rmtree(base)


FORMS = {
    "shell_assignment": ("NSM_FORM=shell /usr/bin/python3", {}, "shell"),
    "quoted_path_with_space": ("'{base}/my python/bin/python3'", {}, None),
    "unquoted_path_with_space": ("{base}/my python/bin/python3", {}, None),
    "env_words_unquoted": ("/usr/bin/env NSM_FORM=words /usr/bin/python3", {}, "words"),
    "dot_activate": (". {base}/activate && /usr/bin/python3", {}, "sourced"),
    "bash_source": ("source {base}/activate && /usr/bin/python3", {"ansible_shell_executable": "/bin/bash"}, "sourced"),
}


CASES = [(form, "ns.mitogen.ssh") for form in sorted(FORMS)] + [("unquoted_path_with_space", "ssh")]


@pytest.mark.parametrize(("form", "connection"), CASES)
def test_interpreter_form(testbed, tmp_path, helpers, form, connection):
    setting, extra, expected = FORMS[form]
    inv = inventory(
        testbed,
        tmp_path / "hosts",
        hosts=("h1",),
        ansible_connection=connection,
        ansible_pipelining="true",
        ansible_python_interpreter='"%s"' % setting.format(base=helpers).replace('"', '\\"'),
        **extra,
    )
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "env.json"
    rc, stats, output = run_playbook(tmp_path, inv, str(tmp_path / "play.yml"), "-e", "out=%s" % out)
    assert rc == 0, output[-3000:]
    assert out.read_text() == ('["NSM_FORM=%s"]' % expected if expected else "[]")
