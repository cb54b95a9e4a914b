# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One command through a connection's transport, where no interpreter runs (private).

Owns: ``exec_without_python()`` (a connection's command, as the built-in plugin
runs it) and ``run_once()``, the path of ``raw`` (and any command) on a target where no
Python runs yet, as when a play installs one: the transport's argv runs the command
once, its prompts answered as when an interpreter starts (ssh's password), its
output collected. Controller only: targets never need it, so it is not in the core.
"""

from __future__ import annotations

import os
import re
import select
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.utils.display import Display

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import (
    ChildProcess,
    Transport,
    make_transport,
    read_some,
    write_some,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils import _become, _failures, _via

display = Display()

# ssh's own notice as a session on a pty ends (with or without a master)
_PTY_CLOSED = re.compile(rb"(Shared connection|Connection) to \S+ closed\.\r?\n")


def transport_argv(spec: Dict[str, Any], command: List[str]) -> List[str]:
    """The argv of the transport of the hop ``spec`` running ``command``.

    Here, not in the connection plugins, so that a worker loads the core's transports
    (``_methods`` and all it imports) only when it runs a command without an
    interpreter (or says at -vvv how one started), never for a module.
    """
    return make_transport(spec).argv(command)


def exec_without_python(conn: Any, cmd: str, in_data: Optional[bytes], sudoable: bool, use_pty: bool) -> Tuple[int, bytes, bytes]:
    """``cmd`` through a one-shot login, where no Python runs (``raw`` installing one).

    As the built-in plugin runs it: the login shell runs the command, become
    wraps it with the task's own become plugin. The login's password prompt is
    answered as when an interpreter starts; a become password cannot be typed
    on this path: then the original failure stands, with what to do.
    """
    becomes = conn._becomes(sudoable)
    if conn._via_stack():
        raise AnsibleConnectionFailure(_via.no_python_message(conn.host_name(), conn._via_names))
    spec = conn._login_spec()
    if becomes and conn._real_become.get_option("become_pass"):
        raise AnsibleConnectionFailure(
            "ns.mitogen: no Python runs on %s, and a command without one cannot answer a become password "
            "prompt here; use ansible.builtin.ssh (mitogen_disable: true) to bootstrap Python" % conn.host_name()
        )
    if becomes:
        cmd = conn._real_become.build_become_command(cmd, conn._shell)
    argv = conn._one_shot_argv(spec, to_text(cmd), use_pty)
    shown = argv[:-1] + [conn._shown(argv[-1])]
    display.vvv("ns.mitogen EXEC without Python (one-shot %s): %s" % (conn.method, shown), host=conn.host_name())
    try:
        rc, stdout, stderr = run_once(spec, argv, to_bytes(in_data or b""))
    except ConnectError as exc:
        raise AnsibleConnectionFailure(_failures.unreachable_message(exc, conn.method)) from None
    if rc == 255 and conn.method == "ssh":  # as ansible.builtin.ssh: ssh's own failure
        raise AnsibleConnectionFailure("Failed to connect to the host via ssh: %s" % to_text(stderr).strip())
    if becomes:
        stdout = _become.strip_success(stdout, to_bytes(conn._real_become.success or ""))
    if use_pty:  # the one-shot ssh runs without a master: its notice as vanilla's (over one) reads
        stderr = _PTY_CLOSED.sub(b"", stderr) + conn._pty_closed_notice()
    return rc, stdout, stderr


def run_once(spec: Dict[str, Any], argv: List[str], stdin: bytes = b"") -> Tuple[int, bytes, bytes]:
    """Run ``argv`` (the transport of ``spec`` running one command) to its end, no interpreter.

    For a target where no Python runs yet (``raw`` installing one). Prompts on the
    controlling tty are answered as when an interpreter starts (ssh's password);
    the command's own output is only collected. Returns its exit status, stdout and
    stderr; raises ``ConnectError`` when a prompt cannot be answered. An exit status
    of 255 (ssh's own failure) is retried as the spec's ``connect_retries`` say,
    unless a password was typed.
    """
    pauses = make_transport(spec).retry_pauses()
    for pause in pauses:
        transport = make_transport(spec)
        result = _run(transport, argv, stdin)
        if result[0] != 255 or transport.prompts_answered:  # as ansible.builtin.ssh: retry ssh's own failure
            return result
        time.sleep(pause)
    return _run(make_transport(spec), argv, stdin)


def _run(transport: Transport, argv: List[str], stdin: bytes) -> Tuple[int, bytes, bytes]:
    proc = ChildProcess(argv, transport.use_pty, transport.describe())
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
    def __init__(self, transport: Transport, proc: ChildProcess, stdin: bytes) -> None:
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
                self.pending = write_some(p.stdin, self.pending)  # b"" if the command stopped reading
            for fd in rl:
                self._read(fd, readers)
        return p.proc.wait(), b"".join(self.seen["stdout"]), b"".join(self.seen["stderr"])

    def _read(self, fd: int, readers: Dict[int, str]) -> None:
        channel = readers[fd]
        data = read_some(fd)
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
