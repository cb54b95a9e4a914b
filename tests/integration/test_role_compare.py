"""roles/compare (ns.mitogen.compare) against testbed hosts, as a user would run it.

The role runs ansible-playbook itself, once per variant, against the inventory of the
play that includes it; here that is two testbed hosts, and the role is taken from the
collection as ansible-galaxy installed it (.build/installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.testbed

ROOT = Path(__file__).resolve().parents[2]
BIN = os.path.dirname(sys.executable)

PLAY = """\
- name: Compare vanilla and ns.mitogen
  hosts: localhost
  gather_facts: false
  roles:
    - role: ns.mitogen.compare
      vars:
        compare_hosts: testbed
        compare_runs: 2
        compare_report_path: "{report}"
"""


def write_inventory(testbed, path: Path) -> Path:
    lines = ["[testbed]"]
    lines += ["%s ansible_host=%s" % (name, testbed[name].address) for name in ("h1", "h2")]
    lines += [
        "[testbed:vars]",
        "ansible_user=%s" % testbed.users.sudo.name,
        "ansible_ssh_private_key_file=%s" % testbed.key,
        "ansible_python_interpreter=/usr/bin/python3",
        "ansible_ssh_common_args='-o UserKnownHostsFile=%s'" % testbed.known_hosts,
        # the vanilla runs' ssh masters end with each run instead of lingering a minute
        "ansible_ssh_args='-o ControlMaster=auto -o ControlPersist=2s'",
        "[local]",
        "localhost ansible_connection=local ansible_python_interpreter=%s" % sys.executable,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, inventory: Path, playbook: Path) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ.update(
        PATH=BIN + os.pathsep + environ.get("PATH", ""),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "installed"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), str(playbook)]
    return subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=600, check=False)


def test_compare_role_times_the_probe_under_both_variants(testbed, tmp_path):
    report = tmp_path / "report.json"
    playbook = tmp_path / "compare.yml"
    playbook.write_text(PLAY.format(report=report))
    out = run(tmp_path, write_inventory(testbed, tmp_path / "hosts"), playbook)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    assert "median wall (s)" in out.stdout and "speed-up" in out.stdout

    rows = json.loads(report.read_text())
    assert [row["variant"] for row in rows] == ["vanilla", "ns.mitogen"]
    for row in rows:
        assert row["runs"] == 2 and row["failed_runs"] == 0 and len(row["seconds"]) == 2
        assert all(s > 0 for s in row["seconds"])
        # the probe really ran on both hosts, all tasks ok, nothing failed
        recap = {host: [int(n) for n in counts] for host, *counts in row["recap"]}
        assert set(recap) == {"h1", "h2"}, row["recap"]
        assert all(ok >= 10 and unreachable == 0 and failed == 0 for ok, _ch, unreachable, failed in recap.values())
    assert rows[0]["speedup"] == 1.0
    # ns.mitogen.linear keeps one interpreter per host: several times faster on this probe
    assert rows[1]["speedup"] > 1.5, rows


def test_compare_role_reports_a_failing_run(testbed, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: testbed\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: 'false'\n")
    playbook = tmp_path / "compare.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n"
        "    - role: ns.mitogen.compare\n      vars:\n        compare_playbook: %s\n" % broken
    )
    out = run(tmp_path, write_inventory(testbed, tmp_path / "hosts"), playbook)
    assert out.returncode != 0
    assert "vanilla run failed (rc=2)" in out.stdout, out.stdout[-3000:]


def test_compare_role_molecule_scenario(testbed, tmp_path):
    """roles/compare/molecule/default: syntax, converge and verify against the testbed hosts."""
    environ = dict(os.environ)
    environ.update(
        PATH=BIN + os.pathsep + environ.get("PATH", ""),
        HOME=str(tmp_path / "home"),  # molecule keeps its state under ~/.cache/molecule
        NSM_MOLECULE_INVENTORY=str(write_inventory(testbed, tmp_path / "hosts")),
        NSM_MOLECULE_COLLECTIONS=str(ROOT / ".build" / "installed"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    argv = [os.path.join(BIN, "molecule"), "test", "--scenario-name", "default"]
    out = subprocess.run(
        argv, cwd=ROOT / "roles" / "compare", capture_output=True, text=True, env=environ, timeout=600, check=False
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    assert "All assertions passed" in out.stdout + out.stderr
