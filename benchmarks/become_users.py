"""Memory of a loop over many become users, with the interpreter limit.

Usage (as root, after ``scripts/setup``)::

    .venv/bin/python -m benchmarks.become_users [--users 300] [--limit 5]

Brings up a one-host testbed, makes the users ``nsm-r000``... once (as
tests/integration/test_interpreter_limit.py does), and runs one play that becomes each
of them in turn (``command: id -un``) under ``ns.mitogen.ssh`` with
``mitogen_max_interpreters=--limit``. Every 50 ms it samples the resident memory of
the controller's multiplexer and of the become interpreters on the target, and the
number of those; prints the peaks and the wall time. One run, no repeats: a
quick look, not a measurement to publish.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.test_interpreter_limit import PLAY, ensure_users  # noqa: E402
from tests.testbed import Testbed  # noqa: E402

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def _status(pid: str) -> Dict[str, str]:
    with open("/proc/%s/status" % pid) as fp:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fp if ":\t" in line)


def _rss_kib(status: Dict[str, str]) -> int:
    return int(status.get("VmRSS", "0 kB").split()[0])


class Peaks:
    """Samples the mux (the playbook's child that leads its own session) and the target's interpreters."""

    def __init__(self, playbook_pid: int, uids: Set[int]) -> None:
        self.playbook_pid, self.uids = playbook_pid, uids
        self.mux_kib = self.target_kib = self.interpreters = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        target_kib, interpreters, pythons, parents = 0, 0, {}, {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                status = _status(pid)
                ppid = status.get("PPid", "")
                if ppid == str(self.playbook_pid) and os.getsid(int(pid)) == int(pid):
                    self.mux_kib = max(self.mux_kib, _rss_kib(status))
                if int(status.get("Uid", "-1").split()[0]) in self.uids and "python" in status.get("Name", ""):
                    pythons[pid], parents[pid] = _rss_kib(status), ppid
            except (OSError, ValueError):
                continue
        for pid, kib in pythons.items():
            if parents[pid] not in pythons:  # not a command's child before its exec
                target_kib += kib
                interpreters += 1
        self.target_kib = max(self.target_kib, target_kib)
        self.interpreters = max(self.interpreters, interpreters)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--limit", type=int, default=5)
    args = parser.parse_args(argv)
    users = ["nsm-r%03d" % i for i in range(args.users)]
    uids = ensure_users(users)
    tb = Testbed(hosts=1)
    tb.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "play.yml").write_text(PLAY.replace("hosts: h1", "hosts: all"))
            (work / "users.yml").write_text("users: [%s]\n" % ", ".join(users))
            (work / "hosts").write_text(
                "h1 ansible_host=%s\n[all:vars]\nansible_connection=ns.mitogen.ssh\nansible_user=%s\n"
                "ansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n"
                "ansible_ssh_common_args='-o UserKnownHostsFile=%s'\nmitogen_max_interpreters=%d\n"
                % (tb["h1"].address, tb.users.sudo.name, tb.key, tb.known_hosts, args.limit)
            )
            env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_HOME=str(work / "home"))
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(ANSIBLE_PLAYBOOK), "-i", str(work / "hosts"), str(work / "play.yml"), "-e", "@%s" % (work / "users.yml")],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            peaks = Peaks(proc.pid, uids)
            peaks.start()
            output, _unused = proc.communicate()
            peaks.stop()
            wall = time.monotonic() - started
    finally:
        tb.close()
    if proc.returncode != 0:
        print(output[-3000:])
        return 1
    print("users=%d limit=%d wall=%.1fs" % (args.users, args.limit, wall))
    print("controller mux peak RSS:   %6.1f MiB" % (peaks.mux_kib / 1024))
    print("target interpreters peak:  %6d" % peaks.interpreters)
    print("target interpreters RSS:   %6.1f MiB (peak of their sum)" % (peaks.target_kib / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
