"""Where tasks on ns.mitogen.local start when the become user may not enter the playbook's directory.

Ansible gives the local connection the playbook's directory as the working directory
of every command and module (tests/differential/playbooks/local_cwd.yml compares that
with vanilla). Under become, vanilla's ``sudo`` inherits that directory even where the
become user may not enter it: its modules' ``AnsibleModule`` then moves to a temporary
directory of its own, and ``raw`` runs in the directory it cannot read. A process that
ns.mitogen's become interpreter starts cannot enter it, so there the task starts where
the interpreter started instead; it must not fail. Vanilla's own output (a random
temporary directory) cannot be compared, so this test checks each run on its own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from tests.differential import runner
from tests.unavailable import unavailable

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
BECOME_USER = "nobody"

PLAYBOOK = (
    """
- hosts: localhost
  gather_facts: false
  become: true
  become_user: %s
  tasks:
    - name: command module
      ansible.builtin.command: pwd
    - name: raw
      ansible.builtin.raw: pwd
"""
    % BECOME_USER
)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root, to become %s without a password" % BECOME_USER
    if shutil.which("sudo") is None:
        return "needs sudo"
    try:
        pwd.getpwnam(BECOME_USER)
    except KeyError:
        return "needs a user named %s" % BECOME_USER
    return None


def run(connection: str, playbook: Path, cwd: Path, tmp_path: Path) -> dict[str, str]:
    """Each task's stdout (by task name) from a run through ``connection``."""
    capture = tmp_path / ("capture-%s.jsonl" % connection)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_HOME": str(tmp_path / ("home-" + connection)),
        "ANSIBLE_CALLBACK_PLUGINS": str(runner.CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": runner.CALLBACK_NAME,
        runner.CAPTURE_ENV: str(capture),
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    }
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", connection, str(playbook)]
    argv += ["-e", "ansible_python_interpreter=/usr/bin/python3"]
    out = subprocess.run(argv, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, "%s failed (rc=%d):\n%s\n%s" % (
        connection,
        out.returncode,
        out.stdout[-3000:],
        out.stderr[-3000:],
    )
    records, _stats = runner.read_capture(capture)
    return {record["task"]: record["result"]["stdout"].strip() for record in records}


def test_local_become_user_who_cannot_enter_the_playbook_directory(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        unavailable(reason)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    playbook = private / "play.yml"
    playbook.write_text(PLAYBOOK)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    vanilla = run("local", playbook, elsewhere, tmp_path)
    assert vanilla["raw"] == str(private)  # inherited, though the become user cannot read it
    assert vanilla["command module"] not in (str(private), str(elsewhere))  # AnsibleModule moved on
    ours = run("ns.mitogen.local", playbook, elsewhere, tmp_path)
    uid = pwd.getpwnam(BECOME_USER).pw_uid
    for task, where in ours.items():
        st = os.stat(where)
        assert where not in (str(private), str(elsewhere)), task
        assert st.st_mode & 0o005 == 0o005 or st.st_uid == uid, "%s ran in %s, which %s cannot read" % (task, where, BECOME_USER)
