# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mux's module sources: which context was sent which, and attaching them (private).

Owns: ``ModuleSources`` (the sources the mux read, by sha1, and per context the ones
it was sent). Used by ``_mux_server`` only, from its broker thread and pool; uses
nothing of Ansible's.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Dict, Iterable, Optional, Set


class ModuleSources:
    """Module sources by sha1 (``source_id``), and what each context was sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: Dict[str, bytes] = {}  # source_id -> a module's source, read for attach()
        self._delivered: Dict[int, Set[str]] = {}  # context_id -> source_ids it was sent
        self.given: Dict[int, Dict[str, int]] = {}  # intermediary -> source_id -> times given (tests)
        self.ahead: Dict[int, int] = {}  # context -> sources sent ahead of the run needing them (tests)

    def __repr__(self) -> str:
        return "ModuleSources(%d sources, %d contexts)" % (len(self._sources), len(self._delivered))

    def get(self, source_id: str) -> Optional[bytes]:
        """The source read for ``source_id``, if any."""
        with self._lock:
            return self._sources.get(source_id)

    def read(self, source_id: Any, path: Any) -> Optional[bytes]:
        """The source ``source_id``: from memory, else read from ``path`` if its sha1 matches.

        The one read per module and run is of a local file the worker has just read
        (so in the page cache): a blocking call kept that short (the broker thread's).
        A file that changed since the worker read it is not used (its sha1 differs).
        """
        if not isinstance(source_id, str):
            return None
        source = self.get(source_id)
        if source is not None or not isinstance(path, str):
            return source
        try:
            with open(path, "rb") as fp:
                data = fp.read()
        except OSError:
            return None
        if hashlib.sha1(data).hexdigest() != source_id:
            return None
        with self._lock:
            return self._sources.setdefault(source_id, data)

    def attach(self, context_id: int, source_id: Any, path: Any) -> Optional[bytes]:
        """A module's source for the first run of it ``context_id`` gets, else None.

        The worker sends the module's sha1 and path, not its bytes (``path`` None:
        the request carries the source itself); without this the target's first run
        of each module answers ``need_source`` and the worker sends again: a round
        trip per module and target (20 ms at 20 ms RTT). A source that cannot be read
        as the worker had it is not attached: the target then asks, as it does after
        evicting a source, and the worker sends its own copy.
        """
        if not isinstance(source_id, str):
            return None
        with self._lock:
            delivered = self._delivered.setdefault(context_id, set())
            if path is None:
                delivered.add(source_id)
                return None
            if source_id in delivered:
                return None
        source = self.read(source_id, path)
        if source is not None:
            with self._lock:
                delivered.add(source_id)
        return source

    def give(self, hop_id: int, source_id: Any, path: Any) -> Optional[bytes]:
        """The source to hand the intermediary ``hop_id`` ahead of a run, the first time only.

        ``path`` None: the run carries the source itself, nothing to give.
        """
        if not isinstance(source_id, str) or not isinstance(path, str):
            return None
        with self._lock:
            if source_id in self._delivered.setdefault(hop_id, set()):
                return None
        source = self.read(source_id, path)
        if source is not None:
            with self._lock:
                self._delivered[hop_id].add(source_id)
                counts = self.given.setdefault(hop_id, {})
                counts[source_id] = counts.get(source_id, 0) + 1
        return source

    def has(self, context_id: int, source_id: Any) -> bool:
        """Whether ``context_id`` was sent the source ``source_id``."""
        with self._lock:
            return source_id in self._delivered.get(context_id, ())

    def mark(self, context_id: int, source_id: Any) -> None:
        """``context_id`` holds ``source_id`` now (it fetched it from its parent on the host)."""
        if isinstance(source_id, str):
            with self._lock:
                self._delivered.setdefault(context_id, set()).add(source_id)

    def send_ahead(self, context_id: int, source_id: Any, path: Any) -> Optional[bytes]:
        """The source to send ``context_id`` ahead of a run of it, the first time only (as ``attach``)."""
        source = self.attach(context_id, source_id, path) if isinstance(path, str) else None
        if source is not None:
            with self._lock:
                self.ahead[context_id] = self.ahead.get(context_id, 0) + 1
        return source

    def forget(self, context_ids: Iterable[int]) -> None:
        """Contexts that are gone: a new one with the same stack gets sources again."""
        with self._lock:
            for context_id in context_ids:
                self._delivered.pop(context_id, None)
