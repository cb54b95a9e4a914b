# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Starting a child context from any argv (private module).

Owns: the first stage (a few lines passed with ``python -c``), the payload (the
core, compressed once), spawning the child process, answering its prompts, and
the handshake that ends with the child's ``hello``.

How a child starts:
1. ``<transport argv> python -c <first_stage()>``. The first stage checks the Python
   version (it parses on 2.7 and 3.x, and says plainly which Python it found and
   which the caller wants, ``python_min``), writes
   ``NSM-READY`` on stdout, then reads a 4-byte length and that many bytes of
   compressed payload from stdin, and runs it.
2. The payload installs the core modules from memory and reads one framed message:
   the child's configuration (ids, name, import allow-list, log level), as data.
3. From then on stdin/stdout carry framed messages; the child's own stdout/stderr
   are forwarded as log records. It greets the parent with a ``hello`` message.

Where no prompt is expected on stdin, the payload is written at once, before the
child is even running, so start-up costs no extra round trip.
"""

from __future__ import annotations

import ast
import logging
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from . import _transports
from ._calls import Context, Receiver
from ._errors import ConnectError, StreamError, TimeoutError
from ._logs import OutputForwarder
from ._router import Router
from ._state import STATE
from ._wire import Message

LOG = logging.getLogger("ns.mitogen.bootstrap")

PACKAGE = __name__.rpartition(".")[0]
READY = b"NSM-READY\n"
ERR = b"NSM-ERR "

# Must parse on Python 2.7 and 3.x: only the version check may run on old ones. It
# refuses what the core cannot run, naming the Python the caller wants (see
# first_stage()).
_FIRST_STAGE = (
    "import os,sys,zlib\n"
    "V=sys.version_info\n"
    "if V<CORE:\n"
    " os.write(1,('NSM-ERR found Python %d.%d.%d at %s; ns.mitogen needs Python WANTED or newer\\n'"
    "%(V[0],V[1],V[2],sys.executable)).encode('ascii','replace'));sys.exit(1)\n"
    "os.write(1,b'NSM-READY\\n')\n"
    "def R(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c:sys.exit(1)\n"
    "  b+=c\n"
    " return b\n"
    "P=R(int.from_bytes(R(4),'big'))\n"
    "exec(compile(zlib.decompress(P),'<ns.mitogen.boot>','exec'),{'__name__':'__nsm_boot__','PAYLOAD':P})\n"
)


def first_stage(wanted: str) -> str:
    """The first stage for a caller that wants Python ``wanted`` ("3.N") or newer."""
    return _FIRST_STAGE.replace("CORE", repr(_transports.CORE_MIN_PYTHON).replace(" ", "")).replace("WANTED", wanted)


BOOT = """
import sys
def _nsm_boot(modules, payload):
    import importlib.machinery as m
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name not in modules:
                return None
            return m.ModuleSpec(name, self, origin="<ns.mitogen>/" + name, is_package=modules[name][0])
        def create_module(self, spec):
            return None
        def exec_module(self, mod):
            is_pkg, src = modules[mod.__spec__.name]
            if is_pkg:
                mod.__path__ = []
            mod.__file__ = mod.__spec__.origin
            exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    finder = Finder()
    sys.meta_path.insert(0, finder)
    try:
        child = __import__(PACKAGE + "._child", fromlist=["main"])
    finally:
        sys.meta_path.remove(finder)
    child.main(modules, payload)
