# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A clean process beside each interpreter, forked for isolated runs and async jobs (private).

Owns: the zygote, and running a module request in a fork of it (``run``).

The zygote is forked by ``_child.main`` right after the configuration is read, before
the broker (or any other thread) starts and before any module runs: a process that
holds the core's boot modules and nothing else, and waits on a socket for fork
requests. It costs a fork at start and the pages it does not share with the
interpreter; it ends when the interpreter goes (end of file on its socket), and
leaves its children to the kernel (``SIGCHLD`` ignored: they are reaped at once).

A request runs in a fork (``_runner.run_module`` hands it to ``run``) when it carries
``fork: True`` (the module runs in a fresh child of the zygote exactly as
``run_module`` runs it in process: same request, same reply; the child stays in the
interpreter's process group, so what ends the interpreter's runs ends it too) or
``async: N`` (an async job: ``_jobs``). For each run the interpreter makes a socket
pair, hands one end to the zygote (``SCM_RIGHTS``), and serves the child over the
other: the child asks for the modules it imports (the interpreter answers from its
importer, fetching from the controller what it lacks: each module still crosses
each hop once per run), with the code it compiled for them (``_compiled``: once
per module in the interpreter, where compiling ``basic``'s closure in every child
took most of a fork's time), then sends its reply. An async job gets, at its start,
every module the interpreter has once it has what the job's module imports (the
job may outlive the interpreter); it still asks for anything else while the
interpreter lives. Runs in forks are not serialised with each other or with runs
in the interpreter: each has its own process.
"""

from __future__ import annotations

import array
import importlib
import json
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _bytecode, _codec
from ._allowlist import ImportPolicy
from ._importer import Importer, install
from ._modwire import Entry

_HEADER = struct.Struct(">I")
_MAX_FRAME = 1 << 30
_ZYGOTE: Dict[str, Any] = {}  # in the interpreter: "sock", "pid"
_SEND_LOCK = threading.Lock()
_exit = os._exit  # the real one: a run's hooks replace os._exit in the forked child
STATS = {"forks": 0, "jobs": 0}


# -- framing over a socket ------------------------------------------------------------
class Channel:
    """Length-prefixed ``_codec`` frames over a stream socket (blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, value: Any) -> None:
        data = _codec.encode(value)
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self) -> Any:
        """The next value; None at end of file (the peer went)."""
        head = self._exactly(_HEADER.size)
        if head is None:
            return None
        (size,) = _HEADER.unpack(head)
        if size > _MAX_FRAME:
            raise ValueError("zygote channel: frame of %d bytes" % size)
        data = self._exactly(size)
        return None if data is None else _codec.decode(data)

    def _exactly(self, size: int) -> Optional[bytes]:
        chunks: List[bytes] = []
        while size:
            try:
                chunk = self.sock.recv(min(size, 1 << 20))
            except OSError:
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


