# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mux's contexts: one per stack, started on first use, shared by every stack with its prefix (private).

Owns: ``Contexts``, the part of ``_mux_server.MuxServer`` that starts, finds,
retires (``_recycler``) and forgets contexts. Uses nothing of Ansible's, only the
core (through ``api``).

The stack contract (what a connection sends as ``stack`` and ``login_hops``):

- A stack is a list of hop specs, from the controller outwards; each prefix of it
  is a context of its own, keyed by that prefix (``_mux.stack_key``): the context
  for ``stack[:n]`` is started once and shared by every stack that begins with the
  same ``n`` specs (equal as JSON, keys sorted). A target reached through an
  intermediary (``mitogen_via``) sends the intermediary's own stack followed by
  the target's: all targets behind one intermediary share its interpreter(s), and
  a chain of intermediaries is just a longer prefix.
- ``login_hops`` counts the hops from the first up to the target's login
  interpreter (``stack[login_hops - 1]``): with an intermediary, its hops plus the
  target's own login hops. The hops after it are become interpreters, which count
  against ``max_interpreters`` (grouped by ``stack[:login_hops]``: per target).
  The hop before it, ``stack[login_hops - 2]`` (when ``login_hops`` > 1), is the
  intermediary whose caches serve the target (``_mux_hops``).
- ``reset(stack)`` shuts the contexts of ``stack`` and of every stack beginning
  with it down: a reset of an intermediary's own connection takes the targets
  behind it along (they would lose their route anyway).
