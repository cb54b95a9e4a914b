"""A lost host's error names its cause; a killed interpreter fails the task, not the host.

Through ansible-playbook on testbed hosts, under the built-in linear strategy (the
connection plugin alone) unless said otherwise:

- an interpreter killed during a task (login or become): the task FAILED with
  the signal and rc 137, as vanilla's shell reports it; ``ignore_errors`` and
  ``rescue`` keep the host; the next task gets a new interpreter;
- the login lost (sshd killed, link cut): UNREACHABLE, with ssh's own last words
  (and the keepalive limit that expired), within the timeouts;
- the multiplexer killed: every host UNREACHABLE, saying that it died, its pid
  and its log (or how to keep one); no socket or lock file left after the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _mux_client
from tests.integration.test_ansible_connection import BIN, inventory, playbook_environ, run_playbook
from tests.testbed.netns import netns_inode, pids_in_netns

pytestmark = pytest.mark.testbed

SLEEPER = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a module that runs until the host is lost
      ansible.builtin.command: sleep 120
    - name: never reached on a lost host
      ansible.builtin.command: "true"
"""


def test_killed_interpreter_fails_the_task_not_the_host(testbed, tmp_path):
    inv = inventory(testbed, tmp_path / "hosts", hosts=("h1",))
    rc, stats, output = run_playbook(tmp_path, inv, "dead_interpreter.yml")
    assert rc == 0, output[-6000:]
    assert stats["h1"]["failed"] == 0 and stats["h1"]["unreachable"] == 0 and stats["h1"]["ignored"] == 2
    assert stats["h1"]["rescued"] == 1  # the playbook asserts the rest


def _sleeping(tb, host: str) -> bool:
    """True once the login user runs `sleep 120` on ``host``."""
    inode = netns_inode(tb[host].netns)
    for pid in pids_in_netns(inode) if inode is not None else ():
        try:
            if Path("/proc/%d/cmdline" % pid).read_bytes() == b"sleep\x00120\x00":
                return True
        except OSError:
            pass
    return False


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _start(tmp_path: Path, inv: str, env: dict | None = None) -> subprocess.Popen:
    playbook = tmp_path / "sleeper.yml"
    playbook.write_text(SLEEPER)
    environ = playbook_environ(tmp_path, env)
    log = (tmp_path / "ansible.log").open("w")
    try:
        return subprocess.Popen(
            [os.path.join(BIN, "ansible-playbook"), "-i", inv, str(playbook)],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        log.close()


def _finish(proc: subprocess.Popen, tmp_path: Path, timeout: float) -> str:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the run did not end within %.0f s:\n%s" % (timeout, (tmp_path / "ansible.log").read_text()))
    return (tmp_path / "ansible.log").read_text()


def _unreachable_message(output: str, host: str) -> str:
    match = re.search(r"^fatal: \[%s\]: UNREACHABLE! => (.*)$" % host, output, re.M)
    assert match, "%s is not unreachable:\n%s" % (host, output[-5000:])
    return match.group(1)


def test_lost_logins_are_unreachable_and_name_their_cause(make_testbed, tmp_path):
    """sshd killed: ssh's "Connection ... closed by remote host"; link cut: ssh's
    "Timeout, server ... not responding" and the keepalive limit, within it."""
    tb = make_testbed(hosts=2)
    # Short keepalives for h2; the message says which limit ssh used (the first given).
    inv = tmp_path / "hosts"
    inventory(tb, inv)
    inv.write_text(
        inv.read_text().replace(
            "h2 ansible_host=%s" % tb["h2"].address,
            "h2 ansible_host=%s ansible_ssh_extra_args='-o ServerAliveInterval=2 -o ServerAliveCountMax=2'" % tb["h2"].address,
        )
    )
    proc = _start(tmp_path, str(inv))
    try:
        assert _wait_for(lambda: _sleeping(tb, "h1") and _sleeping(tb, "h2"), 60), (tmp_path / "ansible.log").read_text()
        tb.kill_sshd("h1")
        tb.cut_link(None, "h2")
        cut = time.monotonic()
        output = _finish(proc, tmp_path, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    h1 = _unreachable_message(output, "h1")
    assert re.search(r"disconnected: ssh exited with status 255: Connection to [\d.]+ closed by remote host", h1), h1
    h2 = _unreachable_message(output, "h2")
    limit = re.search(r"Timeout, server [\d.]+ not responding\. \(no reply to (\d+) keepalives, one every (\d+) s", h2)
    assert limit, h2
    count, interval = int(limit.group(1)), int(limit.group(2))
    took = time.monotonic() - cut
    assert took < interval * (count + 1) + 15, "h2's loss took %.1f s" % took
    for host in ("h1", "h2"):
        assert re.search(r"^%s\s+: ok=0 .*unreachable=1 " % host, output, re.M), output[-3000:]


@pytest.mark.parametrize(("strategy", "log_dir"), [("linear", False), ("ns.mitogen.linear", True)])
def test_killed_mux_names_itself_and_leaves_no_files(testbed, tmp_path, strategy, log_dir):
    inv = inventory(testbed, tmp_path / "hosts")
    env = {"ANSIBLE_STRATEGY": strategy}
    if log_dir:
        env["NS_MITOGEN_LOG_DIR"] = str(tmp_path / "logs")
    proc = _start(tmp_path, inv, env)
    path = _mux.socket_path(proc.pid)
    try:
        assert _wait_for(lambda: _sleeping(testbed, "h1") and _sleeping(testbed, "h2"), 60), (
            tmp_path / "ansible.log"
        ).read_text()
        client = _mux_client.MuxClient(path)
        try:
            pid = client.request("ping")["pid"]
        finally:
            client.close()
        os.kill(pid, signal.SIGKILL)
        output = _finish(proc, tmp_path, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if log_dir:
        where = "see %s" % (tmp_path / "logs" / ("mux-%d.log" % pid))
    else:
        where = "no log of it was kept: set NS_MITOGEN_LOG_DIR to a directory"
    for host in ("h1", "h2"):
        message = _unreachable_message(output, host)
        assert "the ns.mitogen multiplexer (pid %d) died: %s" % (pid, where) in message, message
    assert not os.path.exists(path) and not os.path.exists(path + ".lock"), os.listdir(os.path.dirname(path))
