# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Functions the Ansible connection plugins call in a target context (private).

Owns: running a shell command the way ``ssh host '<cmd>'`` would (the login
shell's ``-c``, or ``/bin/sh -c`` where a become wrapper would have run it, in the
interpreter's starting directory and environment, stdin fed from the caller,
stdout and stderr apart), and small file-system queries.

Rules it keeps: every command starts from the interpreter's *start-up* state
(directory and environment), never from whatever an earlier call changed, so one
task cannot leak state into the next.
"""

from __future__ import annotations

import os
import pty
import pwd
import subprocess
from typing import Dict, List, Optional, Tuple

from . import _child


def exec_command(
    cmd: str,
    in_data: Optional[bytes] = None,
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    use_pty: bool = False,
    login_shell: bool = False,
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
    terminal's CRLF line ends.
    """
    environ = dict(_child.START_ENV or os.environ)
    if env:
        environ.update(env)
    if cwd and not os.access(cwd, os.X_OK):
        cwd = None
    shell = _login_shell() if login_shell else "/bin/sh"
    argv = [os.path.basename(shell) if login_shell else shell, "-c", cmd]  # sshd's $0: the shell's name
    if use_pty:
        return _exec_on_pty(shell, argv, cwd or _start_dir(), environ)
    proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
        argv,
        executable=shell,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd or _start_dir(),
        env=environ,
        close_fds=True,
    )
    stdout, stderr = proc.communicate(in_data or b"")
    return proc.returncode, stdout, stderr


def _login_shell() -> str:
    """This user's login shell (``/bin/sh`` where the password database names none, as sshd)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    except KeyError:
        return "/bin/sh"


def _start_dir() -> Optional[str]:
    """None while the interpreter is still in its starting directory.

    Changing into it again is avoided on purpose: under sudo it is often the login
    user's home, which the become user may not enter (inheriting it is allowed, as
    it is for a vanilla ``sudo -u user sh -c ...``).
    """
    try:
        if os.getcwd() == _child.START_CWD:
            return None
    except OSError:
        pass
    return _child.START_CWD or None


def _exec_on_pty(shell: str, argv: List[str], cwd: Optional[str], environ: Dict[str, str]) -> Tuple[int, bytes, bytes]:
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
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave side has gone
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(), b"".join(chunks), b""
