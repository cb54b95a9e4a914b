# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Putting process state back after a module run (private).

Owns: one context manager per kind of process state a module may change, which
``_runner`` enters around each run (file descriptors, the standard library's
names, working directory, environment, umask, C locale, ``sys`` and interpreter
settings, ``warnings`` filters, loggers, signal handlers, the ``sys.modules`` table), and the interface ``_runner`` uses
(``__all__``: ``run_state(run)``, the managers to enter; ``module_utils_state()``;
``leaves_with_run()``; ``SetupError``, ``OsExit`` and the real ``os._exit`` and
``atexit.register``). A run is anything with the attributes of
``_shapes.RunLike``. Three concerns live apart: the hooks that stand in for
``signal``, ``atexit``, ``os._exit`` and ``Popen`` while a run is active
(``_hooks``, re-exported here), the module_utils and standard library globals
(``_snapshots``), and loggers and file descriptors (``_leftovers``). Each
manager saves its state on entry and restores it on exit, whatever the module
did. One that cannot set up raises ``SetupError``: the module does not run, and
the message is the run's stderr, rc 1.

Isolated (each run starts from, and the interpreter returns to, the same state):
- working directory, ``os.environ`` (the start-up environment plus ``env``; the
  object itself too; ``time.tzset()`` when ``TZ`` changes), umask, the C locale
  (``AnsibleModule`` calls ``setlocale``);
- ``sys.argv`` (``[<module file>]``), ``sys.path`` ('' and '.' stripped, as
  AnsiballZ does), ``sys.meta_path``, ``sys.path_hooks`` (except a hook that a
  module first imported during the run installs and that module stays cached:
  six's ``six.moves`` finder belongs to the process), new
  ``sys.path_importer_cache`` entries, ``sys.excepthook``/``displayhook``/
  ``unraisablehook``/``breakpointhook``, ``threading.excepthook``, recursion limit,
  switch interval, ``sys.dont_write_bytecode``, this thread's trace/profile hooks,
  names in ``builtins`` (``gettext.install()`` adds ``_``);
- ``warnings`` filters and ``showwarning``; logging: during the run the root logger
  is as in a fresh process (no handlers, ``WARNING``; this interpreter's own records
  go to the controller through the ``ns.mitogen`` logger meanwhile), and after it
  every logger's handlers, level, filters, ``propagate``, ``disabled`` and
  ``logging.disable`` are put back (handlers the run added are closed);
- the standard library (``_snapshots.stdlib_state``): every module-level name and
  class attribute of a stdlib module loaded before the run is rebound to its
  pre-run value (``subprocess.Popen = ...``, ``subprocess.Popen.communicate = ...``,
  ``os.path.exists = ...``), and ``os.environ``'s own attributes
  (``os.environ.get = ...``); except the import system, ``sys``/``builtins`` (above),
  ``encodings`` and ``warnings``;
- file descriptors the run left open (``_leftovers.file_descriptors``): closed, by a garbage
  collection for Python objects nothing refers to, by number for files and
  directories no Python object holds; left open (logged at debug): those a live
  object holds (a library that stays cached) and sockets, pipes and other kinds
  without an owner (a C library's connection, e.g. libnss_sss's);
- threads: a thread the run started that is still running after it (a daemon
  thread, or a non-daemon one after ``_runner.THREAD_JOIN_TIMEOUT``) cannot be
  stopped: the interpreter is *retired* instead. The reply says why (``retire``),
  and the controller replaces the interpreter (and those stacked on it) before the
  next task. A library that starts a thread when first imported thus costs each new
  interpreter one replacement;
- ``atexit``: handlers registered during the run are kept apart and ``_runner`` runs
  them at its end (after non-daemon threads it started are joined, as at interpreter
  exit), then drops them; the interpreter's own handlers are untouched. A handler a library module
  registers from its top-level code while first imported (``multiprocessing.util``)
  goes to the real ``atexit`` if that module stays cached: it belongs to the process;
- ``os._exit`` called by the module's thread ends the run (rc = status, atexit
  handlers skipped, as for a real ``os._exit``) instead of the interpreter;
- ``subprocess.Popen`` (not isolation, speed): the umask-only ``preexec_fn`` that
  ``AnsibleModule.run_command`` passes (ansible-core 2.17+; recognised by its code)
  is done by Popen's own ``umask`` argument instead, so CPython starts the child
  with vfork() rather than fork() of this whole interpreter; the child is the same;
- signal handlers: runs happen on a call-pool thread where CPython refuses
  ``signal.signal``; a handler the module installs is recorded for the run
  (``signal.getsignal`` returns it) and dropped after, and never fires. So that a
  timeout cannot kill the interpreter with SIGALRM's default action,
  ``signal.alarm``/``setitimer`` with a non-zero time raise ``RuntimeError`` on
  that thread. (Were a run ever on the main thread, handlers are real and restored);
