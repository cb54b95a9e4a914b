# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File streaming in both directions, through any number of hops (private).

Owns: the chunk protocol (``send_stream`` / ``receive_stream``), the controller's
``FileService`` (what a context may pull), and the functions a target runs to pull
from, or push to, its controller.

Rules it keeps:
- Memory is bounded at every hop: the sender keeps at most ``WINDOW`` chunks
  unacknowledged, so no hop ever buffers more than ``WINDOW * CHUNK`` bytes of a
  transfer, whatever the speed of the links.
- The destination is replaced atomically: data goes to a temporary file in the
  destination's directory, is checked against the sender's SHA-256, fsynced, given
  its mode, and renamed over the destination. A failed transfer leaves the old file.
- A context may pull only files that its controller registered for that very
  context (``FileService.register``); anything else is refused.
- The file operations a worker defers to its next call (``apply_ops``: a task's
  temporary directory, a small file put there, a chmod of them, their removal) run
  before that call, in the order given; each may run twice (a call sent again with
  the module's source), so each is idempotent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from typing import Any, Callable, Dict, Optional, Tuple

from . import _codec
from ._calls import Receiver
from ._errors import CallError, Error, PeerProtocolError, RefusedError
from ._router import Router
from ._service import CHILDREN, Service, expose
from ._state import STATE
from ._wire import CALL_SERVICE, FLAG_ERROR, FLAG_LAST, Message

LOG = logging.getLogger("ns.mitogen.files")

CHUNK = 256 * 1024
WINDOW = 8
SERVICE = "ns.mitogen.files"

#: ``progress(done, total)``: called as a transfer goes, after each chunk (bytes so far, file size)
Progress = Callable[[int, int], None]


class TransferError(Error):
    """A file transfer failed (checksum mismatch, short stream, I/O error)."""


def send_stream(
    router: Router,
    path: str,
    dst_id: int,
    handle: int,
    timeout: float = 120.0,
    progress: Optional[Progress] = None,
    sha1: Any = None,
    fp: Any = None,
) -> Dict[str, Any]:
    """Stream the file at ``path`` to ``handle`` in ``dst_id``; return its metadata.

    The first message announces the file's size (``{"size": n}``, for the
    receiver's progress), then come its chunks. The receiver acknowledges each
    message; at most ``WINDOW`` are in flight. The last message (``FLAG_LAST``)
    carries ``{"size", "sha256", "mode"}``, also returned once the receiver has
    acknowledged it, i.e. after the file is in place there. ``sha1``: a hashlib
    object also fed every chunk. ``fp``: the file, already open (read from its
    start, closed here).
    """
    acks = Receiver(router, respondent=dst_id, persist=True)
    digest = hashlib.sha256()
    size = 0
    in_flight = 0
    try:
        with fp if fp is not None else open(path, "rb") as fp:
            st = os.fstat(fp.fileno())
            router.send(Message.encoded({"size": st.st_size}, dst_id=dst_id, handle=handle, reply_to=acks.handle))
            in_flight += 1
            while True:
                chunk = fp.read(CHUNK)
                if not chunk:
                    break
                while in_flight >= WINDOW:
                    _check_ack(acks.get(timeout))
                    in_flight -= 1
                digest.update(chunk)
                if sha1 is not None:
                    sha1.update(chunk)
                size += len(chunk)
                router.send(Message(dst_id=dst_id, handle=handle, reply_to=acks.handle, data=_codec.encode(chunk)))
                in_flight += 1
                if progress is not None:
                    progress(size, st.st_size)
        meta = {"size": size, "sha256": digest.hexdigest(), "mode": stat.S_IMODE(st.st_mode)}
        router.send(Message.encoded(meta, dst_id=dst_id, handle=handle, reply_to=acks.handle, flags=FLAG_LAST))
        in_flight += 1  # the receiver acknowledges the end once the file is in place
        while in_flight > 0:
            _check_ack(acks.get(timeout))
            in_flight -= 1
        return meta
    finally:
        acks.close()


def _check_ack(msg: Message) -> None:
    value = msg.decode()  # raises the receiver's CallError if it gave up
    if value is not True:
        raise PeerProtocolError("unexpected acknowledgement %r" % (value,))


def receive_stream(
    router: Router,
    recv: Receiver,
    dest: str,
    mode: Optional[int] = None,
    timeout: float = 120.0,
    progress: Optional[Progress] = None,
    first: Optional[Message] = None,
) -> Dict[str, Any]:
    """Write the chunks arriving on ``recv`` to ``dest`` atomically; return metadata.

    ``recv`` is also the reply handle of the call that started the sender, so a
    sender that fails before or during the stream raises its ``CallError`` here.
    ``mode`` overrides the sender's mode. Raises ``TransferError`` on a checksum or
    size mismatch (the destination is then left untouched). ``progress``: called
    after each chunk with the bytes so far and the size the sender announced.
    ``first``: the stream's first message, already taken from ``recv``.
    """
    dest = os.path.abspath(os.path.expanduser(dest))
    directory = os.path.dirname(dest) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), suffix=".nsm-part", dir=directory)
    digest = hashlib.sha256()
    size = 0
    total = -1
    last: Optional[Message] = None
    try:
        with os.fdopen(fd, "wb") as fp:
            while True:
                msg = last = first if first is not None else recv.get(timeout)
                first = None
                if msg.flags & FLAG_LAST:
                    meta = msg.decode()
                    break
                chunk = msg.decode()
                if total < 0 and isinstance(chunk, dict) and isinstance(chunk.get("size"), int):
                    total = chunk["size"]  # the announcement, first
                    router.send(msg.reply_message(True))
                    continue
                if not isinstance(chunk, bytes):
                    raise PeerProtocolError("file chunk is not bytes")
                fp.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                router.send(msg.reply_message(True))
                if progress is not None:
                    progress(size, total)
            if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("size"), int):
                raise PeerProtocolError("malformed end of file stream")
            if meta["size"] != size or meta["sha256"] != digest.hexdigest():
                raise TransferError(
                    "%s: received %d bytes with SHA-256 %s, sender had %d bytes with %s"
                    % (dest, size, digest.hexdigest(), meta["size"], meta["sha256"])
                )
            fp.flush()
            os.fsync(fp.fileno())
        final_mode = mode if mode is not None else meta.get("mode")
        if isinstance(final_mode, int):
            os.chmod(tmp, final_mode & 0o7777)
        os.replace(tmp, dest)
        router.send(msg.reply_message(True))
        return {"size": size, "sha256": digest.hexdigest(), "mode": final_mode, "path": dest}
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if last is not None and last.reply_to:  # stop the sender now, not at its timeout
            router.send(last.reply_message(CallError.from_exception(exc, router.name), flags=FLAG_ERROR))
        raise


