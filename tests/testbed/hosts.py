"""One testbed host: its files, its mount namespace and its processes.

Owns the per-host layout under the run's state dir, the private sshd
configuration, the `enter.sh` script that builds the host's mount namespace
(private /tmp, /home and /root, read-only /root/.pyenv at the same path) and
then execs a command, and starting/stopping the host's sshd and latency relay.

Layout of `hosts/<name>/` in the state dir::

    tmp/        the host's /tmp            (mode 1777)
    home/       the host's /home           (one 0700 dir per test account)
    root/       the host's /root           (mode 0755; .pyenv is a mount point)
    sshd_config, sshd.pid, sshd.log (sshd -E), sshd.stderr, relay.log, enter.sh

Processes: `ip netns exec <ns> unshare --mount --propagation private
enter.sh /usr/sbin/sshd -D ...` (exec all the way, so the Popen pid is
sshd's), and with rtt_ms > 0 `ip netns exec <ns> python relay.py` listening
on <address>:22 in front of sshd on 127.0.0.1:2222.
"""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import netns
from .accounts import Account, Accounts
from .keys import KeyPair
from .pythons import pyenv_root
from .system import SSHD, TestbedError, run

RELAY_SCRIPT = Path(__file__).with_name("relay.py")
SSH_PORT = 22
SSHD_INNER_PORT = 2222
READY_TIMEOUT = 15.0


@dataclass
class Link:
    """A veth pair: outer end in outer_ns (None = root namespace), inner end in the host."""

    outer_ns: str | None
    outer_if: str
    inner_ns: str
    inner_if: str
    outer_address: str
    inner_address: str
    prefixlen: int = 30


