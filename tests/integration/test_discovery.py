"""Interpreter discovery never chooses a candidate that does not run (ns.mitogen.local).

A directory first on PATH holds two bad candidates: ``python3.13`` that fails the way
a stale pyenv shim does, and ``python3.12`` that is really Python 2.7 (too old for
us). Vanilla's discovery (``command -v``) picks the shim and the task fails; ours
must skip both, run the task, and report what it chose as vanilla reports it.
The fact and warning for a working first candidate are compared with vanilla in
tests/differential/playbooks/discovery.yml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.testbed import pythons
from tests.unavailable import unavailable

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAY = """
- hosts: target
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
      register: r
    - ansible.builtin.copy:
        content: "{{ r | to_json }}"
        dest: "{{ out }}"
      delegate_to: localhost
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def _run(tmp_path: Path, connection: str, strategy: str) -> subprocess.CompletedProcess:
    bad = tmp_path / "bad-bin"
    bad.mkdir(exist_ok=True)
    shim = bad / "python3.13"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    old = bad / "python3.12"
    if not old.exists():
        old.symlink_to(pythons()["2.7"])
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "hosts").write_text("target ansible_connection=%s\n" % connection)
    env = dict(os.environ)
    env.update(
        PATH="%s:%s" % (bad, env.get("PATH", "/usr/bin:/bin")),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        ANSIBLE_STRATEGY=strategy,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    play, hosts, out = tmp_path / "play.yml", tmp_path / "hosts", tmp_path / "r.json"
    cmd = [str(BIN / "ansible-playbook"), "-i", str(hosts), str(play), "-e", "out=%s" % out]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_discovery_skips_candidates_that_do_not_run(tmp_path):
    if "2.7" not in pythons():
        unavailable("needs pyenv's Python 2.7")
    (tmp_path / "vanilla").mkdir()
    vanilla = _run(tmp_path / "vanilla", "local", "linear")
    assert vanilla.returncode != 0, "vanilla was expected to choose the broken shim"
    assert "python3.13" in vanilla.stdout + vanilla.stderr

    (tmp_path / "ours").mkdir()
    ours = _run(tmp_path / "ours", "ns.mitogen.local", "ns.mitogen.linear")
    assert ours.returncode == 0, ours.stdout[-3000:] + ours.stderr[-3000:]
    result = json.loads((tmp_path / "ours" / "r.json").read_text())
    chosen = result["ansible_facts"]["discovered_interpreter_python"]
    assert chosen.startswith("/") and "bad-bin" not in chosen
    assert "is using the discovered Python interpreter at %r" % chosen in ours.stdout + ours.stderr
