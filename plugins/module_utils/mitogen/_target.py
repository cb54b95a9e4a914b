# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Functions the Ansible connection plugins call in a target context (private).

Owns: running a shell command the way ``ssh host '<cmd>'`` would (the login
shell's ``-c``, or ``/bin/sh -c`` where a become wrapper would have run it, in the
interpreter's starting directory and environment, stdin fed from the caller,
stdout and stderr apart), ``start_dir()`` (where commands and module runs start)
and the output limit of one reply (``output_limit()``, ``too_much_output()``).

Rules it keeps: every command starts from the interpreter's *start-up* state
(directory and environment), never from whatever an earlier call changed, so one
task cannot leak state into the next. A command's output is held in memory only up
to what one reply can carry (``output_limit()``); beyond that it is read and
dropped until the command ends, and the call fails with ``OutputTooLarge``.
"""

from __future__ import annotations

import os
import pty
import pwd
import select
import selectors
import subprocess
from typing import Any, Dict, List, Optional, Tuple

from . import _sysenv
from ._errors import Error
from ._files import apply_ops
from ._state import STATE
from ._wire import DEFAULT_MAX_MESSAGE

REPLY_MARGIN = 1024 * 1024  # room in a reply for all but a command's or module's output
_READ = 65536
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # one write to a pipe that polled writable never blocks


class OutputTooLarge(Error):
    """A command printed more than one reply can carry (the message gives sizes and what to do)."""


def output_limit() -> int:
    """The most output (stdout and stderr together) one reply may carry: the frame limit less a margin."""
    router = STATE.router
    return (router.max_message if router is not None else DEFAULT_MAX_MESSAGE) - REPLY_MARGIN


def too_much_output(what: str, sizes: Tuple[int, int], limit: int, rc: int, advice: str) -> str:
    """The words for ``what`` (a command, a module) whose output a reply cannot carry."""
    return (
        "%s printed %d bytes of output (%.1f MiB: stdout %d, stderr %d bytes), more than the %d bytes "
        "(%d MiB) one reply can carry (the frame limit less %d KiB for the rest of the reply). The output was "
        "discarded; it exited with status %d. %s"
        % (
            what,
            sum(sizes),
            sum(sizes) / 1048576.0,
            sizes[0],
            sizes[1],
            limit,
            limit // 1048576,
            REPLY_MARGIN // 1024,
            rc,
            advice,
        )
    )


_COMMAND_ADVICE = "Make the command print less, or redirect its output to a file on the target and fetch that file."


def exec_command(
    cmd: str,
    in_data: Optional[bytes] = None,
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    use_pty: bool = False,
    login_shell: bool = False,
    prelude: Optional[List[Any]] = None,
) -> Tuple[int, bytes, bytes]:
    """Run ``cmd`` with ``/bin/sh -c``; return ``(returncode, stdout, stderr)``.

    With ``login_shell`` the user's shell from the password database runs it
    instead, as sshd runs ``$SHELL -c <cmd>`` (a bash user's ``echo -en`` is bash's).

    ``cwd`` defaults to the directory the interpreter started in (the login
    directory for ssh), and so does a ``cwd`` this process may not enter (the local
    connection's playbook directory, for a become user: vanilla's command inherits
    it, which a process started here cannot); ``env`` extends the environment it
    started with. With ``use_pty`` the command runs on a new pseudo-terminal, as
    ``ssh -tt`` runs it: stdout and stderr arrive merged in stdout, with the
    terminal's CRLF line ends. Raises ``OutputTooLarge`` once the command has ended
    if its output was over ``output_limit()`` (that much at most was held in memory).
    ``prelude``: file operations the worker deferred to this call (``_files.apply_ops``),
    run first.
    """
    if prelude:
        apply_ops(prelude)
    _sysenv.refresh()
    environ = dict(STATE.start_env or os.environ)
    if env:
        environ.update(env)
    if cwd and not os.access(cwd, os.X_OK):
        cwd = None
    shell = _login_shell() if login_shell else "/bin/sh"
    argv = [os.path.basename(shell) if login_shell else shell, "-c", cmd]  # sshd's $0: the shell's name
    limit = output_limit()
    if use_pty:
        rc, out, sizes = _exec_on_pty(shell, argv, cwd or start_dir(), environ, limit)
        err = b""
    else:
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv,
            executable=shell,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd or start_dir(),
            env=environ,
            close_fds=True,
        )
        (out, err), sizes = communicate(proc, in_data or b"", limit)
        rc = proc.wait()
    if sum(sizes) > limit:
        raise OutputTooLarge(too_much_output("the command", sizes, limit, rc, _COMMAND_ADVICE))
    return rc, out, err


def communicate(proc: "subprocess.Popen[bytes]", in_data: bytes, limit: int) -> Tuple[List[bytes], Tuple[int, int]]:
    """``proc.communicate(in_data)``, keeping at most ``limit`` bytes of output in all.

    Returns ``([stdout, stderr], (stdout size, stderr size))``; past the limit both
    outputs are empty and the sizes say how much the command printed.
    """
    streams = [proc.stdout, proc.stderr]
    chunks: List[List[bytes]] = [[], []]
    sizes = [0, 0]
    view = memoryview(in_data)
    sent = 0
    with selectors.DefaultSelector() as sel:
        for index, stream in enumerate(streams):
            sel.register(stream, selectors.EVENT_READ, index)  # type: ignore[arg-type]
        if view and proc.stdin is not None:
            sel.register(proc.stdin, selectors.EVENT_WRITE, -1)
        elif proc.stdin is not None:
            proc.stdin.close()
        while sel.get_map():
            for key, _unused in sel.select():
                if key.data == -1:
                    try:
                        sent += os.write(key.fd, view[sent : sent + _PIPE_BUF])
                    except BrokenPipeError:
                        sent = len(view)
                    if sent >= len(view):
                        sel.unregister(key.fileobj)
                        key.fileobj.close()  # type: ignore[union-attr]
                    continue
                data = os.read(key.fd, _READ)
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                    continue
                sizes[key.data] += len(data)
                if sum(sizes) <= limit:
                    chunks[key.data].append(data)
                elif chunks[0] or chunks[1]:
                    chunks = [[], []]  # over the limit: read on, keep nothing
    return [b"".join(c) for c in chunks], (sizes[0], sizes[1])


def _login_shell() -> str:
    """This user's login shell (``/bin/sh`` where the password database names none, as sshd)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    except KeyError:
        return "/bin/sh"


