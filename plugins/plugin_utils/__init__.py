# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen's controller-only code (private package).

Importing this package, or any module in it, changes nothing outside it. Every
plugin of the collection calls ``install()`` first (idempotent), which does the
two things that do:

- it loads our controller modules (this package's and the core's,
  ``module_utils/mitogen``) with the standard ``SourceFileLoader`` (below);
- it routes ``ActionBase._configure_module`` through ours (``_action.install()``),
  so that actions on our connections hand modules to the in-process runner.

The loader: ``install()`` loads our controller modules with the standard
``SourceFileLoader`` rather than Ansible's collection loader. That loader compiles every collection module
from source on every import and caches no bytecode: for the ~6,000 lines behind
our strategy and connection plugins that was ~60 ms of compiling in every
``ansible-playbook`` run (on the first task's path) and, under a built-in
strategy, in every worker that loads our connection plugin. Loaded this way,
bytecode is cached as for any Python module, under the usual rules
(``__pycache__`` or ``PYTHONPYCACHEPREFIX``; nothing written with
``PYTHONDONTWRITEBYTECODE`` or into a read-only directory). Module names,
``__file__`` and what the modules do are unchanged.

Where Python keeps no bytecode (``PYTHONDONTWRITEBYTECODE``, a read-only
collection), the loader keeps our code objects in a private per-user cache
instead (``_loader``, which says how and why that respects those settings).

``install()`` loads what the connection and action plugins need; the strategies
add ``_strategy`` (``install("_strategy")``), and what only the multiplexer process
runs is loaded when first needed (``load()``), so that a worker under a built-in
strategy imports only the client side.

The bundle: where the private cache can be used, ``install()`` takes what it loads -
``_BASE`` and what it imports of ours, ~40 code objects - from one file of the cache
(``bundle-<key>``) instead of one lookup, read and unmarshal per module (and one
compile of ``_loader.py``): about half of what loading our connection plugin cost an
Ansible worker. It also holds the package's other modules, compiled, for ``load()``;
each module's code stays marshalled until it is imported. A module's code is used only
while its file is unchanged since the bundle was made, checked as it is imported:
the source's inode, size, modification and change times, the test ``git`` uses for
its index (the change time cannot be set back by a user or an archive, so a file
rewritten with the same size and times is seen as changed); a changed one is loaded
from its source and the bundle made again. A bundle is not written
while a source changed less than 2 seconds ago (a change in the same clock tick could
go unseen); one that is stale, damaged or not the user's own is ignored and made
again. Written and read under the private cache's rules (``_loader``: a 0700 directory
of the user's; entries of the user's, readable by nobody else, written to a temporary
file and renamed).

The finder that does it is on ``sys.meta_path`` only while ``install()`` or
``load()`` imports our modules: Ansible does not let plugins leave import hooks of
their own ahead of its loader.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import marshal
import os
import sys
from typing import Any, Dict, Optional, Tuple

#: What ``install()`` always loads (with what it imports of ours).
_BASE = ("_connection", "_action")
#: Our private code cache: a directory, or "off".
CODE_CACHE_ENV = "NS_MITOGEN_CODE_CACHE"
_BUNDLE_HEADER = b"nsm-bundle-2\n" + importlib.util.MAGIC_NUMBER
_BUNDLED: Dict[str, Tuple[str, Any, memoryview]] = {}  # module name -> (file, stamp, marshalled code) of the bundle in use
_BUNDLE_PATH = [""]  # the bundle in use


def code_cache_dir() -> Optional[str]:
    """Where compiled code of ours is kept, or None.

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


def read_private(path: str) -> Optional[bytes]:
    """The content of the cache entry ``path`` if it is the user's own and private, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fp:
            return fp.read()
    finally:
        os.close(fd)


def stamp(path: str) -> Tuple[int, int, int, int]:
    """What a bundle records of a source file: inode, size, modification and change times."""
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def bundle_path(names: Tuple[str, ...]) -> Optional[str]:
    """The bundle of what importing ``names`` (this package's modules) loads, or None (no cache)."""
    directory = code_cache_dir()
    if directory is None:
        return None
    key = _BUNDLE_HEADER + os.fsencode(os.path.dirname(os.path.abspath(__file__))) + b"\0" + ",".join(names).encode()
    return os.path.join(directory, "bundle-" + hashlib.sha256(key).hexdigest())


