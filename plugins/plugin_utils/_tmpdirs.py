# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A task's temporary directory and small files, without round trips of their own (private).

Owns: ``TaskFiles``, one per connection and task, which answers ansible-core's
``_make_tmp_path``, ``_remote_chmod`` and ``_remove_tmp_path`` (routed here by
``_compat_hooks.install_tmp_hooks``) and the ``put_file`` of a small file into that
directory, by deferring the work to the next call the task sends to the
interpreter: the directory is made, the file written and its mode changed just
before the module (or command) that needs them runs, in the same round trip
(``_files.apply_ops`` on the target). Its removal is sent without waiting for a reply.

Rules it keeps:
- The directory is where vanilla's would be: ``remote_tmp`` (``~/.ansible/tmp``)
  under the login user's home (its interpreter's hello says), named by
  ansible-core's own ``_generate_temp_dir_name``, mode 0700, owned by the login
  user. A task that becomes root has it made by its root interpreter, which gives
  what it makes to the login user: the task's calls all go to one interpreter.
  Becoming anyone else (not ``_is_become_unprivileged``: ``toor``, say), the login
  interpreter makes it, which costs a round trip of its own before the call.
- It falls back to ansible-core's own code (a command each) where that would differ:
  ``keep_remote_files``, a ``remote_tmp`` the shell must expand (``$VAR``, backticks,
  ``~other``), a relative one, a become user that is not privileged (ansible-core's
  ``_is_become_unprivileged``), and a chmod mode other than ``u+...``.
- Deferred operations are sent, in order, with the next call to their interpreter;
  a call to another interpreter, a fetch or a large put first sends them on their
  own (one round trip), so nothing ever sees the directory missing.
- A file over ``INLINE_LIMIT`` is streamed (``put_file``) as before, by the login
  interpreter.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set, Tuple

from ansible_collections.ns.mitogen.plugins.plugin_utils import _patterns

if TYPE_CHECKING:
    from ansible_collections.ns.mitogen.plugins.plugin_utils._connection import MitogenConnectionBase

INLINE_LIMIT = 1024 * 1024
#: ``_remote_chmod`` modes answered here: the bits they add
CHMOD_BITS = {"u+rwx": 0o700, "u+rx": 0o500, "u+x": 0o100, "u+rw": 0o600, "u+r": 0o400}
_SHELL_EXPANDS = _patterns.LazyPattern(r"[$`\\]")

Op = Tuple[Any, ...]


