# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The multiplexer's files: its socket, its lock, and what a dead one leaves (private).

Owns: the private directory of a user's mux sockets, the socket path of a run's
mux (``mux-<playbook pid>.sock``), the lock beside it (``.sock.lock``) that makes
starting one a critical section and records the pid of the mux started last, the
removal of what a dead mux left behind, and the words for a client whose mux died.

Rules it keeps:
- A lock file is removed only by a process holding its lock, and a process that
  acquired a lock checks that the file it locked is still the one at the path
  (``locked()``): else it could hold a lock nobody else can see.
- A run's files are stale once its playbook process is gone (no mux serves it
  any more: a mux exits with its playbook). Starting any mux removes the stale
  files of other runs; a client that finds its own mux dead removes that mux's
  files, so a run whose mux was killed does not leave them behind.
- Little here costs the normal path: a client reads the pid record once (~6 us),
  as another client that found the mux dead may remove it before it looks.

Never imports Ansible: the multiplexer uses it too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from typing import IO, Dict, Iterator, Optional, Tuple

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import Error
from ansible_collections.ns.mitogen.plugins.plugin_utils import _debug, _patterns

_SOCKET_DIRS: Dict[Tuple[str, int], str] = {}  # checked already (by this process or its parent)
_RUN_FILE = _patterns.LazyPattern(r"^mux-(\d+)((?:\.\d+)?)\.sock(\.lock)?$")  # mux-<pid>[.<index>].sock


def socket_dir(fresh: bool = False) -> str:
    """A private (0700) directory for mux sockets of this user.

    Checked (and made) once per process unless ``fresh``: only its owner, this
    user, or root can change it since. Starting a mux asks afresh, in case it was
    removed meanwhile.
    """
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    key = (base, os.getuid())
    if key in _SOCKET_DIRS and not fresh:
        return _SOCKET_DIRS[key]
    path = os.path.join(base, "ns-mitogen-%d" % os.getuid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not os.path.isdir(path):
        raise Error("%s must be a directory owned by uid %d with mode 0700" % (path, os.getuid()))
    _SOCKET_DIRS[key] = path
    return path


def socket_path(playbook_pid: int, fresh: bool = False, index: int = 0) -> str:
    """The socket of the run's mux number ``index`` (0: the first, or only, one)."""
    suffix = ".%d" % index if index else ""
    return os.path.join(socket_dir(fresh), "mux-%d%s.sock" % (playbook_pid, suffix))


@contextlib.contextmanager
def locked(path: str, wait: bool = True, create: bool = True) -> Iterator[Optional[IO[str]]]:
    """Hold the lock of the mux socket ``path``; yield its file.

    None instead when it is busy and not ``wait``, or missing and not ``create``.
    The file is never truncated here (it records the mux's pid).
    """
    lock_path = path + ".lock"
    while True:
        try:
            lock = open(lock_path, "a+" if create else "r+")
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            try:
                same = os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield lock
                return
        finally:
            lock.close()  # and with it the lock


def record_pid(lock: IO[str], pid: Optional[int]) -> None:
    """Note in the held ``lock`` file that ``pid`` is the mux just started (None: none yet)."""
    lock.seek(0)
    lock.truncate()
    if pid is not None:
        lock.write("%d\n" % pid)
    lock.flush()


def recorded_pid(path: str, wait: bool = False) -> Optional[int]:
    """The pid of the mux started last for the socket ``path``, if recorded (~6 us).

    ``wait``: if none is recorded yet, wait for the lock's holder and read again.
    A client that connected while another process was starting the mux (its
    socket listens before the mux's pid is known) gets the pid that way: its
    starter holds the lock until it has written it.
    """
    try:
        fd = os.open(path + ".lock", os.O_RDONLY)
    except OSError:
        return None
    try:
        pid = _read_pid(fd)
        if pid is None and wait:
            fcntl.flock(fd, fcntl.LOCK_SH)
            pid = _read_pid(fd)
        return pid
    except OSError:
        return None
    finally:
        os.close(fd)  # and with it a shared lock


def _read_pid(fd: int) -> Optional[int]:
    try:
        return int(os.pread(fd, 32, 0).strip() or b"0") or None
    except ValueError:
        return None


def listening(path: str) -> bool:
    """True if something accepts connections on ``path`` (a mux, or one starting)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            raise
        return False
    finally:
        probe.close()
    return True


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet waited for, does not)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fp:
            return fp.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_run_files(path: str, lock: IO[str]) -> None:
    """Remove the socket ``path`` and its lock file (whose ``lock`` the caller holds)."""
    del lock  # the proof that the caller holds it
    for name in (path, path + ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def remove_stale(directory: str, keep: int) -> int:
    """Remove the files of runs whose playbook process is gone (but ``keep``'s); how many runs."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for pid, suffix in sorted({(int(m.group(1)), m.group(2)) for m in map(_RUN_FILE.match, names) if m is not None}):
        if pid == keep or alive(pid):
            continue
        path = os.path.join(directory, "mux-%d%s.sock" % (pid, suffix))
        with locked(path, wait=False, create=False) as lock:
            if lock is not None and not listening(path):
                remove_run_files(path, lock)
                removed += 1
            elif not os.path.exists(path + ".lock") and not listening(path):  # a socket without its lock
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                removed += 1
    return removed


def diagnose_loss(path: str, detail: str, known_pid: Optional[int] = None) -> str:
    """What a client says when its mux at ``path`` closed the connection (``detail``: how).

    If the mux died, that is said with its pid and where its log is (or how to keep
    one), and its socket and lock file are removed. Its end of the connection
    closes a moment before it is dead and its socket stops listening: up to a
    second is given to that. ``known_pid``: the mux's pid as the client read it
    when it connected, for when another client has removed the files already.
    """
    pid = recorded_pid(path) or known_pid
    deadline = time.monotonic() + 1.0
    while pid is not None and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid is None or alive(pid):
        return "the ns.mitogen multiplexer closed the connection (%s)%s" % (path, detail)
    with locked(path, create=False) as lock:
        if lock is not None and recorded_pid(path) == pid:
            while listening(path) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not listening(path):
                remove_run_files(path, lock)
    directory = os.environ.get(_debug.ENV)
    if directory:
        where = "see %s" % os.path.join(os.path.abspath(directory), "mux-%d.log" % pid)
    else:
        where = "no log of it was kept: set %s to a directory to keep one there (mux-<pid>.log)" % _debug.ENV
    return "the ns.mitogen multiplexer (pid %d) died: %s" % (pid, where)
