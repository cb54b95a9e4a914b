"""The transport conformance suite: what every transport must do, written once.

``test_conformance.py`` runs every check in ``CHECKS`` against every transport in
its ``TRANSPORTS`` (local, ssh, sudo on ssh and on local, ssh via a bastion), each
pair its own test id (``test_conformance[ssh-kill_interpreter_and_recover]``), so a
failure names the transport and the property at once.

Adding a transport (su, doas, podman, docker, ...) is one entry in ``TRANSPORTS``::

    "podman": lambda tb: Transport(
        name="podman",
        open=lambda s, via: s.connect({"method": "podman", "container": "c1", "python": PY}),
        uid=0,
        python=PY,
    ),

``open_via`` opens what the target is started from (default: nothing, the
controller starts it); ``open`` opens the context under test from there, a new
interpreter each time. ``uid``, ``python`` (and ``version``, if given) are what
that interpreter must report. ``carrier`` says which process carries the stream to
the target (default: the program its parent started, ``program_of_target``); give
``program_of_via`` where killing that program cuts nothing (sudo: its child
inherits the pipes, and serves on).
The checks signal processes by the pids the targets report, so the controller must
be able to (root, one PID namespace: the testbed's hosts share the controller's);
a target in a PID namespace of its own (a container) gives ``host_pid``, which
turns the pid it reports into the controller's (``pid_in_host``).

Each check takes ``(transport, session, tmp_path)``; ``session`` is an
``api.Session`` that may import ``remote_helpers`` and that the test closes; the
``no_leaks`` fixture then fails any check that leaves a thread, fd or child behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pwd
import re
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError, InterpreterLost, StreamError
from tests.integration import remote_helpers as rh

HELPERS = "tests.integration.remote_helpers"
FAULT_BOUND = 10.0  # a lost stream or interpreter fails every pending call this fast
PENDING = 4  # calls in flight when a fault strikes
BIG = 64 << 20


class Opened(NamedTuple):
    ctx: api.Context
    via: Optional[api.Context]


def program_of_target(session: api.Session, opened: Opened) -> Tuple[int, str]:
    """(pid, name of the context it carries): the program the target's parent started."""
    ctx, via = opened
    if via is None:
        return session.router.route_for(ctx.context_id).owner.pid, ctx.name  # type: ignore[union-attr]
    return via.call(rh.transport_pid, ctx.context_id), ctx.name


def program_of_via(session: api.Session, opened: Opened) -> Tuple[int, str]:
    """For transports whose program is no carrier: the program that started ``via``."""
    assert opened.via is not None
    return program_of_target(session, Opened(opened.via, None))


@dataclasses.dataclass(frozen=True)
class Transport:
    """One way of opening a context, and what a context opened that way must report."""

    name: str
    open: Callable[[api.Session, Optional[api.Context]], api.Context]
    uid: int
    python: str
    version: Optional[Tuple[int, int]] = None  # the Python ``python`` is there, if known
    open_via: Callable[[api.Session], Optional[api.Context]] = lambda session: None
    carrier: Callable[[api.Session, Opened], Tuple[int, str]] = program_of_target
    # the controller's pid of a process the target reports as ``pid`` (another PID namespace)
    host_pid: Callable[[api.Session, Opened, int], int] = lambda session, opened, pid: pid

    def start(self, session: api.Session) -> Opened:
        via = self.open_via(session)
        return Opened(self.open(session, via), via)


def _status_fields(pid: int) -> dict:
    with open("/proc/%d/status" % pid) as fp:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fp if ":\t" in line)


def pid_in_host(session: api.Session, opened: Opened, pid: int) -> int:
    """``host_pid`` for a target in a PID namespace of its own: the process below the
    target's carrier (``program_of_target``) whose innermost pid is ``pid``."""
    carrier, _name = program_of_target(session, opened)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _status_fields(int(entry))
            ancestor = int(fields["PPid"])
            if fields.get("NSpid", "").split()[-1:] != [str(pid)]:
                continue
            while ancestor > 1 and ancestor != carrier:
                ancestor = int(_status_fields(ancestor)["PPid"])
        except (OSError, KeyError, ValueError):
            continue
        if ancestor == carrier:
            return int(entry)
    raise AssertionError("no process below pid %d is pid %d in its namespace" % (carrier, pid))


