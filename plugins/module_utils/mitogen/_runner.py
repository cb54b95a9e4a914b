# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running Ansible modules inside the persistent interpreter (private).

Owns: ``run_module(request)``, which runs one new-style Python module in this
process the way AnsiballZ runs it in a fresh one, and returns
``{"rc", "stdout", "stderr"}`` with stdout exactly what the module printed (the
result JSON from ``exit_json``/``fail_json``, or anything else), so the controller
hands it to Ansible's own ``_parse_returned_data``. A request whose source is not
cached here yet gets ``{"need_source": True}``.

Request: ``name`` (the module's import name, e.g. ``ansible.modules.command``),
``source`` (bytes, or None to use the cached copy), ``source_id`` (its sha1 hex),
``args`` (the JSON text AnsiballZ would hand the module), ``profile`` (the
serialization profile, ansible-core >= 2.19; None before), ``env`` (variables added
for this run), ``cwd`` (default: where the interpreter started). Other keys are
ignored.

How a run goes: the module runs as ``__main__`` through ansible's own
``_ansiballz._loader.run_module`` (2.19+; so an uncaught exception becomes the same
``{"failed": true, "exception": ...}`` line, rc 1), or through ``runpy`` exactly as
the <= 2.18 AnsiballZ template did. Its source is served by a finder that exists for
the run only; ``ansible.module_utils`` comes through the importer and stays cached
(that is the point of a persistent interpreter). Runs are serialised by a lock:
what they change is process-wide (so a module that never ends makes later runs in
this interpreter wait, each on a call-pool thread).

Isolated (each run starts from, and the interpreter returns to, the same state):
- fds 1 and 2 (redirected to an anonymous file, so output of child processes and
  C code is captured as under AnsiballZ), ``sys.stdin/stdout/stderr`` (buffered as
  this interpreter's own were, e.g. ``PYTHONUNBUFFERED``, so writes interleave as
  in a fresh Python started in the same environment; stdin reads end of file);
- working directory, ``os.environ`` (the start-up environment plus ``env``; the
  object itself too; ``time.tzset()`` when ``TZ`` changes), umask, the C locale
  (``AnsibleModule`` calls ``setlocale``);
- ``sys.argv`` (``[<module file>]``), ``sys.path`` ('' and '.' stripped, as
  AnsiballZ does), ``sys.meta_path``, ``sys.path_hooks``, new
  ``sys.path_importer_cache`` entries, ``sys.excepthook``/``displayhook``/
  ``unraisablehook``/``breakpointhook``, ``threading.excepthook``, recursion limit,
  switch interval, ``sys.dont_write_bytecode``, this thread's trace/profile hooks,
  names in ``builtins`` (``gettext.install()`` adds ``_``);
- ``warnings`` filters and ``showwarning``; the root logger's handlers and level,
  ``logging.disable``;
- ``atexit``: handlers registered during the run are kept apart and run at its end
  (after non-daemon threads it started are joined, as at interpreter exit), then
  dropped; the interpreter's own handlers are untouched. A handler a library module
  registers from its top-level code while first imported (``multiprocessing.util``)
  goes to the real ``atexit`` if that module stays cached: it belongs to the process;
- ``os._exit`` called by the module's thread ends the run (rc = status, atexit
  handlers skipped, as for a real ``os._exit``) instead of the interpreter;
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
- a process the module forks that leaves through ``sys.exit`` ends with
  ``os._exit`` after its atexit handlers, never returning into this interpreter's
  machinery;
- module_utils globals: ``basic._ANSIBLE_ARGS/_ANSIBLE_PROFILE/_PARSED_MODULE_ARGS``,
  the warning/deprecation stores of ``common.warnings`` and the traceback setting
  cached by ``_internal._traceback`` are reset; besides, every module-level name and
  every attribute of a class defined in a module_utils module that was loaded before
  the run is rebound to its pre-run value (monkey-patches do not stack up).

Not isolated (cannot be, in one process):
- threads the module leaves running (daemon threads, or non-daemon ones still alive
  ``THREAD_JOIN_TIMEOUT`` seconds after it exits) and child processes it leaves;
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
import collections
import contextlib
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import io
import linecache
import locale
import logging
import operator
import os
import re
import runpy
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from types import CodeType, ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from . import _child, _target

LOG = logging.getLogger("ns.mitogen.runner")

