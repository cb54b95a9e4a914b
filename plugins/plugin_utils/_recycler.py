# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which interpreters the multiplexer may retire, and which it must keep (private).

Owns: the bookkeeping behind the per-target interpreter limit (the original product's
"Interpreter Recycling", ``MITOGEN_MAX_INTERPRETERS``). A *group* is the interpreters
stacked on one login interpreter (the connection's own hops: ``[ssh]``, ``[local]``,
``[local, sudo]`` for ``ns.mitogen.sudo``): the become interpreters of one target.
The login interpreter itself is not counted and never retired.

When a group is full and one more must start, the least recently used *idle*
members are retired: no call is in flight there (``claim``/``release`` count them,
and stamp the time of use) and no interpreter is stacked on it. A busy member is
never retired; if every member is busy the limit is exceeded (the caller warns),
rather than waiting: a task waiting for another host's task could wait forever.

A retired interpreter's id stays known (``retired_key``): a worker that still holds
it is served by the interpreter its stack has now (started again if need be).

Not thread-safe: the multiplexer calls it under its own lock. Uses nothing but the
standard library.
"""

from __future__ import annotations

import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

DEFAULT_LIMIT = 20


class _Entry:
    __slots__ = ("busy", "group", "key", "last_used", "parent")

    def __init__(self, key: str, parent: Optional[int], group: Optional[str]) -> None:
        self.key = key
        self.parent = parent
        self.group = group
        self.busy = 0
        self.last_used = time.monotonic()


class Room(NamedTuple):
    """What ``make_room`` decided: the interpreters to retire, and how many over the limit it stays."""

    victims: List[Tuple[int, str]]  # context id, stack key
    over: int


class Recycler:
    """Live interpreters by context id, their use, and the ids retired so far."""

    def __init__(self) -> None:
        self._live: Dict[int, _Entry] = {}
        self._retired: Dict[int, str] = {}  # context id -> its stack's key
        self._pending: Dict[str, int] = {}  # group -> members being started

    def __len__(self) -> int:
        return len(self._live)

    def add(self, context_id: int, key: str, parent: Optional[int], group: Optional[str]) -> None:
        """A context started: ``group`` None for one that is never retired (a login)."""
        self._live[context_id] = _Entry(key, parent, group)

    def claim(self, context_id: int) -> bool:
        """Mark a call in flight there; False if it is not live (retired or lost)."""
        entry = self._live.get(context_id)
        if entry is None:
            return False
        entry.busy += 1
        entry.last_used = time.monotonic()
        return True

    def release(self, context_id: int) -> None:
        entry = self._live.get(context_id)
        if entry is not None:
            entry.busy = max(0, entry.busy - 1)
            entry.last_used = time.monotonic()

    def retired_key(self, context_id: int) -> Optional[str]:
        """The stack key of a context this retired (its workers may still name it)."""
        return self._retired.get(context_id)

    def starting(self, group: str, delta: int) -> None:
        """Count a member of ``group`` being started (+1), or done starting (-1)."""
        count = self._pending.get(group, 0) + delta
        if count > 0:
            self._pending[group] = count
        else:
            self._pending.pop(group, None)

    def members(self, group: str) -> List[int]:
        return [cid for cid, e in self._live.items() if e.group == group]

    def make_room(self, group: str, limit: int) -> Room:
        """Retire enough idle members of ``group`` that one more fits in ``limit``.

        Called before starting a member (already counted by ``starting``). The
        victims are forgotten here at once (no call can claim them any more); the
        caller shuts them down. Least recently used first.
        """
        members = self.members(group)
        excess = len(members) + self._pending.get(group, 0) - max(1, limit)
        if excess <= 0:
            return Room([], 0)
        parents = {e.parent for e in self._live.values()}
        idle = [cid for cid in members if self._live[cid].busy == 0 and cid not in parents]
        idle.sort(key=lambda cid: self._live[cid].last_used)
        victims = []
        for cid in idle[:excess]:
            entry = self._live.pop(cid)
            self._retired[cid] = entry.key
            victims.append((cid, entry.key))
        return Room(victims, excess - len(victims))

    def lost(self, context_ids: Iterable[int]) -> None:
        """Contexts whose route is gone (exited, retired, or died)."""
        for cid in context_ids:
            self._live.pop(cid, None)