- ``sys.modules``: entries present before are restored if replaced or removed. Of
  those added, kept: ``ansible.module_utils``/collection ``module_utils`` trees and
  anything from the target's own ``sys.path`` (stdlib, site packages: re-importing C
  extensions is unsafe, and cached module_utils hold references to them). Dropped:
  the module itself, anything under ``ansible.modules``/``ansible.legacy``/collection
  ``plugins.modules`` (empty parent packages made for the run included; those also
  above cached module_utils, like ``ansible_collections``, stay), entries without a
  ``__spec__`` (put there by hand) and modules loaded from ``sys.path`` entries the
  module added;
- module_utils globals: ``basic._ANSIBLE_ARGS/_ANSIBLE_PROFILE/_PARSED_MODULE_ARGS``,
  the warning/deprecation stores of ``common.warnings`` and the traceback setting
  cached by ``_internal._traceback`` are reset; besides, every module-level name and
  every attribute of a class defined in a module_utils module that was loaded before
  the run is rebound to its pre-run value (monkey-patches do not stack up), unless
  it was rebound to an equal object (a copy of a constant).

Not isolated (cannot be, in one process):
- child processes the module leaves;
- state inside modules that stay cached: in-place mutation of module_utils or
  stdlib containers, ``functools.lru_cache`` contents, globals of a module first
  imported *during* a run (its post-run state is what later runs see), state held
  in C (``socket.setdefaulttimeout``, ``codecs`` registrations, ``threading`` locks
  held, ``warnings`` "once" registries, ``syslog.openlog`` identity...) and any
  state of site-packages modules;
- C-level process state: ``os.putenv``/``setenv`` from C code behind ``os.environ``'s
  back, resource limits, uid/gid changes, ``os.setsid``, the file descriptors
  named above and mmaps the module leaks, memory fragmentation, ``sys.addaudithook`` hooks
  (permanent by design), ``faulthandler``, ``os.register_at_fork`` callbacks;
- ``os._exit`` from another thread of the module, ``os.kill(os.getpid(), ...)``, a
  segfault: they end the interpreter (the controller starts a new one);
- output written to ``sys.stdout`` by unrelated threads of this interpreter during a
  run lands in the run's stdout;
- environment variables read at interpreter start-up (``PYTHONPATH``,
  ``PYTHONIOENCODING``, ``PYTHONWARNINGS``...) set through ``env`` have no effect;
- ``respawn_module`` (dnf/apt on a Python without their bindings) cannot work: there
  is no module library on disk for the new interpreter (``_modlib_path``);
- AnsiballZ extensions (debugpy, coverage) and ``PYTHON_MODULE_RLIMIT_NOFILE`` are
  not applied.
