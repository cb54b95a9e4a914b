"""Demo: the same playbook on this machine over real SSH, vanilla Ansible beside ns.mitogen.

Starts a private sshd on a loopback port as the current user (keys, known_hosts and
sshd config live in a temporary directory; nothing of ~/.ssh is touched), then runs
``demo/playbook.yml`` three ways and prints the wall time of each:

1. vanilla Ansible as installed (ssh with ControlPersist, pipelining off),
2. vanilla Ansible with pipelining on,
3. ``strategy: ns.mitogen.linear`` (one persistent interpreter, modules run in it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sshd(tmp: str, port: int) -> subprocess.Popen:
    for kind in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(tmp, kind)], check=True)
    shutil.copy(os.path.join(tmp, "user.pub"), os.path.join(tmp, "authorized_keys"))
    config = os.path.join(tmp, "sshd_config")
    with open(config, "w") as fp:
        fp.write(
            "Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPidFile %s\n"
            "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nUseDNS no\nMaxStartups 200\nMaxSessions 200\n"
            % (port, os.path.join(tmp, "host"), os.path.join(tmp, "authorized_keys"), os.path.join(tmp, "sshd.pid"))
        )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=subprocess.DEVNULL)
    with open(os.path.join(tmp, "host.pub")) as fp:
        kind, key = fp.read().split()[:2]
    with open(os.path.join(tmp, "known_hosts"), "w") as fp:
        fp.write("[127.0.0.1]:%d %s %s\n" % (port, kind, key))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("demo: sshd did not start on port %d" % port)


def run(tmp: str, name: str, extra_env: dict) -> float:
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "installed"),
        ANSIBLE_HOME=os.path.join(tmp, "ansible-home"),
        ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-tmp"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(tmp, "cp"),
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_NOCOLOR="1",
        **extra_env,
    )
    start = time.perf_counter()
    out = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(tmp, "hosts"), os.path.join(HERE, "playbook.yml")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.stdout.write(out.stdout[-4000:] + out.stderr[-2000:])
        raise SystemExit("demo: the %s run failed (rc=%d)" % (name, out.returncode))
    return elapsed


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="nsm-demo-")
    port = free_port()
    sshd = start_sshd(tmp, port)
    user = subprocess.check_output(["id", "-un"], text=True).strip()
    with open(os.path.join(tmp, "hosts"), "w") as fp:
        fp.write(
            "demo ansible_host=127.0.0.1 ansible_port=%d ansible_user=%s ansible_ssh_private_key_file=%s "
            "ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='-o UserKnownHostsFile=%s'\n"
            % (port, user, os.path.join(tmp, "user"), os.path.join(tmp, "known_hosts"))
        )
    results = []
    try:
        results.append(("vanilla Ansible (ssh, ControlPersist)", run(tmp, "vanilla", {})))
        results.append(("vanilla Ansible + pipelining", run(tmp, "pipelining", {"ANSIBLE_PIPELINING": "1"})))
        results.append(("ns.mitogen.linear", run(tmp, "ns.mitogen", {"ANSIBLE_STRATEGY": "ns.mitogen.linear"})))
    finally:
        subprocess.run(
            ["ssh", "-O", "exit", "-o", "ControlPath=%s/cp/%%C" % tmp, "-p", str(port), "127.0.0.1"],
            capture_output=True,
            check=False,
        )
        sshd.terminate()
        sshd.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    base = results[0][1]
    print("\ndemo/playbook.yml on this machine over real SSH")
    print("%-40s %10s %10s" % ("", "seconds", "speed-up"))
    for name, secs in results:
        print("%-40s %10.1f %9.1fx" % (name, secs, base / secs))


if __name__ == "__main__":
    main()