MAX_SOURCES = 128  # module sources cached here (least recently used go first)
THREAD_JOIN_TIMEOUT = 60.0  # wait for non-daemon threads a module leaves, as exit would
MODLIB_PATH = "<ns.mitogen: in-process run, no module library on disk>"  # the module's _modlib_path
NO_EXIT_LEGACY = '{"msg": "New-style module did not handle its own exit", "failed": true}'  # <= 2.18 wrapper

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MODULE_UTILS_RE = re.compile(r"^(ansible\.module_utils|ansible_collections\.[^.]+\.[^.]+\.plugins\.module_utils)(\.|$)")
_MODULE_TREE_RE = re.compile(r"^(ansible\.(modules|legacy)|ansible_collections\.[^.]+\.[^.]+\.plugins\.modules)(\.|$)")
_MISSING = object()

_RUN_LOCK = threading.Lock()
_SOURCES_LOCK = threading.Lock()
_SOURCES: "collections.OrderedDict[str, _Source]" = collections.OrderedDict()
_ACTIVE: Optional["_Run"] = None  # the run in progress, for the hooks below
STATS = {"runs": 0, "source_misses": 0}

# The real functions the run-time hooks stand in for.
_real_signal = signal.signal
_real_getsignal = signal.getsignal
_real_alarm = getattr(signal, "alarm", None)
_real_setitimer = getattr(signal, "setitimer", None)
_real_atexit_register = atexit.register
_real_atexit_unregister = atexit.unregister
_real_os_exit = os._exit


def run_module(request: Dict[str, Any]) -> Dict[str, Any]:
    """Run the module ``request`` describes; ``{"rc", "stdout", "stderr"}``.

    ``{"need_source": True}`` if ``source`` is None and ``source_id`` is not cached.
    Raises ``ValueError`` for a malformed request (nothing ran then).
    """
    _check_request(request)
    source = _source_for(request)
    if source is None:
        return {"need_source": True}
    with _RUN_LOCK:
        STATS["runs"] += 1
        return _Run(request, source).execute()


def stats() -> Dict[str, Any]:
    """Counters for diagnostics and tests."""
    with _SOURCES_LOCK:
        return dict(STATS, sources=list(_SOURCES))


# -- requests and sources -----------------------------------------------------------
def _check_request(request: Any) -> None:
    if not isinstance(request, dict):
        raise ValueError("run request must be a dict, not %s" % type(request).__name__)
    name = request.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError("run request: bad module name %r" % (name,))
    if not isinstance(request.get("args"), (str, bytes)):
        raise ValueError("run request: args must be the JSON text of the module arguments")
    if request.get("source") is None and not isinstance(request.get("source_id"), str):
        raise ValueError("run request: needs source or source_id")
    if not isinstance(request.get("source"), (bytes, type(None))):
        raise ValueError("run request: source must be bytes")
    if not isinstance(request.get("source_id"), (str, type(None))):
        raise ValueError("run request: source_id must be a str")
    if not isinstance(request.get("profile"), (str, type(None))):
        raise ValueError("run request: profile must be a str or None")
    if not isinstance(request.get("cwd"), (str, type(None))):
        raise ValueError("run request: cwd must be a str or None")
    env = request.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError("run request: env must be a dict")
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key or "\0" in str(value):
            raise ValueError("run request: bad environment variable %r" % (key,))


def _sha1(data: bytes) -> str:
    try:
        return hashlib.sha1(data, usedforsecurity=False).hexdigest()  # type: ignore[call-arg]
    except TypeError:  # Python 3.8
        return hashlib.sha1(data).hexdigest()


class _Source:
    """One module's source and its compiled code (per file name)."""

    __slots__ = ("data", "_code")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._code: Dict[str, CodeType] = {}

    def code(self, filename: str) -> CodeType:
        code = self._code.get(filename)
        if code is None:
            code = self._code[filename] = compile(self.data, filename, "exec", dont_inherit=True)
        return code

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _source_for(request: Dict[str, Any]) -> Optional[_Source]:
    data, source_id = request.get("source"), request.get("source_id")
    with _SOURCES_LOCK:
        if data is not None:
            digest = _sha1(data)
            if source_id is not None and source_id != digest:
                raise ValueError("run request: source_id %s is not the sha1 of the source (%s)" % (source_id, digest))
            source_id = digest
            if source_id not in _SOURCES:
                _SOURCES[source_id] = _Source(bytes(data))
                while len(_SOURCES) > MAX_SOURCES:
                    _SOURCES.popitem(last=False)
        entry = _SOURCES.get(source_id) if source_id is not None else None
        if entry is None or source_id is None:
            STATS["source_misses"] += 1
            return None
        _SOURCES.move_to_end(source_id)
        return entry


