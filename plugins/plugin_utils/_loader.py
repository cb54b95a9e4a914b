# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How ``plugin_utils.install()`` and ``load()`` import our controller modules (private).

Owns: the meta path finder (``_OwnModulesFinder``) that loads this package's and
the core's modules with the standard ``SourceFileLoader`` (bytecode cached as for
any Python module: see the package docstring), and the private code cache.

Where Python keeps no bytecode (``PYTHONDONTWRITEBYTECODE``, as in most execution
environments, or a read-only collection), every Ansible worker under a built-in
strategy compiled our ~500 KB of source again: about half of its CPU time. There
the loader keeps the code objects in a private cache instead (``code_cache_dir()``:
``~/.cache/ns.mitogen/code/<cache tag>``, or ``$NS_MITOGEN_CODE_CACHE``; ``off``
disables it). This respects what those settings ask for: nothing is written into
the collection or any ``__pycache__``, and no stale bytecode can be used - an
entry is found by the SHA-256 of the Python's magic number, the file's path and
its whole source, so a changed file is simply another entry. The directory is
the user's own (0700, checked before use: a directory or entry owned by someone
else, or writable by others, is ignored), entries are written to a temporary
file and renamed into place, and one that does not start with its own digest is
compiled afresh. A cache that cannot be made costs only the compile.

