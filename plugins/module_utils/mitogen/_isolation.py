# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Putting process state back after a module run (private).

Owns: one context manager per kind of process state a module may change, which
``_runner._Run`` enters around each run (working directory, environment, umask, C
locale, ``sys`` and interpreter settings, ``warnings`` filters, the root logger,
signal handlers, the ``sys.modules`` table, module_utils globals); and the hooks
that stand in for ``signal``, ``atexit`` and ``os._exit`` functions while a run is
active (``_run_hooks``). Each manager saves its state on entry and restores it on
exit, whatever the module did. One that cannot set up raises ``_SetupError``: the
module does not run, and the message is the run's stderr, rc 1.

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
- ``warnings`` filters and ``showwarning``; the root logger's handlers and level,
  ``logging.disable``;
- ``atexit``: handlers registered during the run are kept apart and ``_Run`` runs
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
- threads the module leaves running (daemon threads, or non-daemon ones still alive
  ``_runner.THREAD_JOIN_TIMEOUT`` seconds after it exits) and child processes it leaves;
- state inside modules that stay cached: in-place mutation of module_utils
  containers, ``functools.lru_cache`` contents, globals of a module_utils module
  first imported *during* a run (its post-run state is what later runs see), and any
  state of stdlib/site-packages modules (``socket.setdefaulttimeout``, ``codecs``
  registrations, ``logging`` loggers other than root, ``threading`` locks held,
  ``warnings`` "once" registries, ``syslog.openlog`` identity...);
- C-level process state: ``os.putenv``/``setenv`` from C code behind ``os.environ``'s
  back, resource limits, uid/gid changes, ``os.setsid``, open file descriptors and
  mmaps the module leaks, memory fragmentation, ``sys.addaudithook`` hooks
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

import atexit
import builtins
import contextlib
import functools
import locale
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from . import _target
from ._state import STATE

if TYPE_CHECKING:  # annotations only: _runner imports this module
    from ._runner import _Run

LOG = logging.getLogger("ns.mitogen.runner")

_MODULE_UTILS_RE = re.compile(r"^(ansible\.module_utils|ansible_collections\.[^.]+\.[^.]+\.plugins\.module_utils)(\.|$)")
_MODULE_TREE_RE = re.compile(r"^(ansible\.(modules|legacy)|ansible_collections\.[^.]+\.[^.]+\.plugins\.modules)(\.|$)")
_MISSING = object()
_ACTIVE: Optional["_Run"] = None  # the run in progress, for the hooks below

# The real functions the run-time hooks stand in for.
_real_signal = signal.signal
_real_getsignal = signal.getsignal
_real_alarm = getattr(signal, "alarm", None)
_real_setitimer = getattr(signal, "setitimer", None)
_real_atexit_register = atexit.register
_real_atexit_unregister = atexit.unregister
_real_os_exit = os._exit
_real_popen_init = subprocess.Popen.__init__


# -- one concern each --------------------------------------------------------
class _SetupError(Exception):
    """The run could not start (reported as the run's stderr, rc 1)."""