class TaskFiles:
    """The temporary directories of one task on an ns.mitogen connection, and what waits to be sent."""

    def __init__(self, connection: "MitogenConnectionBase") -> None:
        self._connection = connection
        self.owner: Dict[str, str] = {}  # directory -> stack key of its interpreter
        self.stacks: Dict[str, List[Dict[str, Any]]] = {}  # stack key -> stack
        self.pending: Dict[str, List[Op]] = {}  # stack key -> operations not sent yet
        self.made: Set[str] = set()  # directories whose mkdir was sent
        self.owners: Dict[str, Optional[Tuple[int, int]]] = {}  # stack key -> (uid, gid) given to what it makes

    # -- ansible-core's ActionBase, through _compat --------------------------------
    def tmp_path(self, remote_tmp: str, basefile: str) -> Optional[str]:
        """The task's new temporary directory (made with the next call), or None: ansible-core's way."""
        setting = str(remote_tmp or "~/.ansible/tmp")
        if _SHELL_EXPANDS.search(setting):
            return None
        if setting != "~" and not setting.startswith(("~/", "/")):
            return None
        login = self._connection._stack(False)
        stack = self._connection._stack(True)
        login_hello = self._connection.hello_of(login)
        owner: Optional[Tuple[int, int]] = None
        if stack != login:
            if self._connection.hello_of(stack).get("uid") == 0 and isinstance(login_hello.get("gid"), int):
                owner = (int(login_hello["uid"]), int(login_hello["gid"]))
            else:
                stack = login
        if setting.startswith("~"):
            home = login_hello.get("home")
            if not isinstance(home, str) or not home.startswith("/"):
                return None
            setting = home + setting[1:]
        path = posixpath.join(posixpath.normpath(setting), basefile)
        key = self._connection.stack_key(stack)
        self.owner[path] = key
        self.owners[key] = owner
        self.stacks[key] = stack
        self.pending.setdefault(key, []).append(("mkdir", path, owner))
        return path

    def owns(self, path: Any) -> bool:
        return isinstance(path, str) and self.dir_of(path) is not None

    def dir_of(self, path: str) -> Optional[str]:
        """Which of this task's directories ``path`` is, or is in."""
        for directory in self.owner:
            if path == directory or path.startswith(directory.rstrip("/") + "/"):
                return directory
        return None

    def chmod(self, paths: Sequence[Any], mode: str) -> bool:
        """Defer ``chmod mode paths`` if all are this task's and the mode simple; else False."""
        bits = CHMOD_BITS.get(str(mode))
        dirs = {self.dir_of(str(p)) for p in paths}
        if bits is None or not paths or None in dirs:
            return False
        keys = {self.owner[d] for d in dirs if d is not None}
        if len(keys) != 1:
            return False
        self.pending.setdefault(keys.pop(), []).append(("chmod", [str(p) for p in paths], bits))
        return True

    def remove(self, path: str) -> None:
        """Forget ``path`` (one of this task's directories): drop what waits, remove what was made."""
        key = self.owner.pop(path)
        inside = path.rstrip("/") + "/"
        self.pending[key] = [op for op in self.pending.get(key, []) if not _under(op, path, inside)]
        if path in self.made:
            self.made.discard(path)
            self._connection.remove_soon(self.stacks[key], [path])

    # -- the connection --------------------------------------------------------------
    def put(self, in_path: str, out_path: str) -> Optional[str]:
        """For a put into this task's directory: None if deferred, else the stack key to stream to."""
        directory = self.dir_of(out_path)
        if directory is None:
            return None
        key = self.owner[directory]
        st = os.stat(in_path)
        if st.st_size > INLINE_LIMIT:
            return self._login_key()
        with open(in_path, "rb") as fp:
            data = fp.read(INLINE_LIMIT + 1)
        if len(data) > INLINE_LIMIT:  # grew meanwhile
            return self._login_key()
        self.pending.setdefault(key, []).append(("write", out_path, data, st.st_mode & 0o7777, self.owners.get(key)))
        return ""

    def _login_key(self) -> str:
        """A large file is streamed by the login interpreter: the file is the login user's, as vanilla's."""
        login = self._connection._stack(False)
        key = self._connection.stack_key(login)
        self.stacks.setdefault(key, login)
        return key

    def take(self, key: str) -> List[Op]:
        """The operations waiting for the interpreter of ``key``, now being sent to it."""
        ops = self.pending.pop(key, [])
        self.made.update(op[1] for op in ops if op[0] == "mkdir")
        return ops

    def snapshot(self) -> Tuple[Any, ...]:
        """What ``restore`` puts back: the state before a probe that must leave no trace (``_speculation``)."""
        pending = {k: list(ops) for k, ops in self.pending.items()}
        return dict(self.owner), dict(self.stacks), pending, set(self.made), dict(self.owners)

    def restore(self, state: Tuple[Any, ...]) -> None:
        owner, stacks, pending, made, owners = state
        self.owner, self.stacks, self.made, self.owners = dict(owner), dict(stacks), set(made), dict(owners)
        self.pending = {k: list(ops) for k, ops in pending.items()}

    def waiting_elsewhere(self, key: Optional[str]) -> List[str]:
        """Keys of other interpreters with operations waiting (to send before a call to ``key``)."""
        return [k for k, ops in self.pending.items() if ops and k != key]


def _under(op: Op, path: str, inside: str) -> bool:
    targets = op[1] if op[0] == "chmod" else [op[1]]
    return all(t == path or str(t).startswith(inside) for t in targets)