# -- finders for the run --------------------------------------------------------------
class _ModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the module being run, under its own name, for the run only."""

    def __init__(self, name: str, source: _Source, filename: str) -> None:
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


class _ParentPackages(importlib.abc.MetaPathFinder, importlib.abc.Loader):
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


# -- output ---------------------------------------------------------------------------
def _anonymous_file() -> Optional[int]:
    """A read/write fd of an unnamed file (memfd, else an unlinked temp file)."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            return int(memfd_create("ns.mitogen-module-output", getattr(os, "MFD_CLOEXEC", 0)))
        except OSError:
            pass
    try:
        with tempfile.TemporaryFile() as fp:
            return os.dup(fp.fileno())
    except OSError:
        return None


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: List[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _flush(*streams: Any) -> None:
    for stream in streams:
        try:
            stream.flush()
        except Exception:
            pass


def _stdio_like(template: Any, raw: Any, encoding: str, errors: str) -> io.TextIOWrapper:
    """A text stream over ``raw`` buffered as the interpreter's own ``template`` was.

    So that output interleaves as it would in a fresh Python started in the same
    environment (``PYTHONUNBUFFERED``, ``-u``: unbuffered; else block buffered, and
    stderr line buffered).
    """
    unbuffered = bool(getattr(template, "write_through", False)) and isinstance(getattr(template, "buffer", None), io.FileIO)
    buffer = raw if unbuffered or isinstance(raw, io.BytesIO) else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffer,
        encoding=encoding,
        errors=getattr(template, "errors", None) or errors,
        line_buffering=bool(getattr(template, "line_buffering", False)),
        write_through=unbuffered,
    )


class _Capture:
    """The run's stdio: fds 1 and 2 and ``sys.std*`` while it runs, read back after.

    Falls back to Python-level capture (``sys.stdout``/``sys.stderr`` only) when no
    anonymous file can be made.
    """

    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""
        self._files: List[int] = []
        self._saved_fds: List[int] = []
        self._buffers: List[io.BytesIO] = []
        self._streams: List[Any] = []
        self._saved: Tuple[Any, Any, Any] = (sys.stdin, sys.stdout, sys.stderr)

    def __enter__(self) -> "_Capture":
        self._saved = (sys.stdin, sys.stdout, sys.stderr)
        _flush(sys.stdout, sys.stderr)
        encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
        files = [_anonymous_file(), _anonymous_file()]
        if None not in files:
            self._files = [fd for fd in files if fd is not None]
            out = _stdio_like(sys.__stdout__, io.FileIO(1, "w", closefd=False), encoding, "strict")
            err = _stdio_like(sys.__stderr__, io.FileIO(2, "w", closefd=False), encoding, "backslashreplace")
            self._saved_fds = [os.dup(1), os.dup(2)]
            os.dup2(self._files[0], 1)
            os.dup2(self._files[1], 2)
        else:
            for fd in files:
                if fd is not None:
                    os.close(fd)
            self._buffers = [io.BytesIO(), io.BytesIO()]
            out = _stdio_like(sys.__stdout__, self._buffers[0], encoding, "strict")
            err = _stdio_like(sys.__stderr__, self._buffers[1], encoding, "backslashreplace")
        stdin = open(os.devnull, encoding=encoding)
        self._streams = [stdin, out, err]
        sys.stdin, sys.stdout, sys.stderr = stdin, out, err
        return self

    def __exit__(self, *exc: Any) -> None:
        stdin, out, err = self._streams
        _flush(out, err)
        try:
            if self._buffers:
                self.stdout, self.stderr = self._buffers[0].getvalue(), self._buffers[1].getvalue()
            for stream in self._streams:
                try:
                    stream.close()
                except Exception:
                    pass
            if self._files:
                try:
                    os.dup2(self._saved_fds[0], 1)
                    os.dup2(self._saved_fds[1], 2)
                    self.stdout, self.stderr = _read_all(self._files[0]), _read_all(self._files[1])
                finally:
                    for fd in self._saved_fds + self._files:
                        os.close(fd)
        finally:
            sys.stdin, sys.stdout, sys.stderr = self._saved


