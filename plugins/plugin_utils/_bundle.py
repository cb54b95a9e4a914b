# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What loads our modules after ``install()`` found them: from a bundle of code objects (private).

The package's ``__init__.py`` keeps only what finds and reads the bundle; the rest of
what ``install()`` does, ``load()``, ``Lazy`` and ``loader_module()`` (the package's
``load()``, ``lazy()`` and ``loader_module()``) and ``spare_inherited_objects()`` live
here: Ansible's collection loader compiles a package's ``__init__.py`` from source in
every process that loads it (~1.9 ms in every worker for the 12 KB that were there),
while this module comes compiled in the bundle itself. The package runs this module
from the bundle, then ``import_first()``; without a bundle it loads this module with
the standard loader, which falls back to ``_loader``. Never imports Ansible.

The loader: ``install()`` loads our controller modules with the standard
``SourceFileLoader`` rather than Ansible's collection loader. That loader compiles every
collection module from source on every import and caches no bytecode: for the ~6,000
lines behind our strategy and connection plugins that was ~60 ms of compiling in every
``ansible-playbook`` run (on the first task's path) and, under a built-in strategy, in
every worker that loads our connection plugin. Loaded this way, bytecode is cached as
for any Python module, under the usual rules (``__pycache__`` or
``PYTHONPYCACHEPREFIX``; nothing written with ``PYTHONDONTWRITEBYTECODE`` or into a
read-only directory). Module names, ``__file__`` and what the modules do are unchanged.
Where Python keeps no bytecode (``PYTHONDONTWRITEBYTECODE``, a read-only collection),
the loader keeps our code objects in a private per-user cache instead (``_loader``,
which says how and why that respects those settings). ``install()`` loads what the
connection and action plugins need; the strategies add ``_strategy``
(``install("_strategy")``), and what only the multiplexer process runs is loaded when
first needed (``load()``), so that a worker under a built-in strategy imports only the
client side.

The bundle: where the private cache can be used, ``install()`` takes what it loads -
``_BASE`` and what it imports of ours, ~40 code objects - from one file of the cache
(``bundle-<key>``) instead of one lookup, read and unmarshal per module (and one
compile of ``_loader.py``): about half of what loading our connection plugin cost an
Ansible worker. It also holds the package's other modules, compiled, for ``load()``;
each module's code stays marshalled until it is imported. ``install()``'s own modules
are run from it in the order they finished in when it was made, without the import
system (``run_first()``). A module's code is used only
while its file is unchanged since the bundle was made, checked as it is imported:
the source's inode, size, modification and change times (the package's ``stamp()``),
the test ``git`` uses for its index (the change time cannot be set back by a user or
an archive, so a file rewritten with the same size and times is seen as changed); a
changed one is loaded from its source and the bundle made again. A bundle is not
written while a source changed less than 2 seconds ago (a change in the same clock tick
could go unseen); one that is stale, damaged or not the user's own is ignored and made
again. Written and read under the private cache's rules (``_loader``: a 0700 directory
of the user's; entries of the user's, readable by nobody else, written to a temporary
file and renamed).

The finder that does it is on ``sys.meta_path`` only while ``install()`` or ``load()``
imports our modules: Ansible does not let plugins leave import hooks of their own ahead
of its loader.

The collector (the package's ``spare_inherited_objects()``, which ``install()`` runs
first, before this module is loaded): Ansible forks a worker per host and task; it lives
for one task and shares the main process's objects copy-on-write. A collection of the
oldest generation writes into every tracked object it visits (its collector header), so
the kernel copies each page holding one, and it visits all of them: under a built-in
strategy the imports of our plugin trigger such collections in every worker.
``gc.freeze()`` moves every object tracked now into the permanent generation, which
collections skip (it costs a few list splices, touching no object); what the worker
makes from here on is collected as ever, and a cycle among the frozen objects is freed
when the worker exits. Called as ``install()`` runs in a worker (under a built-in
strategy) and as a worker makes our connection (one that inherited our plugin from a
main process the ``ns.mitogen.preload`` callback loaded it in); again is harmless.
Nothing is done outside a worker: the main process keeps collecting all (our strategies
freeze around each fork themselves: ``_strategy``). A multiplexer forked from a worker
keeps the worker's objects frozen: the frames it was forked from hold them for its life.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import marshal
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

