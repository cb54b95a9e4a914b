"""No secret of a play in any file or output ns.mitogen's diagnostics produce.

A run with every diagnostic on (``NS_MITOGEN_LOG_DIR``, ``-vvvv``, Ansible's own
``log_path``) and every kind of secret in play: an ssh login password, a become
password, an inline private key with its passphrase, ``no_log`` values in module
arguments, a raw command and a file's content. Then a grep over everything the run
wrote finds none of them, and the debug log files are private to their owner (0600),
also inside a directory the user made readable to all beforehand. All along the run,
every process's argv, title and environment (/proc/*/cmdline, comm, environ: the
testbed's hosts share the controller's process table, so the target side too) is
read every few milliseconds: no password is ever in one.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from tests.integration.test_ansible_connection import run_playbook

pytestmark = pytest.mark.testbed

NOLOG_SECRET = "nsm-nolog-7f3a9c"  # nothing else in a run looks like it
PASSPHRASE = "nsm-Passphrase-2291"


def _inventory(testbed, key_text: str) -> dict:
    users = testbed.users
    common = {
        "ansible_connection": "ns.mitogen.ssh",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o UserKnownHostsFile=%s" % testbed.known_hosts,
        "nolog_secret": NOLOG_SECRET,
    }
    hosts = {
        # a password login; become to itself (no become password is known for it)
        "h_pw": {
            "ansible_host": testbed["h1"].address,
            "ansible_user": users.pw.name,
            "ansible_password": users.pw.password,
            "ansible_become_user": users.pw.name,
        },
        # sudo asks for its password every time
        "h_become": {
            "ansible_host": testbed["h2"].address,
            "ansible_user": users.sudopw.name,
            "ansible_ssh_private_key_file": str(testbed.key),
            "ansible_become_password": users.sudopw.password,
        },
        # an inline, encrypted private key (through ansible-core's ssh-agent)
        "h_key": {
            "ansible_host": testbed["h1"].address,
            "ansible_user": users.sudo.name,
            "ansible_ssh_private_key": key_text,
            "ansible_ssh_private_key_passphrase": PASSPHRASE,
        },
    }
    return {"all": {"hosts": hosts, "vars": common}}


class ProcessWatch:
    """Reads the argv, title and environment of every process of this run until stopped.

    A process of this run: a descendant of this test process (ansible-playbook and
    its workers, ssh, the testbed's sshd and so every target-side process), or one
    whose environment names ``marker`` (the multiplexer, which may leave the tree).
    Other processes on the machine (other test runs) are not ours to judge.
    Keeps each finding of a secret, and the titles of the processes seen.
    """

    def __init__(self, secrets: dict, marker: str) -> None:
        self.secrets = {what: secret.encode() for what, secret in secrets.items()}
        self.marker = marker.encode()
        self.found: list = []
        self.titles: set = set()
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-watch", daemon=True)

    def __enter__(self) -> "ProcessWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError:
            return b""

    def _ours(self, pid: str, parents: dict) -> bool:
        me = str(os.getpid())
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == me:
                return True
        return False

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            parents = {}
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    stat_line = self._read(proc / "stat")
                    fields = stat_line[stat_line.rfind(b")") + 2 :].split()
                    if len(fields) > 1:
                        parents[proc.name] = fields[1].decode()
            for pid in parents:
                if pid == me:
                    continue
                data = {part: self._read(Path("/proc", pid, part)) for part in ("cmdline", "comm", "environ")}
                if not (self._ours(pid, parents) or self.marker in data["environ"]):
                    continue
                self.titles.add(data["comm"].strip().decode(errors="replace"))
                for part, text in data.items():
                    for what, secret in self.secrets.items():
                        if secret in text:
                            self.found.append("%s in /proc/%s/%s: %r" % (what, pid, part, text[:300]))
            self.rounds += 1
            self._stop.wait(0.005)


def test_no_secret_in_debug_logs_or_vvvv_output(testbed, tmp_path):
    key = tmp_path / "key"
    key.write_bytes(testbed.key.read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-f", str(key), "-P", "", "-N", PASSPHRASE], check=True, capture_output=True)
    key_text = key.read_text()
    inv = tmp_path / "hosts.yml"
    inv.write_text(json.dumps(_inventory(testbed, key_text)))  # YAML reads JSON
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)  # made by the user beforehand, readable by all: the files must still be private
    local_tmp = tempfile.mkdtemp(prefix="nsm-", dir="/tmp")  # the agent's socket: a short path
    passwords = {"ssh password": testbed.users.pw.password, "become password": testbed.users.sudopw.password}
    try:
        with ProcessWatch(dict(passwords, **{"key passphrase": PASSPHRASE}), str(tmp_path)) as watch:
            rc, stats, output = run_playbook(
                tmp_path,
                str(inv),
                "secrets.yml",
                "-vvvv",
                env={
                    "NS_MITOGEN_LOG_DIR": str(logs),
                    "ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log"),
                    "ANSIBLE_SSH_AGENT": "auto",
                    "ANSIBLE_LOCAL_TEMP": local_tmp,
                },
            )
    finally:
        subprocess.run(["rm", "-rf", local_tmp], check=False)
    assert rc == 0, output[-4000:]
    assert not watch.found, "\n".join(watch.found[:20])
    assert watch.rounds > 10, watch.rounds
    assert {"ansible-playboo", "ssh", "sshd", "sudo", "sleep"} <= watch.titles, watch.titles  # both sides watched
    assert all(stats[h]["ok"] >= 4 for h in ("h_pw", "h_become", "h_key")), stats
    files = sorted(logs.iterdir())
    assert any(f.name.startswith("mux-") for f in files) and any(f.name.startswith("worker-") for f in files), files
    texts = {"-vvvv output": output, "ansible.log": (tmp_path / "ansible.log").read_text()}
    texts.update((f.name, f.read_text(errors="replace")) for f in files)
    secrets = {
        "ssh password": testbed.users.pw.password,
        "become password": testbed.users.sudopw.password,
        "key passphrase": PASSPHRASE,
        "private key": key_text.splitlines()[2],  # a line of the key's body
        "no_log value": NOLOG_SECRET,
    }
    leaks = [
        "%s in %s: %s" % (what, name, line[:300])
        for name, text in texts.items()
        for line in text.splitlines()
        for what, secret in secrets.items()
        if secret in line
    ]
    assert not leaks, "\n".join(leaks)
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, "%s is %o" % (f.name, stat.S_IMODE(os.stat(f).st_mode))
