# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils and standard library globals saved before a module run and put back after it (private).

Owns: ``module_utils_state()``, the context manager that resets the per-run
globals of ansible's module_utils and rebinds every module-level name and class
attribute of a loaded module_utils module to its pre-run value,
``stdlib_state()``, which does the same for the loaded standard library (see
``_isolation``'s docstring for what is, and is not, undone), the snapshots it
keeps between runs, and ``restore_names``/``unchanged``, which ``_isolation``
uses for ``builtins`` too.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Tuple

LOG = logging.getLogger("ns.mitogen.runner")

#: names of ansible's and collections' module_utils modules (they stay cached)
MODULE_UTILS_RE = re.compile(r"^(ansible\.module_utils|ansible_collections\.[^.]+\.[^.]+\.plugins\.module_utils)(\.|$)")
_MISSING = object()
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class whose attributes can be set (C types' cannot)


_OURS = __name__.rpartition(".")[0]  # this package: the runner's own state, not a module's


def _is_ours(name: str) -> bool:
    return name == _OURS or name.startswith(_OURS + ".")


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


#: one loaded module_utils module as a run found it: its namespace, and the
#: attributes of each class defined in it (the functional form: _lower refuses the
#: class form, which 3.6 targets could not run)
ModuleSnapshot = NamedTuple(  # noqa: UP014
    "ModuleSnapshot",
    [("module", ModuleType), ("namespace", Dict[str, Any]), ("classes", List[Tuple[type, Dict[str, Any]]])],
)
_Snapshot = List[ModuleSnapshot]


# Snapshots outlive a run: each run ends by restoring its modules to them, so a module
# still in sys.modules is in its snapshot's state when the next run starts; only
# modules new since then are copied (the copy was a third of a short module's run).
class _Snapshots:
    """The snapshots of one kind of module (module_utils; the standard library)."""

    def __init__(self, matches: Callable[[str, ModuleType], bool]) -> None:
        self.matches = matches
        self.entries: Dict[str, ModuleSnapshot] = {}
        self.matched: Dict[str, bool] = {}
        self.last: List[Any] = [None, None]  # sys.modules as it was, and the snapshot made of it

    def take(self) -> "_Taken":
        """The loaded modules' snapshots (the last ones again if ``sys.modules`` is the
        same table: compared in C, modules by identity)."""
        table, last = self.last
        try:
            if last is not None and sys.modules == table:
                return last  # type: ignore[no-any-return]
        except Exception:  # something not a module in sys.modules, with an __eq__ that raises
            pass
        snapshot = self._of(sys.modules.copy())
        taken = _Taken(snapshot)
        self.last[:] = [sys.modules.copy(), taken]
        return taken

    def _of(self, table: Dict[str, Any]) -> _Snapshot:
        snapshot: _Snapshot = []
        for name, module in table.items():
            entry = self.entries.get(name)
            if entry is not None and entry.module is module:
                snapshot.append(entry)
                continue
            if not isinstance(module, ModuleType):
                continue
            matches = self.matched.get(name)
            if matches is None:
                matches = self.matched[name] = not _is_ours(name) and self.matches(name, module)
            if not matches:
                continue
            namespace = dict(module.__dict__)
            classes = [
                (value, dict(vars(value)))
                for value in namespace.values()
                if isinstance(value, type) and getattr(value, "__module__", None) == name and value.__flags__ & _HEAPTYPE
            ]
            entry = self.entries[name] = ModuleSnapshot(module, namespace, classes)
            snapshot.append(entry)
        return snapshot


_MODULE_UTILS = _Snapshots(lambda name, module: bool(MODULE_UTILS_RE.match(name)))

#: standard library modules left alone: the interpreter's own machinery (import
#: system, ``sys``, ``builtins``: restored apart), packages that gain submodules
#: as codecs load, ``warnings`` (whose filters ``catch_warnings`` puts back) and
#: ``abc`` (its invalidation counter only grows: putting it back could leave a
#: class's negative subclass cache stale)
_STDLIB_EXCLUDED = re.compile(
    r"^(sys|builtins|__main__|_?imp|importlib|_frozen_importlib(_external)?|zipimport|encodings|_?warnings|_?abc|_py_abc)"
    r"(\.|$)"
)


def _stdlib_dirs() -> List[str]:
    import sysconfig

    found = set()
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            found.add(os.path.realpath(path) + os.sep)
    return sorted(found)


_STDLIB_DIRS: List[str] = []


def _is_stdlib(name: str, module: ModuleType) -> bool:
    """True for a module of the standard library (built in, frozen, or below its directory)."""
    if _STDLIB_EXCLUDED.match(name):
        return False
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if origin in ("built-in", "frozen"):
        return True
    if not isinstance(origin, str) or not os.path.isabs(origin):  # ours ("master:..."): and the cwd may be gone
        return False
    if not _STDLIB_DIRS:
        _STDLIB_DIRS.extend(_stdlib_dirs())
    path = os.path.realpath(origin)
    return any(
        path.startswith(d) and "site-packages" not in path[len(d) :] and "dist-packages" not in path[len(d) :]
        for d in _STDLIB_DIRS
    )


_STDLIB = _Snapshots(_is_stdlib)


def unchanged(now: Any, saved: Dict[str, Any]) -> bool:
    """No name added, removed, or bound to a value unequal to the saved one.

    Dict equality, in C, short-cuts on identity: an untouched namespace costs a
    lookup per name, no comparison (a third of the time of comparing identities in
    Python: ~0.2 ms per run less for basic's ~50 modules and ~90 classes). A name
    rebound to an *equal* object (a copy) passes; one whose value cannot be
    compared counts as changed, and is restored.
    """
    try:
        return bool(now == saved)
    except Exception:  # an __eq__ that raises or answers something without a truth value
        return False


def restore_names(
    owner: str, now: Any, saved: Dict[str, Any], set_: Callable[[str, Any], None], del_: Callable[[str], None]
) -> List[str]:
    restored = []
    for key in [k for k in now if k not in saved and not _is_dunder(k)]:
        if isinstance(now[key], ModuleType):
            # A submodule imported meanwhile stays, and is part of the saved state from
            # now on (else every later run would find its package changed: the slow path).
            saved[key] = now[key]
            continue
        with contextlib.suppress(AttributeError, TypeError, KeyError):
            del_(key)
            restored.append("%s.%s" % (owner, key))
    for key, value in saved.items():
        if not _is_dunder(key) and now.get(key, _MISSING) is not value:
            with contextlib.suppress(AttributeError, TypeError):
                set_(key, value)
                restored.append("%s.%s" % (owner, key))
    # Dunder names are not put back (six's importer sets collections.abc.__spec__, a
    # warning adds __warningregistry__): what they are now is the saved state from now
    # on, as for a new submodule, so that the next run finds the namespace unchanged.
    for key in [k for k in now if _is_dunder(k) and now[k] is not saved.get(k, _MISSING)]:
        saved[key] = now[key]
    for key in [k for k in saved if _is_dunder(k) and k not in now]:
        del saved[key]
    return restored


class _Taken:
    """The snapshots of one run's start, with the namespaces they are of side by side.

    ``live`` holds each module's ``__dict__`` and a read-only view of each class's
    (the objects themselves: they change as the module or class does), ``saved``
    the snapshot's copy at the same index. When nothing changed (most runs),
    ``live == saved`` says so in one comparison done in C, instead of one
    ``unchanged()`` call per module and class (~800 for the standard library).
    """

    __slots__ = ("snapshot", "live", "saved")

    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot
        self.live: List[Any] = []
        self.saved: List[Dict[str, Any]] = []
        for module, namespace, classes in snapshot:
            self.live.append(module.__dict__)
            self.saved.append(namespace)
            for cls, attrs in classes:
                self.live.append(vars(cls))
                self.saved.append(attrs)


def _restore(taken: _Taken) -> List[str]:
    """Undo rebinding in ``taken``'s modules and classes; the names restored."""
    try:
        if taken.live == taken.saved:  # element by element, in C (see ``unchanged``)
            return []
    except Exception:  # an __eq__ that raises: module by module below
        pass
    restored: List[str] = []
    for module, namespace, classes in taken.snapshot:
        current = module.__dict__
        if not unchanged(current, namespace):
            restored += restore_names(module.__name__, current, namespace, current.__setitem__, current.__delitem__)
        for cls, attrs in classes:
            now = vars(cls)
            if not unchanged(now, attrs):
                owner = "%s.%s" % (module.__name__, cls.__name__)
                restored += restore_names(owner, now, attrs, functools.partial(setattr, cls), functools.partial(delattr, cls))
    return restored


def _reset_run_globals() -> None:
    """The per-run globals ansible's module_utils keep (a fresh process has them empty)."""
    basic = sys.modules.get("ansible.module_utils.basic")
    for attr in ("_ANSIBLE_ARGS", "_ANSIBLE_PROFILE", "_PARSED_MODULE_ARGS"):
        if basic is not None and hasattr(basic, attr):
            setattr(basic, attr, None)
    store = sys.modules.get("ansible.module_utils.common.warnings")
    for attr in ("_global_warnings", "_global_deprecations"):
        value = getattr(store, attr, None)
        if isinstance(value, (dict, list, set)):
            value.clear()
    tracebacks = sys.modules.get("ansible.module_utils._internal._traceback")
    if tracebacks is not None and hasattr(tracebacks, "_module_tracebacks_enabled_events"):
        setattr(tracebacks, "_module_tracebacks_enabled_events", None)  # noqa: B010 - a lazily computed cache


@contextlib.contextmanager
def module_utils_state() -> Iterator[None]:
    snapshot = _MODULE_UTILS.take()
    _reset_run_globals()
    try:
        yield
    finally:
        # The per-run globals first: the runner itself sets them in every run, and
        # snapshots hold them reset, so only what the module changed is left to undo.
        _reset_run_globals()
        restored = _restore(snapshot)
        if restored:
            LOG.debug("module_utils names a module changed, restored: %s", ", ".join(sorted(restored)))


@contextlib.contextmanager
def stdlib_state() -> Iterator[None]:
    """Module-level names and class attributes of the loaded standard library put back after the run.

    So a module replacing ``subprocess.Popen``, ``os.path.exists`` or
    ``socket.socket.connect`` leaves nothing behind. Lazily filled caches a module
    rebinds (``platform._uname_cache``) are reset as well: later runs fill them again,
    as a fresh process would.
    """
    snapshot = _STDLIB.take()
    try:
        yield
    finally:
        restored = _restore(snapshot)
        if restored:
            LOG.debug("standard library names a module changed, restored: %s", ", ".join(sorted(restored)))
