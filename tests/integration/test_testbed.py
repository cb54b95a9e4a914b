"""Integration tests of the SSH testbed itself: real namespaces, sshd, relay, accounts.

These check the infrastructure the product tests stand on (logins, sudo/su,
interpreters, isolation, bastion wiring, latency, faults, teardown), not the
product.  No mocks: every test talks to real sshd processes over real sockets.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed import Account, Testbed, cleanup_stale, netns, pythons, registry
from tests.testbed.fixtures import unsupported_reason
from tests.testbed.hosts import RELAY_SCRIPT

pytestmark = pytest.mark.testbed

MiB = 1024 * 1024


def ssh(
    tb: Testbed, host: str, user: Account, *command: str, stdin_text: str | None = None, timeout: float = 30, **options: Any
) -> subprocess.CompletedProcess[str]:
    argv = tb.ssh_argv(host, user, *command, **options)
    stdin = None if stdin_text is not None else subprocess.DEVNULL
    return subprocess.run(argv, input=stdin_text, stdin=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    if proc.returncode != 0:
        pytest.fail(f"exit {proc.returncode}: {proc.args}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc.stdout


def converse(argv: list[str], password: str, timeout: float = 20.0) -> tuple[int, str]:
    """Run argv (ssh -tt ...), answer its first password prompt, return (rc, output)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _unused, _unused = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
                if not answered and b"assword" in out:
                    proc.stdin.write(password.encode() + b"\n")
                    proc.stdin.flush()
                    answered = True
        rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, out.decode(errors="replace")


# -- logins ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["key", "sudo", "sudopw"])
def test_key_accounts_log_in_with_the_key(testbed: Testbed, role: str) -> None:
    user = getattr(testbed.users, role)
    assert ok(ssh(testbed, "h1", user, "id -un")).strip() == user.name


@pytest.mark.parametrize("host", ["h1", "h2", "h3"])
def test_key_login_on_every_host(testbed: Testbed, host: str) -> None:
    out = ok(ssh(testbed, host, testbed.users.key, "hostname -I"))
    assert testbed[host].address in out.split()


def test_password_account_logs_in_with_password_only(testbed: Testbed) -> None:
    pw = testbed.users.pw
    assert ok(ssh(testbed, "h1", pw, "id -un")).strip() == pw.name
    refused = ssh(testbed, "h1", pw, "id -un", password=False)
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr


def test_wrong_password_is_refused(testbed: Testbed) -> None:
    argv = testbed.ssh_argv("h1", testbed.users.pw, "true")
    argv[argv.index("-p") + 1] = "not-the-password"  # sshpass -p PASSWORD
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode != 0


def test_unauthorized_key_is_refused(testbed: Testbed) -> None:
    proc = ssh(testbed, "h1", testbed.users.key, "true", identity=testbed.other_key)
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr


def test_unknown_host_key_fails_fast_without_prompt(testbed: Testbed) -> None:
    start = time.monotonic()
    proc = ssh(testbed, "h1", testbed.users.key, "true", known_hosts=testbed.empty_known_hosts, timeout=10)
    assert time.monotonic() - start < 5
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_wrong_host_key_fails(testbed: Testbed) -> None:
    proc = ssh(testbed, "h1", testbed.users.key, "true", known_hosts=testbed.wrong_known_hosts)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
    assert "has changed" in proc.stderr


# -- privilege changes -----------------------------------------------------------


def test_sudo_without_password(testbed: Testbed) -> None:
    user = testbed.users.sudo
    out = ok(ssh(testbed, "h1", user, "sudo -n id -u; sudo -n -u nsm-key id -un"))
    assert out.split() == ["0", "nsm-key"]


def test_sudo_with_password(testbed: Testbed) -> None:
    user = testbed.users.sudopw
    refused = ssh(testbed, "h1", user, "sudo -n true")
    assert refused.returncode != 0
    assert "password is required" in refused.stderr
    out = ok(ssh(testbed, "h1", user, "sudo -S -p 'PW?' id -u", stdin_text=user.password + "\n"))
    assert out.strip() == "0"
    wrong = ssh(testbed, "h1", user, "sudo -S -p 'PW?' id -u", stdin_text="nope\n")
    assert wrong.returncode != 0


