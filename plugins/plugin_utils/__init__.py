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
import time
from typing import Any, Dict, Optional, Tuple

#: What ``install()`` always loads (with what it imports of ours).
_BASE = ("_connection", "_action")
#: Our private code cache: a directory, or "off".
CODE_CACHE_ENV = "NS_MITOGEN_CODE_CACHE"
_BUNDLE_HEADER = b"nsm-bundle-2\n" + importlib.util.MAGIC_NUMBER


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
        if st.st_mtime < time.time() - REFRESH_SECONDS:
            try:
                os.utime(fd)
            except OSError:
                pass
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
    module's marshalled code, kept so (and uncopied) until its module is imported
    (``_bundle``). Its own finder, ``_bundle``, must be unchanged since.
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
        own = found[__name__ + "._bundle"]
        return found if stamp(own[0]) == own[1] else None
    except (OSError, KeyError, EOFError, ValueError, TypeError):
        return None


def _core() -> Any:
    """``_bundle``, which loads our modules: run from the bundle by ``install()``, else loaded here."""
    name = __name__ + "._bundle"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bundle.py")
        )
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s" % name)
        module = sys.modules[name] = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def _import_first(names: Tuple[str, ...]) -> None:
    """Import ``names``: from their bundle where one is valid, else by ``_loader`` (then bundled)."""
    path = bundle_path(names)
    bundled = _read_bundle(path) if path else None
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
    _core().import_first(path, bundled, names)


def load(name: str) -> Any:
    """This package's module ``name`` (e.g. ``"_mux_server"``), loaded as ``install()`` loads them.

    For what a plugin needs only sometimes (imported lazily, inside a function): it
    gets the same bytecode caching as the rest (from the bundle if it is in it).
    """
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
    """In an Ansible worker process: keep the garbage collector off what it inherited.

    Ansible forks a worker per host and task; it lives for one task and shares the
    main process's objects copy-on-write. A collection of the oldest generation
    writes into every tracked object it visits (its collector header), so the
    kernel copies each page holding one, and it visits all of them: under a built-in
    strategy the imports of our plugin trigger such collections in every worker.
    ``gc.freeze()`` moves every object tracked now into the permanent generation,
    which collections skip (it costs a few list splices, touching no object); what
    the worker makes from here on is collected as ever, and a cycle among the frozen
    objects is freed when the worker exits. Called as ``install()`` runs in a worker
    (under a built-in strategy) and as a worker makes our connection (one that
    inherited our plugin from a main process the ``ns.mitogen.preload`` callback
    loaded it in); again is harmless. Nothing is done outside a worker: the
    main process keeps collecting all (our strategies freeze around each fork
    themselves: ``_strategy``). A multiplexer forked from a worker keeps the
    worker's objects frozen: the frames it was forked from hold them for its life.
    """
    worker = sys.modules.get("ansible.executor.process.worker")
    multiprocessing = sys.modules.get("multiprocessing")
    if worker is None or multiprocessing is None:
        return
    if isinstance(multiprocessing.current_process(), getattr(worker, "WorkerProcess", ())):
        import gc

        gc.freeze()


def install(*extra: str) -> None:
    """What every ns.mitogen plugin needs before it imports our modules (idempotent).

    Loads what the connection and action plugins import (the core included) with
    bytecode caching, then installs the ``ActionBase`` seam. ``extra``: more of this
    package's modules to load so (the strategies add ``"_strategy"``, ``ns.mitogen.ssh``
    ``"_ssh"``): the first call's go in its bundle. What only the multiplexer process
    needs is not loaded here (see ``load()``), as every Ansible worker under a built-in
    strategy runs this again.
    """
    global _installed, _installed_by
    if not _installed:
        spare_inherited_objects()
        _import_first(_BASE + extra)
        importlib.import_module(__name__ + "._action").install()
        _installed, _installed_by = True, os.getpid()
    for name in extra:
        load(name)