def _fails_fast(recv: Any, match: str, kind: type = StreamError) -> BaseException:
    start = time.monotonic()
    with pytest.raises(kind, match=match) as info:
        recv.get(FAULT_BOUND)  # a TimeoutError instead fails the check too
    elapsed = time.monotonic() - start
    assert elapsed < FAULT_BOUND, "a pending call took %.1f s to fail: %s" % (elapsed, info.value)
    return info.value


def _running(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fp:
            return fp.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- the checks ----------------------------------------------------------------------
def start(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """It starts, as the account and with the Python asked for, in its own process."""
    ctx, via = t.start(session)
    info = ctx.call(rh.identity)
    assert (info["uid"], info["executable"]) == (t.uid, t.python), info
    assert pwd.getpwuid(info["uid"]).pw_name == pwd.getpwuid(t.uid).pw_name
    hello = session.hellos[ctx.context_id]
    assert info["python"] == hello["python"] and tuple(info["python"][:2]) >= (3, 6)
    if t.version is not None:
        assert tuple(info["python"][:2]) == t.version, info
    assert info["pid"] == hello["pid"] != os.getpid() and info["id"] == ctx.context_id
    if via is not None:
        assert via.call(rh.identity)["pid"] != info["pid"]


def call(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """A call returns its value, every codec type intact, and calls may overlap."""
    ctx, _via = t.start(session)
    value = {"s": "é", "b": b"\x00\xff", "t": (1, 2.5, None, True), "l": [[], {}], "big": 10**30}
    assert ctx.call(rh.echo, value) == value
    assert ctx.call(os.getpid) == ctx.call(rh.identity)["pid"]
    receivers = [ctx.call_async(rh.echo, n) for n in range(50)]
    try:
        assert [r.get(30).decode() for r in receivers] == list(range(50))
    finally:
        for r in receivers:
            r.close()


def remote_exception(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """A remote exception arrives as CallError with type, message and traceback."""
    ctx, _via = t.start(session)
    with pytest.raises(CallError) as info:
        ctx.call(rh.fail, "boom")
    assert info.value.type_name == "ValueError" and info.value.remote_message == "boom"
    assert "remote_helpers.py" in info.value.remote_traceback and "in fail" in info.value.remote_traceback
    assert ctx.name in str(info.value)
    assert ctx.call(rh.echo, "still serving") == "still serving"


def import_on_demand(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """A package the target lacks is served from the controller when imported."""
    name = "nsm_conformance_pkg"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("BASE = 40\n")
    (pkg / "util.py").write_text("from . import BASE\n\ndef answer():\n    return BASE + 2\n")
    sys.path.insert(0, str(tmp_path))
    try:
        session.allow_import(name)
        ctx, via = t.start(session)
        assert ctx.call(rh.natively_importable, name) is False
        assert ctx.call(rh.import_and_use, name + ".util", "answer") == 42
        assert name + ".util" in session.responder.sent[(via or ctx).context_id]  # from here
    finally:
        sys.path.remove(str(tmp_path))
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]


def _round_trip(session: api.Session, ctx: api.Context, src: str, digest: str, size: int, back: str) -> None:
    remote_dir = ctx.call(tempfile.mkdtemp, "", "nsm-conformance-")
    try:
        remote = remote_dir + "/file.bin"
        pushed = session.push_file(ctx, src, remote)
        assert (pushed["size"], pushed["sha256"], pushed["path"]) == (size, digest, remote)
        assert ctx.call(rh.sha256_of, remote) == digest
        fetched = session.fetch_file(ctx, remote, back)
        assert (fetched["size"], fetched["sha256"]) == (size, digest)
        assert rh.sha256_of(back) == digest
    finally:
        ctx.call(shutil.rmtree, remote_dir)


def small_file(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """push_file / fetch_file move a small file both ways, checksums equal."""
    data = os.urandom(100_003)
    src = tmp_path / "small.bin"
    src.write_bytes(data)
    ctx, _via = t.start(session)
    _round_trip(session, ctx, str(src), hashlib.sha256(data).hexdigest(), len(data), str(tmp_path / "back.bin"))


def big_file(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """push_file / fetch_file move 64 MiB both ways, checksums equal."""
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as fp:
        for _n in range(BIG >> 22):
            block = os.urandom(4 << 20)
            fp.write(block)
            digest.update(block)
    ctx, _via = t.start(session)
    _round_trip(session, ctx, str(src), digest.hexdigest(), BIG, str(tmp_path / "back.bin"))


def _pending(ctx: api.Context) -> List[Any]:
    receivers = [ctx.call_async(rh.sleep, 60) for _n in range(PENDING)]
    time.sleep(0.3)  # the calls are running there
    return receivers


def kill_interpreter_and_recover(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """SIGKILL of the interpreter fails every pending call at once with InterpreterLost
    (status 137, as a shell says), told from a lost login: over ssh, the shell that
    waits for the interpreter on the target makes ssh exit with its status, not
    255. The hop below stays, and the next start through it gives a new, working
    interpreter."""
    ctx, via = t.start(session)
    pid = ctx.call(rh.identity)["pid"]
    host_pid = t.host_pid(session, Opened(ctx, via), pid)
    receivers = _pending(ctx)
    try:
        os.kill(host_pid, signal.SIGKILL)
        for recv in receivers:
            err = _fails_fast(
                recv,
                r"^%s disconnected: the interpreter \(pid %d\) was killed by SIGKILL" % (re.escape(ctx.name), pid),
                InterpreterLost,
            )
            assert err.status == 137  # type: ignore[attr-defined]
    finally:
        for recv in receivers:
            recv.close()
    with pytest.raises(StreamError):
        ctx.call(rh.echo, 1, timeout=FAULT_BOUND)
    if via is not None:
        assert via.call(rh.echo, "hop fine") == "hop fine"
    again = t.open(session, via)
    info = again.call(rh.identity)
    assert info["pid"] != pid and info["uid"] == t.uid
    assert again.call(rh.echo, "recovered") == "recovered"


def disconnect(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """Killing the process that carries the stream fails every pending call promptly
    with a StreamError naming the lost context; later calls fail at once."""
    opened = t.start(session)
    ctx = opened.ctx
    ctx.call(rh.echo, "up")
    pid, lost = t.carrier(session, opened)
    receivers = _pending(ctx)
    try:
        os.kill(pid, signal.SIGKILL)
        for recv in receivers:
            _fails_fast(recv, "^%s disconnected: " % re.escape(lost))
    finally:
        for recv in receivers:
            recv.close()
    start = time.monotonic()
    with pytest.raises(StreamError, match=re.escape(ctx.name)):
        ctx.call(rh.echo, 1, timeout=FAULT_BOUND)
    assert time.monotonic() - start < FAULT_BOUND


def close_leaves_nothing(t: Transport, session: api.Session, tmp_path: Any) -> None:
    """close() ends every interpreter it started, here and on the targets (``no_leaks``
    checks this process's threads, fds and children after the test)."""
    ctx, via = t.start(session)
    pids = [t.host_pid(session, Opened(ctx, via), ctx.call(rh.identity)["pid"])]
    pids += [via.call(rh.identity)["pid"]] if via is not None else []
    pids.append(t.carrier(session, Opened(ctx, via))[0])
    assert all(_running(p) for p in pids)
    session.close()
    deadline = time.monotonic() + FAULT_BOUND
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _running(p)], "processes outlived close()"


# Each check, and whether it is slow (see pyproject's markers).
CHECKS: List[Tuple[Callable[[Transport, api.Session, Any], None], bool]] = [
    (start, False),
    (call, False),
    (remote_exception, False),
    (import_on_demand, False),
    (small_file, False),
    (big_file, True),
    (kill_interpreter_and_recover, False),
    (disconnect, False),
    (close_leaves_nothing, False),
]