def test_su_with_password_through_a_pty(testbed: Testbed) -> None:
    su = testbed.users.su
    argv = testbed.ssh_argv("h1", testbed.users.key, "-tt", f"su {su.name} -c 'id -un'")
    rc, out = converse(argv, su.password)
    assert rc == 0, out
    assert su.name in out.splitlines()[-1]
    rc, out = converse(argv, "not-the-password")
    assert rc != 0
    assert "Authentication failure" in out


# -- interpreters ------------------------------------------------------------

PYTHONS = pythons()


def test_all_expected_pythons_are_found() -> None:
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    assert set(PYTHONS) >= {"2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"}


@pytest.mark.parametrize("version", list(PYTHONS))
def test_pyenv_python_runs_for_test_user(testbed: Testbed, version: str) -> None:
    code = "import sys, ssl, zlib, json; print('%d.%d' % sys.version_info[:2])"
    out = ok(ssh(testbed, "h2", testbed.users.key, f'{PYTHONS[version]} -c "{code}"'))
    assert out.strip() == version


# -- isolation -----------------------------------------------------------------


def test_tmp_and_home_are_private_per_host(testbed: Testbed) -> None:
    name = f"nsm-marker-{uuid.uuid4().hex}"
    key = testbed.users.key
    ok(ssh(testbed, "h1", key, f"echo hi > /tmp/{name}; echo hi > ~/{name}"))
    h1, h2 = testbed["h1"], testbed["h2"]
    assert (h1.tmp_dir / name).read_text() == "hi\n"
    assert (h1.user_home(key) / name).read_text() == "hi\n"
    assert not (h2.tmp_dir / name).exists()
    assert not (h2.user_home(key) / name).exists()
    assert not Path("/tmp", name).exists()
    assert ok(ssh(testbed, "h2", key, f"ls /tmp/{name} ~/{name} 2>/dev/null; true")) == ""
    assert (h1.tmp_dir / name).stat().st_uid == key.uid


def test_pyenv_is_read_only_and_root_home_private(testbed: Testbed) -> None:
    out = ssh(testbed, "h1", testbed.users.sudo, "sudo -n touch /root/.pyenv/x; sudo -n ls -A /root; stat -c %a /root")
    assert "Read-only file system" in out.stderr
    assert out.stdout.split() == [".pyenv", "755"]
    assert not (Path("/root/.pyenv") / "x").exists()


# -- bastion -----------------------------------------------------------------