_nsm_boot(MODULES, PAYLOAD)
"""

_payload: Optional[Tuple[bytes, FrozenSet[str]]] = None
_payload_lock = threading.Lock()


def _unparse_stripped(tree: ast.Module) -> str:
    """``tree`` as source without docstrings, comments or blank lines (changes ``tree``;
    ``ast.unparse`` needs Python 3.9+, the controller's)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                body.pop(0)
                if not body:
                    body.append(ast.Pass())
    return ast.unparse(tree) + "\n"  # type: ignore[attr-defined,unused-ignore]


def _core_imports(tree: ast.Module) -> List[str]:
    """Sibling core modules a module imports at its top level (``from . import x``, ``from ._x import``)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append(node.module)
            else:
                found.extend(alias.name for alias in node.names)
    return found


def core_modules() -> Dict[str, Tuple[bool, str]]:
    """The modules a child needs to start, plus empty ancestor packages.

    Each is lowered for every supported target Python (``_lower``), then stripped.

    Only what ``_child`` imports, transitively, travels in the payload; the rest of
    the core (runner, files, this module and the transports, ...) is fetched through
    the importer on first use, so a context that never runs a module never receives
    the module runner, and one that never starts a child never receives the code
    that starts children.
    """
    from ._lower import lower_source  # controller only: no intermediary needs it

    here = os.path.dirname(os.path.abspath(__file__))
    modules: Dict[str, Tuple[bool, str]] = {}
    parts = PACKAGE.split(".")
    for i in range(1, len(parts)):
        modules[".".join(parts[:i])] = (True, "")
    modules[PACKAGE] = (True, "")
    todo, seen = ["_child"], set()
    while todo:
        short = todo.pop()
        if short in seen:
            continue
        seen.add(short)
        path = os.path.join(here, short + ".py")
        with open(path, "rb") as fp:
            tree = ast.parse(lower_source(fp.read(), path), path)
        todo.extend(_core_imports(tree))
        modules["%s.%s" % (PACKAGE, short)] = (False, _unparse_stripped(tree))
    return modules


def build_payload(modules: Optional[Dict[str, Tuple[bool, str]]] = None) -> bytes:
    """The compressed boot program: the core modules and the code that loads them."""
    source = "MODULES = %r\nPACKAGE = %r\n%s" % (core_modules() if modules is None else modules, PACKAGE, BOOT)
    return zlib.compress(source.encode("utf-8"), 9)


def payload() -> Tuple[bytes, FrozenSet[str]]:
    """The payload and the modules in it, made once per process.

    A child context (an intermediary) has no source tree to build one from: it
    passes on the payload it was itself started with.
    """
    global _payload
    with _payload_lock:
        if _payload is None:
            if STATE.payload is not None:
                _payload = (STATE.payload, STATE.boot_modules)
            else:
                modules = core_modules()
                _payload = (build_payload(modules), frozenset(modules))
        return _payload


# -- child processes ---------------------------------------------------------------------
# How long a child whose stream ended may take to exit and say why (ssh exits within
# milliseconds of its stream's end; a program that does not is reaped as before).
LOSS_WAIT = 2.0
_PROCESSES: List["ChildProcess"] = []
_PROCESSES_LOCK = threading.Lock()


class ChildProcess:
    """A spawned child program; ``reap()`` makes sure it is waited for.

    Owns the child's stderr and pty descriptors until ``reap()`` closes them
    (stdin/stdout belong to the stream once the handshake is done).
    """

    def __init__(self, argv: List[str], use_pty: bool, name: str, owner: Any = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.owner = owner  # the router that started it: reap_all() reaps per owner
        # Set by connect() as the child starts, read by explain_loss().
        self.transport: Optional[_transports.Transport] = None
        self.stderr_watch: Optional[OutputForwarder] = None
        self.remote_pid: Optional[int] = None  # the interpreter's, from its hello
        self.tty_fd: Optional[int] = None
        self._slave_fd: Optional[int] = None  # held open so the master never reads EIO
        self.on_detach: List[Any] = []  # broker-thread callbacks run by reap_later()
        self._lock = threading.Lock()
        slave_path = None
        if use_pty:
            self.tty_fd, self._slave_fd = pty.openpty()
            slave_path = os.ttyname(self._slave_fd)

        def _preexec() -> None:
            if slave_path is not None:
                os.close(os.open(slave_path, os.O_RDWR))  # becomes the controlling tty
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_preexec,
            close_fds=True,
        )
        pipes = (self.proc.stdin, self.proc.stdout, self.proc.stderr)
        # We own the descriptors from here on; detach them from the file objects.
        self.stdin, self.stdout, self.stderr_fd = (os.dup(f.fileno()) for f in pipes if f is not None)
        self.stderr: Optional[int] = self.stderr_fd
        for f in pipes:
            if f is not None:
                f.close()
        with _PROCESSES_LOCK:
            _PROCESSES.append(self)

    def __repr__(self) -> str:
        return "ChildProcess(%s, pid=%d)" % (self.name, self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _close_own_fds(self) -> None:
        with self._lock:
            fds, self.stderr, self.tty_fd, self._slave_fd = (self.stderr, self.tty_fd, self._slave_fd), None, None, None
        _close_quietly(*fds)

    def reap(self, timeout: float = 5.0) -> Optional[int]:
        """Wait up to ``timeout`` for exit, then terminate, then kill; return status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.returncode is not None:
                self._close_own_fds()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                return self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                continue
            finally:
                if self.proc.returncode is not None:
                    self._close_own_fds()
        return self.proc.poll()

    def explain_loss(self, broker: Any, reason: str, done: Callable[..., None]) -> None:
        """Broker thread: once the program ended, call ``done(cause, status)``.

        Waits, without blocking the broker, up to ``LOSS_WAIT`` for the program to
        exit and for the end of its stderr (ssh's last words arrive there just
        before it exits), then asks the transport what that end means
        (``Transport.explain_loss``). ``reason`` is what the stream saw, said if
        the transport has nothing better.
        """
        started = time.monotonic()
        exited_at: List[float] = []
        delay = [0.002]

        def check() -> None:
            now = time.monotonic()
            returncode = self.proc.poll()
            if returncode is not None and not exited_at:
                exited_at.append(now)
            watch = self.stderr_watch
            words_due = watch is not None and not watch.ended and (not exited_at or now - exited_at[0] < 0.25)
            if (returncode is None or words_due) and now - started < LOSS_WAIT:
                delay[0] = min(delay[0] * 2, 0.05)
                broker.call_later(delay[0], check)
                return
            if self.transport is None:
                done(reason)
                return
            words = list(watch.tail) if watch is not None else []
            done(*self.transport.explain_loss(returncode, words, self.remote_pid, self.argv))

        check()

    def reap_later(self) -> None:
        """Stop watching its output (broker thread), then reap in a short-lived thread."""
        for fn in self.on_detach:
            fn()
        t = threading.Thread(target=self.reap_and_forget, name="ns.mitogen.reap-%d" % self.pid, daemon=True)
        t.start()

    def reap_and_forget(self, timeout: float = 5.0) -> None:
        """``reap(timeout)``, then drop it from the children ``reap_all()`` knows."""
        self.reap(timeout)
        with _PROCESSES_LOCK:
            if self in _PROCESSES:
                _PROCESSES.remove(self)


def reap_all(timeout: float = 5.0, owner: Any = None) -> None:
    """Wait for (or kill) the children ``owner`` (a router; None: all) started."""
    with _PROCESSES_LOCK:
        procs = [p for p in _PROCESSES if owner is None or p.owner is owner]
        for p in procs:
            _PROCESSES.remove(p)
    for proc in procs:
        proc.reap(timeout)


def _close_quietly(*fds: Optional[int]) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


# -- the handshake --------------------------------------------------------------------------
class _Handshake:
    """Drives one child from spawn to ``NSM-READY`` (blocking, in the caller's thread)."""

    def __init__(self, transport: _transports.Transport, proc: ChildProcess, boot_data: bytes, deadline: float) -> None:
        self.t = transport
        self.proc = proc
        self.deadline = deadline
        self.name = transport.describe()
        self.pending = b"" if transport.password_on_stdin else boot_data
        self.boot_data = boot_data
        self.out = b""
        self.err = b""
        self.tty = b""

    def fail(self, reason: str, hint: str = "", stage: str = "handshake") -> ConnectError:
        return ConnectError(self.name, reason, stage, self.output(), hint)

    def output(self) -> str:
        text = (self.err + self.tty + self.out).decode("utf-8", "replace")
        return text.replace(_transports.SUDO_PROMPT, "")

    def _type(self, data: Optional[bytes], fd: Optional[int]) -> None:
        if data is None:
            return
        if fd is None or fd == self.proc.stdin:
            self.pending = data + self.pending
        else:
            os.write(fd, data)

    def run(self) -> bytes:
        """Return bytes read after ``NSM-READY`` (the start of the framed stream)."""
        p = self.proc
        os.set_blocking(p.stdin, False)
        readers = {p.stdout: "stdout", p.stderr_fd: "stderr"}
        if p.tty_fd is not None:
            readers[p.tty_fd] = "tty"
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ConnectError(
                    self.name,
                    "timed out after the connect timeout while starting",
                    "handshake",
                    self.output(),
                    "raise the connect timeout, or check the host",
                )
            writers = [p.stdin] if self.pending else []
            rl, wl, _unused = select.select(list(readers), writers, [], min(left, 1.0))
            if wl:
                self.pending = write_some(p.stdin, self.pending)  # b"" if the child is gone: its exit explains why
            for fd in rl:
                done = self._read(fd, readers)
                if done is not None:
                    return done

    def _read(self, fd: int, readers: Dict[int, str]) -> Optional[bytes]:
        channel = readers[fd]
        data = read_some(fd)
        if not data:
            del readers[fd]
            if channel == "stdout":
                raise self._exited()
            return None
        if channel == "stdout":
            self.out += data
            if ERR in self.out:
                line = self.out[self.out.index(ERR) + len(ERR) :].split(b"\n")[0].decode("utf-8", "replace")
                hint = "point the python interpreter setting at Python %s or newer" % self.t.python_min_text()
                raise self.fail(line, hint, "interpreter")
            if READY in self.out:
                idx = self.out.index(READY)
                rest = self.out[idx + len(READY) :]
                self.out = self.out[:idx]
                if self.t.password_on_stdin:
                    self._write_all(self.boot_data)
                elif self.pending:
                    os.set_blocking(self.proc.stdin, True)
                    self._write_all(self.pending)
                return rest
            return None
        buf = (self.err if channel == "stderr" else self.tty) + data
        if channel == "stderr":
            self.err = buf
        else:
            self.tty = buf
        try:
            answer = self.t.on_text(channel, buf.decode("utf-8", "replace"))
        except ConnectError as exc:
            exc.output = self.output()
            raise
        if answer is not None:
            self._type(answer, fd if channel == "tty" else None)
        return None

    def _write_all(self, data: bytes) -> None:
        os.set_blocking(self.proc.stdin, True)
        try:
            os.write(self.proc.stdin, data) if len(data) < 65536 else _write_fully(self.proc.stdin, data)
        except OSError as exc:
            raise self.fail("could not send the payload: %s" % exc) from None

    def _exited(self) -> ConnectError:
        try:
            rc = self.proc.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            rc = None
        # Drain whatever stderr still holds, for the message.
        try:
            while True:
                r, _unused, _unused = select.select([self.proc.stderr_fd], [], [], 0.2)
                if not r:
                    break
                chunk = os.read(self.proc.stderr_fd, 65536)
                if not chunk:
                    break
                self.err += chunk
        except OSError:
            pass
        reason, hint = self.t.explain(self.output(), rc)
        exc = self.fail(reason, hint, "spawn")
        exc.returncode = rc
        return exc


def read_some(fd: int) -> bytes:
    """What a child's pipe or pty holds now; b"" at its end (or an error: the same to us)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def write_some(fd: int, pending: bytes) -> bytes:
    """Write what a non-blocking ``fd`` takes of ``pending``; the rest (b"" if the reader is gone)."""
    try:
        return pending[os.write(fd, pending[:65536]) :]
    except BlockingIOError:
        return pending
    except OSError:
        return b""


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def connect(
    router: Router,
    spec: Dict[str, Any],
    prefixes: List[str],
    context_id: Optional[int] = None,
    log_level: int = logging.WARNING,
    default_python: str = "",
    on_spawn: Optional[Callable[[], None]] = None,
) -> Tuple[Context, Dict[str, Any]]:
    """Start the child described by ``spec`` below ``router``'s context.

    ``on_spawn`` is called in this thread as soon as the child program runs, before
    the handshake: work that can overlap its login (ssh's takes ~0.2 s) but should
    not delay its start, as a CPU-bound thread would (it holds the GIL).
    Returns the child's ``Context`` and its hello (pid, Python version, ...; with
    ``login_output``, what the program printed while starting, where the transport
    keeps it: ssh's own debug lines).
    Raises ``SpecError`` for a malformed spec and ``ConnectError`` for any failure
    to start it, never later than the spec's ``connect_timeout`` per attempt (a
    transport may try again after a failure, see ``Transport.retry_pauses``).
    """
    transport = _transports.make(spec)
    name = transport.describe()
    timeout = float(transport.spec["connect_timeout"])
    cid = context_id if context_id is not None else router.allocate_id()
    hello = Receiver(router, respondent=cid)
    config = {
        "context_id": cid,
        "parent_id": router.context_id,
        "name": name,
        "prefixes": list(prefixes),
        "log_level": log_level,
        "max_message": router.max_message,
        "hello_handle": hello.handle,
        "compress": transport.compress,
    }
    if not default_python and transport.method != "ssh":
        default_python = sys.executable  # local and sudo: the same machine as this process
    argv = transport.argv(transport.boot_argv(first_stage(transport.python_min_text()), default_python))
    pauses = transport.retry_pauses()
    attempt = 0
    while True:
        deadline = time.monotonic() + timeout
        try:
            proc, handshake, rest, boot_modules = _start(router, transport, argv, config, deadline, on_spawn)
            break
        except ConnectError as exc:
            if attempt >= len(pauses) or not transport.should_retry(exc):
                hello.close()
                raise
            LOG.info("%s: attempt %d failed (%s); trying again in %d s", name, attempt + 1, exc.reason, pauses[attempt])
            time.sleep(pauses[attempt])
            attempt += 1
            on_spawn = None
            transport = _transports.make(spec)  # no prompt answered yet
        except BaseException:
            hello.close()
            raise
    stream = router.make_stream(proc.stdout, proc.stdin, name, owner=proc, initial=rest, compress=transport.compress)
    _watch_stderr(router, proc, name)
    router.register_stream(stream, cid, name)
    if router.responder is not None:
        router.responder.started_with(cid, boot_modules)  # never sent again to this child
    try:
        info = hello.get(max(0.1, deadline - time.monotonic())).decode()
    except (StreamError, TimeoutError) as exc:
        raise ConnectError(
            name, "the interpreter started but did not complete the handshake: %s" % exc, "handshake", handshake.output()
        ) from None
    finally:
        hello.close()
    if transport.keep_login_output and isinstance(info, dict):
        info = dict(info, login_output=handshake.output())
    if isinstance(info, dict) and isinstance(info.get("pid"), int):
        proc.remote_pid = info["pid"]
    return Context(router, cid, name), info


def _start(
    router: Router,
    transport: _transports.Transport,
    argv: List[str],
    config: Dict[str, Any],
    deadline: float,
    on_spawn: Optional[Callable[[], None]],
) -> Tuple[ChildProcess, "_Handshake", bytes, FrozenSet[str]]:
    """One attempt: spawn ``argv`` and drive it to ``NSM-READY``; the process is reaped on failure."""
    name = transport.describe()
    cid = config["context_id"]
    LOG.debug("%s: starting %r", router.name, argv)
    try:
        proc = ChildProcess(argv, transport.use_pty, name, owner=router)
    except OSError as exc:
        raise ConnectError(name, "cannot run %s: %s" % (argv[0], exc), "spawn") from None
    proc.transport = transport
    if on_spawn is not None:
        on_spawn()
    # The payload is built (once per process, ~0.1 s) while ssh is logging in.
    try:
        data, boot_modules = payload()
        boot = struct.pack(">I", len(data)) + data + Message.encoded(config, dst_id=cid, src_id=router.context_id).pack()
        handshake = _Handshake(transport, proc, boot, deadline)
        rest = handshake.run()
    except BaseException:
        _close_quietly(proc.stdin, proc.stdout)
        proc.reap_later()
        raise
    return proc, handshake, rest, boot_modules


def _watch_stderr(router: Router, proc: ChildProcess, name: str) -> None:
    """Log what the child program (ssh, sudo, ...) writes on stderr after start."""
    if proc.stderr is not None:
        forwarder = OutputForwarder(router, proc.stderr, "stderr.%s" % name, logging.INFO)
        proc.on_detach.append(forwarder.stop)
        proc.stderr_watch = forwarder  # its last lines explain a loss (explain_loss)


def connect_remote(spec: Dict[str, Any], context_id: int, log_level: int = logging.WARNING) -> Dict[str, Any]:
    """Run in an intermediary: start the child ``spec`` below this context.

    The caller (an ancestor) allocated ``context_id``; the route to it reaches the
    ancestors through ``ADD_ROUTE``. Returns the child's hello.
    """
    router = STATE.router
    if router is None:
        raise StreamError("connect_remote() runs only inside a child context")
    _ctx, hello = connect(router, spec, router.responder.prefixes, context_id, log_level)
    return hello
