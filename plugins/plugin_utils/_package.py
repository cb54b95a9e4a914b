# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ns.mitogen's controller-only code (private package): the package itself, run in its namespace.

Importing this package, or any module in it, changes nothing outside it. Every plugin
of the collection calls ``install()`` first (idempotent), which loads our controller
modules (this package's and the core's) with the standard ``SourceFileLoader``, not
Ansible's collection loader (which compiles from source on every import), from a
bundle of code objects in our private cache where it can (``_loader``, ``_bundle``),
and installs the ``ActionBase`` seam (``_action.install()``). The strategies add
``_strategy``; what only the multiplexer runs is loaded when first needed (``load()``).

This file is not a module of its own: the package's ``__init__.py`` runs its code in the
package's namespace (``plugin_utils.install`` and the rest are defined here), from our
private cache where it can (``install()`` stores it there), because Ansible compiles
``__init__.py`` from source in every process that loads it (every worker under a
built-in strategy): ~2.3 ms a worker for this file's code, ~0.7 ms for what is left
there. Only what finds and reads the bundle is here; the rest, and why it is so, is in
``_bundle``, which comes compiled in the bundle itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import marshal
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

# __init__.py defines these, then runs this file's code in the same namespace (a no-op
# import of names already there, which says where they come from)
from . import PACKAGE_CODE, PACKAGE_FROM, cache_directory, package_entry, stamp

#: What ``install()`` always loads (with what it imports of ours).
_BASE = ("_connection", "_action")
_BUNDLE_HEADER = b"nsm-bundle-3\n" + importlib.util.MAGIC_NUMBER