Bundled = Dict[str, Tuple[str, memoryview]]  # module name -> (its file, its marshalled code object), as served
_PACKAGE = __name__.rpartition(".")[0]
#: Module name -> (file, stamp, marshalled code) of the bundle in use, and its path.
_BUNDLED: Dict[str, Tuple[str, Any, memoryview]] = {}
_BUNDLE_PATH = [""]
#: The modules the bundle in use says ``install()`` runs, in the order they finished.
_FIRST: List[str] = []
#: Our modules run in this process by our loaders, in the order their bodies finished.
FINISHED: List[str] = []
#: Not run first from a bundle: they load the others, and a worker needs neither.
_NOT_FIRST = (_PACKAGE + "._bundle", _PACKAGE + "._loader")


class BundledLoader(importlib.machinery.SourceFileLoader):
    """The standard loader, handed the module's marshalled code object from the bundle.

    Module names, ``__file__``, ``__spec__`` and tracebacks are as with the standard
    loader (it reads the source for those); only the code object comes from the bundle,
    unmarshalled as the module is executed (a bundle holds modules a worker may never import).
    """

    def __init__(self, fullname: str, path: str, code: memoryview) -> None:
        super().__init__(fullname, path)
        self._code = code

    def get_code(self, fullname: str) -> Any:
        if fullname == self.name:
            return marshal.loads(self._code)
        return super().get_code(fullname)

    def exec_module(self, module: Any) -> None:
        super().exec_module(module)
        FINISHED.append(module.__name__)


def module_spec(fullname: str, path: str, loader: Any) -> importlib.machinery.ModuleSpec:
    """``importlib.util.spec_from_file_location(fullname, path, loader=loader)`` for a module
    (not a package: no ``__init__.py``) at the absolute ``path``, as it makes it but without
    asking the loader whether it is a package (~14 Python calls a module, in every worker)."""
    if path.endswith(os.sep + "__init__.py") or not path.startswith(os.sep) or not path.endswith(".py"):
        return importlib.util.spec_from_file_location(fullname, path, loader=loader)  # type: ignore[return-value]
    spec = importlib.machinery.ModuleSpec(fullname, loader, origin=path)
    spec.has_location = True
    # ``__cached__``, which the import system would work out from the path per module (~20
    # calls): ``cache_from_source`` of a stand-in name once per directory, then the name
    directory, name = path.rsplit(os.sep, 1)  # an absolute path: it holds one
    key = (directory, sys.pycache_prefix)
    template = _CACHED.get(key)
    if template is None:
        template = _CACHED[key] = importlib.util.cache_from_source(directory + os.sep + "\0.py")
    spec.cached = template.replace("\0", name[:-3])
    return spec


#: (directory, sys.pycache_prefix) -> its modules' cache_from_source(), "\0" for a module's name
_CACHED: Dict[Tuple[str, Optional[str]], str] = {}