def _send_fd(sock: socket.socket, fd: int) -> None:
    sock.sendmsg([b"f"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def _recv_fd(sock: socket.socket) -> Optional[int]:
    """The next fd sent; None at end of file."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(1, socket.CMSG_LEN(fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data and not fds:
        return None
    return fds[0] if fds else -1


# -- the zygote --------------------------------------------------------------------------
def start(modules: Dict[str, Tuple[bool, str]], config: Dict[str, Any], close: Sequence[int]) -> None:
    """Fork the zygote. Only while this process has a single thread (``_child.main``).

    ``close``: the interpreter's own fds (message pipe, output readers) the zygote
    must not hold. A failed fork leaves no zygote: runs that need one fail saying so.
    """
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        status = 0
        try:
            ours.close()
            for fd in close:
                os.close(fd)
            _zygote_main(theirs, modules, config)
        except BaseException:
            status = 1
        _exit(status)
    theirs.close()
    ours.set_inheritable(False)
    _ZYGOTE.update(sock=ours, pid=pid)


def zygote_pid() -> Optional[int]:
    """The zygote's pid (None without one): for diagnostics and tests."""
    return _ZYGOTE.get("pid")


def _zygote_main(sock: socket.socket, modules: Dict[str, Tuple[bool, str]], config: Dict[str, Any]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        fd = _recv_fd(sock)
        if fd is None:
            return
        if fd < 0:
            continue
        try:
            pid = os.fork()
        except OSError:
            os.close(fd)  # the interpreter reads end of file: it reports the failure
            continue
        if pid == 0:
            status = 0
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child_main(fd, modules, config)
            except BaseException:
                status = 1
            _exit(status)
        os.close(fd)


# -- the forked child -----------------------------------------------------------------
class _RelayImporter(Importer):
    """The child's importer: asks the interpreter that forked this run, over its channel."""

    def __init__(self, channel: Channel, prefixes: Sequence[str], cache: Dict[str, Entry]) -> None:  # noqa: B027
        # not Importer.__init__: there is no router in a forked child
        self.policy = ImportPolicy(prefixes)
        self.cache = dict(cache)
        self._channel = channel
        self.bytecode = _bytecode.CodeStore()  # ``sent``: the code the interpreter sent
        self._lock = threading.Lock()
        self.requests = 0

    def __repr__(self) -> str:
        return "_RelayImporter(cached=%d)" % len(self.cache)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if self.policy.should_fetch(fullname, self.cache):
            self.fetch(fullname)
        return self._cached_spec(fullname)

    def fetch(self, fullname: str, timeout: float = 120.0) -> Optional[Entry]:
        with self._lock:
            if fullname in self.cache:
                return self.cache[fullname]
            self.requests += 1
            try:
                self._channel.send({"import": fullname})
                reply = self._channel.recv()
            except OSError:
                reply = None
            if not isinstance(reply, dict) or not isinstance(reply.get("bundle"), dict):
                raise ImportError("cannot fetch %s: the interpreter that forked this run is gone" % fullname, name=fullname)
            for name, entry in reply["bundle"].items():
                if isinstance(entry, (list, tuple)) and len(entry) == 4:
                    self.cache[name] = (bool(entry[0]), str(entry[1]), entry[2], tuple(entry[3]))
            self.bytecode.sent.update(reply.get("code") or {})
            self.cache.setdefault(fullname, (False, "", None, ()))  # absent: not asked again
            return self.cache[fullname]


def _child_main(fd: int, modules: Dict[str, Tuple[bool, str]], config: Dict[str, Any]) -> None:
    sock = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)
    os.close(fd)
    channel = Channel(sock)
    init = channel.recv()
    if not isinstance(init, dict):
        return
    cache: Dict[str, Entry] = {
        name: (is_pkg, "<ns.mitogen>/" + name, src.encode("utf-8"), ()) for name, (is_pkg, src) in modules.items()
    }
    for name, entry in (init.get("preload") or {}).items():
        if isinstance(entry, (list, tuple)) and len(entry) == 4:
            cache[name] = (bool(entry[0]), str(entry[1]), entry[2], tuple(entry[3]))
    importer = _RelayImporter(channel, init.get("prefixes") or config.get("prefixes") or [], cache)
    importer.bytecode.sent.update(init.get("code") or {})
    install(importer)
    request = dict(init["request"])
    limit = request.pop("async", None)
    request.pop("fork", None)
    run_module = importlib.import_module(init["runner"]).run_module

    def run_here(request: Dict[str, Any]) -> Dict[str, Any]:
        reply = run_module(request)
        return dict(getattr(reply, "value", reply))  # an AfterReply: nothing to put back, this process ends

    if limit:
        from . import _jobs  # only jobs need it: not in the boot payload

        version = list(request.pop("async_wrapper", None) or [2, 19])
        _jobs.run_job(
            request,
            int(limit),
            (int(version[0]), int(version[1])),
            bool(version[2]) if len(version) > 2 else (int(version[0]), int(version[1])) >= (2, 18),
            run_here,
            lambda started: channel.send({"started": started}),
            channel.close,
        )
    else:
        channel.send({"reply": run_here(request)})


# -- the interpreter's side ------------------------------------------------------------
def _interpreter_importer() -> Optional[Importer]:
    return next((f for f in sys.meta_path if isinstance(f, Importer) and not isinstance(f, _RelayImporter)), None)


_CODE: Dict[str, Tuple[Optional[bytes], bytes]] = {}  # module -> (its source, its code, marshalled)
_CODE_LOCK = threading.Lock()


def _compiled(entries: Dict[str, Any], importer: Optional[Importer]) -> Dict[str, bytes]:
    """The marshalled code of ``entries``' modules, compiled once per source in this interpreter.

    A fork of the zygote then executes what the interpreter compiled (the same
    Python), where compiling ``basic``'s closure again would take most of a fork's
    time. What the interpreter's importer has (``CodeStore.marshalled``: the code its
    parent sent, or that it ran) is used as it is, not compiled again.
    """
    import marshal

    code: Dict[str, bytes] = {}
    for name, (_is_pkg, filename, source, _related) in entries.items():
        if not isinstance(source, bytes):
            continue
        with _CODE_LOCK:
            cached = _CODE.get(name)
        if cached is None or cached[0] is not source:
            held = importer.cache.get(name) if importer is not None else None
            blob = importer.bytecode.marshalled(name) if importer is not None and held is not None and held[2] is source else None
            try:
                if blob is None:
                    blob = marshal.dumps(compile(source.decode("utf-8"), filename, "exec", dont_inherit=True))
            except Exception:
                continue  # the child compiles it, and reports what is wrong as an import would
            cached = (source, blob)
            with _CODE_LOCK:
                _CODE[name] = cached
        code[name] = cached[1]
    return code


def _bundle(importer: Optional[Importer], name: Any) -> Dict[str, Any]:
    """``name``'s entry and its related modules' from this interpreter's importer (fetched if need be)."""
    if importer is None or not isinstance(name, str):
        return {}
    if importer.policy.should_fetch(name, importer.cache):
        try:
            importer.fetch(name)
        except Exception:
            return {}
    found: Dict[str, Any] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        entry = importer.cache.get(current)
        if current in found or entry is None:
            continue
        found[current] = list(entry)
        todo.extend(r for r in entry[3] if r not in found)
    return found


#: what a module's run imports by computed names (ansible-core 2.19+), besides what its source names
_COMPUTED = (
    "ansible.module_utils.basic",
    "ansible.module_utils._internal._ansiballz._loader",
    "ansible.module_utils._internal._json._profiles._module_%s_m2c",
    "ansible.module_utils._internal._json._profiles._module_%s_c2m",
)


def fetch_run_closure(importer: Importer, name: str, source: bytes, profile: Any) -> None:
    """Have ``importer`` fetch what module ``name`` (``source``) imports, and what its run does by computed names."""
    from ._modscan import imported_names

    names = set(imported_names(name, False, source))
    names.update(n % str(profile or "legacy") if "%s" in n else n for n in _COMPUTED)
    for wanted in sorted(names):
        if importer.policy.should_fetch(wanted, importer.cache):
            try:
                importer.fetch(wanted)
            except Exception:
                pass  # whoever imports it later fails as it would here


def _preload(importer: Importer, request: Dict[str, Any]) -> Dict[str, Any]:
    """Every module this interpreter has, once it has what ``request``'s module imports.

    For an async job, which may outlive this interpreter: it asks nothing after
    starting unless the module imports, late, something neither it nor the run named.
    """
    fetch_run_closure(importer, request["name"], request["source"], request.get("profile"))
    return {name: list(entry) for name, entry in list(importer.cache.items())}


def _serve(channel: Channel, importer: Optional[Importer]) -> Any:
    """Answer the child's imports until it replies (its reply) or goes (None)."""
    while True:
        try:
            msg = channel.recv()
        except (OSError, ValueError):
            msg = None
        if not isinstance(msg, dict):
            return None
        if "import" in msg:
            try:
                bundle = _bundle(importer, msg["import"])
                channel.send({"bundle": bundle, "code": _compiled(bundle, importer)})
            except OSError:
                return None
            continue
        return msg


def _serve_rest(channel: Channel, importer: Optional[Importer]) -> None:
    try:
        _serve(channel, importer)
    finally:
        channel.close()


def run(request: Dict[str, Any], runner: str) -> Any:
    """Run ``request`` (``fork`` or ``async`` set) in a fork of the zygote; its reply.

    ``request``: a checked run request carrying its ``source``; ``runner``: the name
    of the module whose ``run_module`` runs it in the child (``_runner``, which calls
    this). The reply is ``run_module``'s; for an async job, the job's start
    (async_wrapper's printed JSON as the module's stdout), and the interpreter keeps
    answering the job's imports on a thread of its own until the job's module ends.
    """
    limit = request.get("async")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
        raise ValueError("run request: async must be a positive int")
    if not isinstance(request.get("source"), bytes):
        raise ValueError("run request: a run in a fork needs its source")
    zygote = _ZYGOTE.get("sock")
    if zygote is None:
        return _failed("this interpreter has no zygote to fork the module from (its fork failed at start)")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _SEND_LOCK:
            _send_fd(zygote, theirs.fileno())
    except OSError as exc:
        ours.close()
        try:
            os.waitpid(_ZYGOTE["pid"], os.WNOHANG)  # not left a zombie
        except OSError:
            pass
        return _failed("this interpreter's zygote (pid %s) is gone (%s); the module did not run" % (_ZYGOTE.get("pid"), exc))
    finally:
        theirs.close()
    channel = Channel(ours)
    importer = _interpreter_importer()
    STATS["jobs" if limit else "forks"] += 1
    init: Dict[str, Any] = {"request": request, "runner": runner, "prefixes": list(importer.prefixes) if importer else []}
    if limit and importer is not None:
        preload = init["preload"] = _preload(importer, request)
        init["code"] = _compiled(preload, importer)
    try:
        channel.send(init)
    except OSError:
        channel.close()
        return _failed("the zygote could not fork the module's process")
    msg = _serve(channel, importer)
    if msg is not None and "started" in msg:
        if msg["started"].get("failed"):
            channel.close()
            return {"rc": 1, "stdout": json.dumps(msg["started"]).encode(), "stderr": b""}
        threading.Thread(target=_serve_rest, args=(channel, importer), name="ns.mitogen.job", daemon=True).start()
        return {"rc": 0, "stdout": json.dumps(msg["started"]).encode(), "stderr": b""}
    channel.close()
    if msg is None or not isinstance(msg.get("reply"), dict):
        return _failed("the forked module process ended without a result")
    return msg["reply"]


def _failed(why: str) -> Dict[str, Any]:
    return {"rc": 1, "stdout": json.dumps({"failed": True, "msg": "ns.mitogen: " + why}).encode(), "stderr": b""}
