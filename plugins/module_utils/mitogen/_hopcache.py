# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an intermediary keeps for the contexts below it: module sources and files (private).

Owns: ``HopCache``, the service every context that starts children has (``install``,
from ``_bootstrap.connect_remote``), and the functions a target runs to use it:
``source_from_parent`` (a module's source, by sha1) and ``pull_cached`` (a file, by
SHA-256). So that N targets behind one intermediary cost the links before it one copy
of each module and each file, not N.

Module sources: a child asks its parent for a source it lacks (``source``, by
sha1); the parent answers from its own cache of sources (``_sources``, least
recently used go first), else asks its own parent, and keeps what it gets. At the
root the controller answers (the mux registers a service of this name). Each
source thus crosses each hop at most once while it stays cached there; concurrent
asks for one source make one ask upwards. The controller may also hand an
intermediary a source before the run that needs it (``CACHE_SOURCE``, from the
parent only, kept if it is well formed): the target's ask then stops there, with
no round trip to the controller.

Files: ``pull_cached`` asks the intermediary the controller chose (``hop``) for a
file by SHA-256 (``file``); the intermediary streams it from its cache, else first
pulls it from the controller's ``FileService`` (the controller registered that path
for the intermediary, never for the target) into the cache, checking its SHA-256.
The cache is a private directory (``mkdtemp``: mode 0700) on the intermediary's
disk, not RAM: a file may be as large as a 1 GiB image, and the interpreter's RSS
stays bounded (``_files``: a window of chunks per transfer). Its total size is
bounded by the ``limit`` the controller passes (least recently used files go first;
a file being sent is never removed; a file over the limit is not cached, and the
controller sends such a file to the target directly, as it does when the
intermediary cannot write its cache: ``CacheUnavailable``). The directory is removed
when the interpreter exits (``cleanup``, from ``_child.main``); an intermediary
killed outright leaves it behind in its temporary directory.

Rules it keeps: only descendants may ask (``CHILDREN``); a source is served only by
its sha1 and checked against it on arrival; a file is served only by its SHA-256
(64 hex digits, its name in the cache: nothing else is ever a name there), and
fetched from the controller only under a path the controller registered for this
very context. Nothing here calls a parent: asks upwards are service calls
the parent's policy admits, as for module imports (``_importer``).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from typing import Any, Dict, Optional

from . import _files
from ._calls import Receiver
from ._errors import Error, RefusedError
from ._files import TransferError
from ._service import CHILDREN, Service, call_service, expose
from ._sources import Source, source_for
from ._state import STATE
from ._wire import CACHE_SOURCE, CALL_SERVICE, Message

LOG = logging.getLogger("ns.mitogen.hopcache")

SERVICE = "ns.mitogen.hopcache"
TIMEOUT = 120.0
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")  # a cached file's name: nothing else ever is


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _cached(source_id: str, data: Optional[bytes] = None) -> Optional[Source]:
    """The source ``source_id`` in this interpreter's cache (``data``: cached first)."""
    request: Any = {"source_id": source_id} if data is None else {"source_id": source_id, "source": data}
    return source_for(request)


class CacheUnavailable(Error):
    """This intermediary cannot keep the file (no room, no writable temporary directory).

    The controller then sends the file to the target directly (``api.Session.push_file_cached``).
    """