@dataclass
class Host:
    """A testbed host as tests see it (paths are controller-side views)."""

    name: str
    address: str
    port: int
    netns: str
    reachable_from: str | None
    rtt_ms: float
    state_dir: Path
    link: Link = field(repr=False)
    private_etc: tuple[str, ...] = ()
    sshd_proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    relay_proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def tmp_dir(self) -> Path:
        """The host's /tmp."""
        return self.state_dir / "tmp"

    @property
    def home_dir(self) -> Path:
        """The host's /home."""
        return self.state_dir / "home"

    @property
    def etc_dir(self) -> Path:
        """Where the host's own copies of the ``private_etc`` files of /etc are."""
        return self.state_dir / "etc"

    @property
    def root_home_dir(self) -> Path:
        """The host's /root."""
        return self.state_dir / "root"

    def user_home(self, user: Account | str) -> Path:
        """Controller-side path of a test account's home on this host."""
        name = user if isinstance(user, str) else user.name
        return self.home_dir / name

    @property
    def sshd_pid(self) -> int | None:
        proc = self.sshd_proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # -- setup ---------------------------------------------------------------
    def write_files(self, users: Accounts, user_key: KeyPair, host_key: KeyPair, known_hosts: str) -> None:
        """Create the host's directories, homes and sshd config."""
        for path, mode in ((self.state_dir, 0o700), (self.tmp_dir, 0o1777), (self.home_dir, 0o755), (self.root_home_dir, 0o755)):
            path.mkdir(exist_ok=True)
            path.chmod(mode)
        root = pyenv_root()
        if _under(root, Path("/root")):
            (self.root_home_dir / root.relative_to("/root")).mkdir(parents=True, exist_ok=True)
        for user in users.all():
            _make_home(self.user_home(user), user, user_key, known_hosts)
        if self.private_etc:
            self.etc_dir.mkdir(mode=0o755, exist_ok=True)
            for name in self.private_etc:
                shutil.copy2(Path("/etc", name), self.etc_dir / name)
        (self.state_dir / "sshd_config").write_text(self._sshd_config(users, host_key))
        enter = self.state_dir / "enter.sh"
        enter.write_text(self._enter_script())
        enter.chmod(0o755)

    def _sshd_config(self, users: Accounts, host_key: KeyPair) -> str:
        listen = f"127.0.0.1:{SSHD_INNER_PORT}" if self.rtt_ms > 0 else f"{self.address}:{SSH_PORT}"
        lines = [
            f"ListenAddress {listen}",
            f"HostKey {host_key.private}",
            f"PidFile {self.state_dir / 'sshd.pid'}",
            "UsePAM yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PermitRootLogin no",
            f"AllowUsers {' '.join(u.name for u in users.all())}",
            "StrictModes no",
            "UseDNS no",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "MaxAuthTries 10",
            "LoginGraceTime 30",
            "PrintMotd no",
            "X11Forwarding no",
            "AllowTcpForwarding yes",
            "AcceptEnv LANG LC_*",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "LogLevel VERBOSE",
        ]
        if _openssh_version() >= (9, 8):
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def _enter_script(self) -> str:
        root = pyenv_root()
        q = shlex.quote
        lines = ["#!/bin/sh", "# Build this host's mount namespace, then exec the command.", "set -eu"]
        if _under(root, Path("/root")) and root.is_dir():
            inner = self.root_home_dir / root.relative_to("/root")
            lines += [f"mount --bind {q(str(root))} {q(str(inner))}", f"mount -o remount,bind,ro {q(str(inner))}"]
        lines += [
            f"mount --rbind {q(str(self.root_home_dir))} /root",
            f"mount --bind {q(str(self.tmp_dir))} /tmp",
            f"mount --bind {q(str(self.home_dir))} /home",
            *(f"mount --bind {q(str(self.etc_dir / name))} {q('/etc/' + name)}" for name in self.private_etc),
            'exec "$@"',
        ]
        return "\n".join(lines) + "\n"

    def enter_argv(self) -> list[str]:
        """Prefix that runs a command inside this host's network and (fresh) mount namespace."""
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            str(self.state_dir / "enter.sh"),
        ]

    # -- processes -------------------------------------------------------------
    def start(self) -> None:
        """Start relay (if rtt_ms > 0) and sshd; does not wait for readiness."""
        if self.sshd_pid is not None:
            raise TestbedError(f"sshd of {self.name} is already running")
        (self.state_dir / "sshd.pid").unlink(missing_ok=True)
        if self.rtt_ms > 0:
            with open(self.state_dir / "relay.log", "ab") as log:
                self.relay_proc = subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        self.netns,
                        sys.executable,
                        "-I",
                        str(RELAY_SCRIPT),
                        "--listen",
                        f"{self.address}:{SSH_PORT}",
                        "--connect",
                        f"127.0.0.1:{SSHD_INNER_PORT}",
                        "--delay-ms",
                        str(self.rtt_ms / 2),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    close_fds=True,
                    start_new_session=True,
                )
        with open(self.state_dir / "sshd.stderr", "ab") as err:
            self.sshd_proc = subprocess.Popen(
                [
                    *self.enter_argv(),
                    SSHD,
                    "-D",
                    "-f",
                    str(self.state_dir / "sshd_config"),
                    "-E",
                    str(self.state_dir / "sshd.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                close_fds=True,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until an SSH banner is served on address:22 from the outer namespace."""
        deadline = time.monotonic() + timeout
        if self.relay_proc is not None and self.relay_proc.stdout is not None:
            self._wait_relay(deadline)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            proc = self.sshd_proc
            if proc is None or proc.poll() is not None:
                raise TestbedError(f"sshd of {self.name} exited early: {self.diagnostics()}")
            try:
                with netns.connect_in(self.link.outer_ns, self.address, SSH_PORT, 2.0) as sock:
                    banner = sock.recv(64)
                if banner.startswith(b"SSH-"):
                    return
                last_error = TestbedError(f"unexpected banner {banner!r}")
            except OSError as exc:
                last_error = exc
            time.sleep(0.02)
        raise TestbedError(f"sshd of {self.name} not ready after {timeout}s ({last_error}): {self.diagnostics()}")

    def _wait_relay(self, deadline: float) -> None:
        proc = self.relay_proc
        if proc is None or proc.stdout is None:
            return
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"READY":
            raise TestbedError(f"relay of {self.name} did not start: {self.diagnostics()}")

    def stop(self) -> list[int]:
        """Kill every process in the host's network namespace (sshd, sessions, relay)."""
        killed = netns.kill_netns_processes(self.netns)
        for proc in (self.sshd_proc, self.relay_proc):
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
                if proc.stdout is not None:
                    proc.stdout.close()
        return killed

    def diagnostics(self) -> str:
        parts = []
        for name in ("sshd.stderr", "sshd.log", "relay.log"):
            path = self.state_dir / name
            if path.exists():
                text = path.read_text(errors="replace").strip()[-2000:]
                if text:
                    parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts) or "(no logs)"


def _under(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _make_home(home: Path, user: Account, user_key: KeyPair, known_hosts: str) -> None:
    """Home with skeleton files, .ssh (key pair, known_hosts, authorized_keys if any)."""
    home.mkdir(mode=0o700, exist_ok=True)
    skel = Path("/etc/skel")
    if skel.is_dir():
        for item in skel.iterdir():
            if item.is_file():
                shutil.copyfile(item, home / item.name)
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    files = {
        "id_ed25519": (user_key.private.read_text(), 0o600),
        "id_ed25519.pub": (user_key.public.read_text(), 0o644),
        "known_hosts": (known_hosts, 0o644),
    }
    if user.authorized:
        files["authorized_keys"] = (user_key.public.read_text(), 0o600)
    for name, (text, mode) in files.items():
        (ssh / name).write_text(text)
        (ssh / name).chmod(mode)
    for dirpath, dirnames, filenames in os.walk(home):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), user.uid, user.gid)
    os.chown(home, user.uid, user.gid)
    home.chmod(0o700)


_ssh_version: tuple[int, int] | None = None


def _openssh_version() -> tuple[int, int]:
    """(major, minor) of the installed OpenSSH, e.g. (9, 2)."""
    global _ssh_version
    if _ssh_version is None:
        text = run(["ssh", "-V"]).stderr
        try:
            major, minor = text.split("_", 1)[1].split("p", 1)[0].split(".")[:2]
            _ssh_version = (int(major), int(minor))
        except (IndexError, ValueError):
            _ssh_version = (0, 0)
    return _ssh_version