class _OsExit(BaseException):
    """``os._exit(status)`` called by the module's thread."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


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
                    raise _SetupError("ns.mitogen: cannot change to directory %r: %s" % (cwd, exc.strerror))
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
        if not _unchanged(builtins.__dict__, saved_builtins):  # gettext.install() sets builtins._
            _restore_names(
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
def _root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, disabled = list(root.handlers), root.level, logging.root.manager.disable
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            with contextlib.suppress(Exception):
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        if logging.root.manager.disable != disabled:
            logging.disable(disabled)


@contextlib.contextmanager
def _signal_handlers() -> Iterator[None]:
    """Real handlers back as they were (only changeable if a run is on the main thread)."""
    main = threading.current_thread() is threading.main_thread()
    saved = {}
    if main:
        # Python 3.6 and 3.7 have no valid_signals() (3.8); getsignal() refuses what is not one
        for signum in signal.valid_signals() if hasattr(signal, "valid_signals") else range(1, signal.NSIG):
            with contextlib.suppress(OSError, ValueError):
                saved[signum] = _real_getsignal(signum)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None and _real_getsignal(signum) is not handler:
                with contextlib.suppress(OSError, ValueError, TypeError):
                    _real_signal(signum, handler)


def _on_module_thread() -> Optional["_Run"]:
    """The active run if the caller is its module thread (not a fork, not a helper)."""
    run = _ACTIVE
    if run is not None and run.pid == os.getpid() and run.thread == threading.get_ident():
        return run
    return None


def _virtual_signals() -> Optional["_Run"]:
    run = _on_module_thread()
    if run is not None and threading.current_thread() is not threading.main_thread():
        return run
    return None


def _signal_hook(signalnum: int, handler: Any) -> Any:
    run = _virtual_signals()
    if run is None:
        return _real_signal(signalnum, handler)
    previous = _getsignal_hook(signalnum)  # ValueError for an invalid signal, as the real one
    if not (callable(handler) or handler in (signal.SIG_IGN, signal.SIG_DFL)):
        raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
    if signalnum in (signal.SIGKILL, signal.SIGSTOP):
        raise OSError(22, "Invalid argument")
    run.signals[signalnum] = handler
    return previous


def _getsignal_hook(signalnum: int) -> Any:
    run = _virtual_signals()
    if run is not None and signalnum in run.signals:
        return run.signals[signalnum]
    return _real_getsignal(signalnum)


_NO_TIMERS = (
    "ns.mitogen: %s() cannot be used by a module running in a persistent interpreter "
    "(its signal handler cannot be installed from the thread modules run on); "
    "run the task with mitogen_task_isolation=fork"
)


def _alarm_hook(seconds: int) -> int:
    if seconds and _virtual_signals() is not None:
        raise RuntimeError(_NO_TIMERS % "signal.alarm")
    if _real_alarm is None:  # the hook is installed only where signal.alarm exists
        raise RuntimeError("signal.alarm is not available here")
    return int(_real_alarm(seconds))


def _setitimer_hook(which: int, seconds: float, interval: float = 0.0) -> Any:
    if seconds and _virtual_signals() is not None:
        raise RuntimeError(_NO_TIMERS % "signal.setitimer")
    if _real_setitimer is None:  # the hook is installed only where signal.setitimer exists
        raise RuntimeError("signal.setitimer is not available here")
    return _real_setitimer(which, seconds, interval)


def _importing_module(frame: Any) -> Optional[str]:
    """The module whose top-level code ``frame`` runs (an import), or None."""
    if frame is None or frame.f_code.co_name != "<module>":
        return None
    name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) and name != "__main__" else None


def _atexit_register_hook(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    run = _ACTIVE
    if run is None:
        return _real_atexit_register(func, *args, **kwargs)
    getframe = getattr(sys, "_getframe", None)
    importer = _importing_module(getframe(1)) if getframe is not None else None
    run.exit_handlers.append((func, args, kwargs, importer))
    return func


def _atexit_unregister_hook(func: Callable[..., Any]) -> None:
    run = _ACTIVE
    if run is not None:
        run.exit_handlers[:] = [h for h in run.exit_handlers if h[0] != func]
    _real_atexit_unregister(func)


def _os_exit_hook(status: int) -> None:
    if _on_module_thread() is not None:
        raise _OsExit(status)
    _real_os_exit(status)


# -- run_command's children without fork() ----------------------------------------------
def _reference_preexec(umask: Any) -> Callable[[], None]:
    """The ``preexec_fn`` ansible's ``AnsibleModule.run_command`` passes, word for word."""

    def preexec():  # type: ignore[no-untyped-def] # an annotation would not change its code; kept bare as ansible's
        if umask:
            os.umask(umask)

    return preexec


_PREEXEC_CODE = _reference_preexec(0).__code__
_PREEXEC_SEEN: Set[Any] = set()  # code objects found to be ansible's preexec
_POPEN_HAS_UMASK = sys.version_info >= (3, 9)


def _is_ansible_preexec(func: Any) -> bool:
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    if code not in _PREEXEC_SEEN:
        ref = _PREEXEC_CODE
        if (code.co_code, code.co_names, code.co_consts, code.co_freevars, code.co_argcount) != (
            ref.co_code,
            ref.co_names,
            ref.co_consts,
            ref.co_freevars,
            ref.co_argcount,
        ):
            return False
        _PREEXEC_SEEN.add(code)
    return getattr(func, "__globals__", {}).get("os") is os and len(func.__closure__ or ()) == 1