class _Once:
    """One fetch per key at a time: the others wait for it (then look again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: Dict[str, threading.Event] = {}

    def begin(self, key: str) -> Optional[threading.Event]:
        """None: the caller fetches (and must call ``end``); else an event to wait for."""
        with self._lock:
            event = self._inflight.get(key)
            if event is None:
                self._inflight[key] = threading.Event()
            return event

    def end(self, key: str) -> None:
        with self._lock:
            event = self._inflight.pop(key, None)
        if event is not None:
            event.set()


class HopCache(Service):
    """An intermediary's cache of module sources and files, served to its descendants."""

    name = SERVICE

    def __init__(self, router: Any) -> None:
        self.router = router
        self._once = _Once()
        self._lock = threading.RLock()  # _path() makes the directory under it, once
        self._dir: Optional[str] = None
        self._files: "collections.OrderedDict[str, int]" = collections.OrderedDict()  # sha256 -> size, LRU first
        self._sending: Dict[str, int] = {}  # sha256 -> transfers reading it now
        self.stats = {"sources_fetched": 0, "sources_given": 0, "sources_served": 0, "files_fetched": 0, "files_served": 0}
        router.add_handler(self._on_source_given, CACHE_SOURCE, policy=router.from_parent)

    def __repr__(self) -> str:
        return "HopCache(%d files in %s)" % (len(self._files), self._dir)

    # -- module sources ---------------------------------------------------------------
    @expose(CHILDREN, source_id=str)
    def source(self, caller: int, source_id: str) -> Optional[bytes]:
        """The module source whose sha1 is ``source_id``, or None if nobody above has it."""
        found = self._source(source_id)
        if found is not None:
            self.stats["sources_served"] += 1
        return found

    def _on_source_given(self, msg: Message) -> None:
        """Broker thread: keep a source the parent sent ahead of a child's run of it."""
        data = msg.decode()
        if isinstance(data, bytes):
            _cached(_sha1(data), data)
            self.stats["sources_given"] += 1

    def _source(self, source_id: str) -> Optional[bytes]:
        while True:
            cached = _cached(source_id)
            if cached is not None:
                return cached.data
            event = self._once.begin("source:" + source_id)
            if event is None:
                break
            event.wait(TIMEOUT)
        try:
            data = _ask_parent_for_source(source_id)
            if data is None:
                return None
            self.stats["sources_fetched"] += 1
            found = _cached(source_id, data)
            return None if found is None else found.data
        finally:
            self._once.end("source:" + source_id)

    # -- files ------------------------------------------------------------------------
    @expose(CHILDREN, path=str, sha256=str, size=int, limit=int, handle=int)
    def file(self, caller: int, path: str, sha256: str, size: int, limit: int, handle: int) -> Dict[str, Any]:
        """Stream the file ``sha256`` to ``handle`` in ``caller``; fetched first if not cached.

        ``path``: where the controller registered it for this context; ``size``: its
        size; ``limit``: the cache's bound in bytes. A ``sha256`` that is not 64 hex
        digits is refused before anything is touched (it names a file here).
        """
        if not _SHA256.match(sha256):
            raise RefusedError("%s: %r is not a SHA-256 (asked by %s)" % (self.router.name, sha256, self.router.name_of(caller)))
        try:
            cached = self._cached_file(path, sha256, size, limit)
        except OSError as exc:  # its disk, not the transfer: the controller sends it directly
            raise CacheUnavailable("%s cannot cache a file of %d bytes: %s" % (self.router.name, size, exc)) from None
        try:
            meta = _files.send_stream(self.router, cached, caller, handle, TIMEOUT)
        finally:
            self._done_sending(sha256)
        self.stats["files_served"] += 1
        return meta

    def _cached_file(self, path: str, sha256: str, size: int, limit: int) -> str:
        """The cached copy's path, counted as being sent (``_done_sending`` releases it)."""
        if size > limit:
            raise CacheUnavailable("%s: a file of %d bytes does not fit its cache (%d)" % (self.router.name, size, limit))
        key = "file:" + sha256
        while True:
            with self._lock:
                if sha256 in self._files:
                    self._files.move_to_end(sha256)
                    self._sending[sha256] = self._sending.get(sha256, 0) + 1
                    return self._path(sha256)
            event = self._once.begin(key)
            if event is None:
                break
            event.wait(TIMEOUT)
        try:
            with self._lock:
                self._make_room(size, limit)
            dest = self._path(sha256)
            meta = _files.pull_file(path, dest, 0o600, 0, TIMEOUT)
            if meta["sha256"] != sha256 or meta["size"] != size:
                os.unlink(dest)
                raise TransferError("%s: %s changed on the controller while being copied" % (self.router.name, path))
            self.stats["files_fetched"] += 1
            with self._lock:
                self._files[sha256] = size
                self._sending[sha256] = self._sending.get(sha256, 0) + 1
            return dest
        finally:
            self._once.end(key)

    def _done_sending(self, sha256: str) -> None:
        with self._lock:
            left = self._sending.get(sha256, 0) - 1
            if left > 0:
                self._sending[sha256] = left
            else:
                self._sending.pop(sha256, None)

    def _make_room(self, size: int, limit: int) -> None:
        """Remove the least recently used files not being sent until ``size`` more fits (lock held)."""
        used = sum(self._files.values())
        for sha256 in list(self._files):
            if used + size <= limit:
                break
            if self._sending.get(sha256):
                continue
            used -= self._files.pop(sha256)
            try:
                os.unlink(self._path(sha256))
            except OSError:
                pass

    def _path(self, sha256: str) -> str:
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="ns-mitogen-hopcache-")  # mode 0700
            return os.path.join(self._dir, sha256)

    def cleanup(self) -> None:
        """Remove the cache directory (as the interpreter exits)."""
        with self._lock:
            directory, self._dir = self._dir, None
            self._files.clear()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _ask_parent_for_source(source_id: str) -> Optional[bytes]:
    """Our parent's copy of the source ``source_id`` (checked), or None."""
    router = STATE.router
    if router is None or router.parent_id is None:
        return None
    try:
        data = call_service(router, router.parent_id, SERVICE, "source", {"source_id": source_id}, TIMEOUT)
    except Error as exc:  # a parent without the service (a plain Session) or without the source
        LOG.debug("%s: no module source %s from the parent: %s", router.name, source_id, exc)
        return None
    return checked_source(source_id, data)