def test_private_host_only_reachable_through_bastion(testbed: Testbed) -> None:
    h2, h3 = testbed["h2"], testbed["h3"]
    assert h3.reachable_from == "h2"
    start = time.monotonic()
    with pytest.raises(OSError):
        socket.create_connection((h3.address, h3.port), timeout=3).close()
    assert time.monotonic() - start < 2
    with netns.connect_in(h2.netns, h3.address, h3.port, timeout=3) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-")
    key = testbed.users.key
    # ssh -J with the testbed's ssh_config (the jump host is the "h2" alias there)
    proc = subprocess.run(
        ["ssh", "-F", str(testbed.ssh_config), "-J", f"{key.name}@h2", f"{key.name}@{h3.address}", "id -un"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert ok(proc).strip() == key.name
    # ssh run by a process inside h2 (its user's ~/.ssh has key and known_hosts)
    inner = ok(ssh(testbed, "h2", key, f"ssh -o BatchMode=yes {key.name}@{h3.address} hostname -I"))
    assert h3.address in inner.split()


# -- latency and relay ---------------------------------------------------------


@pytest.fixture(scope="module")
def slow_testbed() -> Iterator[Testbed]:
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    with Testbed(hosts=1, rtt_ms=50) as tb:
        yield tb


def test_relay_adds_the_requested_round_trip_time(slow_testbed: Testbed) -> None:
    argv = slow_testbed.ssh_argv("h1", slow_testbed.users.key, "cat")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        samples = []
        for i in range(8):
            start = time.monotonic()
            proc.stdin.write(b"%d\n" % i)
            line = proc.stdout.readline()
            samples.append((time.monotonic() - start) * 1000)
            assert line == b"%d\n" % i
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    rtt = statistics.median(samples[1:])
    assert 48 <= rtt <= 150, samples


def test_50mib_through_ssh_and_relay_both_directions(slow_testbed: Testbed) -> None:
    data = os.urandom(50 * MiB)
    digest = hashlib.sha256(data).hexdigest()
    key = slow_testbed.users.key
    up = subprocess.run(
        slow_testbed.ssh_argv("h1", key, "cat > /tmp/blob && sha256sum /tmp/blob"),
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    assert up.stdout.split()[0].decode() == digest
    down = subprocess.run(
        slow_testbed.ssh_argv("h1", key, "cat /tmp/blob"), capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )
    assert down.returncode == 0, down.stderr
    assert hashlib.sha256(down.stdout).hexdigest() == digest


def test_relay_alone_moves_50mib_each_way_at_once() -> None:
    """relay.py on loopback in front of an echo server: 50 MiB out and back, concurrently."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        conn, _unused = server.accept()
        with conn:
            while chunk := conn.recv(MiB):
                conn.sendall(chunk)
            conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=echo, daemon=True).start()
    listen = socket.create_server(("127.0.0.1", 0))
    relay_port = listen.getsockname()[1]
    listen.close()
    relay = subprocess.Popen(
        [
            sys.executable,
            str(RELAY_SCRIPT),
            "--listen",
            f"127.0.0.1:{relay_port}",
            "--connect",
            f"127.0.0.1:{port}",
            "--delay-ms",
            "5",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert relay.stdout is not None and relay.stdout.readline() == b"READY\n"
        data = os.urandom(50 * MiB)
        received = hashlib.sha256()
        with socket.create_connection(("127.0.0.1", relay_port), timeout=30) as sock:

            def send() -> None:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send)
            sender.start()
            total = 0
            while chunk := sock.recv(MiB):
                received.update(chunk)
                total += len(chunk)
            sender.join()
        assert total == len(data)
        assert received.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        relay.terminate()
        relay.wait(timeout=10)
        if relay.stdout is not None:
            relay.stdout.close()
        server.close()


# -- faults ------------------------------------------------------------------


def _banner(address: str, port: int, timeout: float) -> bytes:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        return sock.recv(64)


def test_faults_kill_sshd_cut_link_unused_address(make_testbed: Callable[..., Testbed]) -> None:
    tb = make_testbed(hosts=1)
    h1 = tb["h1"]
    session = subprocess.Popen(
        tb.ssh_argv(h1, tb.users.key, "sleep 60"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    assert session.poll() is None
    killed = tb.kill_sshd(h1)
    assert len(killed) >= 2  # listener + session processes
    assert session.wait(timeout=10) != 0
    with pytest.raises(ConnectionRefusedError):
        _banner(h1.address, h1.port, 3)
    tb.start_sshd(h1)
    assert ok(ssh(tb, "h1", tb.users.key, "echo back")).strip() == "back"

    tb.cut_link(None, h1)
    with pytest.raises(OSError):
        _banner(h1.address, h1.port, 1)
    tb.restore_link(None, h1)
    assert _banner(h1.address, h1.port, 5).startswith(b"SSH-")

    start = time.monotonic()
    with pytest.raises(OSError):
        _banner(tb.unused_address(), 22, 5)
    assert time.monotonic() - start < 1


# -- teardown ----------------------------------------------------------------


def _netns_with_prefix(prefix: str) -> list[str]:
    return [n for n in netns.list_netns() if n.startswith(prefix)]


def test_close_removes_everything() -> None:
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    tb = Testbed(hosts=2, rtt_ms=10, private={"h2": "h1"}).start()
    session = subprocess.Popen(
        tb.ssh_argv("h2", tb.users.key, "sleep 60"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    pids = [pid for h in tb.hosts.values() for pid in netns.pids_in_netns(netns.netns_inode(h.netns) or 0)]
    assert len(pids) >= 4  # sshd and relay per host, plus the session
    state_dir, network = tb.state_dir, tb.network
    tb.close()
    session.wait(timeout=10)
    assert _netns_with_prefix(tb.run_id + "-") == []
    assert [
        p for p in pids if Path(f"/proc/{p}").exists() and (Path(f"/proc/{p}/stat").read_text().split(") ")[1][0] != "Z")
    ] == []
    assert not state_dir.exists()
    routes = subprocess.run(["ip", "route", "show", network], capture_output=True, text=True, check=True).stdout
    assert routes.strip() == ""
    assert not (registry.RUNS / f"{tb.run_id}.json").exists()


def test_more_hosts_than_one_block_holds_span_blocks_and_all_go_away() -> None:
    """70 hosts: two consecutive /24s, the second with a record of its own in the
    records' old format (so that another checkout's cleanup_stale keeps it); a host of
    each block serves, the spare address of the last block is unreachable, close()
    removes both blocks' routes and records."""
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    tb = Testbed(hosts=70).start()
    try:
        first, second = tb.networks
        assert int(second.split(".")[2]) == int(first.split(".")[2]) + 1
        assert tb["h62"].address.rsplit(".", 1)[0] + ".0/24" == first
        assert tb["h63"].address.rsplit(".", 1)[0] + ".0/24" == second
        for name in ("h1", "h62", "h63", "h70"):
            assert ok(ssh(tb, name, tb.users.key, "hostname -I")).split() == [tb[name].address]
        assert tb.unused_address().rsplit(".", 1)[0] + ".0/24" == second
        assert tb.unused_address() not in {h.address for h in tb.hosts.values()}
        with pytest.raises(OSError):
            _banner(tb.unused_address(), 22, 5)
        extra = json.loads((registry.RUNS / f"{tb.run_id}.b2.json").read_text())
        assert set(extra) == {"run_id", "pid", "starttime", "state_dir", "block", "netns", "root_links"}
        assert json.loads((tb.state_dir / "run.json").read_text())["run_id"] == tb.run_id
    finally:
        tb.close()
    for net in (first, second):
        assert subprocess.run(["ip", "route", "show", net], capture_output=True, text=True, check=True).stdout.strip() == ""
    assert not list(registry.RUNS.glob(f"{tb.run_id}*.json"))
    assert _netns_with_prefix(tb.run_id + "-") == []


CRASHER = """
import os, sys, json
sys.path.insert(0, sys.argv[1])
from tests.testbed import Testbed
tb = Testbed(hosts=2, rtt_ms=5).start()
print(json.dumps({"run_id": tb.run_id, "state_dir": str(tb.state_dir),
                  "sshd": [h.sshd_pid for h in tb.hosts.values()]}), flush=True)
os.kill(os.getpid(), 9)
"""


def test_cleanup_stale_after_a_crashed_run() -> None:
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", CRASHER, repo], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr
    info = json.loads(proc.stdout)
    assert len(_netns_with_prefix(info["run_id"] + "-")) == 2
    assert all(Path(f"/proc/{pid}").exists() for pid in info["sshd"])
    # plus a deliberately orphaned namespace of a dead pid, no record at all
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead_pid = finished.pid
    orphan = f"nsm-{dead_pid}-1-orphan"
    subprocess.run(["ip", "netns", "add", orphan], check=True)

    removed = cleanup_stale()

    assert f"netns {orphan}" in removed
    assert orphan not in netns.list_netns()
    assert _netns_with_prefix(info["run_id"] + "-") == []
    assert not Path(info["state_dir"]).exists()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in info["sshd"]):
        stat = [Path(f"/proc/{pid}/stat") for pid in info["sshd"]]
        if all(not s.exists() or s.read_text().split(") ")[1][0] == "Z" for s in stat):
            break
        assert time.monotonic() < deadline, "sshd of the crashed run survived"
        time.sleep(0.05)
