"""The ansible-test connection targets, run by pytest against the testbed.

`tests/integration/targets/connection_<name>/runme.sh` is ansible-test's layout: each
runs the shared `targets/connection/test_connection.yml`. ansible-test itself would run
them against localhost in a container it provisions (which needs docker and network
here); these tests run the very same runme.sh with an inventory of testbed hosts
instead (NSM_CONNECTION_INVENTORY), under the built-in linear strategy, so the
connection plugin alone is tested.

Every inventory also holds a host on the matching built-in plugin: the shared
playbook must pass there too, with `connection_persistent=false`, which shows that its
checks test the connection and not ns.mitogen's own idea of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

pytestmark = pytest.mark.testbed

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "tests" / "integration" / "targets"
BIN = os.path.dirname(sys.executable)


def run_target(
    name: str, inventory: str, tmp_path: Path, env: Optional[Dict[str, str]] = None, args: Sequence[str] = ()
) -> Dict[str, Dict[str, int]]:
    """Run targets/<name>/runme.sh; return the PLAY RECAP by host (fails the test on rc != 0).

    ``env``: more environment for the run (a container engine's configuration); ``args``:
    more ansible-playbook arguments (``-e large_file_mib=16``).
    """
    inv = tmp_path / "inventory"
    inv.write_text(inventory)
    environ = dict(os.environ)
    environ.update(
        PATH=BIN + os.pathsep + environ.get("PATH", ""),
        NSM_CONNECTION_INVENTORY=str(inv),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_FORKS="4",
    )
    environ.update(env or {})
    out = subprocess.run(
        ["bash", str(TARGETS / name / "runme.sh"), *args], capture_output=True, text=True, env=environ, timeout=600, check=False
    )
    output = out.stdout + out.stderr
    assert out.returncode == 0, output[-6000:]
    recap = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out.stdout, re.M):
        recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return recap


def host_lines(group: str, hosts: List[str]) -> str:
    return "[%s]\n%s\n" % (group, "\n".join(hosts))


def test_connection_ssh_target(testbed, tmp_path):
    common = "ansible_host=%s ansible_user=%s ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3" % (
        testbed["h1"].address,
        testbed.users.sudo.name,
        testbed.key,
    )
    ssh_args = "'-o UserKnownHostsFile=%s'" % testbed.known_hosts
    inventory = (
        host_lines(
            "ssh",
            [
                "h1-nsm %s ansible_connection=ns.mitogen.ssh connection_persistent=true" % common,
                # pipelining and a short ControlPersist keep the built-in plugin quick, and its
                # master ends with the run
                "h1-builtin %s ansible_connection=ansible.builtin.ssh ansible_pipelining=true"
                " ansible_ssh_args='-o ControlMaster=auto -o ControlPersist=2s'" % common,
            ],
        )
        + "[ssh:vars]\nansible_ssh_common_args=%s\n" % ssh_args
    )
    recap = run_target("connection_ssh", inventory, tmp_path)
    for host in ("h1-nsm", "h1-builtin"):
        assert recap[host]["failed"] == 0 and recap[host]["unreachable"] == 0 and recap[host]["ok"] >= 18, recap


def test_connection_local_target(testbed, tmp_path):
    other = testbed.users.key.name  # become someone else: the test runs as root
    inventory = (
        host_lines(
            "local",
            [
                "local-nsm ansible_connection=ns.mitogen.local connection_persistent=true",
                "local-builtin ansible_connection=ansible.builtin.local",
            ],
        )
        + "[local:vars]\nansible_python_interpreter=/usr/bin/python3\nconnection_become_user=%s\n" % other
    )
    recap = run_target("connection_local", inventory, tmp_path)
    for host in ("local-nsm", "local-builtin"):
        assert recap[host]["failed"] == 0 and recap[host]["ok"] >= 18, recap


def test_connection_setns_target(podman, tmp_path):
    """Into a real podman container on this machine (no built-in plugin enters by setns)."""
    box = podman.run("target-setns", extra=["--hostname", "nsm-target-setns"])
    try:
        inventory = host_lines(
            "setns",
            ["setns-nsm ansible_host=%s mitogen_podman_path=%s" % (box, podman.executable)],
        ) + (
            "[setns:vars]\nansible_connection=ns.mitogen.setns\nmitogen_kind=podman\n"
            "ansible_python_interpreter=/usr/bin/python3\nconnection_persistent=true\nconnection_become_user=nobody\n"
        )
        recap = run_target("connection_setns", inventory, tmp_path)
    finally:
        podman.remove(box)
    assert recap["setns-nsm"]["failed"] == 0 and recap["setns-nsm"]["ok"] >= 18, recap


# lxd's, incus's, jail's and lxc's stand-in runs differ from kubectl's only in the argv
# (test_standins.py checks each): the full matrix runs them
@pytest.mark.parametrize(
    "engine", ["kubectl", *(pytest.param(e, marks=pytest.mark.slow) for e in ("lxd", "incus", "jail", "lxc"))]
)
def test_connection_standin_target(engine, tmp_path):
    """ns.mitogen.kubectl, lxd, incus, jail and lxc with the stand-in engine on PATH (runme.sh
    puts it there): the shared playbook, the commands running on this machine."""
    log = tmp_path / "standin.log"
    inventory = (TARGETS / ("connection_%s" % engine) / "test_connection.inventory").read_text()
    # the stand-in execs the command: large files take the local path, so a small one will do
    inventory += "connection_become_user=nobody\n[all:vars]\nlarge_file_mib=4\n"
    recap = run_target("connection_%s" % engine, inventory, tmp_path, {"NSM_STANDIN_LOG": str(log)})
    host = "%s-nsm" % engine
    assert recap[host]["failed"] == 0 and recap[host]["ok"] >= 18, recap
    tools = {json.loads(line)["tool"] for line in log.read_text().splitlines()}
    assert tools == {STANDIN_TOOL.get(engine, engine)}, tools


STANDIN_TOOL = {"lxd": "lxc", "lxc": "lxc-attach", "jail": "jexec"}  # the engine's client, by connection


@pytest.mark.slow
def test_connection_machinectl_standin_target(podman, tmp_path):
    """ns.mitogen.machinectl (setns of kind machinectl) into a real podman container, the
    stand-in machinectl giving its pid as a machine's leader: the full matrix runs it
    (test_connection_setns_target covers the same setns path by default)."""
    box = podman.run("target-machinectl", extra=["--hostname", "nsm-target-machinectl"])
    log = tmp_path / "standin.log"
    try:
        inventory = (TARGETS / "connection_machinectl" / "test_connection.inventory").read_text()
        inventory += "connection_become_user=nobody\n"
        env = {"NSM_STANDIN_LOG": str(log), "NSM_STANDIN_MACHINES": "web1=%d" % podman.pid(box)}
        recap = run_target("connection_machinectl", inventory, tmp_path, env)
    finally:
        podman.remove(box)
    assert recap["machinectl-nsm"]["failed"] == 0 and recap["machinectl-nsm"]["ok"] >= 18, recap
    assert {json.loads(line)["tool"] for line in log.read_text().splitlines()} == {"machinectl"}


def test_connection_via_target(testbed, tmp_path):
    """ns.mitogen.ssh to h3, which only h2 can reach, with mitogen_via: the shared playbook
    through a bastion. Key and known_hosts of the hop from h2 are read on h2 (the
    account's own, as the testbed gives them), the bastion's on this machine."""
    user = testbed.users.sudo.name
    home = "/home/%s/.ssh" % user
    bastion = "h2-bastion ansible_host=%s ansible_ssh_private_key_file=%s ansible_ssh_common_args='-o UserKnownHostsFile=%s'" % (
        testbed["h2"].address,
        testbed.key,
        testbed.known_hosts,
    )
    target = (
        "h3-via ansible_host=%s mitogen_via=h2-bastion ansible_ssh_private_key_file=%s/id_ed25519 "
        "ansible_ssh_common_args='-o UserKnownHostsFile=%s/known_hosts'" % (testbed["h3"].address, home, home)
    )
    inventory = (
        host_lines("bastion", [bastion])
        + host_lines("via", [target])
        + "[all:vars]\nansible_connection=ns.mitogen.ssh\nansible_user=%s\n" % user
        + "ansible_python_interpreter=/usr/bin/python3\nconnection_persistent=true\n"
    )
    recap = run_target("connection_via", inventory, tmp_path)
    assert recap["h3-via"]["failed"] == 0 and recap["h3-via"]["unreachable"] == 0 and recap["h3-via"]["ok"] >= 18, recap
    assert "h2-bastion" not in recap  # the bastion only carries
