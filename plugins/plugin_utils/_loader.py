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
from typing import Any, Dict, Optional, Tuple

_PACKAGE = __name__.rpartition(".")[0]

_CORE = _PACKAGE.rpartition(".")[0] + ".module_utils.mitogen"
#: Our private code cache: a directory, or "off" (read once per process).
CODE_CACHE_ENV = "NS_MITOGEN_CODE_CACHE"
_CODE_HEADER = b"nsm-code\n" + importlib.util.MAGIC_NUMBER


def code_cache_dir() -> Optional[str]:
    """Where compiled code of ours is kept when Python keeps none, or None.

    ``$NS_MITOGEN_CODE_CACHE`` (``off``, ``0`` or empty: none), else
    ``$XDG_CACHE_HOME/ns.mitogen/code`` (``~/.cache`` by default), one directory per
    ``sys.implementation.cache_tag``. Made 0700; a directory that is not this
    user's, or that others can write to, is not used (None).
    """
    setting = os.environ.get(CODE_CACHE_ENV)
    if setting is not None and setting.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    if setting:
        base = os.path.expanduser(setting)
    else:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ns.mitogen", "code")
    path = os.path.join(base, str(sys.implementation.cache_tag))
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not os.path.isdir(path):
        return None
    return path


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
    try:
        fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fp:
            blob = fp.read()
    finally:
        os.close(fd)
    head = _CODE_HEADER + digest
    if not blob.startswith(head):
        return None
    try:
        return marshal.loads(blob[len(head) :])
    except (EOFError, ValueError, TypeError):
        return None


#: Entries kept at most: a miss (a new or changed source) beyond it removes the oldest.
CODE_CACHE_ENTRIES = 1000


def _write_entry(directory: str, entry: str, digest: bytes, code: Any) -> None:
    """Store ``code`` at ``entry`` atomically (a failure only costs the next compile)."""
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
            fp.write(_CODE_HEADER + digest + marshal.dumps(code))
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


def import_modules(names: Tuple[str, ...]) -> None:
    """Import this package's modules ``names`` (and what they import of ours) with our finder."""
    here = os.path.dirname(os.path.abspath(__file__))
    core = os.path.join(os.path.dirname(here), "module_utils", "mitogen")
    finder = _OwnModulesFinder({_PACKAGE: here, _CORE: core})
    sys.meta_path.insert(0, finder)
    try:
        for name in names:
            importlib.import_module("%s.%s" % (_PACKAGE, name))
    finally:
        sys.meta_path.remove(finder)
