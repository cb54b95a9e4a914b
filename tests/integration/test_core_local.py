"""The core on real local interpreters: calls, chains, importer, trust, files, faults.

Every context here is a real Python process started through the same bootstrap as
over SSH (``local`` transport), so these tests exercise the whole stack. What every
transport must do is checked once for all in test_conformance.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import textwrap
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _bootstrap, _spawn, api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import (
    CallError,
    ConnectError,
    InterpreterLost,
    StreamError,
)
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._transports import SpecError
from tests.integration import remote_helpers as rh
from tests.unavailable import unavailable

HELPERS = "tests.integration.remote_helpers"


@pytest.fixture
def session():
    s = api.Session(allow_imports=[HELPERS], connect_timeout=30)
    try:
        yield s
    finally:
        s.close()


def test_on_spawn_runs_once_the_child_runs_and_before_its_handshake(session):
    seen = []

    def on_spawn():
        seen.append((len(session.contexts), sorted(p.pid for p in _spawn._PROCESSES)))

    before = {p.pid for p in _spawn._PROCESSES}
    ctx = session.connect({"method": "local", "python": sys.executable}, on_spawn=on_spawn)
    ((contexts, pids),) = seen  # called once
    assert contexts == 0, "called after the handshake"
    (child,) = set(pids) - before
    assert ctx.call(os.getpid) == child


def test_call_returns_value_and_runs_in_another_process(session):
    ctx = session.local()
    info = ctx.call(rh.identity)
    assert info["pid"] != os.getpid() and info["ppid"] == os.getpid()
    assert ctx.call(rh.echo, {"a": [1, b"2", (3,)]}) == {"a": [1, b"2", (3,)]}


def test_sys_exit_in_a_call_is_an_error_not_a_dead_context(session):
    ctx = session.local()
    with pytest.raises(CallError, match="SystemExit"):
        ctx.call(rh.exit_now, 3)
    assert ctx.call(rh.echo, 1) == 1


def test_many_calls_in_flight(session):
    ctx = session.local()
    receivers = [ctx.call_async(rh.echo, i) for i in range(300)]
    try:
        assert [r.get(30).decode() for r in receivers] == list(range(300))
    finally:
        for r in receivers:
            r.close()


def test_calls_run_concurrently_in_the_target(session):
    ctx = session.local()
    start = time.monotonic()
    receivers = [ctx.call_async(rh.sleep, 1.0) for _n in range(8)]
    try:
        for r in receivers:
            r.get(30).decode()
    finally:
        for r in receivers:
            r.close()
    assert time.monotonic() - start < 6.0  # 8 sequential sleeps would take 8 s


def test_fire_and_forget(session, tmp_path):
    ctx = session.local()
    target = tmp_path / "fired"
    ctx.call_no_reply(rh.write_file, str(target), "yes")
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert target.read_text() == "yes"


def test_chain_of_three_local_hops(session):
    a = session.local()
    b = session.local(via=a)
    c = session.local(via=b)
    ia, ib, ic = (x.call(rh.identity) for x in (a, b, c))
    assert ib["ppid"] == ia["pid"] and ic["ppid"] == ib["pid"]
    assert c.call(rh.echo, "deep") == "deep"


def test_work_after_a_reply_runs_before_any_later_call(session):
    """AfterReply: the caller has its value at once; a call sent right after it waits
    for the work (the runner puts process state back that way after each module)."""
    a = session.local()
    started = time.monotonic()
    assert a.call(rh.reply_then, 1.0) == "replied"
    assert time.monotonic() - started < 0.9, "the reply waited for the work after it"
    assert a.call(rh.after_reply_done) is True
    assert a.call(rh.echo, "still serving") == "still serving"


def _make_package(root) -> str:
    pkg = root / "nsm_lacking_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 40\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("def two():\n    return 2\n")
    (pkg / "util.py").write_text(
        textwrap.dedent(
            """
            from . import VALUE
            from .sub import leaf

            def answer():
                return VALUE + leaf.two()
            """
        )
    )
    return str(root)


def test_module_the_target_lacks_is_imported_on_demand_once_per_hop(session, tmp_path):
    sys.path.insert(0, _make_package(tmp_path))
    try:
        session.allow_import("nsm_lacking_pkg")
        a = session.local()
        b = session.local(via=a)
        c = session.local(via=b)
        # The target does not have the package on its own path.
        assert c.call(rh.natively_importable, "nsm_lacking_pkg") is False
        assert c.call(rh.import_and_use, "nsm_lacking_pkg.util", "answer") == 42
        # Then its ancestors, and a fresh sibling below b, use the same modules.
        assert b.call(rh.import_and_use, "nsm_lacking_pkg.util", "answer") == 42
        assert a.call(rh.import_and_use, "nsm_lacking_pkg.util", "answer") == 42
        d = session.local(via=b)
        assert d.call(rh.import_and_use, "nsm_lacking_pkg.util", "answer") == 42

        hops = {
            "controller->a": session.responder.sent[a.context_id],
            "a->b": a.call(rh.stats)["modules_sent"][b.context_id],
            "b->c": b.call(rh.stats)["modules_sent"][c.context_id],
            "b->d": b.call(rh.stats)["modules_sent"][d.context_id],
        }
        for hop, sent in hops.items():
            ours = {m: n for m, n in sent.items() if m.startswith("nsm_lacking_pkg")}
            # VALUE is an attribute one module imports: it travels as absent, so that
            # the child does not ask for it (a round trip to hear "no such module").
            modules = {"nsm_lacking_pkg", "nsm_lacking_pkg.util", "nsm_lacking_pkg.sub", "nsm_lacking_pkg.sub.leaf"}
            assert set(ours) == modules | {"nsm_lacking_pkg.VALUE"}, hop
            assert set(ours.values()) == {1}, (hop, ours)
        # The whole tree crossed in one request per hop (related modules travel together).
        assert b.call(rh.stats)["import_requests"] <= 2
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("nsm_lacking_pkg")]:
            del sys.modules[name]


# -- trust rules -----------------------------------------------------------------------
def test_child_cannot_call_functions_in_its_parent_or_the_controller(session):
    a = session.local()
    b = session.local(via=a)
    assert "RefusedError" in a.call(rh.call_upwards, 0)
    assert "RefusedError" in b.call(rh.call_upwards, a.context_id)
    assert "RefusedError" in b.call(rh.call_upwards, 0)
    assert session.router.stats["refused"] >= 2


def test_child_cannot_call_unexposed_service_methods(session):
    a = session.local()
    out = a.call(rh.call_service, 0, "ns.mitogen.files", "register", {"context_id": a.context_id, "path": "/etc/shadow"})
    assert "RefusedError" in out and "not an exposed service method" in out
    out = a.call(rh.call_service, 0, "ns.mitogen.files", "fetch", {"path": 123, "handle": 5})
    assert "must be" in out
    out = a.call(rh.call_service, 0, "no.such.service", "x", {})
    assert "RefusedError" in out


def test_child_cannot_route_to_a_sibling(session):
    a = session.local()
    b = session.local()
    out = a.call(rh.call_sibling, b.context_id)
    assert "RefusedError" in out and "not its ancestor" in out
    assert b.call(rh.echo, "still fine") == "still fine"


def test_child_cannot_forge_its_source_id(session):
    a = session.local()
    b = session.local()
    before = session.router.stats["forged"]
    a.call(rh.forge_source, b.context_id, 0)
    assert a.call(rh.echo, 1) == 1  # the stream is ordered: the forged frame came first
    assert session.router.stats["forged"] == before + 1


def test_importer_never_serves_modules_outside_the_allow_list(session):
    a = session.local()
    for name in ("tests.conftest", "json", "ansible_collections.ns.mitogen.plugins.module_utils"):
        # conftest is controller code; json is stdlib; the ancestor package is served empty.
        got = a.call(rh.import_outside_allow_list, name)
        assert not got, name
    assert session.responder.refused >= 2


def test_pulling_an_unregistered_file_is_refused(session, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("SECRET")
    a = session.local()
    out = a.call(rh.pull, str(secret), str(tmp_path / "stolen"))
    assert "RefusedError" in out and "not registered" in out
    assert not (tmp_path / "stolen").exists()


# -- files --------------------------------------------------------------------------------
def test_push_and_fetch_preserve_content_and_mode_through_a_hop(session, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    os.chmod(src, 0o640)
    a = session.local()
    b = session.local(via=a)
    pushed = session.push_file(b, str(src), str(tmp_path / "remote.bin"))
    assert pushed["size"] == src.stat().st_size
    assert (tmp_path / "remote.bin").read_bytes() == src.read_bytes()
    assert oct((tmp_path / "remote.bin").stat().st_mode & 0o777) == oct(0o640)
    fetched = session.fetch_file(b, str(tmp_path / "remote.bin"), str(tmp_path / "back.bin"), mode=0o600)
    assert fetched["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert (tmp_path / "back.bin").stat().st_mode & 0o777 == 0o600
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".nsm-part")]


def test_fetch_if_changed_sends_bytes_only_for_a_readable_file_that_differs(session, tmp_path):
    src = tmp_path / "src.bin"
    data = os.urandom(2 * 1024 * 1024 + 5)
    src.write_bytes(data)
    (tmp_path / "dir").mkdir()
    b = session.local(via=session.local())
    dest = tmp_path / "new" / "sub" / "back.bin"

    def fetch(path, unless=None):
        return session.fetch_if_changed(b, str(path), str(dest), unless)

    assert fetch(tmp_path / "missing") == {"exists": False}
    assert fetch(tmp_path / "dir") == {"exists": True, "isdir": True}
    assert fetch(tmp_path / "missing" / "below")["exists"] is False
    assert fetch(src / "below") == {"error": "Not a directory"}
    assert not (tmp_path / "new").exists()  # no bytes: no directory made
    sha1 = hashlib.sha1(data).hexdigest()
    sent = fetch(src)
    assert sent["sent"] is True and sent["checksum"] == sha1 and sent["received"]["size"] == len(data)
    assert dest.read_bytes() == data
    assert fetch(src, sha1) == {"exists": True, "checksum": sha1, "sent": False}
    src.write_bytes(b"changed")
    again = fetch(src, sha1)
    assert again["sent"] is True and again["checksum"] == hashlib.sha1(b"changed").hexdigest()
    assert dest.read_bytes() == b"changed"
    with pytest.raises(NotADirectoryError):  # no directory made here: the sender stops (its chunks are refused)
        session.fetch_if_changed(b, str(src), str(dest / "below" / "x"))
    assert fetch(src, sha1)["sent"] is True  # the interpreter goes on
    os.mkfifo(tmp_path / "fifo")  # not a regular file: never opened (ansible's own action slurps it)
    assert fetch(tmp_path / "fifo") == {"exists": True, "readable": False}
    assert not [p for p in os.listdir(dest.parent) if p.endswith(".nsm-part")]


def test_failed_transfer_leaves_destination_untouched(session, tmp_path):
    a = session.local()
    dest = tmp_path / "dest"
    dest.write_text("old")
    with pytest.raises(CallError, match="FileNotFoundError"):
        session.fetch_file(a, str(tmp_path / "missing"), str(dest))
    assert dest.read_text() == "old"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".nsm-part")]


def test_empty_file(session, tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    a = session.local()
    assert session.push_file(a, str(tmp_path / "empty"), str(tmp_path / "empty2"))["size"] == 0
    assert (tmp_path / "empty2").read_bytes() == b""


def test_push_file_timeout_bounds_the_wait_for_each_chunk(session, tmp_path):
    """push_file's ``timeout`` was documented and ignored: the target waited 120 s."""
    fifo = tmp_path / "stalled"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer that never writes: the sender's read stalls
    try:
        a = session.local()
        started = time.monotonic()
        with pytest.raises(CallError, match="TimeoutError"):
            session.push_file(a, str(fifo), str(tmp_path / "dest"), timeout=1.0)
        assert time.monotonic() - started < 10
        assert not (tmp_path / "dest").exists()
    finally:
        os.close(writer)  # EOF: the sender ends (its receiver is gone)


