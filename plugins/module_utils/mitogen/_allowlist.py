# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which modules may cross a hop: the importer's decisions, without I/O (private).

Owns: ``ImportPolicy``, the allow-list of one context (``prefixes``: module trees,
``*`` matching any one name segment) and every decision ``_importer`` takes on it.
``_importer.Importer`` and ``Responder`` do the I/O (reading files, asking the
parent, answering children); nothing here reads, sends or logs, so each rule is
tested in memory (tests/unit/test_trust.py).

Rules decided here:
- A context asks its parent only for names on the allow-list (``should_fetch``);
  anything else is imported from its own ``sys.path``, as without ns.mitogen.
- A child's ``GET_MODULE`` names a module (a ``str``, else a protocol error); one
  off the allow-list is refused (answered as absent, and counted), never read.
- An ancestor package of an allowed tree is served empty, never its source,
  unless its text was provided (``source_of``).
- Related modules and companions go with a module only if they are allowed.
- The allow-list changes only by an ``IMPORT_POLICY`` message (admitted from the
  parent alone, by its handle's policy) holding a list of ``str`` (``update``).
"""

from __future__ import annotations

from typing import Any, Container, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ._errors import PeerProtocolError

#: ``ImportPolicy.request`` answers.
REFUSE = "refuse"  # not on the allow-list: answer "absent"
FETCH = "fetch"  # allowed, and this intermediary lacks it: ask the parent first
SERVE = "serve"  # allowed: answer with the module and what goes with it

#: ``ImportPolicy.source_of`` answers.
PROVIDED = "provided"  # the text given for that package
EMPTY = "empty"  # an ancestor package of an allowed tree: an empty package
FILE = "file"  # the controller's own file


def _segments_match(name: List[str], prefix: List[str]) -> bool:
    return all(p == "*" or p == n for n, p in zip(name, prefix))


def is_allowed(name: str, prefixes: Sequence[str]) -> bool:
    """True if ``name`` is in, or is an ancestor package of, an allowed tree.

    A prefix segment ``*`` matches any one name segment, so
    ``ansible_collections.*.*.plugins.module_utils`` allows every collection's
    module_utils and nothing else of those collections.
    """
    parts = name.split(".")
    return any(_segments_match(parts, prefix.split(".")) for prefix in prefixes)


def in_tree(name: str, prefixes: Sequence[str]) -> bool:
    """True if ``name`` is inside an allowed tree (not merely an ancestor of one)."""
    parts = name.split(".")
    return any(len(parts) >= len(p) and _segments_match(parts, p) for p in (prefix.split(".") for prefix in prefixes))


class ImportPolicy:
    """The allow-list of one context and the decisions taken on it."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.prefixes: List[str] = list(prefixes)
        # (prefixes, {name: allows(name) under them}): the responder asks ~4,000 times
        # for the first module run's closure, mostly the same names. One object, so
        # that each answer kept was decided under the prefixes it is kept with.
        self._decided: Tuple[Tuple[str, ...], Dict[str, bool]] = ((), {})

    def __repr__(self) -> str:
        return "ImportPolicy(%r)" % (self.prefixes,)

    def allows(self, name: str) -> bool:
        prefixes = tuple(self.prefixes)
        decided = self._decided
        if decided[0] != prefixes or len(decided[1]) >= 20000:  # changed since (or a child asking for any name)
            decided = self._decided = (prefixes, {})
        found = decided[1].get(name)
        if found is None:
            found = decided[1][name] = is_allowed(name, decided[0])
        return found

    def add(self, prefix: str) -> None:
        """Allow the tree ``prefix`` too (the controller's decision)."""
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)

    def update(self, body: Any) -> bool:
        """Take the allow-list an ``IMPORT_POLICY`` message holds; False if malformed."""
        if isinstance(body, list) and all(isinstance(p, str) for p in body):
            self.prefixes = list(body)
            return True
        return False

    def should_fetch(self, name: str, cached: Container[str]) -> bool:
        """Ask the parent for ``name``? Only if allowed and not cached here."""
        return name not in cached and self.allows(name)

    def request(self, body: Any, cached: Optional[Container[str]]) -> str:
        """``REFUSE``, ``FETCH`` or ``SERVE`` for a child's ``GET_MODULE`` ``body``.

        ``cached``: this intermediary's module cache (None on the controller,
        which reads its own files).
        """
        if not isinstance(body, str):
            raise PeerProtocolError("GET_MODULE body is not a module name")
        if not self.allows(body):
            return REFUSE
        if cached is not None and body not in cached:
            return FETCH
        return SERVE

    def source_of(self, name: str, provided: Container[str]) -> str:
        """Where the controller takes ``name``'s text from: ``PROVIDED``, ``EMPTY`` or ``FILE``."""
        if name in provided:
            return PROVIDED
        if not in_tree(name, self.prefixes):
            return EMPTY
        return FILE

    def related(self, name: str, imported: Iterable[str]) -> Set[str]:
        """The allowed modules (and their ancestors) among what ``name`` imports."""
        out = set()
        for mod in imported:
            # Include ancestors: importing a.b.c imports a and a.b first.
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                if sub != name and self.allows(sub):
                    out.add(sub)
        return out

    def companions(self, names: Iterable[str]) -> List[str]:
        """The hints (``Responder.companions``) that may go with a module: allowed ones."""
        return [c for c in names if self.allows(c)]
