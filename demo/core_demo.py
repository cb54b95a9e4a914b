"""Demo: 100 x `hostname` over real SSH, plain OpenSSH beside ns.mitogen.

Starts a private sshd on a loopback port as the current user (no root needed, no
change to ~/.ssh: keys, known_hosts and config live in a temporary directory),
then runs the same 100 commands three ways and prints the times side by side:

1. ``ssh host hostname`` per command (a fresh connection each time),
2. ``ssh`` over a ControlMaster socket (what Ansible's ControlPersist gives),
3. ns.mitogen: one persistent interpreter, one framed RPC per command.
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
sys.path[:0] = [os.path.join(ROOT, ".build", "installed"), ROOT]

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Session  # noqa: E402

N = 100


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
    os.makedirs("/run/sshd", exist_ok=True) if os.geteuid() == 0 else None
    proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=subprocess.DEVNULL)
    with open(os.path.join(tmp, "host.pub")) as fp:
        key = fp.read().split()
    with open(os.path.join(tmp, "known_hosts"), "w") as fp:
        fp.write("[127.0.0.1]:%d %s %s\n" % (port, key[0], key[1]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("demo: sshd did not start on port %d" % port)


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="nsm-demo-")
    port = free_port()
    sshd = start_sshd(tmp, port)
    user = os.environ.get("USER") or subprocess.check_output(["id", "-un"], text=True).strip()
    opts = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        os.path.join(tmp, "user"),
        "-o",
        "UserKnownHostsFile=%s" % os.path.join(tmp, "known_hosts"),
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        str(port),
        "-l",
        user,
    ]
    control = ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", "ControlPath=%s/cm-%%C" % tmp]
    results = []
    try:
        start = time.perf_counter()
        for _ in range(N):
            subprocess.run(["ssh", *opts, "127.0.0.1", "hostname"], check=True, capture_output=True)
        results.append(("ssh, new connection per command", time.perf_counter() - start))

        start = time.perf_counter()
        for _ in range(N):
            subprocess.run(["ssh", *opts, *control, "127.0.0.1", "hostname"], check=True, capture_output=True)
        results.append(("ssh over ControlMaster (like ControlPersist)", time.perf_counter() - start))
        subprocess.run(["ssh", *opts, *control, "-O", "exit", "127.0.0.1"], capture_output=True)

        start = time.perf_counter()
        with Session() as s:
            host = s.ssh(
                "127.0.0.1",
                port=port,
                username=user,
                identity_file=os.path.join(tmp, "user"),
                known_hosts_file=os.path.join(tmp, "known_hosts"),
                python="python3",
            )
            for _ in range(N):
                host.call(subprocess.check_output, ["hostname"])
        results.append(("ns.mitogen (connect + %d calls)" % N, time.perf_counter() - start))
    finally:
        sshd.terminate()
        sshd.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    base = results[0][1]
    print("\n%d x `hostname` on localhost over real SSH" % N)
    print("%-48s %10s %10s" % ("method", "seconds", "speed-up"))
    for name, secs in results:
        print("%-48s %10.2f %9.1fx" % (name, secs, base / secs))
    print("\n(The same demo as an Ansible playbook arrives with the ns.mitogen strategies.)")


if __name__ == "__main__":
    main()