"""

from __future__ import annotations

import json
import logging
import resource
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError, Error
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Context, Session
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux_limits
from ansible_collections.ns.mitogen.plugins.plugin_utils._become_service import BecomeService
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux import stack_key
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_hops import MuxHops
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_modules import ModulePush
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_sources import ModuleSources
from ansible_collections.ns.mitogen.plugins.plugin_utils._recycler import DEFAULT_LIMIT, Recycler

LOG = logging.getLogger("ns.mitogen.mux")


class Contexts:
    """Mixed into ``MuxServer``, which sets these attributes up."""

    session: Session
    become: BecomeService
    sources: ModuleSources
    hops: MuxHops
    modules: ModulePush
    _lock: threading.Lock
    _contexts: Dict[str, Context]
    _starting: Dict[str, threading.Event]
    _recycler: Recycler
    _how: Dict[str, Tuple[int, int]]
    _retiring: Dict[int, threading.Event]
    _prepare_soon: Callable[[], None]
    started_for: Dict[str, int]  # contexts started, by their stack's first hop (its host)
    _last_context: Dict[str, int]  # inventory host -> the context its latest call went to

    def connect(
        self,
        stack: List[Dict[str, Any]],
        login_hops: int = 1,
        max_interpreters: int = DEFAULT_LIMIT,
        pool_size: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Return ``{"context_id", "hello"}`` for the last hop of ``stack``.

        ``login_hops``: how many hops, from the first, lead to the target's login
        interpreter (the last of them); the hops before it are intermediaries
        (``mitogen_via``), the last of which caches for the target (``_mux_hops``);
        the interpreters stacked on the login one count against
        ``max_interpreters`` (see ``_recycler``). ``pool_size``: at most that many
        starts at once, here and in each intermediary (the latest value given wins).
        """
        if not stack:
            raise Error("empty connection stack")
        if pool_size:
            self.hops.setups.resize(int(pool_size))
            self.session.pool_size = int(pool_size)
        login_hops = max(1, int(login_hops))
        via: Optional[Context] = None
        hop: Optional[Context] = None
        for depth in range(1, len(stack) + 1):
            group = stack_key(stack[:login_hops]) if depth > login_hops else None
            via = self._get_or_start(stack[:depth], via, group, int(max_interpreters))
            if depth == login_hops - 1:
                hop = via  # the last intermediary before the target's own hops
        if via is None:  # for the type checker: stack is not empty
            raise Error("empty connection stack")
        if hop is not None and via is not hop:
            self.hops.behind(via.context_id, hop.context_id)
        hello = self.session.hellos.get(via.context_id, {})
        login = hello.pop("login_output", None)  # ssh's debug lines: for the first worker that asks
        return {"context_id": via.context_id, "hello": hello if login is None else dict(hello, login_output=login)}

    def _get_or_start(self, stack: List[Dict[str, Any]], via: Optional[Context], group: Optional[str], limit: int) -> Context:
        """The context for ``stack``, started if need be; ``group``: the limit it counts against (None: none)."""
        key = stack_key(stack)
        while True:
            with self._lock:
                ctx = self._contexts.get(key)
                if ctx is not None:
                    return ctx
                event = self._starting.get(key)
                if event is None:
                    event = self._starting[key] = threading.Event()
                    if group is not None:
                        self._recycler.starting(group, 1)
                    break
            event.wait(120)
        try:
            if group is not None:
                self._make_room(group, limit)
            spec = self.become.prepare(stack[-1], via.context_id if via is not None else None)
            with self.hops.setups.slot():
                ctx = self._start(spec, via)
            with self._lock:
                first = str(stack[0].get("hostname") or stack[0].get("method"))
                self.started_for[first] = self.started_for.get(first, 0) + 1
                self._contexts[key] = ctx
                self._recycler.add(ctx.context_id, key, via.context_id if via else None, group)
                self.modules.started(ctx.context_id, via.context_id if via else None, group is not None)
                if group is not None:
                    self._how[key] = (len(json.loads(group)), limit)
            return ctx
        finally:
            with self._lock:
                self._starting.pop(key, None)
                if group is not None:
                    self._recycler.starting(group, -1)
            event.set()

    def _start(self, spec: Dict[str, Any], via: Optional[Context]) -> Context:
        """``session.connect``; an error naming the open-file limit where it cannot cover one more."""
        try:
            if via is None:  # a first hop's pipes are opened here
                _mux_limits.check_room()
            return self.session.connect(spec, via, on_spawn=self._prepare_soon)
        except _mux_limits.OutOfFiles as exc:
            reason = str(exc)
        except Exception as exc:
            if not _mux_limits.is_out_of_files(exc):
                raise
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            reason = _mux_limits.describe(_mux_limits.open_fds(), soft, hard)
        where = str(spec.get("hostname") or spec.get("method"))
        raise ConnectError(where, reason, stage="spawn", hint=_mux_limits.HOW_TO_RAISE)

    def _make_room(self, group: str, limit: int) -> None:
        """Retire the least recently used idle interpreters of ``group`` so that one more fits.

        Each is shut down and waited for (its route gone: its process has closed
        its channel, exiting) before the new one starts, so that the target does
        not run more than the limit. If too few are idle, the limit is exceeded,
        with a warning in the mux's log.
        """
        with self._lock:
            room = self._recycler.make_room(group, limit)
            doomed = []
            for context_id, key in room.victims:
                ctx = self._contexts.pop(key, None)
                if ctx is not None:
                    doomed.append(ctx)
                    self._retiring[context_id] = threading.Event()
        for ctx in doomed:
            LOG.debug("interpreter limit %d: retiring %s, the least recently used", limit, ctx.name)
            ctx.shutdown()
        for ctx in doomed:
            if not self._retiring[ctx.context_id].wait(30):
                LOG.warning("%s was asked to exit as the interpreter limit was reached, and has not yet", ctx.name)
            with self._lock:
                self._retiring.pop(ctx.context_id, None)
        if room.over:
            LOG.warning(
                "interpreter limit %d exceeded by %d: every interpreter of that target has a call in flight", limit, room.over
            )

    def _forget(self, lost: Any, reason: str) -> None:
        with self._lock:
            for key, ctx in list(self._contexts.items()):
                if ctx.context_id in lost:
                    del self._contexts[key]
            self.sources.forget(lost)
            self.hops.forget(lost)
            self.modules.forget(list(lost))
            for host, context_id in list(self._last_context.items()):
                if context_id in lost:
                    del self._last_context[host]
            for context_id in lost:
                self.session.hellos.pop(context_id, None)
                event = self._retiring.get(context_id)
                if event is not None:
                    event.set()
            self._recycler.lost(lost)
            self.session.contexts[:] = [c for c in self.session.contexts if c.context_id not in lost]

    def reset(self, stack: List[Dict[str, Any]]) -> int:
        """Shut down a host's contexts (its login, ``stack``, and the become ones on it), but not one
        another host's stack goes through (mitogen_via: a bastion's reset spares the hosts behind)."""
        prefix = stack_key(stack)[:-1]
        with self._lock:
            under = [k for k in [*self._contexts, *self._starting] if k.startswith(prefix)]
            own = [k for k in under if k in self._contexts and (k == prefix + "]" or self._how.get(k, (0, 0))[0] == len(stack))]
            others = set(under) - set(own)
            doomed = [(k, self._contexts[k]) for k in own if not any(o.startswith(k[:-1]) for o in others)]
            for key, _ctx in doomed:
                del self._contexts[key]
        for _key, ctx in sorted(doomed, key=lambda kc: -len(kc[0])):
            ctx.shutdown()
        return len(doomed)
