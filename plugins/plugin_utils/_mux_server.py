# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The multiplexer's process: serving workers, and starting it (private; see ``_mux``).

Owns: ``MuxServer`` (the requests ``_mux`` lists, served from the broker thread and
the pool), ``main()`` (the process's entry point) and ``start()``, which binds the
socket and forks the mux from the calling process (``_mux_fork``); relaying a call
to its context with its module's source is ``_mux_relay``'s, the interpreter
limit's bookkeeping ``_recycler``'s, the module sources' ``_mux_sources``',
starting and finding contexts (and the stack contract) ``_mux_contexts``', what
intermediaries cache ``_mux_hops``', what is kept across runs ``_file_cache``'.
Uses nothing of Ansible's, only the core (through ``api``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError, Error
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import (
    DEFAULT_HOP_CACHE,
    FLAG_ERROR,
    Context,
    Message,
    Session,
    Stream,
    check_size,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils import _debug, _mux_fork, _mux_limits, _muxfiles
from ansible_collections.ns.mitogen.plugins.plugin_utils._become_service import BecomeService
from ansible_collections.ns.mitogen.plugins.plugin_utils._file_cache import FileCache
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux import (
    FIRST_RUN_MODULES,
    MODULE_TREES,
    RUNNER,
    RUNNER_COMPANIONS,
    socket_path,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_hops import MuxHops
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_modules import ModulePush
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_relay import Relay, wire_error
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_sources import ModuleSources
from ansible_collections.ns.mitogen.plugins.plugin_utils._progress import Throttle
from ansible_collections.ns.mitogen.plugins.plugin_utils._recycler import Recycler

LOG = logging.getLogger("ns.mitogen.mux")


class MuxServer(Relay):
    """Serves workers on ``path`` until ``watch_pid`` exits."""

    def __init__(self, path: str, watch_pid: int, listen_fd: int, packages: Optional[Dict[str, bytes]] = None) -> None:
        self.path = path
        self.watch_pid = watch_pid
        # Targets may import Ansible's module_utils and every collection's module_utils
        # (never other controller code): the in-process module runner needs them.
        # With debug logs on, targets forward every record (named after the target).
        level = logging.DEBUG if _debug.enabled() else logging.WARNING
        # What is derived from the core's and module_utils' files is kept across runs (_file_cache).
        self.file_cache = FileCache.open()
        self.session = Session(allow_imports=MODULE_TREES, connect_timeout=60.0, log_level=level, cache=self.file_cache)
        self.router = self.session.router
        self.router.pool.size = 256
        self._contexts: Dict[str, Context] = {}
        self.started_for: Dict[str, int] = {}
        self.ahead_requests = 0  # send_ahead requests received (NS_MITOGEN_MUX_RUSAGE)
        self._starting: Dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._prepared = False
        self.sources = ModuleSources()  # module sources, and which context was sent which
        self.hops = MuxHops(self.sources)  # contexts behind intermediaries, and their caches
        self.modules = ModulePush(self.session, RUNNER, self.hops.root)  # module_utils sent ahead of first runs; requests counted
        self._last_context: Dict[str, int] = {}  # inventory host -> the context its latest call went to
        self.session.services.register(self.hops.root)
        # Interpreter recycling (see _recycler): use of each context, under self._lock.
        self._recycler = Recycler()
        self._how: Dict[str, Tuple[int, int]] = {}  # a recyclable stack's key -> (login_hops, limit)
        self._retiring: Dict[int, threading.Event] = {}  # context_id -> set once its route is gone
        self.router.on_route_lost.append(self._forget)
        # any become plugin: its instances and prompts live here (``_become_service``)
        self.become = BecomeService(self.router.context_id)
        self.session.services.register(self.become)
        self.session.responder.companions[RUNNER] = RUNNER_COMPANIONS
        for name, source in (packages or {}).items():  # ansible/__init__ as AnsiballZ has it
            self.session.responder.provide(name, source)
        self._methods: Dict[str, Callable[..., Any]] = {
            "ping": self.ping,
            "connect": self.connect,
            "push_file": self.push_file,
            "fetch_file": self.fetch_file,
            "fetch_if_changed": self.fetch_if_changed,
            "remove_soon": self.remove_soon,
            "reset": self.reset,
            "stats": self.stats,
        }
        # Last: the broker thread serves requests as soon as it accepts.
        self._sock = socket.socket(fileno=listen_fd)  # bound and listening: see start()
        self._sock.setblocking(False)
        self.router.broker.defer(self.router.broker.add_reader, self._sock.fileno(), self._on_accept)

    def __repr__(self) -> str:
        return "MuxServer(%s, contexts=%d)" % (self.path, len(self._contexts))

    # -- clients ----------------------------------------------------------------------
    def _on_accept(self) -> None:
        try:
            conn, _unused = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            LOG.warning("refused a mux client with uid %d", uid)
            conn.close()
            return
        fd = conn.detach()
        stream = Stream(
            self.router.broker,
            fd,
            fd,
            "worker",
            on_message=self._on_request,
            on_disconnect=lambda s, reason: None,
            max_message=self.router.max_message,
        )
        stream.start()

    def _reply(self, stream: Stream, req: Message, value: Any, flags: int = 0) -> None:
        try:
            reply = Message.encoded(value, handle=req.reply_to, flags=flags)
            check_size(reply, self.router.max_message)
        except Exception as exc:  # a worker must get an answer, never wait forever
            reply = Message.encoded(CallError.from_exception(exc, "mux"), handle=req.reply_to, flags=FLAG_ERROR)
        self.router.broker.defer(stream.send, reply)

    def _on_request(self, stream: Stream, msg: Message) -> None:
        """Broker thread: ``call`` is relayed at once; the rest run on the pool."""
        try:
            method, kwargs = msg.decode()
        except Exception as exc:
            self._reply(stream, msg, CallError.from_exception(exc, "mux"), FLAG_ERROR)
            return
        if method == "send_ahead":  # one way: no reply
            self.ahead_requests += 1
            get = kwargs.get if isinstance(kwargs, dict) else (lambda _key: None)
            self._send_ahead(get("host"), get("source_id"), get("source_path"), get("module_name"))
            return
        if method == "call":
            context_id, key = self._claim(kwargs.get("context_id"), kwargs.get("key"))
            if context_id is None:
                self.router.pool.submit_fn(lambda m: self._connect_and_relay(stream, m, kwargs, key), msg)
                return
            self._relay_call(stream, msg, context_id, kwargs)
            return
        self.router.pool.submit_fn(lambda m: self._run(stream, m, method, kwargs), msg)

    def _run(self, stream: Stream, msg: Message, method: str, kwargs: Dict[str, Any]) -> None:
        try:
            fn = self._methods[method]
            if kwargs.get("progress_handle") is not None:  # a put or fetch reporting as it goes
                kwargs = dict(kwargs)
                handle, every = int(kwargs.pop("progress_handle")), float(kwargs.pop("progress_interval", 5.0))
                kwargs["progress"] = Throttle(lambda report: self._notify(stream, handle, report), every)
            value, flags = fn(**kwargs), 0
        except Exception as exc:
            value, flags = wire_error(exc), FLAG_ERROR
        self._reply(stream, msg, value, flags)

    def _notify(self, stream: Stream, handle: int, report: Dict[str, Any]) -> None:
        """A message to a worker that is waiting for a reply: its progress so far."""
        self.router.broker.defer(stream.send, Message.encoded(report, handle=handle))

    # -- methods ----------------------------------------------------------------------
    def ping(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "contexts": len(self._contexts), "prepared": self._prepared}

    def push_file(
        self,
        context_id: int,
        local_path: str,
        remote_path: str,
        mode: Optional[int] = None,
        cache_size: Optional[int] = None,
        progress: Optional[Throttle] = None,
    ) -> Dict[str, Any]:
        """Stream a file to a context; through its intermediary's cache if it has one.

        ``cache_size``: the bound of that cache in bytes (0: not through it; None:
        ``api.DEFAULT_HOP_CACHE``). ``progress``: told as chunks leave (not through a
        cache: a file that fits one is small).
        """
        context_id = self._claim_or_start(context_id)
        try:
            ctx = self.router.context(context_id)
            hop = self.hops.hop_of(context_id)
            limit = DEFAULT_HOP_CACHE if cache_size is None else int(cache_size)
            if hop is not None and limit > 0:
                self.hops.cached_pushes += 1
                return self.session.push_file_cached(ctx, self.router.context(hop), local_path, remote_path, mode, limit)
            return self.session.push_file(ctx, local_path, remote_path, mode, progress=progress)
        finally:
            self._release(context_id)

    def fetch_file(
        self, context_id: int, remote_path: str, local_path: str, progress: Optional[Throttle] = None
    ) -> Dict[str, Any]:
        context_id = self._claim_or_start(context_id)
        try:
            return self.session.fetch_file(self.router.context(context_id), remote_path, local_path, progress=progress)
        finally:
            self._release(context_id)

    def fetch_if_changed(
        self,
        context_id: int,
        remote_path: str,
        local_path: str,
        unless_sha1: Optional[str] = None,
        progress: Optional[Throttle] = None,
    ) -> Dict[str, Any]:
        """Fetch's one round trip (``Session.fetch_if_changed``): the remote file's stat, and its bytes if they differ."""
        context_id = self._claim_or_start(context_id)
        try:
            ctx = self.router.context(context_id)
            return self.session.fetch_if_changed(ctx, remote_path, local_path, unless_sha1, progress=progress)
        finally:
            self._release(context_id)

    def remove_soon(self, context_id: int, paths: List[str]) -> None:
        """Have ``paths`` removed in a context (a task's temporary directory); no reply is awaited from it."""
        self.session.remove_soon(self.router.context(context_id), paths)

    def stats(self) -> Dict[str, Any]:
        """Counters for tests: what crossed the links to the first hops (``MuxHops.stats``), what went
        ahead, and the derived-files cache's hits, misses and writes (None: no cache)."""
        cache = self.file_cache
        kept = {"hits": cache.hits, "misses": cache.misses, "writes": cache.writes} if cache is not None else None
        return dict(self.hops.stats(self.session, self.sources), modules_ahead=dict(self.modules.pushed), file_cache=kept)

    # -- life -------------------------------------------------------------------------
    def _prepare_soon(self) -> None:
        """Called as the first child program starts: ``prepare()`` while it logs in.

        Not earlier: a CPU-bound thread holds the GIL for 5 ms at a time, and the
        thread spawning ssh (a dozen system calls, each giving the GIL up) waited
        ~30 ms for it when this ran from the mux's start.
        """
        with self._lock:
            if self._prepared:
                return
            self._prepared = True
        threading.Thread(target=self.prepare, name="ns.mitogen.prepare", daemon=True).start()

    def prepare(self) -> None:
        """What the first module run needs, made while the first ssh logs in.

        The first module run's module_utils (~0.1 s to locate and scan; the boot
        payload, ~60 ms, is built by the connecting thread itself meanwhile). Also
        made on demand: this only moves the work off the first task's path.
        """
        try:
            count = self.session.responder.warm(FIRST_RUN_MODULES)
            LOG.debug("prepared %d module_utils", count)
        except Exception as exc:  # an optimisation: the same work happens on demand
            LOG.warning("could not prepare ahead of the first module run: %s", exc)

    def serve(self) -> None:
        while _muxfiles.alive(self.watch_pid) and self.router.broker.alive:
            time.sleep(0.5)
        self.close()

    def close(self) -> None:
        with _muxfiles.locked(self.path, create=False) as lock:
            if lock is not None:
                _muxfiles.remove_run_files(self.path, lock)
        self.session.close()
        self._sock.close()
        setups = self.hops.setups
        _write_rusage(
            os.environ.get("NS_MITOGEN_MUX_RUSAGE", ""),
            pool_size=setups.size,
            peak_starts=setups.peak,
            started_for=self.started_for,
            ahead_requests=self.ahead_requests,
        )


def _write_rusage(path: str, **extra: Any) -> None:
    """Benchmarks: record the CPU the mux and its children (ssh, sudo) used (``cpu_s``), the
    mux's own (``self_cpu_s``); ``extra`` too."""
    if not path:
        return
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(path, "a") as fp:
        own = me.ru_utime + me.ru_stime
        cpu_s = own + kids.ru_utime + kids.ru_stime
        fp.write(json.dumps({"pid": os.getpid(), "cpu_s": cpu_s, "self_cpu_s": own, **extra}) + "\n")


def main(
    path: str, watch_pid: int, listen_fd: int, paths: Optional[List[str]] = None, packages: Optional[Dict[str, bytes]] = None
) -> None:
    """Entry point of the mux process; ``paths`` are collection roots to import from.

    ``listen_fd`` is the socket at ``path``, already listening (see ``start()``);
    ``packages``: package name -> the source targets get for it (``Responder.provide``).
    """
    for extra in paths or ():
        if extra not in sys.path:
            sys.path.append(extra)
    _debug.start("mux")
    before, after = _mux_limits.raise_nofile()
    LOG.debug("open-file limit (RLIMIT_NOFILE): %d, raised from %d", after, before)
    MuxServer(path, watch_pid, listen_fd, packages).serve()


def start(
    playbook_pid: int, paths: Optional[List[str]] = None, packages: Optional[Dict[str, bytes]] = None, index: int = 0
) -> str:
    """Make sure a mux serves ``playbook_pid``; its socket path. Does not wait for it.

    The socket is bound and listening before the mux process exists, and handed to
    it: clients connect at once, and their requests wait in the socket until the mux
    has started (~0.1 s of imports), instead of the caller polling for it. If the
    mux dies, waiting clients get a ``StreamError`` that says so (with its pid and
    log: ``_muxfiles.diagnose_loss``); what it left (socket, lock) is removed by
    such a client, by the next start for this run, or by any later start.
    """
    path = socket_path(playbook_pid, fresh=True, index=index)
    with _muxfiles.locked(path) as lock:
        if lock is None:  # only when told not to wait
            raise Error("cannot lock %s.lock" % path)
        if _muxfiles.listening(path):
            return path
        _muxfiles.remove_stale(os.path.dirname(path), keep=playbook_pid)  # what killed muxes left
        _muxfiles.record_pid(lock, None)  # not a dead mux's: a client may connect before it is known
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(128)
            _muxfiles.record_pid(lock, _spawn(path, playbook_pid, sock.fileno(), paths or [], packages))
        finally:
            sock.close()
    return path


def _spawn(path: str, playbook_pid: int, listen_fd: int, paths: List[str], packages: Optional[Dict[str, bytes]]) -> int:
    """Fork the mux from this process, which goes on at once (``_mux_fork``); the mux's pid."""
    return _mux_fork.fork_detached(listen_fd, lambda: main(path, playbook_pid, listen_fd, paths, packages))
