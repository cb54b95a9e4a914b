# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The child programs this process spawned, and waiting for them (private module).

Owns: ``ChildProcess`` (a spawned transport program: ssh, sudo, a Python; its
stderr and pty descriptors), the list of those not yet reaped (``reap_all``), and
the small non-blocking read/write helpers the handshake and the one-shot
commands use on their pipes.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional

if TYPE_CHECKING:  # annotations only
    from ._logs import OutputForwarder
    from ._transports import Transport

# How long a child whose stream ended may take to exit and say why (ssh exits within
# milliseconds of its stream's end; a program that does not is reaped as before).
LOSS_WAIT = 2.0
_PROCESSES: List["ChildProcess"] = []
_PROCESSES_LOCK = threading.Lock()


class ChildProcess:
    """A spawned child program; ``reap()`` makes sure it is waited for.

    Owns the child's stderr and pty descriptors until ``reap()`` closes them
    (stdin/stdout belong to the stream once the handshake is done).
    """

    def __init__(self, argv: List[str], use_pty: bool, name: str, owner: Any = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.owner = owner  # the router that started it: reap_all() reaps per owner
        # Set by connect() as the child starts, read by explain_loss().
        self.transport: Optional[Transport] = None
        self.stderr_watch: Optional[OutputForwarder] = None
        self.remote_pid: Optional[int] = None  # the interpreter's, from its hello
        self.tty_fd: Optional[int] = None
        self._slave_fd: Optional[int] = None  # held open so the master never reads EIO
        self.on_detach: List[Any] = []  # broker-thread callbacks run by reap_later()
        self._lock = threading.Lock()
        slave_path = None
        if use_pty:
            self.tty_fd, self._slave_fd = pty.openpty()
            slave_path = os.ttyname(self._slave_fd)

        def _preexec() -> None:
            if slave_path is not None:
                os.close(os.open(slave_path, os.O_RDWR))  # becomes the controlling tty
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_preexec,
            close_fds=True,
        )
        pipes = (self.proc.stdin, self.proc.stdout, self.proc.stderr)
        # We own the descriptors from here on; detach them from the file objects.
        self.stdin, self.stdout, self.stderr_fd = (os.dup(f.fileno()) for f in pipes if f is not None)
        self.stderr: Optional[int] = self.stderr_fd
        for f in pipes:
            if f is not None:
                f.close()
        with _PROCESSES_LOCK:
            _PROCESSES.append(self)

    def __repr__(self) -> str:
        return "ChildProcess(%s, pid=%d)" % (self.name, self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _close_own_fds(self) -> None:
        with self._lock:
            fds, self.stderr, self.tty_fd, self._slave_fd = (self.stderr, self.tty_fd, self._slave_fd), None, None, None
        close_quietly(*fds)

    def reap(self, timeout: float = 5.0) -> Optional[int]:
        """Wait up to ``timeout`` for exit, then terminate, then kill; return status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.returncode is not None:
                self._close_own_fds()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                return self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                continue
            finally:
                if self.proc.returncode is not None:
                    self._close_own_fds()
        return self.proc.poll()

    def explain_loss(self, broker: Any, reason: str, done: Callable[..., None]) -> None:
        """Broker thread: once the program ended, call ``done(cause, status)``.

        Waits, without blocking the broker, up to ``LOSS_WAIT`` for the program to
        exit and for the end of its stderr (ssh's last words arrive there just
        before it exits), then asks the transport what that end means
        (``Transport.explain_loss``). ``reason`` is what the stream saw, said if
        the transport has nothing better.
        """
        started = time.monotonic()
        exited_at: List[float] = []
        delay = [0.002]

        def check() -> None:
            now = time.monotonic()
            returncode = self.proc.poll()
            if returncode is not None and not exited_at:
                exited_at.append(now)
            watch = self.stderr_watch
            words_due = watch is not None and not watch.ended and (not exited_at or now - exited_at[0] < 0.25)
            if (returncode is None or words_due) and now - started < LOSS_WAIT:
                delay[0] = min(delay[0] * 2, 0.05)
                broker.call_later(delay[0], check)
                return
            if self.transport is None:
                done(reason)
                return
            words = list(watch.tail) if watch is not None else []
            done(*self.transport.explain_loss(returncode, words, self.remote_pid, self.argv))

        check()

    def reap_later(self) -> None:
        """Stop watching its output (broker thread), then reap in a short-lived thread."""
        for fn in self.on_detach:
            fn()
        t = threading.Thread(target=self.reap_and_forget, name="ns.mitogen.reap-%d" % self.pid, daemon=True)
        t.start()

    def reap_and_forget(self, timeout: float = 5.0) -> None:
        """``reap(timeout)``, then drop it from the children ``reap_all()`` knows."""
        self.reap(timeout)
        with _PROCESSES_LOCK:
            if self in _PROCESSES:
                _PROCESSES.remove(self)


def reap_all(timeout: float = 5.0, owner: Any = None) -> None:
    """Wait for (or kill) the children ``owner`` (a router; None: all) started."""
    with _PROCESSES_LOCK:
        procs = [p for p in _PROCESSES if owner is None or p.owner is owner]
        for p in procs:
            _PROCESSES.remove(p)
    for proc in procs:
        proc.reap(timeout)


def close_quietly(*fds: Optional[int]) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def read_some(fd: int) -> bytes:
    """What a child's pipe or pty holds now; b"" at its end (or an error: the same to us)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def write_some(fd: int, pending: bytes) -> bytes:
    """Write what a non-blocking ``fd`` takes of ``pending``; the rest (b"" if the reader is gone)."""
    try:
        return pending[os.write(fd, pending[:65536]) :]
    except BlockingIOError:
        return pending
    except OSError:
        return b""


def write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