class FileService(Service):
    """Serves files to the contexts they were registered for."""

    name = SERVICE

    def __init__(self, router: Router) -> None:
        self.router = router
        self._registered: Dict[int, Dict[str, int]] = {}  # context id -> path -> registrations
        self._progress: Dict[Tuple[int, str], Progress] = {}  # (context id, path) -> its reader's progress
        self._lock = threading.Lock()

    def register(self, context_id: int, path: str, progress: Optional[Progress] = None) -> str:
        """Let ``context_id`` pull ``path``; return the absolute path to ask for.

        Registrations are counted: the path stays readable until each is undone
        (transfers of one file to one intermediary's cache may overlap).
        ``progress``: told how the next transfer of it to that context goes.
        """
        path = os.path.abspath(path)
        with self._lock:
            if progress is not None:
                self._progress[(context_id, path)] = progress
            paths = self._registered.setdefault(context_id, {})
            paths[path] = paths.get(path, 0) + 1
        return path

    def unregister(self, context_id: int, path: Optional[str] = None) -> None:
        """Undo one ``register`` of ``path`` (None: every registration for ``context_id``)."""
        with self._lock:
            if path is None:
                self._registered.pop(context_id, None)
                return
            paths = self._registered.get(context_id, {})
            path = os.path.abspath(path)
            self._progress.pop((context_id, path), None)
            left = paths.get(path, 0) - 1
            if left > 0:
                paths[path] = left
            else:
                paths.pop(path, None)

    def allows(self, caller: int, path: str) -> bool:
        """May ``caller`` read ``path``? Only the very path registered for it (no I/O)."""
        return path in self._registered.get(caller, ())

    @expose(CHILDREN, path=str, handle=int)
    def fetch(self, caller: int, path: str, handle: int) -> Dict[str, Any]:
        """Stream ``path`` to ``handle`` in ``caller`` if it was registered for it."""
        if not self.allows(caller, path):
            raise RefusedError(
                "%s: %s may not read %r: the file was not registered for it"
                % (self.router.name, self.router.name_of(caller), path)
            )
        with self._lock:
            progress = self._progress.pop((caller, path), None)
        return send_stream(self.router, path, caller, handle, progress=progress)


# -- functions the controller calls in a target ------------------------------------
def _router() -> Router:
    router = STATE.router
    if router is None:
        raise Error("not running inside an ns.mitogen context")
    return router