class BundleFinder:
    """A meta path finder for the modules of our ``packages``: from the bundle while
    their files are unchanged (``fresh``), else as the package's ``_loader`` finds them
    (recorded in ``missed``)."""

    def __init__(self, fresh: Any, packages: Tuple[str, ...], fallback: Any) -> None:
        self._fresh = fresh
        self._packages = packages
        self._fallback = fallback
        self.served: Bundled = {}
        self.missed: List[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname.rpartition(".")[0] not in self._packages:
            return None
        found = self._fresh(fullname)
        if found is not None:
            self.served[fullname] = found
            return module_spec(fullname, found[0], BundledLoader(fullname, *found))
        self.missed.append(fullname)
        return self._fallback().find_spec(fullname)  # type: ignore[no-any-return]


def import_from(package: str, names: Tuple[str, ...], first: bool = False) -> Tuple[Bundled, List[str]]:
    """Import ``package``'s modules ``names`` (and what they import of ours) from the bundle in use
    (``first``: ``install()``'s, after ``run_first()``).

    Returns what the bundle served and the names it lacked or held stale (found as
    ``_loader`` finds them): the caller writes a new bundle when any were.
    """
    packages = (package, package.rpartition(".")[0] + ".module_utils.mitogen")
    finder = BundleFinder(fresh_code, packages, lambda: loader_module().own_finder())
    sys.meta_path.insert(0, finder)
    try:
        if first:
            run_first(finder)
        for name in names:
            importlib.import_module("%s.%s" % (package, name))
    finally:
        sys.meta_path.remove(finder)
    return finder.served, finder.missed


def run_first(finder: BundleFinder) -> None:
    """Run the modules ``install()`` runs (``_FIRST``) from the bundle, as the import system
    would but without it: each after those it imports (the order they finished in when the
    bundle was made), so that none of their imports of ours goes through it (~45 us a module
    in a fresh worker, against ~8 us for this). Stops at a module not in the bundle,
    changed since, or whose body raises (this Ansible's may differ from the one the bundle
    was made under): the imports that follow find the rest, as they would without this.
    """
    for name in _FIRST:
        if name in sys.modules:
            continue
        found = fresh_code(name)
        if found is None:
            return
        parent, child = name.rsplit(".", 1)
        package = sys.modules.get(parent) or importlib.import_module(parent)
        module = importlib.util.module_from_spec(module_spec(name, found[0], BundledLoader(name, *found)))
        sys.modules[name] = module
        try:
            exec(marshal.loads(found[1]), module.__dict__)  # noqa: S102 - our own module's code, as its loader runs it
        except Exception:  # left to the imports that follow: they fail as ever if they need it
            sys.modules.pop(name, None)
            return
        except BaseException:
            sys.modules.pop(name, None)
            raise
        setattr(package, child, module)
        finder.served[name] = found
        FINISHED.append(name)


def fresh_code(name: str) -> Optional[Tuple[str, memoryview]]:
    """Module ``name``'s file and marshalled code from the bundle in use, if its file is unchanged since."""
    entry = _BUNDLED.get(name)
    if entry is None:
        return None
    try:
        fresh = sys.modules[_PACKAGE].stamp(entry[0]) == entry[1]
    except OSError:
        fresh = False
    return (entry[0], entry[2]) if fresh else None


def import_first(
    path: Optional[str], bundled: Optional[Dict[str, Tuple[str, Any, memoryview]]], first: List[str], names: Tuple[str, ...]
) -> None:
    """``install()``'s imports of ``names``: from ``bundled`` (read from ``path``; ``first``: what
    ``run_first()`` runs), else by ``_loader``, then bundled."""
    start = len(FINISHED)
    if path is None or bundled is None:
        loader_module().import_modules(names)
        if path:
            loader_module().write_bundle(path, {}, _ran_first(start))
        return
    _BUNDLED.update(bundled)
    _FIRST[:] = first
    _BUNDLE_PATH[0] = path
    served, missed = import_from(_PACKAGE, names, first=True)
    if missed:  # what the sources import now differs: bundle it too
        loader_module().write_bundle(path, served, _ran_first(start))


def _ran_first(start: int) -> List[str]:
    """What ``install()`` ran since ``FINISHED`` was ``start`` long, for the next bundle's ``run_first()``."""
    return [name for name in FINISHED[start:] if name not in _NOT_FIRST]


def load(name: str) -> Any:
    """The package's ``load()``: its module ``name``, from the bundle in use where there."""
    fullname = "%s.%s" % (_PACKAGE, name)
    module = sys.modules.get(fullname)
    if module is None:
        if fullname in _BUNDLED:
            served, missed = import_from(_PACKAGE, (name,))
            if missed:  # a source changed since: bundle it afresh
                loader_module().write_bundle(_BUNDLE_PATH[0], served, _FIRST)
        else:
            loader_module().import_modules((name,))
        module = sys.modules[fullname]
    return module


class Lazy:
    """The package's ``lazy(name)``: its module ``name``, loaded (``load()``) on first use of an attribute.

    For modules a task seldom runs (become, ``mitogen_via``, failures, transfers): every
    Ansible worker under a built-in strategy imports our connection afresh, and each
    module it need not run costs it its unmarshalling and body. A module that uses one
    imports the real module under ``if TYPE_CHECKING:`` for the type checker.
    """

    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(load(self._lazy_name), attribute)


def loader_module() -> Any:
    """Our ``_loader`` module, itself loaded with the standard loader (from the bundle if there)."""
    name = _PACKAGE + "._loader"
    module = sys.modules.get(name)
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_loader.py")
        found = fresh_code(name)
        loader = BundledLoader(name, path, found[1]) if found is not None else None
        module = sys.modules[_PACKAGE].load_own("_loader", loader)
    return module