"""

from __future__ import annotations

import builtins
import contextlib
import locale
import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, ContextManager, Dict, Iterator, List, Optional, Set, Tuple

from . import _target
from ._hooks import OsExit, real_atexit_register, real_getsignal, real_os_exit, real_signal, run_hooks
from ._leftovers import file_descriptors, loggers
from ._snapshots import MODULE_UTILS_RE, module_utils_state, restore_names, stdlib_state, unchanged
from ._state import STATE

if TYPE_CHECKING:  # annotations only
    from ._shapes import RunLike

#: The interface ``_runner`` uses (the rest is this module's own).
__all__ = [
    "SetupError",
    "OsExit",
    "run_state",
    "module_utils_state",
    "leaves_with_run",
    "real_os_exit",
    "real_atexit_register",
]

LOG = logging.getLogger("ns.mitogen.runner")

MODULE_TREE_RE = re.compile(r"^(ansible\.(modules|legacy)|ansible_collections\.[^.]+\.[^.]+\.plugins\.modules)(\.|$)")


class SetupError(Exception):
    """The run could not start (reported as the run's stderr, rc 1)."""


def run_state(run: "RunLike") -> List[ContextManager[None]]:
    """The context managers that isolate ``run``, in the order to enter them.

    Enter each (an ``ExitStack``); leaving them puts the process state back. Entering
    one may raise ``SetupError``: the module must not run then (those entered
    already are left as usual). ``module_utils_state()`` is entered apart, once
    ``ansible.module_utils.basic`` is imported.
    """
    return [
        file_descriptors(),
        stdlib_state(),
        _working_directory(run.cwd),
        _environment(run.env),
        _umask(),
        _c_locale(),
        _interpreter_state(run.filename),
        _warning_filters(),
        loggers(),
        _signal_handlers(),
        _module_table(run),
        run_hooks(run),
    ]


def leaves_with_run(run: "RunLike", name: str, module: Any) -> bool:
    """True if ``sys.modules[name]``, new since ``run`` started, goes at its end."""
    if name in run.modules_before or MODULE_UTILS_RE.match(name):
        return False
    if name == run.name or MODULE_TREE_RE.match(name) or getattr(module, "__spec__", None) is None:
        return True  # the module, its kind, or put there by hand rather than imported
    new_paths = [os.path.abspath(p) for p in sys.path if isinstance(p, str) and p and p not in run.paths_before]
    return bool(new_paths) and origin_under(module, new_paths)


# -- one concern each --------------------------------------------------------
def _open_dir_handle() -> Optional[int]:
    flags = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(".", flags)
    except OSError:
        return None


def _getcwd() -> Optional[str]:
    try:
        return os.getcwd()
    except OSError:
        return None


@contextlib.contextmanager
def _working_directory(cwd: Optional[str]) -> Iterator[None]:
    """Run in ``cwd`` (default: the start directory); come back to where we were.

    A ``cwd`` this process may not enter (the playbook's directory, for a become
    user of the local connection) is left for the home directory or ``/``: under
    vanilla the module starts there all the same and ``AnsibleModule`` moves on to
    a directory it can read. Any other failure to enter ``cwd`` fails the run.
    """
    before, handle = _getcwd(), _open_dir_handle()
    try:
        target = cwd or _target.start_dir()
        if target and target != before:
            try:
                os.chdir(target)
            except OSError as exc:
                if cwd and not isinstance(exc, PermissionError):
                    raise SetupError("ns.mitogen: cannot change to directory %r: %s" % (cwd, exc.strerror))
                # As AnsiballZ does when the directory is unusable (e.g. after become).
                for fallback in (os.path.expanduser("~"), "/"):
                    with contextlib.suppress(OSError):
                        os.chdir(fallback)
                        break
        yield
    finally:
        if _getcwd() != before or before is None:
            try:
                if handle is None:
                    raise OSError("no handle")
                os.fchdir(handle)
            except OSError:
                if before is not None:
                    with contextlib.suppress(OSError):
                        os.chdir(before)
        if handle is not None:
            os.close(handle)


def _set_environ(wanted: Dict[str, str]) -> None:
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextlib.contextmanager
def _environment(extra: Dict[str, Any]) -> Iterator[None]:
    """The start-up environment plus ``extra`` for the run; then what was there."""
    environ = os.environ
    saved = dict(environ)
    saved_attrs = dict(vars(environ))  # os.environ.get = ...: the instance's own attributes
    wanted = dict(STATE.start_env or saved)
    wanted.update((str(k), str(v)) for k, v in extra.items())
    _set_environ(wanted)
    if wanted.get("TZ") != saved.get("TZ"):
        time.tzset()  # a fresh process reads TZ at start
    try:
        yield
    finally:
        changed_tz = os.environ.get("TZ") != saved.get("TZ")
        os.environ = environ  # noqa: B003 - the object itself, should the module have rebound it
        if not unchanged(vars(environ), saved_attrs):
            vars(environ).clear()
            vars(environ).update(saved_attrs)
        _set_environ(saved)
        if changed_tz:
            time.tzset()


@contextlib.contextmanager
def _umask() -> Iterator[None]:
    saved = os.umask(0o022)
    os.umask(saved)
    try:
        yield
    finally:
        os.umask(saved)


@contextlib.contextmanager
def _c_locale() -> Iterator[None]:
    """``AnsibleModule._check_locale`` calls ``setlocale(LC_ALL, '')``: undo it."""
    try:
        saved: Optional[str] = locale.setlocale(locale.LC_ALL)
    except locale.Error:
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(locale.Error, ValueError):
                if locale.setlocale(locale.LC_ALL) != saved:
                    locale.setlocale(locale.LC_ALL, saved)


_SYS_HOOKS = ("excepthook", "displayhook", "unraisablehook", "breakpointhook")


@contextlib.contextmanager
def _interpreter_state(filename: str) -> Iterator[None]:
    """``sys`` settings a module may change: argv, import paths, hooks, limits."""
    saved_lists = [(attr, getattr(sys, attr), list(getattr(sys, attr))) for attr in ("path", "meta_path", "path_hooks")]
    modules_at_entry = set(sys.modules)
    saved_argv = sys.argv
    saved_cache = set(sys.path_importer_cache)
    saved_hooks = [(attr, getattr(sys, attr)) for attr in _SYS_HOOKS if hasattr(sys, attr)]
    saved_thread_hook = getattr(threading, "excepthook", None)
    saved_limits = (sys.getrecursionlimit(), sys.getswitchinterval(), sys.dont_write_bytecode)
    saved_trace, saved_profile = sys.gettrace(), sys.getprofile()
    saved_builtins = dict(builtins.__dict__)
    sys.argv = [filename]
    # As AnsiballZ: the current directory is not an import source.
    sys.path = [p for p in sys.path if p not in ("", ".")]
    try:
        yield
    finally:
        hooks: List[Tuple[Any, Any, Any]] = [
            (sys.gettrace, sys.settrace, saved_trace),
            (sys.getprofile, sys.setprofile, saved_profile),
        ]
        for get, set_, saved_hook in hooks:
            if get() is not saved_hook:
                try:
                    set_(saved_hook)
                except TypeError:  # a C-level profiler object (cProfile) cannot be put back from Python
                    LOG.debug("cannot restore %r with %s", saved_hook, set_.__name__)
        if not unchanged(builtins.__dict__, saved_builtins):  # gettext.install() sets builtins._
            restore_names(
                "builtins", builtins.__dict__, saved_builtins, builtins.__dict__.__setitem__, builtins.__dict__.__delitem__
            )
        sys.setrecursionlimit(saved_limits[0])
        sys.setswitchinterval(saved_limits[1])
        sys.dont_write_bytecode = saved_limits[2]
        if saved_thread_hook is not None:
            threading.excepthook = saved_thread_hook
        for attr, value in saved_hooks:
            setattr(sys, attr, value)
        for key in [k for k in sys.path_importer_cache if k not in saved_cache]:
            sys.path_importer_cache.pop(key, None)
        for attr, obj, items in saved_lists:
            if attr != "path":
                items = items + _library_hooks(getattr(sys, attr), items, modules_at_entry)
            obj[:] = items
            setattr(sys, attr, obj)
        sys.argv = saved_argv


def _library_hooks(now: List[Any], saved: List[Any], modules_at_entry: Set[str]) -> List[Any]:
    """Import hooks added during a run that belong to the process, not to the run.

    A module first imported during the run that stays cached may have installed a
    hook from its top-level code (``six`` appends the finder of ``six.moves``); it
    will not run that code again, so dropping the hook would break the next run's
    ``import six.moves.x``. Hooks installed by anything else are the run's.
    """
    kept = []
    for hook in now:
        if any(hook is s for s in saved):
            continue
        owner = getattr(hook, "__module__", None)
        if isinstance(owner, str) and owner not in modules_at_entry and owner in sys.modules:
            kept.append(hook)
    return kept


@contextlib.contextmanager
def _warning_filters() -> Iterator[None]:
    with warnings.catch_warnings():
        yield


@contextlib.contextmanager
def _signal_handlers() -> Iterator[None]:
    """Real handlers back as they were (only changeable if a run is on the main thread)."""
    main = threading.current_thread() is threading.main_thread()
    saved = {}
    if main:
        # Python 3.6 and 3.7 have no valid_signals() (3.8); getsignal() refuses what is not one
        for signum in signal.valid_signals() if hasattr(signal, "valid_signals") else range(1, signal.NSIG):
            with contextlib.suppress(OSError, ValueError):
                saved[signum] = real_getsignal(signum)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None and real_getsignal(signum) is not handler:
                with contextlib.suppress(OSError, ValueError, TypeError):
                    real_signal(signum, handler)


def origin_under(module: Any, paths: List[str]) -> bool:
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str):
        return False
    filename = os.path.abspath(filename)
    return any(filename == p or filename.startswith(p.rstrip(os.sep) + os.sep) for p in paths)


@contextlib.contextmanager
def _module_table(run: "RunLike") -> Iterator[None]:
    """``sys.modules`` after the run: see the module docstring for what stays."""
    before = run.modules_before = dict(sys.modules)
    run.paths_before = set(p for p in sys.path if isinstance(p, str))
    try:
        yield
    finally:
        for name in [n for n in list(sys.modules) if n not in before]:
            module = sys.modules.get(name)
            if leaves_with_run(run, name, module):
                sys.modules.pop(name, None)
                parent, _unused, leaf = name.rpartition(".")
                parent_module = sys.modules.get(parent)
                if parent_module is not None and getattr(parent_module, leaf, None) is module:
                    with contextlib.suppress(AttributeError, TypeError):
                        delattr(parent_module, leaf)
        try:
            unchanged = sys.modules == before  # modules compare by identity: exact, and in C
        except Exception:  # something not a module in there, with an __eq__ that raises
            unchanged = False
        if not unchanged:
            for name, module in before.items():
                if sys.modules.get(name) is not module:
                    sys.modules[name] = module
