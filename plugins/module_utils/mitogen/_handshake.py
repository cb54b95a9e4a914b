# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Driving one spawned child to ``NSM-READY`` (private module).

Owns: ``Handshake``, which answers the transport's prompts (password, host key)
on the child's stderr or tty, sends the payload, and turns an early exit or a
timeout into a ``ConnectError`` naming the stage and what the program printed.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from typing import Dict, Optional

from . import _transports
from ._errors import ConnectError
from ._payload import ERR, READY
from ._spawn import ChildProcess, read_some, write_fully, write_some


class Handshake:
    """Drives one child from spawn to ``NSM-READY`` (blocking, in the caller's thread)."""

    def __init__(self, transport: _transports.Transport, proc: ChildProcess, boot_data: bytes, deadline: float) -> None:
        self.t = transport
        self.proc = proc
        self.deadline = deadline
        self.name = transport.describe()
        self.pending = b"" if transport.password_on_stdin else boot_data
        self.boot_data = boot_data
        self.out = b""
        self.err = b""
        self.tty = b""

    def fail(self, reason: str, hint: str = "", stage: str = "handshake") -> ConnectError:
        return ConnectError(self.name, reason, stage, self.output(), hint)

    def output(self) -> str:
        text = (self.err + self.tty + self.out).decode("utf-8", "replace")
        for typed in getattr(self.t, "typed", ()):  # a tool that echoed the password typed (never shown)
            text = text.replace(typed, _transports.REDACTED)
        return text.replace(_transports.SUDO_PROMPT, "")

    def _type(self, data: Optional[bytes], fd: Optional[int]) -> None:
        if data is None:
            return
        if fd is None or fd == self.proc.stdin:
            self.pending = data + self.pending
        else:
            os.write(fd, data)

    def run(self) -> bytes:
        """Return bytes read after ``NSM-READY`` (the start of the framed stream)."""
        p = self.proc
        os.set_blocking(p.stdin, False)
        readers = {p.stdout: "stdout", p.stderr_fd: "stderr"}
        if p.tty_fd is not None:
            readers[p.tty_fd] = "tty"
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ConnectError(
                    self.name,
                    "timed out after the connect timeout while starting",
                    "handshake",
                    self.output(),
                    "raise the connect timeout, or check the host",
                )
            writers = [p.stdin] if self.pending else []
            rl, wl, _unused = select.select(list(readers), writers, [], min(left, 1.0))
            if wl:
                self.pending = write_some(p.stdin, self.pending)  # b"" if the child is gone: its exit explains why
            for fd in rl:
                done = self._read(fd, readers)
                if done is not None:
                    return done

    def _read(self, fd: int, readers: Dict[int, str]) -> Optional[bytes]:
        channel = readers[fd]
        data = read_some(fd)
        if not data:
            del readers[fd]
            if channel == "stdout":
                raise self._exited()
            return None
        if channel == "stdout":
            self.out += data
            if ERR in self.out:
                line = self.out[self.out.index(ERR) + len(ERR) :].split(b"\n")[0].decode("utf-8", "replace")
                hint = "point the python interpreter setting at Python %s or newer" % self.t.python_min_text()
                raise self.fail(line, hint, "interpreter")
            if READY in self.out:
                idx = self.out.index(READY)
                rest = self.out[idx + len(READY) :]
                self.out = self.out[:idx]
                if self.t.password_on_stdin:
                    self._write_all(self.boot_data)
                elif self.pending:
                    os.set_blocking(self.proc.stdin, True)
                    self._write_all(self.pending)
                return rest
            if getattr(self.t, "examines_stdout", False):  # a tool's prompt or words on stdout
                self._type(self._examine(channel, self.out), None)
            return None
        buf = (self.err if channel == "stderr" else self.tty) + data
        if channel == "stderr":
            self.err = buf
        else:
            self.tty = buf
        answer = self._examine(channel, buf)
        if answer is not None:
            self._type(answer, fd if channel == "tty" else None)
        return None

    def _examine(self, channel: str, buf: bytes) -> Optional[bytes]:
        """The transport's answer to the output on ``channel`` so far (its error, with all the output)."""
        try:
            return self.t.on_text(channel, buf.decode("utf-8", "replace"))
        except ConnectError as exc:
            exc.output = self.output()
            raise

    def _write_all(self, data: bytes) -> None:
        os.set_blocking(self.proc.stdin, True)
        try:
            os.write(self.proc.stdin, data) if len(data) < 65536 else write_fully(self.proc.stdin, data)
        except OSError as exc:
            raise self.fail("could not send the payload: %s" % exc) from None

    def _exited(self) -> ConnectError:
        try:
            rc = self.proc.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            rc = None
        # Drain whatever stderr still holds, for the message.
        try:
            while True:
                r, _unused, _unused = select.select([self.proc.stderr_fd], [], [], 0.2)
                if not r:
                    break
                chunk = os.read(self.proc.stderr_fd, 65536)
                if not chunk:
                    break
                self.err += chunk
        except OSError:
            pass
        reason, hint = self.t.explain(self.output(), rc)
        exc = self.fail(reason, hint, "spawn")
        exc.returncode = rc
        return exc