def _read_bundle(path: str) -> Optional[Dict[str, Tuple[str, Any, memoryview]]]:
    """Module name -> (file, stamp, marshalled code) from the bundle at ``path``; None if missing, foreign or damaged.

    A bundle is its header, the length of its index, the index (marshalled: each
    module's name, file, stamp, and where its code lies after the index), then each
    module's marshalled code. A code stays marshalled, and uncopied, until its module is
    imported, and its file's stamp is checked then (``fresh_code()``): a worker reads
    only what it runs. The bundle's own finder (``_bundle``) must be fresh.
    """
    blob = read_private(path)
    if blob is None or not blob.startswith(_BUNDLE_HEADER):
        return None
    view = memoryview(blob)[len(_BUNDLE_HEADER) :]
    found = {}
    try:
        size = int.from_bytes(view[:4], "big")
        data = view[4 + size :]
        for name, source, recorded, start, end in marshal.loads(view[4 : 4 + size]):
            if not 0 <= start <= end <= len(data):
                return None
            found[name] = (source, tuple(recorded), data[start:end])
    except (EOFError, ValueError, TypeError):
        return None
    own = found.get(__name__ + "._bundle")
    return found if own is not None and _is_fresh(own) else None


def _is_fresh(entry: Tuple[str, Any, memoryview]) -> bool:
    try:
        return stamp(entry[0]) == entry[1]
    except OSError:
        return False


def fresh_code(name: str) -> Optional[Tuple[str, memoryview]]:
    """Module ``name``'s file and marshalled code from the bundle in use, if its file is unchanged since."""
    entry = _BUNDLED.get(name)
    return (entry[0], entry[2]) if entry is not None and _is_fresh(entry) else None


def loader_module() -> Any:
    """Our ``_loader`` module, itself loaded with the standard loader (from the bundle if there)."""
    name = __name__ + "._loader"
    module = sys.modules.get(name)
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_loader.py")
        spec = importlib.util.spec_from_file_location(name, path, loader=_bundled_loader(name, path))
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s from %s" % (name, os.path.dirname(os.path.abspath(__file__))))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def load(name: str) -> Any:
    """This package's module ``name`` (e.g. ``"_mux_server"``), loaded as ``install()`` loads them.

    For what a plugin needs only sometimes (imported lazily, inside a function): it
    gets the same bytecode caching as the rest (from the bundle if it is in it).
    """
    fullname = "%s.%s" % (__name__, name)
    module = sys.modules.get(fullname)
    if module is None:
        if fullname in _BUNDLED:
            served, missed = sys.modules[__name__ + "._bundle"].import_from(__name__, (name,))
            if missed:  # a source changed since: bundle it afresh
                loader_module().write_bundle(_BUNDLE_PATH[0], served)
        else:
            loader_module().import_modules((name,))
        module = sys.modules[fullname]
    return module


class _Lazy:
    """This package's module ``name``, loaded (``load()``) on first use of an attribute."""

    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(load(self._lazy_name), attribute)


def lazy(name: str) -> Any:
    """A stand-in for this package's module ``name``, loaded by ``load()`` when first used.

    For modules a task seldom runs (become, ``mitogen_via``, failures, transfers): every
    Ansible worker under a built-in strategy imports our connection afresh, and each
    module it need not run costs it its unmarshalling and body. A module that uses one
    imports the real module under ``if TYPE_CHECKING:`` for the type checker.
    """
    return _Lazy(name)


def _import_first(names: Tuple[str, ...]) -> None:
    """Import ``names``: from their bundle where one is valid, else by ``_loader`` (then bundled)."""
    path = bundle_path(names)
    bundled = _read_bundle(path) if path else None
    name = __name__ + "._bundle"  # the bundle's finder, from the bundle
    spec = importlib.util.spec_from_file_location(name, bundled[name][0]) if bundled else None
    if path is None or bundled is None or spec is None:
        loader_module().import_modules(names)
        if path:
            loader_module().write_bundle(path, {})
        return
    try:
        code = marshal.loads(bundled[name][2])
    except (EOFError, ValueError, TypeError):
        code = None
    if code is None:
        loader_module().import_modules(names)
        loader_module().write_bundle(path, {})
        return
    _BUNDLED.update(bundled)
    _BUNDLE_PATH[0] = path
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    exec(code, module.__dict__)  # noqa: S102 - our own module's code object, as its loader would run it
    served, missed = module.import_from(__name__, names)
    if missed:  # what the sources import now differs: bundle it too
        loader_module().write_bundle(path, served)


def _bundled_loader(name: str, path: str) -> Any:
    """The loader of our module ``name`` at ``path`` with its code from the bundle, or None (the standard one)."""
    found = fresh_code(name)
    if found is None:
        return None
    return sys.modules[__name__ + "._bundle"].BundledLoader(name, path, found[1])


_installed = False


def install(*extra: str) -> None:
    """What every ns.mitogen plugin needs before it imports our modules (idempotent).

    Loads what the connection and action plugins import (the core included) with
    bytecode caching, then installs the ``ActionBase`` seam. ``extra``: more of this
    package's modules to load so (the strategies add ``"_strategy"``, ``ns.mitogen.ssh``
    ``"_ssh"``): the first call's go in its bundle. What only the multiplexer process
    needs is not loaded here (see ``load()``), as every Ansible worker under a built-in
    strategy runs this again.
    """
    global _installed
    if not _installed:
        _import_first(_BASE + extra)
        importlib.import_module(__name__ + "._action").install()
        _installed = True
    for name in extra:
        load(name)
