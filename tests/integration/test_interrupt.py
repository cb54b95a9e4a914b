"""Interrupting ansible-playbook leaves nothing of ns.mitogen behind.

A run is stopped while every host runs a long module (`command: sleep 300`):
by Ctrl-C (SIGINT to ansible-playbook's process group, as a terminal sends it)
or by SIGKILL of that group.  Afterwards, within a few seconds, there must be
no multiplexer of that run on the controller, no ssh client to the hosts, and
on each host no process of the login user that the run started (SSH session,
interpreter, or the module's `sleep`: the interpreter sends SIGHUP to its own
process group when its parent leaves while a call runs).  Worker processes and the multiplexer
are in sessions of their own (ansible-core >= 2.19 workers call setsid), so
the signal reaches ansible-playbook alone: the rest must notice it is gone.

Whatever is found is killed (by pid) after the check, so a failure does not
leak into later tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.differential import runner
from tests.testbed import Testbed
from tests.testbed.netns import netns_inode, pids_in_netns

pytestmark = pytest.mark.testbed

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a module that runs until the run is interrupted
      ansible.builtin.command: sleep 300
"""
#: how long the multiplexer, the workers and the interpreters may take to notice
SETTLE_TIMEOUT = 20.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _target_processes(tb: Testbed, hosts: list[str]) -> dict[int, str]:
    """{pid: command line} of the login user's processes on the hosts."""
    uid = tb.users.sudo.uid
    found = {}
    for name in hosts:
        inode = netns_inode(tb[name].netns)
        assert inode is not None, f"{name}'s network namespace is gone"
        for pid in pids_in_netns(inode):
            if _uid(pid) == uid:
                found[pid] = f"{name}: {_cmdline(pid)}"
    return found


def _controller_processes(tb: Testbed, hosts: list[str], playbook_pid: int) -> dict[int, str]:
    """{pid: command line} of this run's multiplexer and of ssh clients to the hosts."""
    addresses = [tb[name].address for name in hosts]
    found = {}
    for pid in _all_pids():
        cmd = _cmdline(pid)
        if f"mux-{playbook_pid}.sock" in cmd or (cmd.startswith("ssh ") and any(a in cmd.split() for a in addresses)):
            found[pid] = cmd
    return found


def _wait_for(predicate, timeout: float, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _kill(pids: dict[int, str]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize(
    ("variant", "signum"),
    [
        ("mitogen_linear", signal.SIGINT),
        ("mitogen_linear", signal.SIGKILL),
        ("builtin_linear_mitogen_ssh", signal.SIGKILL),
    ],
    ids=["ctrl_c-mitogen_linear", "sigkill-mitogen_linear", "sigkill-builtin_linear_mitogen_ssh"],
)
def test_interrupted_run_leaves_nothing_behind(testbed: Testbed, tmp_path: Path, variant: str, signum: int) -> None:
    v = runner.get_variant(variant)
    hosts = list(runner.HOSTS)
    before = set(_target_processes(testbed, hosts))
    inventory, config, playbook = tmp_path / "inventory.yml", tmp_path / "ansible.cfg", tmp_path / "sleep.yml"
    inventory.write_text(json.dumps(runner.inventory(testbed, v, hosts)))
    config.write_text("")
    playbook.write_text(PLAYBOOK)
    control_dir = tmp_path / "cp"
    control_dir.mkdir()
    env = runner._environment(v, tmp_path, control_dir, tmp_path / "capture.jsonl", config)
    log = (tmp_path / "ansible.log").open("wb")
    proc = subprocess.Popen(
        [str(runner.ansible_bin_dir() / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    leftovers: dict[int, str] = {}
    try:

        def sleeping() -> bool:
            running = [cmd for pid, cmd in _target_processes(testbed, hosts).items() if pid not in before]
            return all(any(cmd == f"{name}: sleep 300" for cmd in running) for name in hosts)

        assert _wait_for(sleeping, 60), f"the module did not start on every host; log:\n{(tmp_path / 'ansible.log').read_text()}"
        os.killpg(proc.pid, signum)
        proc.wait(timeout=30)

        def remaining() -> dict[int, str]:
            found = _controller_processes(testbed, hosts, proc.pid)
            found.update((pid, cmd) for pid, cmd in _target_processes(testbed, hosts).items() if pid not in before)
            return found

        _wait_for(lambda: not remaining(), SETTLE_TIMEOUT)
        # The module's own child (the sleep) included: the interpreter hangs up its
        # process group when its parent leaves mid-call, as a closed ssh pty would.
        leftovers = remaining()
        assert not leftovers, f"still running {SETTLE_TIMEOUT:g} s after {signal.Signals(signum).name}: {leftovers}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        _kill(leftovers)
