# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running Ansible modules inside the persistent interpreter (private).

Owns: ``run_module(request)``, which runs one new-style Python module in this
process the way AnsiballZ runs it in a fresh one, and returns
``{"rc", "stdout", "stderr"}`` with stdout exactly what the module printed (the
result JSON from ``exit_json``/``fail_json``, or anything else), so the controller
hands it to Ansible's own ``_parse_returned_data``; a request with a ``style``
(binary and script modules) is run from memory in a child by ``_programs``. A request whose source is not
cached here yet gets ``{"need_source": True}``. Besides: request checking, the
refusal of a run whose result could only be over the reply limit (``slurp`` of a
large file), and ``_Run``, which puts one run together. Its parts live apart: the
cache of module sources and the finders that serve the module for its run in
``_sources``, the capture of its output in ``_capture``, and putting process
state back after a run in ``_isolation`` (through its public interface only),
whose docstring says what a run changes that is, and is not, undone.

Request: ``name`` (the module's import name, e.g. ``ansible.modules.command``),
``source`` (bytes, or None to use the cached copy), ``source_id`` (its sha1 hex),
``args`` (the JSON text AnsiballZ would hand the module), ``profile`` (the
serialization profile, ansible-core >= 2.19; None before), ``env`` (variables added
for this run), ``cwd`` (default: where the interpreter started), ``fork`` (True:
run it in a fork of the zygote, ``_zygote``) or ``async`` (N: start it as an async
job of N seconds there, ``_jobs``, as the ``async_wrapper`` of the ansible-core
release ``async_wrapper`` names, ``[major, minor]``; the reply is the job's start).
Other keys are ignored.

How a run goes: the module runs as ``__main__`` through ansible's own
``_ansiballz._loader.run_module`` (2.19+; so an uncaught exception becomes the same
``{"failed": true, "exception": ...}`` line, rc 1), or through ``runpy`` exactly as
the <= 2.18 AnsiballZ template did. Its source is served by a finder that exists for
the run only; ``ansible.module_utils`` comes through the importer and stays cached
(that is the point of a persistent interpreter). Runs are serialised by a lock:
what they change is process-wide (so a module that never ends makes later runs in
this interpreter wait, each on a call-pool thread). The state a run changed is put
back right after its reply is sent, before any other call here starts.

Output: fds 1 and 2 are redirected to an anonymous file for the run, so output of
child processes and C code is captured as under AnsiballZ; ``sys.stdin/stdout/
stderr`` are buffered as this interpreter's own were (e.g. ``PYTHONUNBUFFERED``), so
writes interleave as in a fresh Python started in the same environment; stdin reads
end of file. All are put back after the run. Output that one reply cannot carry
(over ``_target.output_limit()``: the frame limit less a margin) is never read into
this process: the run's reply is then a failed module result whose ``msg`` gives
the sizes, the limit and what to do instead.

After the module: a process it forked that leaves through ``sys.exit`` ends with
``os._exit`` after its atexit handlers, never returning into this interpreter's
machinery. Otherwise non-daemon threads it started are joined (for up to
``THREAD_JOIN_TIMEOUT`` seconds, as at interpreter exit), then the atexit handlers
registered during the run are called (not after ``os._exit``). A thread it started
that is still running then (daemon threads are not waited for) makes the reply say
``retire``: the controller replaces this interpreter before the next task.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import linecache
import logging
import os
import re
import runpy
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, cast

from . import _isolation, _respawn, _sources, _sysenv, _target, _zygote
from ._calls import AfterReply
from ._capture import Capture, flush, oversized_result
from ._files import apply_ops
from ._sources import ModuleFinder, ParentPackages, Source, source_for

if TYPE_CHECKING:  # annotations only
    from ._shapes import ExitHandler, RunReply, RunRequest

LOG = logging.getLogger("ns.mitogen.runner")

OWN_THREADS = "ns.mitogen"  # the prefix of this interpreter's own threads' names (call pool, broker)
THREAD_JOIN_TIMEOUT = 60.0  # wait for non-daemon threads a module leaves, as exit would
MODLIB_PATH = "<ns.mitogen: in-process run, no module library on disk>"  # the module's _modlib_path
NO_EXIT_LEGACY = '{"msg": "New-style module did not handle its own exit", "failed": true}'  # <= 2.18 wrapper

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

_RUN_LOCK = threading.Lock()
STATS = {"runs": 0}


def run_module(request: Any, source: Optional[bytes] = None, fetch_source: bool = False) -> Any:
    """Run the module ``request`` describes; ``{"rc", "stdout", "stderr"}``.

    ``{"need_source": True}`` if ``source`` is None and ``source_id`` is not cached.
    Raises ``ValueError`` for a malformed request (nothing ran then). ``source``: the
    module's source, as ``request["source"]`` (the mux attaches it this way, so it
    can relay the request without decoding it). ``fetch_source``: a source not
    cached here is asked of the parent first (an intermediary's cache, or the login
    interpreter a become one was started from: ``_hopcache``).

    A call target: the reply goes as an ``AfterReply``, whose ``then`` puts the
    process state back once the reply is on its way (~0.5 ms off every task's path;
    the run lock is held until then, and calls that arrive meanwhile wait for it:
    see ``_calls.AfterReply``). With ``log`` (-vvv) the state is put back first, so
    that what the restoring logs is in the run's records.
    """
    if source is not None and isinstance(request, dict):
        request = dict(request, source=source)
    request = _checked(request)
    if request.get("prelude"):  # the task's temporary files, deferred by the worker to this call
        apply_ops(request["prelude"])
    if request.get("fork") or request.get("async"):  # a fork of the zygote runs it (see _zygote)
        found = _source(request, fetch_source)
        if found is None:
            return {"need_source": True}
        return _zygote.run(dict(request, source=found.data), __name__)
    refused = _refused_before_running(request)
    if refused is not None:
        return {"rc": 1, "stdout": refused, "stderr": b""}
    found = _source(request, fetch_source)
    if found is None:
        return {"need_source": True}
    _sysenv.refresh()  # /etc/environment and /etc/resolv.conf, as a fresh process would read them
    if request.get("style") is not None:  # binary and script modules: run from memory, in a child
        from . import _programs

        with _RUN_LOCK:  # the child inherits the process's directory and umask: not while a run changed them
            STATS["runs"] += 1
            return _programs.run(cast("Dict[str, Any]", request), found)
    _RUN_LOCK.acquire()
    deferred = False
    try:
        _respawn.install()  # respawn_module without AnsiballZ (see _respawn)
        STATS["runs"] += 1
        run = _Run(request, found)
        if request.get("log"):
            with _CapturedLog() as captured:
                try:
                    reply = run.execute()
                finally:
                    run.restore()
            reply["log"] = captured.lines
            return reply
        try:
            reply = run.execute()
        except BaseException:
            run.restore()
            raise
        deferred = True
        return AfterReply(reply, functools.partial(_restore_and_release, run))
    finally:
        if not deferred:
            _RUN_LOCK.release()


def _source(request: RunRequest, fetch_source: bool) -> Optional[Source]:
    """The run's module source: cached here, else (``fetch_source``) asked of the parent, else None."""
    found, source_id = source_for(request), request.get("source_id")
    if found is None and fetch_source and isinstance(source_id, str):
        from ._hopcache import source_from_parent  # behind an intermediary, or a become child of the login

        found = source_from_parent(source_id)
    return found


def _restore_and_release(run: "_Run") -> None:
    try:
        run.restore()
    finally:
        _RUN_LOCK.release()


class _CapturedLog(logging.Handler):
    """Every ``ns.mitogen`` record of one run, DEBUG and up, as text (for -vvv)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[str] = []
        self._logger = logging.getLogger("ns.mitogen")
        self._level = self._logger.level

    def __enter__(self) -> "_CapturedLog":
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._logger.setLevel(self._level)
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append("%s %s: %s" % (record.levelname, record.name, record.getMessage()))


def stats() -> Dict[str, Any]:
    """Counters for diagnostics and tests."""
    return dict(STATS, source_misses=_sources.STATS["source_misses"], sources=_sources.cached())


# -- requests --------------------------------------------------------------------
def _checked(request: Any) -> RunRequest:
    """``request`` if it is a well-formed run request; else ``ValueError`` saying what is wrong."""
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
    if not isinstance(request.get("log", False), bool):
        raise ValueError("run request: log must be a bool")
    if not isinstance(request.get("cwd"), (str, type(None))):
        raise ValueError("run request: cwd must be a str or None")
    if request.get("style") is not None:
        from . import _programs

        _programs.check(cast("Dict[str, Any]", request))
    env = request.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError("run request: env must be a dict")
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key or "\0" in str(value):
            raise ValueError("run request: bad environment variable %r" % (key,))
    return cast("RunRequest", request)


#: modules whose result carries a whole file, base64 encoded: the arguments naming it
_WHOLE_FILE_RESULTS = {"ansible.modules.slurp": ("src", "path"), "ansible.legacy.slurp": ("src", "path")}


def _refused_before_running(request: RunRequest) -> Optional[bytes]:
    """The failed result of a run whose reply could only be over the limit (it is not run); else None.

    ``slurp`` of a file over ~47 MiB: the module would read it whole and base64 it
    (GBs of memory here for a large file) into a result no reply can carry. Where
    the file cannot be found here, the module runs and says so itself.
    """
    names = _WHOLE_FILE_RESULTS.get(request["name"])
    if names is None:
        return None
    try:
        params = json.loads(request["args"])["ANSIBLE_MODULE_ARGS"]
        path = next(params[n] for n in names if isinstance(params.get(n), str))
        path = os.path.join(request.get("cwd") or os.getcwd(), os.path.expanduser(os.path.expandvars(path)))
        size = os.stat(path).st_size
    except Exception:
        return None
    encoded, limit = (size + 2) // 3 * 4, _target.output_limit()
    if encoded <= limit:
        return None
    msg = (
        "ns.mitogen: slurp of %s (%d bytes) would return %d bytes of base64, more than the %d bytes (%d MiB) one "
        "reply can carry; the module was not run. Use ansible.builtin.fetch, which streams files of any size, "
        "or read a part of the file" % (path, size, encoded, limit, limit // 1048576)
    )
    return json.dumps({"failed": True, "msg": msg}).encode("utf-8")


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

    def __init__(self, request: RunRequest, source: Source) -> None:
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
        self.parents = ParentPackages(self.name)
        # (func, args, kwargs, name of the module registering it on import, if so)
        self.exit_handlers: List[ExitHandler] = []
        self.modules_before: Dict[str, Any] = {}
        self.paths_before: Set[str] = set()
        self.signals: Dict[int, Any] = {}
        self.threads_before: Set[threading.Thread] = set()
        self.threads_left: List[str] = []  # names of threads the run left running
        self.run_exit_handlers = True
        self._stack = contextlib.ExitStack()

    def __repr__(self) -> str:
        return "_Run(%s)" % self.name

    def execute(self) -> RunReply:
        """Run the module; its reply. The process state is the module's until ``restore()``."""
        started = time.monotonic()
        self.threads_before = set(threading.enumerate())
        lines = self.source.lines()
        linecache.cache[self.filename] = (sum(map(len, lines)), None, list(lines), self.filename)
        capture = Capture(_target.output_limit())
        with capture:
            rc = self._run_isolated(self._stack)
        LOG.debug("%r: rc %d in %.1f ms", self, rc, (time.monotonic() - started) * 1000)
        if capture.oversized is not None:
            LOG.warning("%r: output of %d bytes discarded: over the reply's limit", self, sum(capture.oversized))
            return {"rc": 1, "stdout": oversized_result(self.name, rc, capture.oversized, capture.limit), "stderr": b""}
        reply: RunReply = {"rc": rc, "stdout": capture.stdout, "stderr": capture.stderr}
        if self.threads_left:
            reply["retire"] = "the module left threads running: %s" % ", ".join(self.threads_left)
        return reply

    def restore(self) -> None:
        """Put back the process state the run changed (see ``_isolation``); once."""
        self._stack.close()

    def _run_isolated(self, stack: contextlib.ExitStack) -> int:
        """The module's exit status; ``stack`` holds what ``restore()`` undoes."""
        try:
            for manager in _isolation.run_state(self):
                stack.enter_context(manager)
        except _isolation.SetupError as exc:
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
            stack.enter_context(_isolation.module_utils_state())
            basic._ANSIBLE_ARGS = self.args  # type: ignore[attr-defined]
            if self.profile is not None and hasattr(basic, "_ANSIBLE_PROFILE"):
                basic._ANSIBLE_PROFILE = self.profile  # type: ignore[attr-defined]
            sys.meta_path.insert(0, ModuleFinder(self.name, self.source, self.filename))
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
                print(NO_EXIT_LEGACY)  # pylint: disable=ansible-bad-function
                sys.exit(1)  # pylint: disable=ansible-bad-function
        except (SystemExit, _isolation.OsExit) as exc:
            return self._exit_of(exc)
        except BaseException:
            return self._uncaught(*sys.exc_info())
        return 0

    def _exit_of(self, exc: BaseException) -> int:
        """The status ``sys.exit`` or ``os._exit`` gives (the latter skips atexit handlers)."""
        if isinstance(exc, _isolation.OsExit):
            self.run_exit_handlers = False
            return exc.status & 0xFF
        return _exit_status(getattr(exc, "code", None))

    def _uncaught(self, exc_type: Any, exc: Any, tb: Any) -> int:
        """What the interpreter does with an exception that ends a script: ``sys.excepthook``.

        A module may set its own hook (2.16's ``file`` turns its ``AnsibleModuleError``
        into ``fail_json`` there); ``SystemExit`` from the hook gives the exit status.
        """
        hook = sys.excepthook
        if hook is sys.__excepthook__:
            traceback.print_exception(exc_type, exc, tb)
            return 1
        try:
            hook(exc_type, exc, tb)
        except (SystemExit, _isolation.OsExit) as hook_exit:
            return self._exit_of(hook_exit)
        except BaseException:
            sys.stderr.write("Error in sys.excepthook:\n")
            traceback.print_exc()
            sys.stderr.write("\nOriginal exception was:\n")
            traceback.print_exception(exc_type, exc, tb)
        return 1

    def _exit_forked_child(self, rc: int) -> None:
        """A child the module forked left through ``sys.exit``: end it as Python would."""
        if self.run_exit_handlers:
            self._call_exit_handlers()
        flush(sys.stdout, sys.stderr)
        _isolation.real_os_exit(rc)

    def _join_threads(self) -> None:
        """Join the non-daemon threads the run started; note every thread it leaves running."""
        deadline = time.monotonic() + THREAD_JOIN_TIMEOUT
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread in self.threads_before or thread is current or thread.name.startswith(OWN_THREADS):
                continue
            if not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                LOG.warning("%r: thread %r still running after the module exited", self, thread.name)
                self.threads_left.append(thread.name)

    def _call_exit_handlers(self) -> None:
        """Run the handlers registered during the run, as interpreter exit would.

        Except those a library module registered when imported, if it stays cached
        (``multiprocessing.util`` on first import, for one): they belong to the
        process, and go to the real ``atexit``.
        """
        while self.exit_handlers:
            func, args, kwargs, importer = self.exit_handlers.pop()
            if (
                importer is not None
                and importer in sys.modules
                and not _isolation.leaves_with_run(self, importer, sys.modules[importer])
            ):
                _isolation.real_atexit_register(func, *args, **kwargs)
                continue
            try:
                func(*args, **kwargs)
            except SystemExit:
                pass
            except BaseException:
                sys.stderr.write("Exception ignored in atexit callback: %r\n" % (func,))
                traceback.print_exc()