def checked_source(source_id: str, data: Any) -> Optional[bytes]:
    """``data`` if it is the module source whose sha1 is ``source_id``, else None."""
    if not isinstance(data, bytes) or _sha1(data) != source_id:
        return None
    return data


def install(router: Any) -> HopCache:
    """This context's ``HopCache``, registered on first use (an intermediary's)."""
    services = STATE.services
    if services is None:
        raise Error("the hop cache runs only inside a child context")
    found = services.get(SERVICE)
    if isinstance(found, HopCache):
        return found
    return services.register(HopCache(router))  # type: ignore[return-value]


def cleanup() -> None:
    """Remove this context's cached files, if it has any (``_child.main``, at exit)."""
    services = STATE.services
    found = services.get(SERVICE) if services is not None else None
    if isinstance(found, HopCache):
        found.cleanup()


# -- functions the controller calls in a target ------------------------------------
def source_from_parent(source_id: str) -> Optional[Source]:
    """Run in a target: the module source ``source_id`` from our parent, now cached here."""
    data = _ask_parent_for_source(source_id)
    return None if data is None else _cached(source_id, data)


def pull_cached(
    hop: int, path: str, sha256: str, size: int, limit: int, dest: str, mode: int, timeout: float = TIMEOUT
) -> Dict[str, Any]:
    """Run in a target: copy the file ``sha256`` from the cache of ``hop`` (an ancestor) to ``dest``.

    ``path``: where the controller registered the file for ``hop``; ``mode``: the
    mode written here. As ``_files.pull_file`` otherwise (atomic, verified).
    """
    router = STATE.router
    if router is None:
        raise Error("not running inside an ns.mitogen context")
    recv = Receiver(router, respondent=hop, persist=True)
    try:
        call = (SERVICE, "file", {"path": path, "sha256": sha256, "size": size, "limit": limit, "handle": recv.handle})
        router.send(Message.encoded(call, dst_id=hop, handle=CALL_SERVICE, reply_to=recv.handle))
        result = _files.receive_stream(router, recv, dest, mode, timeout)
        recv.get(timeout).decode()  # the service's own reply, after the stream
        return result
    finally:
        recv.close()
