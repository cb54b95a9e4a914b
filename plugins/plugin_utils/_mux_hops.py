# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mux's side of intermediaries: which target is behind which, and what they cache (private).

Owns: ``MuxHops``: for each context started behind an intermediary (a stack whose
target's login hop is not the first: ``login_hops`` > 1), the intermediary whose
cache serves it (the context of ``stack[:login_hops - 1]``, the last hop before
the target's own); the root of the module-source caches (``RootSources``, the
service a first hop asks when it lacks a source: the core's ``_hopcache``); and
the counters the tests read (``stats``); and ``SetupSlots``, the bound on starts
at once (the connections' ``pool_size``, ``MITOGEN_POOL_SIZE``). Used by
``_mux_server`` only; uses nothing of Ansible's, only the core (through ``api``).

Module sources: a run on a context behind an intermediary never carries its
source. It is sent with ``fetch_source`` instead: the target asks its parent,
which answers from its cache or asks its own parent, up to this mux. The first
time an intermediary's target runs a module, the mux hands the intermediary the
source ahead of the call (``CACHE_SOURCE``, on the same stream, so it is kept
there before the call passes): the target's ask stops there. So each source
crosses the link to the first hop once per run (while it stays in that hop's
cache: ``_sources.MAX_SOURCES``), whatever the number of targets behind it.
Files: ``push_file`` to such a context goes through the intermediary's file cache
(``api.Session.push_file_cached``), bounded by the connection's
``hop_cache_size``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Dict, Iterable, Iterator, Optional

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import (
    CHILDREN,
    DEFAULT_POOL_SIZE,
    HOPCACHE_SERVICE,
    Service,
    expose,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_sources import ModuleSources


class RootSources(Service):
    """Answers a first hop's ask for a module source the mux has read (by sha1)."""

    name = HOPCACHE_SERVICE

    def __init__(self, sources: ModuleSources) -> None:
        self.sources = sources
        self._lock = threading.Lock()
        self.served: Dict[int, Dict[str, int]] = {}  # asking context -> source_id -> times sent
        self.served_total: Dict[int, int] = {}  # asking context -> sources sent (read from any thread)

    @expose(CHILDREN, source_id=str)
    def source(self, caller: int, source_id: str) -> Optional[bytes]:
        found = self.sources.get(source_id)
        if found is not None:
            with self._lock:
                counts = self.served.setdefault(caller, {})
                counts[source_id] = counts.get(source_id, 0) + 1
                self.served_total[caller] = self.served_total.get(caller, 0) + 1
        return found


class SetupSlots:
    """At most ``size`` interpreter starts at once; the others wait for a slot.

    Every start holds a slot while it runs (a direct one here, or one an
    intermediary runs for us: ``connect_remote``), never while it waits for
    another start (a stack's earlier hops), so waiting cannot deadlock.
    """

    def __init__(self, size: int = DEFAULT_POOL_SIZE) -> None:
        self.size = size
        self.busy = 0
        self.peak = 0  # most starts at once, for tests
        self._cond = threading.Condition()

    def resize(self, size: int) -> None:
        with self._cond:
            self.size = max(1, int(size))
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            while self.busy >= self.size:
                self._cond.wait()
            self.busy += 1
            self.peak = max(self.peak, self.busy)
        try:
            yield
        finally:
            with self._cond:
                self.busy -= 1
                self._cond.notify()


class MuxHops:
    """Which context is behind which intermediary, and the root of their caches."""

    def __init__(self, sources: ModuleSources) -> None:
        self.root = RootSources(sources)
        self._lock = threading.Lock()
        self._hop_of: Dict[int, int] = {}  # context id -> the intermediary that caches for it
        self.cached_pushes = 0
        self.setups = SetupSlots()

    def __repr__(self) -> str:
        return "MuxHops(%d contexts behind intermediaries)" % len(self._hop_of)

    def behind(self, context_id: int, hop_id: int) -> None:
        with self._lock:
            self._hop_of[context_id] = hop_id

    def hop_of(self, context_id: int) -> Optional[int]:
        """The intermediary that caches for ``context_id``, or None (no intermediary)."""
        with self._lock:
            return self._hop_of.get(context_id)

    def forget(self, lost: Iterable[int]) -> None:
        lost = set(lost)
        with self._lock:
            for context_id, hop_id in list(self._hop_of.items()):
                if context_id in lost or hop_id in lost:
                    del self._hop_of[context_id]

    def stats(self, session: Any, sources: ModuleSources) -> Dict[str, Any]:
        """Counters: bytes sent on each stream to a direct child, and what crossed it."""
        router = session.router
        links = {}
        for stream in list(router.broker.streams):
            if stream.remote_id > 0 and router.route_for(stream.remote_id) is stream:
                links[stream.remote_id] = stream.bytes_out
        with self.root._lock:
            served = {cid: dict(counts) for cid, counts in self.root.served.items()}
        return {
            "bytes_out": links,
            "sources_served": served,
            "sources_given": {cid: dict(counts) for cid, counts in sources.given.items()},
            "sources_ahead": dict(sources.ahead),
            "modules_sent": {cid: dict(mods) for cid, mods in session.responder.sent.items()},
            "cached_pushes": self.cached_pushes,
            "pool_size": self.setups.size,
            "peak_starts": self.setups.peak,
        }