Loaded by the package itself with the standard loader (not Ansible's), so that it
too is compiled once where bytecode can be cached. Never imports Ansible.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import marshal
import os
import sys
import tempfile
import time
import types
from typing import Any, Dict, List, Optional, Tuple

_PACKAGE = __name__.rpartition(".")[0]

_CORE = _PACKAGE.rpartition(".")[0] + ".module_utils.mitogen"
_CODE_HEADER = b"nsm-code\n" + importlib.util.MAGIC_NUMBER
#: Module name -> (file, code object) of every module our finder loaded in this process.
RECORDED: Dict[str, Tuple[str, Any]] = {}
#: A bundle is not written while one of its sources changed this recently (seconds).
RACY_SECONDS = 2.0


def code_cache_dir() -> Optional[str]:
    """The private cache's directory, or None (``plugin_utils.code_cache_dir``)."""
    return sys.modules[_PACKAGE].code_cache_dir()  # type: ignore[no-any-return]


class _CachingSourceLoader(importlib.machinery.SourceFileLoader):
    """The standard loader, plus our code cache where Python writes no bytecode.

    ``source_to_code`` runs only when no valid ``__pycache__`` file exists. When
    Python may write one there (the usual case), nothing changes. When it may not
    (``PYTHONDONTWRITEBYTECODE``, ``-B``, a read-only collection), the code object
    is looked up in ``code_cache_dir()`` under the SHA-256 of the Python's magic
    number, the file's path and its source, and stored there on a miss (written to
    a temporary file, then renamed): each source is compiled once per user and
    Python, not once per Ansible worker.
    """

    def get_code(self, fullname: str) -> Any:
        code = super().get_code(fullname)
        RECORDED[fullname] = (self.path, code)
        return code

    def exec_module(self, module: Any) -> None:
        super().exec_module(module)
        sys.modules[_PACKAGE + "._bundle"].FINISHED.append(module.__name__)

    def source_to_code(self, data: Any, path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        directory = _code_cache() if _writes_no_bytecode(str(path)) else None
        if directory is None or args or kwargs:
            return super().source_to_code(data, path, *args, **kwargs)
        digest = hashlib.sha256(_CODE_HEADER + os.fsencode(str(path)) + b"\0" + bytes(data)).digest()
        entry = os.path.join(directory, digest.hex())
        code = _read_entry(entry, digest)
        if code is None:
            code = super().source_to_code(data, path)
            _write_entry(directory, entry, digest, code)
        return code


_CODE_CACHE: Dict[str, Optional[str]] = {}


def _code_cache() -> Optional[str]:
    if "dir" not in _CODE_CACHE:
        _CODE_CACHE["dir"] = code_cache_dir()
    return _CODE_CACHE["dir"]


def _writes_no_bytecode(path: str) -> bool:
    """Python will not cache bytecode for ``path`` itself."""
    if sys.dont_write_bytecode:
        return True
    if sys.pycache_prefix:
        return False
    directory = os.path.dirname(path)
    target = os.path.join(directory, "__pycache__")
    return not os.access(target if os.path.isdir(target) else directory, os.W_OK)


def _read_entry(entry: str, digest: bytes) -> Any:
    """The code object stored at ``entry`` for ``digest``, or None (missing, foreign or damaged)."""
    blob = sys.modules[_PACKAGE].read_private(entry)
    head = _CODE_HEADER + digest
    if blob is None or not blob.startswith(head):
        return None
    try:
        return marshal.loads(blob[len(head) :])
    except (EOFError, ValueError, TypeError):
        return None


#: Entries kept at most: a miss (a new or changed source) beyond it removes the half
#: modified longest ago (a read refreshes an entry daily: ``read_private``).
CODE_CACHE_ENTRIES = 1000


def _write_entry(directory: str, entry: str, digest: bytes, code: Any) -> None:
    """Store ``code`` at ``entry`` atomically (a failure only costs the next compile)."""
    write_private(directory, entry, _CODE_HEADER + digest + marshal.dumps(code))


def write_private(directory: str, entry: str, data: bytes) -> None:
    """Store ``data`` at ``entry`` of the cache ``directory`` atomically, readable by the user only."""
    try:
        names = os.listdir(directory)
        if len(names) >= CODE_CACHE_ENTRIES:  # old versions of the collection, other checkouts
            paths = [os.path.join(directory, name) for name in names]
            for path in sorted(paths, key=lambda p: os.lstat(p).st_mtime)[: len(paths) - CODE_CACHE_ENTRIES // 2]:
                os.unlink(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
        os.replace(tmp, entry)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


class _OwnModulesFinder:
    """A meta path finder for the modules directly inside a fixed set of our packages."""

    def __init__(self, directories: Dict[str, str]) -> None:
        self._finders = {
            package: importlib.machinery.FileFinder(directory, (_CachingSourceLoader, importlib.machinery.SOURCE_SUFFIXES))
            for package, directory in directories.items()
        }

    def __repr__(self) -> str:
        return "<ns.mitogen finder for %s>" % ", ".join(sorted(self._finders))

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        finder = self._finders.get(fullname.rpartition(".")[0])
        return finder.find_spec(fullname) if finder is not None else None


_FINDER: Dict[str, _OwnModulesFinder] = {}


def own_finder() -> _OwnModulesFinder:
    """The finder of this package's and the core's modules (one per process)."""
    if "own" not in _FINDER:
        here = os.path.dirname(os.path.abspath(__file__))
        core = os.path.join(os.path.dirname(here), "module_utils", "mitogen")
        _FINDER["own"] = _OwnModulesFinder({_PACKAGE: here, _CORE: core})
    return _FINDER["own"]


def import_modules(names: Tuple[str, ...]) -> None:
    """Import this package's modules ``names`` (and what they import of ours) with our finder."""
    finder = own_finder()
    sys.meta_path.insert(0, finder)
    try:
        for name in names:
            importlib.import_module("%s.%s" % (_PACKAGE, name))
    finally:
        sys.meta_path.remove(finder)


def write_bundle(path: str, served: Dict[str, Tuple[str, Any]], first: List[str]) -> None:
    """Write the bundle ``path`` (``plugin_utils.bundle_path``), ``first`` the modules ``install()``
    ran in the order they finished (``_bundle.run_first``): ``served`` (what an older
    bundle gave), what our finder loaded in this process, this module itself, and every
    other module of this package, compiled but not run: what a worker loads on demand
    (``plugin_utils.load()``) comes from the bundle too, and this module stays out of its way.

    Each module's code is kept marshalled on its own (unmarshalled only as it is imported).
    Not written while a source changed in the last ``RACY_SECONDS`` (see the package
    docstring); a failure only costs the next process its lookups.
    """
    import_modules(("_bundle",))  # the bundle's own finder goes in it
    entries: Dict[str, Tuple[str, Any]] = dict(RECORDED)
    entries.update(served)
    for name in (__name__, _PACKAGE + "._bundle"):  # loaded by the package itself, not by a finder
        module: Any = sys.modules[name]
        entries.setdefault(name, (module.__file__, module.__spec__.loader.get_code(name)))
    here = os.path.dirname(os.path.abspath(__file__))
    others = {}  # this package's modules not loaded here: compiled only if the bundle is written
    for filename in os.listdir(here):
        fullname = "%s.%s" % (_PACKAGE, filename[:-3])
        if filename.endswith(".py") and filename not in ("__init__.py", "_package.py") and fullname not in entries:
            others[fullname] = os.path.join(here, filename)
    stamps = {}
    now = time.time_ns()
    try:
        for name, source in sorted([(n, e[0]) for n, e in entries.items()] + list(others.items())):
            stamps[name] = sys.modules[_PACKAGE].stamp(source)
            if now - stamps[name][3] < RACY_SECONDS * 1e9:
                return
    except OSError:
        return
    for fullname in others:
        spec = own_finder().find_spec(fullname)
        if spec is not None and spec.loader is not None and spec.origin:
            entries[fullname] = (spec.origin, spec.loader.get_code(fullname))  # type: ignore[attr-defined]
    index, codes, offset = [], [], 0
    for name, (source, code) in sorted(entries.items()):
        data = marshal.dumps(code) if isinstance(code, types.CodeType) else bytes(code)
        index.append((name, source, stamps[name], offset, offset + len(data)))
        codes.append(data)
        offset += len(data)
    head = marshal.dumps((index, [name for name in first if name in entries]))  # the layout: plugin_utils._read_bundle
    blob = b"".join([sys.modules[_PACKAGE]._BUNDLE_HEADER, len(head).to_bytes(4, "big"), head] + codes)
    write_private(os.path.dirname(path), path, blob)


def write_package(found: Tuple[str, Tuple[int, int, int, int], Optional[str]], code: Any) -> None:
    """Store ``_package.py``'s ``code`` for the package's ``__init__.py`` at the entry ``found``
    names (``plugin_utils.package_entry``: its path, stamp and entry), in the layout it reads.

    Not written while the file changed in the last ``RACY_SECONDS``, as a bundle is not.
    """
    path, recorded, entry = found
    if entry is None or time.time_ns() - recorded[3] < RACY_SECONDS * 1e9:
        return
    package = sys.modules[_PACKAGE]
    write_private(os.path.dirname(entry), entry, package.PACKAGE_HEADER + marshal.dumps(((path, recorded), code)))