# -- isolation, one concern each --------------------------------------------------------
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
    """Run in ``cwd`` (default: the start directory); come back to where we were."""
    before, handle = _getcwd(), _open_dir_handle()
    try:
        target = cwd or _target._start_dir()
        if target and target != before:
            try:
                os.chdir(target)
            except OSError as exc:
                if cwd:
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
    wanted = dict(_child.START_ENV or saved)
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
            obj[:] = items
            setattr(sys, attr, obj)
        sys.argv = saved_argv


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
        for signum in signal.valid_signals():
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
    assert _real_alarm is not None  # for mypy: installed only where it exists
    return int(_real_alarm(seconds))


def _setitimer_hook(which: int, seconds: float, interval: float = 0.0) -> Any:
    if seconds and _virtual_signals() is not None:
        raise RuntimeError(_NO_TIMERS % "signal.setitimer")
    assert _real_setitimer is not None  # for mypy: installed only where it exists
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
    ]
    if _real_alarm is not None:
        patches.append((signal, "alarm", _alarm_hook))
    if _real_setitimer is not None:
        patches.append((signal, "setitimer", _setitimer_hook))
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
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
                parent, _, leaf = name.rpartition(".")
                parent_module = sys.modules.get(parent)
                if parent_module is not None and getattr(parent_module, leaf, None) is module:
                    with contextlib.suppress(AttributeError, TypeError):
                        delattr(parent_module, leaf)
        for name, module in before.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# (module, its namespace, {class: class attributes}) for each loaded module_utils module
_Snapshot = List[Tuple[ModuleType, Dict[str, Any], List[Tuple[type, Dict[str, Any]]]]]


def _snapshot_module_utils() -> _Snapshot:
    snapshot: _Snapshot = []
    for name, module in list(sys.modules.items()):
        if not isinstance(module, ModuleType) or not _MODULE_UTILS_RE.match(name):
            continue
        namespace = dict(module.__dict__)
        classes = [
            (value, dict(vars(value)))
            for value in namespace.values()
            if isinstance(value, type) and getattr(value, "__module__", None) == name
        ]
        snapshot.append((module, namespace, classes))
    return snapshot


def _unchanged(now: Any, saved: Dict[str, Any]) -> bool:
    """Same names bound to the same objects (the common case, checked at C speed)."""
    return len(now) == len(saved) and now.keys() == saved.keys() and all(map(operator.is_, now.values(), saved.values()))


def _restore_names(
    owner: str, now: Any, saved: Dict[str, Any], set_: Callable[[str, Any], None], del_: Callable[[str], None]
) -> List[str]:
    restored = []
    for key in [k for k in now if k not in saved and not _is_dunder(k)]:
        if not isinstance(now[key], ModuleType):  # a submodule imported meanwhile stays
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
        restored = _restore_module_utils(snapshot)
        if restored:
            LOG.debug("module_utils names a module changed, restored: %s", ", ".join(sorted(restored)))
        _reset_run_globals()