def code_cache_dir() -> Optional[str]:
    """Where compiled code of ours is kept, or None: ``$NS_MITOGEN_CODE_CACHE`` (off, 0 or empty:
    none), else ``$XDG_CACHE_HOME/ns.mitogen/code`` (``~/.cache``), per cache tag
    (``cache_directory()``); a 0700 directory of the user's, made if missing."""
    path = cache_directory()
    if path is None:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        try:
            os.makedirs(path, 0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not os.path.isdir(path):
        return None
    return path


#: A cache entry read this long after it was last written or refreshed is refreshed
#: (its modification time set to now): the cache evicts the entries modified longest
#: ago (``_loader.write_private``), which must not be those read on every run.
REFRESH_SECONDS = 86400


def read_private(path: str) -> Optional[bytes]:
    """The content of the cache entry ``path`` if it is the user's own and private, else None.

    An entry last modified over ``REFRESH_SECONDS`` ago is touched as it is read (at
    most one ``futimens`` a day per entry; a failure is ignored).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        _keep_fresh(fd, st.st_mtime)
        with os.fdopen(fd, "rb", closefd=False) as fp:
            return fp.read()
    finally:
        os.close(fd)


def _keep_fresh(entry: Any, mtime: float) -> None:
    """Touch the cache ``entry`` (a path or a descriptor) last modified at ``mtime`` if that
    is over ``REFRESH_SECONDS`` ago (a failure is ignored)."""
    if mtime < time.time() - REFRESH_SECONDS:
        try:
            os.utime(entry)
        except OSError:
            pass


def bundle_path(names: Tuple[str, ...]) -> Optional[str]:
    """The bundle of what importing ``names`` (this package's modules) loads, or None (no cache)."""
    directory = code_cache_dir()
    if directory is None:
        return None
    key = _BUNDLE_HEADER + os.fsencode(os.path.dirname(os.path.abspath(__file__))) + b"\0" + ",".join(names).encode()
    return os.path.join(directory, "bundle-" + hashlib.sha256(key).hexdigest())


def _read_bundle(path: str) -> Optional[Tuple[Dict[str, Tuple[str, Any, memoryview]], List[str]]]:
    """Module name -> (file, stamp, marshalled code) from the bundle at ``path``, and the modules
    ``install()`` runs first, in order; None if missing, foreign, damaged or its finder
    (``_bundle``) changed since.

    A bundle is its header, the length of its index, the index (marshalled: each
    module's name, file, stamp, and where its code lies after the index; then the names
    of the modules importing ``names`` ran, in the order they finished: ``_bundle.run_first``),
    then each module's marshalled code, kept so (and uncopied) until its module is imported.
    """
    blob = read_private(path)
    if blob is None or not blob.startswith(_BUNDLE_HEADER):
        return None
    view = memoryview(blob)[len(_BUNDLE_HEADER) :]
    found = {}
    try:
        size = int.from_bytes(view[:4], "big")
        data = view[4 + size :]
        entries, first = marshal.loads(view[4 : 4 + size])
        for name, source, recorded, start, end in entries:
            if not 0 <= start <= end <= len(data):
                return None
            found[name] = (source, tuple(recorded), data[start:end])
        own = found[__name__ + "._bundle"]
        return (found, [n for n in first if n in found]) if stamp(own[0]) == own[1] else None
    except (OSError, KeyError, EOFError, ValueError, TypeError):
        return None


def load_own(name: str, loader: Any = None) -> Any:
    """This package's module ``name`` (``"_bundle"``, ``"_loader"``: what loads the others) unless
    already loaded: from its file here with ``loader`` (the standard one: None); dropped from
    ``sys.modules`` again if its body raises."""
    fullname = "%s.%s" % (__name__, name)
    module = sys.modules.get(fullname)
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
        spec = importlib.util.spec_from_file_location(fullname, path, loader=loader)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s from %s" % (fullname, os.path.dirname(path)))
        module = sys.modules[fullname] = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[fullname]
            raise
    return module


def _core() -> Any:
    """``_bundle``, which loads our modules: run from the bundle by ``install()``, else loaded here."""
    return load_own("_bundle")


def _import_first(names: Tuple[str, ...]) -> None:
    """Import ``names``: from their bundle where one is valid, else by ``_loader`` (then bundled)."""
    path = bundle_path(names)
    read = _read_bundle(path) if path else None
    bundled, first = read if read is not None else (None, [])
    name = __name__ + "._bundle"  # the bundle's finder, run from the bundle
    if bundled is not None:
        try:
            code = marshal.loads(bundled[name][2])
            spec = importlib.util.spec_from_file_location(name, bundled[name][0])
        except (EOFError, ValueError, TypeError):
            code = spec = None
        if spec is None:
            bundled = None
        else:
            module = sys.modules[name] = importlib.util.module_from_spec(spec)
            exec(code, module.__dict__)  # noqa: S102 - our own module's code object, as its loader would run it
    _core().import_first(path, bundled, first, names)


def load(name: str) -> Any:
    """This package's module ``name`` (e.g. ``"_mux_server"``), loaded as ``install()`` loads them
    (``_bundle.load``): for what a plugin needs only sometimes, imported inside a function."""
    module = sys.modules.get("%s.%s" % (__name__, name))
    return module if module is not None else _core().load(name)


def lazy(name: str) -> Any:
    """A stand-in for this package's module ``name``, loaded by ``load()`` when first used (``_bundle.Lazy``)."""
    return _core().Lazy(name)


def loader_module() -> Any:
    """Our ``_loader`` module, itself loaded with the standard loader (from the bundle if there)."""
    return _core().loader_module()


_installed = False
_installed_by: Optional[int] = None  # the pid of the process that ran install() first (a worker's parent: inherited)


def spare_inherited_objects() -> None:
    """In an Ansible worker: ``gc.freeze()`` what it inherited, before our imports (``_bundle`` says why)."""
    worker = sys.modules.get("ansible.executor.process.worker")
    multiprocessing = sys.modules.get("multiprocessing")
    if worker is None or multiprocessing is None:
        return
    if isinstance(multiprocessing.current_process(), getattr(worker, "WorkerProcess", ())):
        import gc

        gc.freeze()


def _cache_package() -> None:
    """Store this file's code for the next process's ``__init__.py`` if it compiled it
    (``_loader.write_package``); keep the entry it read fresh (``_keep_fresh``)."""
    if PACKAGE_FROM is not None:
        try:
            _keep_fresh(PACKAGE_FROM, os.stat(PACKAGE_FROM).st_mtime)
        except OSError:
            pass
        return
    directory = code_cache_dir()
    if directory is not None:
        loader_module().write_package(package_entry(directory), PACKAGE_CODE)


def install(*extra: str) -> None:
    """What every ns.mitogen plugin needs before it imports our modules (idempotent).

    Loads what the connection and action plugins import, then installs the ``ActionBase``
    seam. ``extra``: more of this package's modules to load so (``"_strategy"``, ``"_ssh"``):
    the first call's go in its bundle. What only the multiplexer needs is left to ``load()``.
    """
    global _installed, _installed_by
    if not _installed:
        spare_inherited_objects()
        _import_first(_BASE + extra)
        importlib.import_module(__name__ + "._action").install()
        _installed, _installed_by = True, os.getpid()
        _cache_package()
    for name in extra:
        load(name)
