# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module sources cached in this interpreter, and the finders that serve one for its run (private).

Owns: the cache of module sources by sha1 (``source_for``; at most ``MAX_SOURCES``,
least recently used go first; ``on_source_ahead``: a source the parent sent ahead of
the run that will need it, ``KEEP_SOURCE``), each ``Source`` compiled once per file name, and
the import finders a run puts on ``sys.meta_path``: ``ModuleFinder`` (the module
under its own name) and ``ParentPackages`` (empty packages for its parents).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.abc
import importlib.machinery
import threading
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:  # annotations only
    from ._shapes import RunRequest

MAX_SOURCES = 128  # module sources cached here (least recently used go first)

_SOURCES_LOCK = threading.Lock()
_SOURCES: "collections.OrderedDict[str, Source]" = collections.OrderedDict()
STATS = {"source_misses": 0, "sources_ahead": 0}


def cached() -> List[str]:
    """The sha1s of the sources cached here, least recently used first."""
    with _SOURCES_LOCK:
        return list(_SOURCES)


def _sha1(data: bytes) -> str:
    try:
        return hashlib.sha1(data, usedforsecurity=False).hexdigest()  # type: ignore[call-arg]
    except TypeError:  # Python 3.8
        return hashlib.sha1(data).hexdigest()


class Source:
    """One module's source and its compiled code (per file name)."""

    __slots__ = ("data", "_code", "_lines")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._code: Dict[str, CodeType] = {}
        self._lines: Optional[List[str]] = None

    def code(self, filename: str) -> CodeType:
        code = self._code.get(filename)
        if code is None:
            code = self._code[filename] = compile(self.data, filename, "exec", dont_inherit=True)
        return code

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def lines(self) -> List[str]:
        """The source's lines, for ``linecache`` (tracebacks, ``inspect``); made once."""
        if self._lines is None:
            self._lines = self.text().splitlines(True)
        return self._lines


def source_for(request: RunRequest) -> Optional[Source]:
    """The ``Source`` a run request names, caching the source it carries; None if not cached.

    Raises ``ValueError`` if the request's ``source_id`` is not the sha1 of its ``source``.
    """
    data, source_id = request.get("source"), request.get("source_id")
    with _SOURCES_LOCK:
        if data is not None:
            digest = _sha1(data)
            if source_id is not None and source_id != digest:
                raise ValueError("run request: source_id %s is not the sha1 of the source (%s)" % (source_id, digest))
            source_id = digest
            if source_id not in _SOURCES:
                _SOURCES[source_id] = Source(bytes(data))
                while len(_SOURCES) > MAX_SOURCES:
                    _SOURCES.popitem(last=False)
        entry = _SOURCES.get(source_id) if source_id is not None else None
        if entry is None or source_id is None:
            STATS["source_misses"] += 1
            return None
        _SOURCES.move_to_end(source_id)
        return entry


def on_source_ahead(msg: Any) -> None:
    """Broker thread (``KEEP_SOURCE``, from the parent only): cache a module source sent ahead."""
    data = msg.decode()
    if isinstance(data, bytes):
        request: Any = {"source": data}
        source_for(request)
        STATS["sources_ahead"] += 1


# -- finders for the run --------------------------------------------------------------
class ModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the module being run, under its own name, for the run only."""

    def __init__(self, name: str, source: Source, filename: str) -> None:
        self.name = name
        self.source = source
        self.filename = filename

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != self.name:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin=self.filename)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname: str) -> CodeType:
        return self.source.code(self.filename)

    def get_source(self, fullname: str) -> str:
        return self.source.text()

    def is_package(self, fullname: str) -> bool:
        return False


class ParentPackages(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path``: empty packages for the module's parents nobody serves.

    ``ansible.modules`` or a collection's ``plugins.modules`` are not on the import
    allow-list (only module_utils are), but runpy imports a module's parents first.
    """

    def __init__(self, name: str) -> None:
        parts = name.split(".")
        self.parents = {".".join(parts[:i]) for i in range(1, len(parts))}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in self.parents:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin="<ns.mitogen: empty package>", is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        return None
