# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One command through a connection's transport, where no interpreter runs (private).

Owns: ``run_once()``, the path of ``raw`` (and any command) on a target where no
Python runs yet, as when a play installs one: the transport's argv runs the command
once, its prompts answered as when an interpreter starts (ssh's password), its
output collected. Controller only: targets never need it, so it is not in the core.
"""

from __future__ import annotations

import os
import select
import time
from typing import Any, Dict, List, Sequence, Tuple

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError


def run_once(spec: Dict[str, Any], argv: List[str], stdin: bytes = b"") -> Tuple[int, bytes, bytes]:
    """Run ``argv`` (the transport of ``spec`` running one command) to its end, no interpreter.

    For a target where no Python runs yet (``raw`` installing one). Prompts on the
    controlling tty are answered as when an interpreter starts (ssh's password);
    the command's own output is only collected. Returns its exit status, stdout and
    stderr; raises ``ConnectError`` when a prompt cannot be answered. An exit status
    of 255 (ssh's own failure) is retried as the spec's ``connect_retries`` say,
    unless a password was typed.
    """
    pauses = api.make_transport(spec).retry_pauses()
    for pause in pauses:
        transport = api.make_transport(spec)
        result = _run(transport, argv, stdin)
        if result[0] != 255 or transport.prompts_answered:  # as ansible.builtin.ssh: retry ssh's own failure
            return result
        time.sleep(pause)
    return _run(api.make_transport(spec), argv, stdin)


def _run(transport: api.Transport, argv: List[str], stdin: bytes) -> Tuple[int, bytes, bytes]:
    proc = api.ChildProcess(argv, transport.use_pty, transport.describe())
    one = _OneShot(transport, proc, stdin)
    finished = False
    try:
        result = one.run()
        finished = True
        return result
    finally:
        one.close()
        proc.reap_and_forget(5.0 if finished else 0.2)  # not left waiting at a prompt


class _OneShot:
    def __init__(self, transport: api.Transport, proc: api.ChildProcess, stdin: bytes) -> None:
        self.t = transport
        self.proc = proc
        self.pending = stdin
        self.seen: Dict[str, List[bytes]] = {"stdout": [], "stderr": [], "tty": []}  # chunks: no quadratic joins
        self.open = {"stdin": proc.stdin, "stdout": proc.stdout}  # ChildProcess.reap() closes the rest

    def close(self, which: Sequence[str] = ("stdin", "stdout")) -> None:
        for name in which:
            fd = self.open.pop(name, None)
            if fd is not None:
                os.close(fd)

    def run(self) -> Tuple[int, bytes, bytes]:
        p = self.proc
        readers = {p.stdout: "stdout", p.stderr_fd: "stderr"}
        if p.tty_fd is not None:
            readers[p.tty_fd] = "tty"  # never ends (ChildProcess holds the slave open)
        os.set_blocking(p.stdin, False)
        while p.stdout in readers or p.stderr_fd in readers:
            if not self.pending:
                self.close(["stdin"])  # the command sees the end of its input
            rl, wl, _unused = select.select(list(readers), [p.stdin] if "stdin" in self.open else [], [], 1.0)
            if wl:
                self.pending = api.write_some(p.stdin, self.pending)  # b"" if the command stopped reading
            for fd in rl:
                self._read(fd, readers)
        return p.proc.wait(), b"".join(self.seen["stdout"]), b"".join(self.seen["stderr"])

    def _read(self, fd: int, readers: Dict[int, str]) -> None:
        channel = readers[fd]
        data = api.read_some(fd)
        if not data:
            del readers[fd]
            return
        self.seen[channel].append(data)
        if channel == "tty":
            tty = b"".join(self.seen["tty"])  # prompts only: short
            try:
                answer = self.t.on_text("tty", tty.decode("utf-8", "replace"))
            except ConnectError as exc:
                exc.output = (b"".join(self.seen["stderr"]) + tty).decode("utf-8", "replace")
                raise
            if answer is not None:
                os.write(fd, answer)