def start_dir() -> Optional[str]:
    """None while the interpreter is still in its starting directory.

    Changing into it again is avoided on purpose: under sudo it is often the login
    user's home, which the become user may not enter (inheriting it is allowed, as
    it is for a vanilla ``sudo -u user sh -c ...``).
    """
    try:
        if os.getcwd() == STATE.start_cwd:
            return None
    except OSError:
        pass
    return STATE.start_cwd or None


def _exec_on_pty(
    shell: str, argv: List[str], cwd: Optional[str], environ: Dict[str, str], limit: int
) -> Tuple[int, bytes, Tuple[int, int]]:
    """``(returncode, output, (output size, 0))``; output held up to ``limit`` bytes only."""
    master, slave = pty.openpty()
    slave_path = os.ttyname(slave)

    def _controlling_tty() -> None:
        os.close(os.open(slave_path, os.O_RDWR))  # after setsid: becomes the controlling tty

    try:
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv,
            executable=shell,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=environ,
            start_new_session=True,
            preexec_fn=_controlling_tty,
            close_fds=True,
        )
    finally:
        os.close(slave)
    chunks: List[bytes] = []
    size = 0
    try:
        while True:
            try:
                data = os.read(master, _READ)
            except OSError:  # EIO: every holder of the slave side has gone
                break
            if not data:
                break
            size += len(data)
            if size <= limit:
                chunks.append(data)
            else:
                chunks = []  # over the limit: read on, keep nothing
    finally:
        os.close(master)
    return proc.wait(), b"".join(chunks), (size, 0)
