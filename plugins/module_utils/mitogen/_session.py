# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's ``Session`` (private: use it as ``api.Session``).

Owns: ``Session`` (a broker thread, the controller's router, the contexts started
from it, files pushed and fetched) and ``DEFAULT_HOP_CACHE``. ``api`` documents it and
names it; it lives here so that importing ``api`` loads none of what it needs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from . import _bootstrap, _files, _hopcache
from ._broker import Broker
from ._calls import Context, Receiver
from ._errors import CallError, ConnectError
from ._importer import Responder
from ._logs import LogReceiver
from ._methods import make
from ._router import Router
from ._service import ServiceRegistry

LOG = logging.getLogger("ns.mitogen.session")
DEFAULT_HOP_CACHE = 512 << 20  # bytes an intermediary keeps of copied files (push_file_cached)


class Session:
    """The controller side: a broker, a router, and the contexts started from it.

    ``allow_imports`` lists module trees (beyond the core itself) that contexts may
    import from this controller on demand. ``connect_timeout`` bounds every start
    (a spec's own ``connect_timeout`` wins). Calls have no default timeout: pass
    ``timeout=`` to ``Context.call``. ``pool_size``: how many children an
    intermediary starts at once (its call pool is grown to that size; starts are
    concurrent from as many threads here). ``cache``: keeps what is derived from the
    core's and module_utils' sources across processes (the boot payload, lowered
    and scanned sources; the protocol is ``_derived``'s); None: made in each process.
    """

    def __init__(
        self,
        allow_imports: Iterable[str] = (),
        connect_timeout: float = 60.0,
        log_level: Optional[int] = None,
        pool_size: int = 16,
        cache: Any = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self.log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self.broker = Broker()
        self.router = Router(self.broker, 0, "controller")
        self.responder = Responder(self.router, [_bootstrap.PACKAGE] + list(allow_imports))
        self.router.responder = self.responder
        if cache is not None:
            self.responder.cache = cache
            _bootstrap.use_cache(cache)
        self.services = ServiceRegistry(self.router)
        self.files = _files.FileService(self.router)
        self.services.register(self.files)
        self.logs = LogReceiver(self.router)
        self.contexts: List[Context] = []
        self.hellos: Dict[int, Dict[str, Any]] = {}
        # contexts reached from here over local links only (``Transport.local_link``):
        # what is sent to them may carry compiled code (``_bytecode``)
        self._local_route: Set[int] = set()
        self._digests: Dict[Tuple[str, int, int, int, int], str] = {}  # (path, stat) -> SHA-256
        self._digest_lock = threading.Lock()
        self._closed = False
        self.broker.start()

    def __repr__(self) -> str:
        return "Session(contexts=%d)" % len(self.contexts)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- starting contexts -------------------------------------------------------------
    def allow_import(self, prefix: str) -> None:
        """Let contexts import the module tree ``prefix`` from this controller."""
        self.responder.allow(prefix)

    def connect(
        self, spec: Dict[str, Any], via: Optional[Context] = None, on_spawn: Optional[Callable[[], None]] = None
    ) -> Context:
        """Start the context ``spec`` describes, from ``via`` (default: here).

        ``on_spawn``: called once the child program runs here (``via`` None), while
        it logs in (see ``_bootstrap.connect``).
        Raises ``SpecError`` for a malformed spec, ``ConnectError`` on failure.
        """
        spec = dict(spec)
        spec.setdefault("connect_timeout", self.connect_timeout)
        if via is None:
            ctx, hello = _bootstrap.connect(
                self.router, spec, self.responder.prefixes, log_level=self.log_level, on_spawn=on_spawn
            )
            if make(spec).local_link:
                self._local_route.add(ctx.context_id)
        else:
            transport = make(spec)  # validate here: a clear SpecError beats a remote one
            name = transport.describe()
            cid = self.router.allocate_id()
            try:
                hello = via.call(
                    _bootstrap.connect_remote, spec, cid, self.log_level, self.pool_size, timeout=transport.start_budget() + 10
                )
            except ConnectError as exc:
                exc.context = "%s via %s" % (name, via.name)
                raise
            ctx = Context(self.router, cid, self.router.name_of(cid))
            if via.context_id in self._local_route and transport.local_link:
                self._local_route.add(cid)
                if isinstance(hello, dict):  # what is sent to it ahead (LOAD_MODULES) may carry code
                    self.responder.accepts_code(cid, hello.get("code"))
        self.hellos[ctx.context_id] = hello
        self.contexts.append(ctx)
        return ctx

    def local(self, python: Optional[str] = None, via: Optional[Context] = None, **kw: Any) -> Context:
        """A new interpreter on the same machine as ``via`` (default: this one)."""
        spec: Dict[str, Any] = {"method": "local", **kw}
        if python or via is None:
            spec["python"] = python or sys.executable
        return self.connect(spec, via)

    def ssh(self, hostname: str, via: Optional[Context] = None, **kw: Any) -> Context:
        """An interpreter reached with ssh (options: see ``_transports.Ssh``)."""
        return self.connect({"method": "ssh", "hostname": hostname, **kw}, via)

    def sudo(self, via: Context, username: str = "root", **kw: Any) -> Context:
        """An interpreter run by ``sudo -u username`` on the machine of ``via``.

        Uses the same Python as ``via`` unless ``python=`` is given.
        """
        spec: Dict[str, Any] = {"method": "sudo", "username": username, **kw}
        hello = self.hellos.get(via.context_id)
        if "python" not in spec and hello:
            spec["python"] = hello["executable"]
        return self.connect(spec, via)

    # -- files -------------------------------------------------------------------------
    def push_file(
        self,
        context: Context,
        local_path: str,
        remote_path: str,
        mode: Optional[int] = None,
        timeout: float = 120.0,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Dict[str, Any]:
        """Stream ``local_path`` to ``remote_path`` in ``context`` (atomic, verified).

        ``mode`` (default: the local file's) is the mode of the file written there.
        Returns ``{"size", "sha256", "mode", "path"}`` as written there. ``timeout``
        bounds each wait of the target for the next chunk and for the end of the
        stream, not the whole transfer. Raises ``CallError`` for what failed there (a
        ``TimeoutError`` there among them; the destination then keeps its old
        content), ``StreamError`` if the context is lost. ``progress(done, total)``:
        called as chunks leave (bytes so far, the file's size).
        """
        path = self.files.register(context.context_id, local_path, progress)
        try:
            return context.call(_files.pull_file, path, remote_path, mode, 0, timeout, timeout=None)  # type: ignore[no-any-return]
        finally:
            self.files.unregister(context.context_id, path)

    def push_file_cached(
        self,
        context: Context,
        hop: Context,
        local_path: str,
        remote_path: str,
        mode: Optional[int] = None,
        limit: int = DEFAULT_HOP_CACHE,
        timeout: float = 120.0,
    ) -> Dict[str, Any]:
        """As ``push_file``, through the file cache of ``hop``, an ancestor of ``context``.

        The file crosses the links above ``hop`` once for every context below it that
        gets it (by SHA-256, while it stays in that cache: ``_hopcache``); ``limit`` is
        the cache's bound in bytes (a larger file is pushed as by ``push_file``, as is
        one the intermediary cannot keep: no room on its disk, say; with a warning).
        """
        st = os.stat(local_path)
        if st.st_size > limit:
            return self.push_file(context, local_path, remote_path, mode, timeout)
        digest = self._sha256(local_path, st)
        path = self.files.register(hop.context_id, local_path)
        try:
            result = self._pull_cached(context, hop, path, digest, st, limit, remote_path, mode, timeout)
        except CallError as exc:
            if not (exc.type_name.endswith(".CacheUnavailable") and exc.context == hop.name):
                raise
            LOG.warning("%s; sending %s to %s directly", exc.remote_message, local_path, context.name)
            return self.push_file(context, local_path, remote_path, mode, timeout)
        finally:
            self.files.unregister(hop.context_id, path)
        return result

    def _pull_cached(
        self,
        context: Context,
        hop: Context,
        path: str,
        digest: str,
        st: os.stat_result,
        limit: int,
        remote_path: str,
        mode: Optional[int],
        timeout: float,
    ) -> Dict[str, Any]:
        return context.call(  # type: ignore[no-any-return]
            _hopcache.pull_cached,
            hop.context_id,
            path,
            digest,
            st.st_size,
            limit,
            remote_path,
            stat.S_IMODE(st.st_mode) if mode is None else mode,
            timeout,
            timeout=None,
        )

    def _sha256(self, path: str, st: os.stat_result) -> str:
        """The SHA-256 of the file at ``path``, computed once while its size and mtime stay."""
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        with self._digest_lock:
            found = self._digests.get(key)
        if found is None:
            digest = hashlib.sha256()
            with open(path, "rb") as fp:
                for chunk in iter(lambda: fp.read(1 << 20), b""):
                    digest.update(chunk)
            found = digest.hexdigest()
            with self._digest_lock:
                self._digests[key] = found
        return found

    def remove_soon(self, context: Context, paths: List[str]) -> None:
        """Have ``paths`` (and what is under them) removed in ``context``; no reply is awaited."""
        context.call_no_reply(_files.apply_ops, [("rm", str(p)) for p in paths])

    def fetch_file(
        self,
        context: Context,
        remote_path: str,
        local_path: str,
        mode: Optional[int] = None,
        timeout: float = 120.0,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Dict[str, Any]:
        """Stream ``remote_path`` from ``context`` to ``local_path`` (atomic, verified).

        ``mode`` (default: the remote file's) is the mode of the file written here.
        ``timeout`` bounds each wait for the next chunk and for the target's reply
        after the last, not the whole transfer. Returns ``{"size", "sha256", "mode",
        "path"}`` as written here. Raises ``CallError`` for what failed there (a
        missing file), ``TransferError`` (``_files``) on a size or checksum
        mismatch, ``StreamError`` if the context is lost, ``TimeoutError``;
        ``local_path`` then keeps its old content. ``progress(done, total)``: called
        as chunks arrive (bytes so far, the remote file's size).
        """
        recv = Receiver(self.router, respondent=context.context_id, persist=True)
        try:
            context.call_into(recv, _files.push_file, remote_path, 0, recv.handle)
            result = _files.receive_stream(self.router, recv, local_path, mode, timeout, progress)
            recv.get(timeout).decode()  # push_file's own return value
            return result
        finally:
            recv.close()

    def fetch_if_changed(
        self,
        context: Context,
        remote_path: str,
        local_path: str,
        unless_sha1: Optional[str] = None,
        timeout: float = 120.0,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Dict[str, Any]:
        """Fetch's one round trip: stat ``remote_path`` in ``context``, and stream it to
        ``local_path`` unless it is missing, a directory, unreadable or its SHA-1 is
        ``unless_sha1`` (``_files.push_if_changed``, whose reply this returns; with
        ``received``: what ``fetch_file`` returns, where it was sent). ``local_path``'s
        missing directories are made only once bytes come. Raises as ``fetch_file``.
        """
        recv = Receiver(self.router, respondent=context.context_id, persist=True)
        try:
            context.call_into(recv, _files.push_if_changed, remote_path, 0, recv.handle, unless_sha1)
            first = recv.get(timeout)
            head = first.decode()  # raises what failed there
            if not (first.reply_to and isinstance(head, dict) and "size" in head):
                return head  # push_if_changed's reply: nothing comes
            os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
            received = _files.receive_stream(self.router, recv, local_path, None, timeout, progress, first=first)
            return dict(recv.get(timeout).decode(), received=received)
        finally:
            recv.close()

    # -- ending ------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Stop every context, the broker thread and the call pool; reap processes."""
        if self._closed:
            return
        self._closed = True
        self.broker.shutdown(timeout / 2)
        self.broker.join(timeout)
        self.router.close()
        _bootstrap.reap_all(timeout / 2, owner=self.router)
