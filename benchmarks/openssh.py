"""The plain-OpenSSH baselines: one command per connection, a ControlMaster, scp.

Every baseline command uses exactly the testbed's client options (``tb.ssh_args``:
``-F /dev/null``, the testbed key with ``IdentitiesOnly``, the testbed known_hosts,
``BatchMode``), the same login (``nsm-key``) and the same host as the ns.mitogen
side, so the two differ only in what runs over the connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from types import TracebackType
from typing import List, Optional, Sequence, Type

from tests.testbed import Account, Host, Testbed


class BaselineError(RuntimeError):
    """An OpenSSH baseline command failed (the measurement would be meaningless)."""


def spawn(argv: Sequence[str]) -> "subprocess.Popen[bytes]":
    """Start a baseline command (no terminal, output discarded but stderr kept)."""
    return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def reap(proc: "subprocess.Popen[bytes]") -> None:
    """Wait for a command started by ``spawn``; raise ``BaselineError`` if it failed."""
    _unused, err = proc.communicate()
    if proc.returncode != 0:
        raise BaselineError(
            "%s exited with %s: %s" % (" ".join(map(str, proc.args)), proc.returncode, err.decode(errors="replace").strip())  # type: ignore[arg-type]
        )


def run_command(argv: Sequence[str]) -> None:
    """Run a baseline command to completion (what one baseline "call" is)."""
    reap(spawn(argv))


class OpenSsh:
    """OpenSSH client command lines for one testbed host and login."""

    def __init__(self, tb: Testbed, host: Host, user: Account) -> None:
        self.tb = tb
        self.host = host
        self.user = user
        self.destination = f"{user.name}@{host.address}"

    def options(self) -> List[str]:
        """The testbed's client options (``-p PORT``, no multiplexing, BatchMode...)."""
        return self.tb.ssh_args(self.host, self.user, password=False)

    def argv(self, *command: str) -> List[str]:
        """``ssh ... host command``: a fresh connection, authenticated from scratch."""
        return ["ssh", *self.options(), self.destination, *command]

    def remote_path(self, path: str) -> str:
        """An scp operand for ``path`` on the host."""
        return f"{self.destination}:{path}"


def scp_options(ssh_options: Sequence[str]) -> List[str]:
    """ssh options rewritten for scp (whose port flag is ``-P``; ``-p`` means something else)."""
    out = list(ssh_options)
    for i, arg in enumerate(out[:-1]):
        if arg == "-p":
            out[i] = "-P"
    return out


class ControlMaster:
    """A private OpenSSH ControlMaster (what Ansible's ControlPersist keeps open).

    Started in the foreground as a child of this process (``-M -N``), with its socket
    in a private temporary directory; closed with ``ssh -O exit`` and reaped on exit,
    even when the measurement fails. ``pid`` lets the caller account its CPU.
    """

    def __init__(self, ssh: OpenSsh) -> None:
        self.ssh = ssh
        self._dir = ""
        self.path = ""
        self.proc: Optional["subprocess.Popen[bytes]"] = None

    def _mux_options(self, master: bool) -> List[str]:
        # ssh keeps the FIRST value given for an option, so these must come before
        # the testbed's own "ControlMaster=no" / "ControlPath=none".
        return [
            "-o",
            "ControlMaster=%s" % ("yes" if master else "no"),
            "-o",
            f"ControlPath={self.path}",
            "-o",
            "ControlPersist=no",
            "-o",
            "Compression=no",
        ]

    def argv(self, *command: str) -> List[str]:
        """``ssh ... host command`` multiplexed over the master's connection."""
        return ["ssh", *self._mux_options(False), *self.ssh.options(), self.ssh.destination, *command]

    def scp_argv(self, source: str, dest: str) -> List[str]:
        """``scp`` (SFTP protocol, the OpenSSH 9 default) over the master's connection."""
        return ["scp", "-q", *self._mux_options(False), *scp_options(self.ssh.options()), source, dest]

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BaselineError("ControlMaster not started")
        return self.proc.pid

    def check(self) -> bool:
        """True while the master answers on its socket."""
        argv = ["ssh", "-o", f"ControlPath={self.path}", "-O", "check", self.ssh.destination]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode == 0

    def require(self) -> None:
        """Fail if the master died (its clients would silently connect afresh)."""
        if self.proc is None or self.proc.poll() is not None or not self.check():
            raise BaselineError("the ControlMaster is gone; the baseline numbers would be wrong")

    def __enter__(self) -> "ControlMaster":
        self._dir = tempfile.mkdtemp(prefix="nsm-bench-cm-")
        self.path = os.path.join(self._dir, "cm")
        argv = ["ssh", *self._mux_options(True), *self.ssh.options(), "-N", self.ssh.destination]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (os.path.exists(self.path) and self.check()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.__exit__(None, None, None)
                raise BaselineError(f"ControlMaster did not start: {err.strip()}")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            argv = ["ssh", "-o", f"ControlPath={self.path}", "-O", "exit", self.ssh.destination]
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