# -- logging and output -----------------------------------------------------------------
def test_target_logging_and_stray_output_reach_the_controller(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with api.Session(allow_imports=[HELPERS]) as s:
        a = s.local()
        b = s.local(via=a)
        b.call(rh.log_and_print, "hello")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = caplog.text
            if "logged: hello" in text and "printed: hello" in text:
                break
            time.sleep(0.05)
    assert "logged: hello" in caplog.text
    assert "printed: hello" in caplog.text


# -- faults -------------------------------------------------------------------------------
def test_killed_interpreter_fails_pending_calls_at_once(session):
    a = session.local()
    b = session.local(via=a)
    pid = b.call(rh.identity)["pid"]
    recv = b.call_async(rh.sleep, 60)
    try:
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(InterpreterLost, match=r"disconnected: the interpreter \(pid %d\) was killed by SIGKILL" % pid):
            recv.get(60)
        assert time.monotonic() - start < 10
    finally:
        recv.close()
    assert a.call(rh.echo, "alive") == "alive"
    with pytest.raises(StreamError):
        b.call(rh.echo, 1, timeout=10)


def test_malformed_frame_drops_only_that_stream(session):
    a = session.local()
    b = session.local()
    a.call_no_reply(rh.send_garbage, b"this is not a frame at all, not even close......")
    with pytest.raises(StreamError, match="protocol error"):
        for _n in range(100):
            a.call(rh.echo, 1, timeout=10)
            time.sleep(0.05)
    assert b.call(rh.echo, "unaffected") == "unaffected"
    assert session.local().call(rh.echo, "new") == "new"


def test_oversized_frame_drops_only_that_stream(session):
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import HEADER, MAGIC, VERSION

    a = session.local()
    b = session.local()
    header = HEADER.pack(MAGIC, VERSION, 0, 0, a.context_id, 1, 0, 2**31)
    a.call_no_reply(rh.send_garbage, header)
    with pytest.raises(StreamError, match="exceeds the maximum"):
        for _n in range(100):
            a.call(rh.echo, 1, timeout=10)
            time.sleep(0.05)
    assert b.call(rh.echo, "ok") == "ok"


# -- start-up ----------------------------------------------------------------------------
def test_payload_size_is_guarded():
    size = len(_bootstrap.build_payload())
    assert size < 40 * 1024, "the bootstrap payload grew to %d bytes" % size


def test_first_stage_parses_on_old_pythons_and_says_what_it_found(session):
    from tests.testbed.pythons import pythons

    found = pythons()
    assert "2.7" in found, "this machine should carry Python 2.7 (pyenv)"
    with pytest.raises(ConnectError) as info:
        session.local(python=found["2.7"])
    text = str(info.value)
    assert "found Python 2.7" in text and "needs Python 3.6 or newer" in text, text


@pytest.mark.parametrize("version", ["3.6", "3.7"])
def test_core_runs_on_python_3_6_and_3_7(session, version):
    """The core is lowered for them (_lower): a child, and a child of it, run there."""
    from tests.testbed.pythons import pythons

    python = pythons().get(version)
    if python is None:
        unavailable("needs pyenv's Python %s" % version)
    ctx = session.local(python=python)
    try:
        assert ctx.call(rh.identity)["executable"] == python
        nested = session.local(via=ctx)  # _bootstrap and _transports, served lowered
        assert tuple(nested.call(rh.identity)["python"][:2]) == tuple(map(int, version.split(".")))
        assert nested.call(rh.echo, {"v": [version, b"x"]}) == {"v": [version, b"x"]}
    finally:
        ctx.shutdown()


def test_python_min_names_what_the_caller_wants(session):
    """A caller wanting 3.9+ (ansible-core 2.20's targets) hears it named for an old Python."""
    from tests.testbed.pythons import pythons

    found = pythons()
    if "2.7" not in found:
        unavailable("needs pyenv's Python 2.7")
    with pytest.raises(ConnectError) as info:
        session.connect({"method": "local", "python": found["2.7"], "python_min": "3.9"})
    text = str(info.value)
    assert "found Python 2.7" in text and "needs Python 3.9 or newer" in text and "3.6" not in text, text


def test_discovery_skips_candidates_older_than_python_min(session):
    """Discovery takes the first candidate that runs as the wanted Python, one shell for all."""
    from tests.testbed.pythons import pythons

    found = pythons()
    if not {"2.7", "3.6", "3.12"} <= set(found):
        unavailable("needs pyenv's Python 2.7, 3.6 and 3.12")
    candidates = ["/nonexistent/python3", found["2.7"], found["3.6"], found["3.12"]]
    ctx = session.connect({"method": "local", "python_candidates": candidates, "python_min": "3.9"})
    try:
        assert ctx.call(rh.identity)["executable"] == found["3.12"]
    finally:
        ctx.shutdown()
    ctx = session.connect({"method": "local", "python_candidates": candidates})
    try:
        assert ctx.call(rh.identity)["executable"] == found["3.6"]  # the core's own minimum
    finally:
        ctx.shutdown()
    with pytest.raises(ConnectError, match="found no Python 3.13 or newer that runs"):
        session.connect({"method": "local", "python_candidates": candidates, "python_min": "3.13"})


def test_bad_spec_is_a_clear_error(session):
    with pytest.raises(SpecError, match="unknown option"):
        session.connect({"method": "local", "pyhton": "x"})
    with pytest.raises(SpecError, match="must be"):
        session.connect({"method": "ssh", "hostname": "h", "port": "22"})
    with pytest.raises(SpecError, match="unknown connection method"):
        session.connect({"method": "telnet"})


def test_missing_interpreter_is_a_clear_error(session):
    start = time.monotonic()
    with pytest.raises(ConnectError, match="cannot run /nonexistent/python3: .*No such file"):
        session.local(python="/nonexistent/python3")
    assert time.monotonic() - start < 10


def test_router_survives_10000_fuzzed_frames_from_a_target(session, caplog):
    caplog.set_level(logging.ERROR)  # thousands of refusals are logged as warnings
    a = session.local()
    b = session.local()
    assert a.call(rh.fuzz_parent, 10000, 1) == 10000
    # Ordered stream: once this call returns, every fuzzed frame was handled.
    assert a.call(rh.echo, "after the storm", timeout=60) == "after the storm"
    assert b.call(rh.echo, "sibling fine") == "sibling fine"
    assert session.local().call(rh.echo, "new context fine") == "new context fine"
    assert session.router.stats["forged"] > 1000 and session.router.stats["refused"] > 1000


def test_slow_peer_makes_the_sender_wait_not_the_memory_grow(session):
    """A stopped target stops reading: senders block near the high-water mark."""
    import threading

    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._stream import HIGH_WATER

    a = session.local()
    pid = a.call(rh.identity)["pid"]
    stream = session.router.route_for(a.context_id)
    payload = b"x" * (1 << 20)
    sent = []

    def sender():
        for i in range(64):
            a.call_no_reply(rh.echo, payload)
            sent.append(i)

    os.kill(pid, signal.SIGSTOP)
    thread = threading.Thread(target=sender)
    try:
        thread.start()
        time.sleep(1.5)
        assert thread.is_alive() and len(sent) < 64, "the sender should be waiting"
        # Pipe capacity plus at most a few messages over the mark, never all 64 MiB.
        assert stream.buffered < HIGH_WATER + 4 * len(payload) + 1024
    finally:
        os.kill(pid, signal.SIGCONT)
        thread.join(60)
    assert len(sent) == 64 and a.call(rh.echo, "drained", timeout=60) == "drained"


def _running(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fp:
            return fp.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killed_controller_leaves_no_interpreter_behind():
    import subprocess

    code = (
        "import os, sys, time\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Session\n"
        "s = Session()\n"
        "a = s.local(); b = s.local(via=a)\n"
        "print(a.call(os.getpid), b.call(os.getpid), flush=True)\n"
        "time.sleep(120)\n" % (sys.path[:2],)
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_running(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _running(p)], "interpreters outlived their controller"


def test_connect_timeout_bounds_the_login_and_the_boot_each_not_their_sum(session, tmp_path):
    """A start whose login (here: an interpreter slow to reach) and boot (its payload
    late) each take well under ``connect_timeout`` but together more: each phase has
    an allowance of its own, as ansible.builtin.ssh's timeout bounds only its
    connection (before, the start failed: "did not complete the handshake")."""
    slow = tmp_path / "slow-python"
    slow.write_text(
        "#!/bin/sh\n"
        "sleep 2.5\n"  # before Python runs: the login's share
        '{ sleep 2.5; exec cat; } | exec %s "$@"\n' % sys.executable  # the payload, late: the boot's share
    )
    slow.chmod(0o755)
    ctx = session.local(python=str(slow), connect_timeout=4)
    assert ctx.call(os.getpid) != os.getpid()
