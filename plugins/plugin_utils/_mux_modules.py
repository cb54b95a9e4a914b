# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mux's module_utils sent ahead of runs, and the target's requests counted (private).

Owns: ``ModulePush``. A target interpreter imports the module_utils a module needs
through its importer, which asks its parent for each tree it lacks (``GET_MODULE``):
one round trip across the link per tree, on the path of the module's first run in
that interpreter. Instead, the run that carries a module's source to an
interpreter for the first time is preceded, on the same route, by one bundle
(``LOAD_MODULES``) of the module's module_utils closure (what it imports, the
runner and its companions), minus what that interpreter was sent, and minus what
its parents on the same host were sent (a become interpreter asks its login
interpreter, which answers it there, without crossing the link). The closure is
the importer's own (``Responder.bundle_for``), scanned once per module source.

Become interpreters: ``host_parents`` names a context's parents on its own host
(the login interpreter it was started from); the mux lets a become interpreter
fetch a module source its login interpreter holds from there (``fetch_source``:
the login one's ``_hopcache`` answers it on the host) instead of sending it again,
and sends the next task's module ahead to the login interpreter (``login_of``),
which so serves whichever user the next task becomes.

Counting: every ``GET_MODULE`` the mux answers, and every module source its
``RootSources`` serves, is counted per asking context (``Responder.asked``,
``RootSources.served_total``); ``asked_on_route`` sums those of a context and the
contexts before it in its stack (where its requests reach the mux from), which
the mux reports to the worker with the reply of each call (``_roundtrips``).

Used by ``_mux_server`` and ``_mux_contexts`` only, from the broker thread (runs)
and the pool (contexts started); uses nothing of Ansible's, only the core.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Optional

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import (
    LOAD_MODULES,
    Message,
    Session,
    imported_names,
)

LOG = logging.getLogger("ns.mitogen.mux")


class ModulePush:
    """Sends a module's module_utils ahead of its first run in an interpreter."""

    def __init__(self, session: Session, runner: str, root: Any) -> None:
        self.session = session
        self.runner = runner  # the target's module runner: its companions go the first time
        self.root = root  # the mux's RootSources: the sources it served, per asking context
        self._lock = threading.Lock()
        self._parent: Dict[int, Optional[int]] = {}  # context -> the context it was started from
        self._same_host: Dict[int, bool] = {}  # context -> its parent is on the same host (become)
        self._imports: Dict[str, List[str]] = {}  # source_id -> allowed names the module imports
        self.pushed: Dict[int, int] = {}  # context -> modules sent to it ahead (tests)

    def __repr__(self) -> str:
        return "ModulePush(%d contexts)" % len(self._parent)

    def started(self, context_id: int, parent_id: Optional[int], same_host: bool) -> None:
        with self._lock:
            self._parent[context_id] = parent_id
            self._same_host[context_id] = same_host

    def forget(self, lost: List[int]) -> None:
        with self._lock:
            for context_id in lost:
                self._parent.pop(context_id, None)
                self._same_host.pop(context_id, None)

    def _route(self, context_id: int) -> List[int]:
        """``context_id`` and the contexts before it in its stack."""
        route = []
        current: Optional[int] = context_id
        with self._lock:
            while current is not None and current not in route:
                route.append(current)
                current = self._parent.get(current)
        return route

    def asked_on_route(self, context_id: int) -> int:
        """GET_MODULE requests that reached the mux from ``context_id``'s route so far."""
        asked = self.session.responder.asked
        served = self.root.served_total
        return sum(asked.get(cid, 0) + served.get(cid, 0) for cid in self._route(context_id))

    def login_of(self, context_id: int) -> int:
        """The login interpreter of ``context_id``'s host (itself, unless it is a become one)."""
        parents = self.host_parents(context_id)
        return parents[-1] if parents else context_id

    def host_parents(self, context_id: int) -> List[int]:
        """The parents of ``context_id`` on its own host (the login interpreter of a become one)."""
        found = []
        current = context_id
        with self._lock:
            while self._same_host.get(current):
                parent = self._parent.get(current)
                if parent is None or parent in found:
                    break
                found.append(parent)
                current = parent
        return found

    def imports(self, source_id: str, module_name: str, source: bytes) -> List[str]:
        """The allowed names module ``module_name`` (``source``) imports; scanned once per source."""
        found = self._imports.get(source_id)
        if found is None:
            responder = self.session.responder
            names = imported_names(module_name, False, source)
            found = self._imports[source_id] = sorted(responder.policy.related(module_name, names))
        return found

    def push(self, context_id: int, source_id: str, module_name: str, source: bytes) -> int:
        """Broker thread: send ``context_id`` what module ``module_name`` will import; how many modules.

        Sent ahead of the run on the same route: cached there before the run starts.
        A failure here is not the run's: the target then asks, as it would have.
        """
        try:
            responder = self.session.responder
            also: List[str] = []
            for parent in self.host_parents(context_id):
                also.extend(responder.sent.get(parent, ()))
                also.extend(responder.booted.get(parent, ()))
            names = [self.runner] + self.imports(source_id, module_name, source)
            bundle = responder.bundle_for(context_id, names, also_has=also)
        except Exception as exc:
            LOG.warning("could not prepare the module_utils of %s: %s", module_name, exc)
            return 0
        if bundle:
            router = self.session.router
            router.send(Message.encoded(responder.pack(bundle), dst_id=context_id, handle=LOAD_MODULES))
            self.pushed[context_id] = self.pushed.get(context_id, 0) + len(bundle)
        return len(bundle)