# -- one run ----------------------------------------------------------------------------
def _exit_status(code: Any) -> int:
    """The process exit status ``SystemExit(code)`` gives (printing it if not an int)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        sys.stderr.write("%s\n" % (code,))
    return 1


class _Run:
    """One module run: the state it starts from, its hooks' records, its result."""

    def __init__(self, request: Dict[str, Any], source: _Source) -> None:
        self.name: str = request["name"]
        args = request["args"]
        self.args: bytes = args.encode("utf-8", "surrogateescape") if isinstance(args, str) else bytes(args)
        self.profile: Optional[str] = request.get("profile")
        self.env: Dict[str, Any] = request.get("env") or {}
        self.cwd: Optional[str] = request.get("cwd")
        self.source = source
        self.filename = "<ns.mitogen>/%s.py" % self.name.replace(".", "/")
        self.pid = os.getpid()
        self.thread = threading.get_ident()
        self.parents = _ParentPackages(self.name)
        # (func, args, kwargs, name of the module registering it on import, if so)
        self.exit_handlers: List[Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any], Optional[str]]] = []
        self.modules_before: Dict[str, Any] = {}
        self.paths_before: Set[str] = set()
        self.signals: Dict[int, Any] = {}
        self.threads_before: Set[threading.Thread] = set()
        self.run_exit_handlers = True

    def __repr__(self) -> str:
        return "_Run(%s)" % self.name

    def drops(self, name: str, module: Any) -> bool:
        """True if ``sys.modules[name]``, new since the run started, goes at its end."""
        if name in self.modules_before or _MODULE_UTILS_RE.match(name):
            return False
        if name == self.name or _MODULE_TREE_RE.match(name) or getattr(module, "__spec__", None) is None:
            return True  # the module, its kind, or put there by hand rather than imported
        new_paths = [os.path.abspath(p) for p in sys.path if isinstance(p, str) and p and p not in self.paths_before]
        return bool(new_paths) and _origin_under(module, new_paths)

    def execute(self) -> Dict[str, Any]:
        started = time.monotonic()
        self.threads_before = set(threading.enumerate())
        text = self.source.text()
        linecache.cache[self.filename] = (len(text), None, text.splitlines(True), self.filename)
        capture = _Capture()
        with capture:
            rc = self._run_isolated()
        LOG.debug("%r: rc %d in %.1f ms", self, rc, (time.monotonic() - started) * 1000)
        return {"rc": rc, "stdout": capture.stdout, "stderr": capture.stderr}

    def _run_isolated(self) -> int:
        with contextlib.ExitStack() as stack:
            try:
                for manager in (
                    _working_directory(self.cwd),
                    _environment(self.env),
                    _umask(),
                    _c_locale(),
                    _interpreter_state(self.filename),
                    _warning_filters(),
                    _root_logger(),
                    _signal_handlers(),
                    _module_table(self),
                    _run_hooks(self),
                ):
                    stack.enter_context(manager)
            except _SetupError as exc:
                sys.stderr.write("%s\n" % exc)
                return 1
            rc = self._invoke(stack)
            if os.getpid() != self.pid:
                self._exit_forked_child(rc)
            self._join_threads()
            if self.run_exit_handlers:
                self._call_exit_handlers()
            return rc

    def _invoke(self, stack: contextlib.ExitStack) -> int:
        """Run the module; its exit status (every exception handled as Python would)."""
        try:
            basic = importlib.import_module("ansible.module_utils.basic")
            loader = None
            if self.profile is not None:
                with contextlib.suppress(ImportError):
                    loader = importlib.import_module("ansible.module_utils._internal._ansiballz._loader")
            stack.enter_context(_module_utils_state())
            basic._ANSIBLE_ARGS = self.args  # type: ignore[attr-defined]
            if self.profile is not None and hasattr(basic, "_ANSIBLE_PROFILE"):
                basic._ANSIBLE_PROFILE = self.profile  # type: ignore[attr-defined]
            sys.meta_path.insert(0, _ModuleFinder(self.name, self.source, self.filename))
            sys.meta_path.append(self.parents)
            init_globals = {"_module_fqn": self.name, "_modlib_path": MODLIB_PATH}
            if loader is not None and hasattr(loader, "run_module"):
                # 2.19+: ansible's own loader, and its own handling of uncaught exceptions.
                loader.run_module(
                    json_params=self.args, profile=self.profile, module_fqn=self.name, modlib_path=MODLIB_PATH, extensions={}
                )
            else:
                # <= 2.18: what the ANSIBALLZ_TEMPLATE did after unpacking.
                runpy.run_module(self.name, init_globals=init_globals, run_name="__main__", alter_sys=True)
                print(NO_EXIT_LEGACY)
                sys.exit(1)
        except SystemExit as exc:
            return _exit_status(exc.code)
        except _OsExit as exc:
            self.run_exit_handlers = False
            return exc.status & 0xFF
        except BaseException:
            traceback.print_exc()  # what an uncaught exception does to a script
            return 1
        return 0

    def _exit_forked_child(self, rc: int) -> None:
        """A child the module forked left through ``sys.exit``: end it as Python would."""
        if self.run_exit_handlers:
            self._call_exit_handlers()
        _flush(sys.stdout, sys.stderr)
        _real_os_exit(rc)

    def _join_threads(self) -> None:
        deadline = time.monotonic() + THREAD_JOIN_TIMEOUT
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread in self.threads_before or thread.daemon or thread is current:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                LOG.warning("%r: thread %r still running after the module exited", self, thread.name)

    def _call_exit_handlers(self) -> None:
        """Run the handlers registered during the run, as interpreter exit would.

        Except those a library module registered when imported, if it stays cached
        (``multiprocessing.util`` on first import, for one): they belong to the
        process, and go to the real ``atexit``.
        """
        while self.exit_handlers:
            func, args, kwargs, importer = self.exit_handlers.pop()
            if importer is not None and importer in sys.modules and not self.drops(importer, sys.modules[importer]):
                _real_atexit_register(func, *args, **kwargs)
                continue
            try:
                func(*args, **kwargs)
            except SystemExit:
                pass
            except BaseException:
                sys.stderr.write("Exception ignored in atexit callback: %r\n" % (func,))
                traceback.print_exc()
