"""A playbook through ansible-runner, as in an execution environment (issue 20).

What an execution environment (ansible-builder image run by ansible-navigator or
AWX) gives us, reproduced on the testbed: ansible-runner drives ansible-playbook
as a non-root user with no terminal (no controlling TTY, stdin /dev/null; the
runner gives ansible-playbook its own pexpect pseudo-terminal, as under AWX),
``PYTHONDONTWRITEBYTECODE=1``, and the collection installed in a read-only
directory. Only ``ansible_connection: ns.mitogen.ssh`` is
set: the strategy is Ansible's own ``linear``.

The runner runs inside testbed host h1 (its mount namespace makes the pyenv
Python readable to test accounts) as ``nsm-sudo`` and targets h1 over ssh as
that account. Checked: the run's status and each task's result from the
runner's own events, ``become``, that the collection directory stayed without
bytecode, and that the workers shared our private code cache in the account's
home instead of compiling everything again (one entry per module, written once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed import Testbed

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parent.parent.parent
INSTALLED = REPO / ".build" / "installed"

PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: whoami
      command: id -un
      register: who
    - name: become root
      command: id -un
      become: true
      register: root
    - name: write a file
      copy:
        content: "from an execution environment\\n"
        dest: /tmp/nsm-ee/out.txt
    - name: stat it
      stat:
        path: /tmp/nsm-ee/out.txt
      register: st
    - name: several more tasks, each in its own worker
      command: "echo {{ item }}"
      loop: [1, 2, 3]
    - name: check
      assert:
        that:
          - who.stdout == ansible_user
          - root.stdout == "root"
          - st.stat.exists and st.stat.size == 30
"""

#: Run by the test account inside h1: ansible-runner's Python API, no terminal.
DRIVER = """\
import json, os, sys
import ansible_runner
data = sys.argv[1]
r = ansible_runner.run(private_data_dir=data, playbook="play.yml", quiet=True)
events = [
    {"event": e["event"], "task": e["event_data"].get("task"), "res": e["event_data"].get("res", {})}
    for e in r.events
    if e.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_item_on_ok")
]
print(json.dumps({"status": r.status, "rc": r.rc, "events": events, "tty": os.isatty(0)}))
"""


def _runner_path() -> str:
    """Where ansible_runner is importable from (the dev virtualenv: requirements-dev.txt)."""
    try:
        import ansible_runner  # noqa: F401
    except ImportError:
        pytest.fail("ansible-runner is missing: run scripts/setup (requirements-dev.txt lists it)", pytrace=False)
    return os.path.dirname(os.path.dirname(ansible_runner.__file__))


def test_playbook_through_ansible_runner_as_non_root_read_only_without_bytecode(testbed: Testbed) -> None:
    tb, account = testbed, testbed.users.sudo
    h1 = tb["h1"]
    # the host's /tmp, seen from here; the run's files live there, owned by the account
    base = h1.tmp_dir / "nsm-ee"
    shutil.rmtree(base, ignore_errors=True)
    data = base / "runner"
    (data / "project").mkdir(parents=True)
    (data / "inventory").mkdir()
    (data / "env").mkdir()
    collections = base / "collections"
    shutil.copytree(INSTALLED, collections, ignore=shutil.ignore_patterns("__pycache__"))
    inside = Path("/tmp/nsm-ee")
    key = base / "id"
    shutil.copy(tb.key, key)
    known = base / "known_hosts"
    shutil.copy(tb.known_hosts, known)
    (data / "project" / "play.yml").write_text(PLAY)
    inventory = {
        "all": {
            "hosts": {
                "h1": {
                    "ansible_host": h1.address,
                    "ansible_port": h1.port,
                    "ansible_user": account.name,
                    "ansible_connection": "ns.mitogen.ssh",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_ssh_private_key_file": str(inside / "id"),
                    "ansible_ssh_common_args": f"-F /dev/null -o UserKnownHostsFile={inside / 'known_hosts'} "
                    "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                }
            }
        }
    }
    (data / "inventory" / "hosts.json").write_text(json.dumps(inventory))
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": str(inside / "collections"),
        "ANSIBLE_HOME": str(inside / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(inside / "ansible-home" / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "ANSIBLE_STRATEGY": "linear",
        "ANSIBLE_NOCOLOR": "1",
    }
    (data / "env" / "envvars").write_text(json.dumps(envvars))
    (base / "driver.py").write_text(DRIVER)
    subprocess.run(["chown", "-R", f"{account.name}:", str(base)], check=True)
    key.chmod(0o600)
    subprocess.run(["chmod", "-R", "a-w", str(collections)], check=True)
    home = h1.user_home(account)
    cache = home / ".cache" / "ns.mitogen" / "code" / sys.implementation.cache_tag
    shutil.rmtree(home / ".cache" / "ns.mitogen", ignore_errors=True)
    try:
        env = {
            "PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin",
            "PYTHONPATH": _runner_path(),
            "HOME": f"/home/{account.name}",
            "LANG": "C.UTF-8",
        }
        argv = tb.host_argv("h1", "setsid", "env", "-i", *(f"{k}={v}" for k, v in env.items()), sys.executable,
                            str(inside / "driver.py"), str(inside / "runner"), user=account)  # fmt: skip
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-4000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        artifacts = "\n".join(p.read_text(errors="replace")[-3000:] for p in data.glob("artifacts/*/stdout"))
        assert (result["status"], result["rc"], result["tty"]) == ("successful", 0, False), artifacts
        by_task: dict[str, list[dict]] = {}
        for event in result["events"]:
            by_task.setdefault(event["task"], []).append(event)
        assert [e["event"] for e in by_task["check"]] == ["runner_on_ok"]
        assert by_task["whoami"][0]["res"]["stdout"] == account.name
        assert by_task["become root"][0]["res"]["stdout"] == "root"
        assert [
            e["res"]["stdout"] for e in by_task["several more tasks, each in its own worker"] if e["event"] == "runner_item_on_ok"
        ] == ["1", "2", "3"]
        assert not list(collections.rglob("__pycache__")), "bytecode written into the read-only collection"
        # every worker after the first found our code compiled already: one entry per module
        entries = list(cache.iterdir())
        assert entries and all(e.stat().st_uid == account.uid or account.uid == -1 for e in entries)
        assert len({e.name for e in entries}) == len(entries)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
