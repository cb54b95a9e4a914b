"""The per-target interpreter limit (``max_interpreters``, ``MITOGEN_MAX_INTERPRETERS``).

A loop over 300 become users on one testbed host completes, and the number of
become interpreters running on that host, sampled every 20 ms during the run from
``/proc`` (the testbed's hosts share the machine's process table), never exceeds
the limit. The 300 users are made once per machine (``become_users``) and left in
place; ``nsm-sudo`` may sudo to any user without a password.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
import time
from typing import List, Set

import pytest

from tests.integration.test_ansible_connection import inventory, run_playbook
from tests.unavailable import unavailable

pytestmark = pytest.mark.testbed

USERS = ["nsm-r%03d" % i for i in range(300)]

PLAY = """
- hosts: h1
  gather_facts: false
  tasks:
    - name: one become interpreter per user
      ansible.builtin.command: id -un
      become: true
      become_user: "{{ item }}"
      loop: "{{ users }}"
      register: ids
      changed_when: false
    - name: each ran as its user
      ansible.builtin.assert:
        that: "{{ ids.results | map(attribute='stdout') | list == users }}"
    - name: a user retired earlier gets a new interpreter
      ansible.builtin.command: id -un
      become: true
      become_user: "{{ users[0] }}"
      changed_when: false
"""


def ensure_users(names: List[str]) -> Set[int]:
    """Create the users that do not exist yet (no home, no login shell); their uids."""
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    return {pwd.getpwnam(n).pw_uid for n in names}


@pytest.fixture(scope="module")
def become_users():
    if os.geteuid() != 0:
        unavailable("creating the become users needs root")
    return ensure_users(USERS)


class Sampler:
    """Counts, every 20 ms, the Python processes running as one of ``uids``; keeps the maximum."""

    def __init__(self, uids: Set[int]) -> None:
        self.uids = uids
        self.peak = 0
        self.at_peak: List[str] = []  # their command lines, when the most ran
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def running(self) -> List[str]:
        """The interpreters: not a process an interpreter forked (its zygote, a command before
        its exec), nor an orphan (parent 1): an interpreter's zygote outlives it by the moment
        it takes to read the end of its socket (``_zygote``), reparented to init meanwhile,
        and a scan can read the interpreter alive and then its zygote orphaned (a CI run
        counted 6 against 5 so: pids N and N+1)."""
        found, parents = {}, {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat("/proc/%s" % pid).st_uid not in self.uids:
                    continue
                with open("/proc/%s/cmdline" % pid, "rb") as fp:
                    argv0 = fp.read().split(b"\0")[0]
                with open("/proc/%s/stat" % pid, "rb") as fp:
                    parents[pid] = fp.read().rsplit(b")", 1)[1].split()[1].decode()
            except (OSError, IndexError):
                continue
            if b"python" in os.path.basename(argv0):
                found[pid] = "%s %s" % (pid, argv0.decode())
        return [text for pid, text in found.items() if parents.get(pid) not in found and parents.get(pid) != "1"]

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            running = self.running()
            if len(running) > self.peak:
                self.peak, self.at_peak = len(running), running
            self.samples += 1

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_loop(tb, tmp_path, users: List[str], uids: Set[int], limit, env=None):
    extra = {} if limit is None else {"mitogen_max_interpreters": str(limit)}
    inv = inventory(tb, tmp_path / "hosts", hosts=("h1",), **extra)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "users.yml").write_text("users: [%s]\n" % ", ".join(users))
    sampler = Sampler(uids)
    deadline = time.monotonic() + 20
    while sampler.running() and time.monotonic() < deadline:  # an earlier run's, exiting with its mux
        time.sleep(0.1)
    assert not sampler.running(), sampler.running()
    with sampler:
        rc, stats, output = run_playbook(
            tmp_path, inv, str(tmp_path / "play.yml"), "-e", "@%s" % (tmp_path / "users.yml"), env=env
        )
    assert rc == 0 and stats["h1"]["failed"] == 0, output[-3000:]
    assert sampler.samples > 10
    return sampler


def test_300_become_users_never_exceed_a_limit_of_5(testbed, tmp_path, become_users):
    sampler = run_loop(testbed, tmp_path, USERS, become_users, 5)
    assert 1 <= sampler.peak <= 5, sampler.at_peak


def test_default_limit_is_20(testbed, tmp_path, become_users):
    sampler = run_loop(testbed, tmp_path, USERS[:40], become_users, None)
    assert 5 < sampler.peak <= 20, sampler.at_peak


def test_the_original_environment_variable_sets_the_limit(testbed, tmp_path, become_users):
    sampler = run_loop(testbed, tmp_path, USERS[:12], become_users, None, env={"MITOGEN_MAX_INTERPRETERS": "3"})
    assert sampler.peak == 3, sampler.at_peak