def _spawn_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``kwargs`` with run_command's umask-only ``preexec_fn`` done by Popen itself.

    A ``preexec_fn`` makes CPython fork() the whole interpreter and run Python in the
    child (a persistent interpreter is big: ~2 ms per command); without one it uses
    vfork() (3.10+). The child does exactly the same: sets the umask if one was
    given, then execs. Anything else (another function, a umask Popen cannot set
    here) is left as it was.
    """
    func = kwargs.get("preexec_fn")
    if func is None or "umask" in kwargs or not _is_ansible_preexec(func):
        return kwargs
    umask = func.__closure__[0].cell_contents
    spawn = dict(kwargs)
    del spawn["preexec_fn"]
    if not umask:
        return spawn
    if _POPEN_HAS_UMASK and isinstance(umask, int) and umask > 0:
        spawn["umask"] = umask
        return spawn
    return kwargs


def _popen_init_hook(self: Any, *args: Any, **kwargs: Any) -> None:
    _real_popen_init(self, *args, **_spawn_kwargs(kwargs))


@contextlib.contextmanager
def _run_hooks(run: "_Run") -> Iterator[None]:
    """Mark ``run`` active and put the hooks above in place for its duration."""
    global _ACTIVE
    patches: List[Tuple[Any, str, Any]] = [
        (signal, "signal", _signal_hook),
        (signal, "getsignal", _getsignal_hook),
        (atexit, "register", _atexit_register_hook),
        (atexit, "unregister", _atexit_unregister_hook),
        (os, "_exit", _os_exit_hook),
        (subprocess.Popen, "__init__", _popen_init_hook),
    ]
    if _real_alarm is not None:
        patches.append((signal, "alarm", _alarm_hook))
    if _real_setitimer is not None:
        patches.append((signal, "setitimer", _setitimer_hook))
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _unused in patches]
    _ACTIVE = run
    for obj, attr, hook in patches:
        setattr(obj, attr, hook)
    try:
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
        _ACTIVE = None


def _origin_under(module: Any, paths: List[str]) -> bool:
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str):
        return False
    filename = os.path.abspath(filename)
    return any(filename == p or filename.startswith(p.rstrip(os.sep) + os.sep) for p in paths)


@contextlib.contextmanager
def _module_table(run: "_Run") -> Iterator[None]:
    """``sys.modules`` after the run: see the module docstring for what stays."""
    before = run.modules_before = dict(sys.modules)
    run.paths_before = set(p for p in sys.path if isinstance(p, str))
    try:
        yield
    finally:
        for name in [n for n in list(sys.modules) if n not in before]:
            module = sys.modules.get(name)
            if run.drops(name, module):
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


_OURS = __name__.rpartition(".")[0]  # this package: the runner's own state, not a module's


def _is_ours(name: str) -> bool:
    return name == _OURS or name.startswith(_OURS + ".")


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# (module, its namespace, {class: class attributes}) for each loaded module_utils module
_Snapshot = List[Tuple[ModuleType, Dict[str, Any], List[Tuple[type, Dict[str, Any]]]]]


# Snapshots outlive a run: each run ends by restoring its modules to them, so a module
# still in sys.modules is in its snapshot's state when the next run starts; only
# modules new since then are copied (the copy was a third of a short module's run).
_SNAPSHOTS: Dict[str, Tuple[ModuleType, Dict[str, Any], List[Tuple[type, Dict[str, Any]]]]] = {}
_IS_MODULE_UTILS: Dict[str, bool] = {}


_LAST_SNAPSHOT: List[Any] = [None, None]  # sys.modules as it was, and the snapshot made of it


def _snapshot_module_utils() -> _Snapshot:
    """The loaded module_utils modules' snapshots (the last list again if ``sys.modules``
    is the same table: compared in C, modules by identity)."""
    table, last = _LAST_SNAPSHOT
    try:
        if last is not None and sys.modules == table:
            return list(last)
    except Exception:  # something not a module in sys.modules, with an __eq__ that raises
        pass
    snapshot = _snapshot_of(sys.modules.copy())
    _LAST_SNAPSHOT[:] = [sys.modules.copy(), snapshot]
    return list(snapshot)


def _snapshot_of(table: Dict[str, Any]) -> _Snapshot:
    snapshot: _Snapshot = []
    for name, module in table.items():
        entry = _SNAPSHOTS.get(name)
        if entry is not None and entry[0] is module:
            snapshot.append(entry)
            continue
        matches = _IS_MODULE_UTILS.get(name)
        if matches is None:
            matches = _IS_MODULE_UTILS[name] = bool(_MODULE_UTILS_RE.match(name)) and not _is_ours(name)
        if not matches or not isinstance(module, ModuleType):
            continue
        namespace = dict(module.__dict__)
        classes = [
            (value, dict(vars(value)))
            for value in namespace.values()
            if isinstance(value, type) and getattr(value, "__module__", None) == name
        ]
        entry = _SNAPSHOTS[name] = (module, namespace, classes)
        snapshot.append(entry)
    return snapshot


def _unchanged(now: Any, saved: Dict[str, Any]) -> bool:
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


def _restore_names(
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
    return restored


def _restore_module_utils(snapshot: _Snapshot) -> List[str]:
    """Undo rebinding in ``snapshot``'s modules and classes; the names restored."""
    restored: List[str] = []
    for module, namespace, classes in snapshot:
        current = module.__dict__
        if not _unchanged(current, namespace):
            restored += _restore_names(module.__name__, current, namespace, current.__setitem__, current.__delitem__)
        for cls, attrs in classes:
            now = vars(cls)
            if not _unchanged(now, attrs):
                owner = "%s.%s" % (module.__name__, cls.__name__)
                restored += _restore_names(owner, now, attrs, functools.partial(setattr, cls), functools.partial(delattr, cls))
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
def _module_utils_state() -> Iterator[None]:
    snapshot = _snapshot_module_utils()
    _reset_run_globals()
    try:
        yield
    finally:
        # The per-run globals first: the runner itself sets them in every run, and
        # snapshots hold them reset, so only what the module changed is left to undo.
        _reset_run_globals()
        restored = _restore_module_utils(snapshot)
        if restored:
            LOG.debug("module_utils names a module changed, restored: %s", ", ".join(sorted(restored)))