def pull_file(
    source: str, dest: str, mode: Optional[int] = None, source_context: int = 0, timeout: float = 120.0
) -> Dict[str, Any]:
    """Run in a target: pull ``source`` from ``source_context``'s FileService to ``dest``.

    ``timeout`` bounds each wait for the next chunk and for the service's reply after
    the last (``TimeoutError``), not the whole transfer.
    """
    router = _router()
    recv = Receiver(router, respondent=source_context, persist=True)
    try:
        call = (SERVICE, "fetch", {"path": source, "handle": recv.handle})
        router.send(Message.encoded(call, dst_id=source_context, handle=CALL_SERVICE, reply_to=recv.handle))
        result = receive_stream(router, recv, dest, mode, timeout)
        recv.get(timeout).decode()  # the service's own reply, after the stream
        return result
    finally:
        recv.close()


def push_file(path: str, dst_id: int, handle: int) -> Dict[str, Any]:
    """Run in a target: stream the local ``path`` to ``handle`` in ``dst_id``."""
    return send_stream(_router(), path, dst_id, handle)


def push_if_changed(path: str, dst_id: int, handle: int, unless_sha1: Optional[str] = None) -> Dict[str, Any]:
    """Run in a target: fetch's one round trip. Stat ``path`` (following links) and
    stream it to ``handle`` in ``dst_id`` (as ``push_file``) unless there is nothing to send.

    Returns what ansible's fetch action learns from its remote stat:
    ``{"exists": False}``; ``{"exists": True, "isdir": True}``; ``{"exists": True,
    "readable": False}`` (not a readable regular file: ansible's own action then
    reads it with ``slurp``); ``{"error": strerror}`` (the stat itself failed);
    else ``{"exists": True, "checksum": sha1, "sent": bool}``: not sent when the
    file's SHA-1 is ``unless_sha1`` (the controller's copy), else ``checksum`` is
    the SHA-1 of the bytes sent and ``stream`` what ``send_stream`` returned. The
    receiver tells the two apart by the first message it gets: ``send_stream``'s
    ``{"size": n}`` announcement, or this function's reply (which has no ``size``).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"exists": False}
    except OSError as exc:
        return {"error": exc.strerror or str(exc)}
    if stat.S_ISDIR(st.st_mode):
        return {"exists": True, "isdir": True}
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.R_OK):
        return {"exists": True, "readable": False}
    try:
        fp = open(path, "rb")
    except OSError:
        return {"exists": True, "readable": False}
    sha1 = hashlib.sha1()
    if unless_sha1:
        try:
            for chunk in iter(lambda: fp.read(1 << 20), b""):
                sha1.update(chunk)
            fp.seek(0)
        except BaseException:
            fp.close()
            raise
        if sha1.hexdigest() == unless_sha1:
            fp.close()
            return {"exists": True, "checksum": unless_sha1, "sent": False}
        sha1 = hashlib.sha1()
    meta = send_stream(_router(), path, dst_id, handle, sha1=sha1, fp=fp)  # closes fp
    return {"exists": True, "checksum": sha1.hexdigest(), "sent": True, "stream": meta}


def apply_ops(ops: Any) -> None:
    """Run in a target: file operations deferred by the worker (see ``_tmpdirs`` there).

    ``("mkdir", path, owner)``: ``path`` and its missing parents made, mode 0700 (as
    ``umask 77 && mkdir -p`` makes them), as ansible-core makes a task's temporary
    directory. ``("write", path, data, mode, owner)``: ``data`` written to ``path``
    (replaced atomically) with ``mode``, as ``receive_stream`` writes a pushed file.
    ``owner``: None, or the ``(uid, gid)`` a root interpreter gives what it makes (the
    login user's, whose directory it is). ``("chmod", paths, bits)``: ``bits`` added
    to each path's mode (``u+rwx``). ``("rm", path)``: ``path`` removed with
    everything under it, if it exists. Raises ``ValueError`` for an operation it
    does not know (those before it ran).
    """
    if not isinstance(ops, (list, tuple)):
        raise ValueError("file operations must be a list")
    for op in ops:
        kind = op[0] if isinstance(op, (list, tuple)) and op else None
        if kind == "mkdir":
            _make_dirs(op[1], op[2])
        elif kind == "write":
            _write_atomically(op[1], op[2], op[3], op[4])
        elif kind == "chmod":
            for path in op[1]:
                os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | int(op[2]))
        elif kind == "rm":
            shutil.rmtree(op[1], ignore_errors=True)
        else:
            raise ValueError("unknown file operation %r" % (kind,))


def _make_dirs(path: str, owner: Any) -> None:
    missing = []
    while path and path != os.path.dirname(path) and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # whatever the umask
        if owner:
            os.chown(directory, owner[0], owner[1])


def _write_atomically(path: str, data: bytes, mode: int, owner: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".nsm-part", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
        os.chmod(tmp, mode & 0o7777)
        if owner:
            os.chown(tmp, owner[0], owner[1])
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
