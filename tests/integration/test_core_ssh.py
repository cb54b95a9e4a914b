"""The core over real SSH on the testbed: hosts, sudo, a bastion, every Python, faults.

Hosts (session testbed): h1 and h2 reachable from the controller, h3 only through
h2. Accounts: nsm-key (key login), nsm-pw (password login), nsm-sudo (key login,
passwordless sudo), nsm-sudopw (key login, sudo with password).

What every transport must do (calls, errors, imports, files, a killed interpreter,
a lost stream, close) is checked once for all in test_conformance.py; this file keeps
what is particular to ssh and sudo.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import ConnectError, InterpreterLost, StreamError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._files import CHUNK
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._stream import RAW
from tests.integration import remote_helpers as rh
from tests.testbed.pythons import pythons

pytestmark = pytest.mark.testbed

HELPERS = "tests.integration.remote_helpers"
PY = "/usr/bin/python3"
FAULT_BOUND = 10.0  # every non-timeout fault must surface this fast (timeouts are 60 s)


@pytest.fixture
def session():
    s = api.Session(allow_imports=[HELPERS], connect_timeout=60)
    try:
        yield s
    finally:
        s.close()


def ssh(session, tb, host, user=None, via=None, **kw):
    """A context for ``user`` on ``host`` with the testbed's private key and known_hosts."""
    user = user or tb.users.key.name
    host = tb[host] if isinstance(host, str) else host
    if via is None:
        kw.setdefault("identity_file", str(tb.key))
        kw.setdefault("known_hosts_file", str(tb.known_hosts))
    kw.setdefault("python", PY)
    return session.ssh(host.address, username=user, via=via, **kw)


def test_sudo_through_ssh(session, testbed):
    login = ssh(session, testbed, "h1", testbed.users.sudo.name)
    root = session.sudo(via=login)
    assert root.call(rh.identity)["uid"] == 0
    other = session.sudo(via=login, username=testbed.users.key.name)
    assert other.call(rh.identity)["uid"] == testbed.users.key.uid


def test_bastion_chain_ssh_ssh_sudo(session, testbed):
    h3 = testbed["h3"]
    with pytest.raises(ConnectError):
        ssh(session, testbed, "h3", connect_timeout=5)  # only h2 can reach h3
    bastion = ssh(session, testbed, "h2", testbed.users.sudo.name)
    target = ssh(session, testbed, h3, testbed.users.sudo.name, via=bastion)
    root = session.sudo(via=target)
    ib, it, ir = bastion.call(rh.identity), target.call(rh.identity), root.call(rh.identity)
    assert ir["uid"] == 0 and it["uid"] == testbed.users.sudo.uid
    assert len({ib["id"], it["id"], ir["id"]}) == 3
    assert root.call(rh.echo, "through two hops") == "through two hops"


def test_password_login(session, testbed):
    user = testbed.users.pw
    ctx = session.ssh(
        testbed["h1"].address, username=user.name, password=user.password, known_hosts_file=str(testbed.known_hosts), python=PY
    )
    assert ctx.call(rh.identity)["uid"] == user.uid


def test_sudo_with_password(session, testbed):
    user = testbed.users.sudopw
    login = ssh(session, testbed, "h1", user.name)
    root = session.sudo(via=login, password=user.password)
    assert root.call(rh.identity)["uid"] == 0


SUPPORTED = [v for v in ("3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13") if v in pythons()]
OLD = [v for v in ("2.7",) if v in pythons()]


@pytest.mark.parametrize("version", SUPPORTED)
def test_every_supported_target_python(session, testbed, version):
    login = ssh(session, testbed, "h1", testbed.users.sudo.name, python=pythons()[version])
    assert ".".join(map(str, login.call(rh.identity)["python"][:2])) == version
    root = session.sudo(via=login)  # the same interpreter, through sudo
    assert root.call(rh.identity)["uid"] == 0
    nested = session.local(via=root, python=pythons()[version])
    assert nested.call(rh.echo, {"v": version}) == {"v": version}


@pytest.mark.parametrize("version", OLD)
def test_old_python_is_refused_plainly(session, testbed, version):
    start = time.monotonic()
    with pytest.raises(ConnectError) as info:
        ssh(session, testbed, "h1", python=pythons()[version])
    assert "found Python %s" % version in str(info.value) and "3.6 or newer" in str(info.value)
    assert time.monotonic() - start < FAULT_BOUND


def test_module_crosses_each_hop_once_on_a_three_hop_chain(session, testbed, tmp_path):
    import sys

    pkg = tmp_path / "nsm_remote_only"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .core import answer\n")
    (pkg / "core.py").write_text("from . import extra\n\ndef answer():\n    return extra.BASE + 2\n")
    (pkg / "extra.py").write_text("BASE = 40\n")
    sys.path.insert(0, str(tmp_path))
    try:
        session.allow_import("nsm_remote_only")
        h2 = ssh(session, testbed, "h2", testbed.users.sudo.name)
        h3 = ssh(session, testbed, "h3", testbed.users.sudo.name, via=h2)
        root = session.sudo(via=h3)
        assert root.call(rh.natively_importable, "nsm_remote_only") is False
        assert root.call(rh.import_and_use, "nsm_remote_only", "answer") == 42
        assert h3.call(rh.import_and_use, "nsm_remote_only", "answer") == 42
        assert h2.call(rh.import_and_use, "nsm_remote_only", "answer") == 42
        again = session.sudo(via=h3, username=testbed.users.key.name)
        assert again.call(rh.import_and_use, "nsm_remote_only", "answer") == 42
        crossings = {
            "controller->h2": session.responder.sent[h2.context_id],
            "h2->h3": h2.call(rh.stats)["modules_sent"][h3.context_id],
            "h3->root": h3.call(rh.stats)["modules_sent"][root.context_id],
            "h3->again": h3.call(rh.stats)["modules_sent"][again.context_id],
        }
        # core.answer, an imported attribute, travels as absent (the child need not ask)
        expected = {"nsm_remote_only", "nsm_remote_only.core", "nsm_remote_only.extra", "nsm_remote_only.core.answer"}
        for hop, sent in crossings.items():
            ours = {m: n for m, n in sent.items() if m.startswith("nsm_remote_only")}
            assert set(ours) == expected and set(ours.values()) == {1}, (hop, ours)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("nsm_remote_only")]:
            del sys.modules[name]


def test_pull_of_unregistered_file_is_refused_over_ssh(session, testbed):
    ctx = ssh(session, testbed, "h1")
    out = ctx.call(rh.pull, "/etc/ssh/ssh_host_ed25519_key", "/tmp/stolen")
    assert "RefusedError" in out
    assert not os.path.exists(os.path.join(testbed["h1"].tmp_dir, "stolen"))


# -- big files ---------------------------------------------------------------------------
def _big_file(path, size):
    block = os.urandom(4 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as fp:
        written = 0
        n = 0
        while written < size:
            chunk = (n.to_bytes(8, "big") + block)[: min(len(block), size - written)]
            fp.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            n += 1
    return digest.hexdigest()


def test_compression_gets_out_of_the_way_of_random_data(session, testbed, tmp_path):
    """Over a compressed ssh link, random file chunks cross raw both ways; text still shrinks."""
    ctx = ssh(session, testbed, "h1")
    stream = session.router.route_for(ctx.context_id)
    assert "compressed" in repr(stream)
    size = 32 << 20
    (tmp_path / "random").write_bytes(os.urandom(size))
    (tmp_path / "text").write_bytes(b"".join(b"line %08d of a log file\n" % i for i in range(size // 25)))
    try:
        for name in ("random", "text"):
            out, into = stream.bytes_out, stream.bytes_in
            raw_out, raw_in = stream.blocks_out[RAW], ctx.call(rh.parent_blocks)[RAW]
            session.push_file(ctx, str(tmp_path / name), "/tmp/nsm-%s" % name)
            session.fetch_file(ctx, "/tmp/nsm-%s" % name, str(tmp_path / (name + ".back")))
            sent, received = stream.bytes_out - out, stream.bytes_in - into
            raw_sent, raw_received = stream.blocks_out[RAW] - raw_out, ctx.call(rh.parent_blocks)[RAW] - raw_in
            assert (tmp_path / (name + ".back")).read_bytes() == (tmp_path / name).read_bytes()
            if name == "random":  # neither deflated here nor there: each 256 KiB chunk goes raw
                assert raw_sent >= size // CHUNK and raw_received >= size // CHUNK, (raw_sent, raw_received)
                assert size < sent < size * 1.01 and size < received < size * 1.01, (sent, received)
            else:
                assert raw_sent == raw_received == 0
                assert sent < size / 5 and received < size / 5, (sent, received)
    finally:
        for name in ("random", "text"):
            path = os.path.join(testbed["h1"].tmp_dir, "nsm-%s" % name)
            if os.path.exists(path):
                os.unlink(path)


@pytest.mark.slow
def test_one_gib_through_a_bastion_with_bounded_memory(session, testbed):
    size = 1 << 30
    src = "/var/tmp/nsm-1gib-%d.bin" % os.getpid()
    back = src + ".back"
    try:
        digest = _big_file(src, size)
        bastion = ssh(session, testbed, "h2", testbed.users.sudo.name)
        target = ssh(session, testbed, "h3", testbed.users.sudo.name, via=bastion)
        rh.peak_rss_reset()
        bastion.call(rh.peak_rss_reset)
        base_controller, base_bastion = rh.peak_rss(), bastion.call(rh.peak_rss)
        pushed = session.push_file(target, src, "/tmp/big.bin")
        assert pushed["size"] == size and pushed["sha256"] == digest
        assert target.call(rh.sha256_of, "/tmp/big.bin") == digest
        fetched = session.fetch_file(target, "/tmp/big.bin", back)
        assert fetched["sha256"] == digest and rh.sha256_of(back) == digest
        grew_controller = rh.peak_rss() - base_controller
        grew_bastion = bastion.call(rh.peak_rss) - base_bastion
        assert grew_controller < 64 << 20, "controller RSS grew by %d MiB" % (grew_controller >> 20)
        assert grew_bastion < 64 << 20, "bastion RSS grew by %d MiB" % (grew_bastion >> 20)
    finally:
        for path in (src, back):
            if os.path.exists(path):
                os.unlink(path)
        big = os.path.join(testbed["h3"].tmp_dir, "big.bin")
        if os.path.exists(big):
            os.unlink(big)


# -- faults --------------------------------------------------------------------------------
def _fails_fast(fn, match):
    start = time.monotonic()
    with pytest.raises((ConnectError, StreamError), match=match) as info:
        fn()
    elapsed = time.monotonic() - start
    assert elapsed < FAULT_BOUND, "took %.1fs: %s" % (elapsed, info.value)
    return info.value


def test_unreachable_host(session, testbed):
    address = testbed.unused_address()
    _fails_fast(
        lambda: session.ssh(address, username="x", known_hosts_file=str(testbed.known_hosts), python=PY), "unreachable|No route"
    )


def test_bad_key(session, testbed):
    _fails_fast(lambda: ssh(session, testbed, "h1", identity_file=str(testbed.other_key)), "authentication failed")


def test_unknown_host_key_never_prompts(session, testbed):
    _fails_fast(lambda: ssh(session, testbed, "h1", known_hosts_file=str(testbed.empty_known_hosts)), "host key is unknown")


def test_host_key_mismatch(session, testbed):
    _fails_fast(lambda: ssh(session, testbed, "h1", known_hosts_file=str(testbed.wrong_known_hosts)), "does not match")


def test_wrong_ssh_password(session, testbed):
    user = testbed.users.pw
    _fails_fast(
        lambda: session.ssh(
            testbed["h1"].address, username=user.name, password="wrong", known_hosts_file=str(testbed.known_hosts), python=PY
        ),
        "password was refused|authentication failed",
    )


def test_wrong_sudo_password(session, testbed):
    login = ssh(session, testbed, "h1", testbed.users.sudopw.name)
    _fails_fast(lambda: session.sudo(via=login, password="wrong"), "sudo password was refused")
    assert login.call(rh.echo, "login still fine") == "login still fine"


def test_sudo_password_missing(session, testbed):
    login = ssh(session, testbed, "h1", testbed.users.sudopw.name)
    _fails_fast(lambda: session.sudo(via=login), "needs a password")


def test_missing_python_on_target(session, testbed):
    _fails_fast(lambda: ssh(session, testbed, "h1", python="/usr/bin/python9"), "not found")


def test_sshd_killed(session, make_testbed):
    tb = make_testbed(hosts=2)
    ctx = ssh(session, tb, "h1")
    other = ssh(session, tb, "h2")
    recv = ctx.call_async(rh.sleep, 60)
    try:
        time.sleep(0.2)
        tb.kill_sshd("h1")
        err = _fails_fast(
            lambda: recv.get(60), "disconnected: ssh exited with status 255: Connection to .* closed by remote host"
        )
        assert not isinstance(err, InterpreterLost)  # the login is gone
    finally:
        recv.close()
    assert other.call(rh.echo, "other host fine") == "other host fine"


def test_network_cut_between_bastion_and_target(session, make_testbed):
    tb = make_testbed(hosts=2, private={"h2": "h1"})
    bastion = ssh(session, tb, "h1", tb.users.sudo.name)
    # A silent cut is found by keepalives only: the fault is itself a timeout, so
    # the test sets it (2 s x 2) and checks that the loss then surfaces promptly.
    target = ssh(session, tb, "h2", tb.users.sudo.name, via=bastion, keepalive_interval=2, keepalive_count=2)
    recv = target.call_async(rh.sleep, 60)
    try:
        time.sleep(0.2)
        tb.cut_link("h1", "h2")
        err = _fails_fast(lambda: recv.get(60), "disconnected: ssh exited with status 255: Timeout, server .* not responding")
        assert "no reply to 2 keepalives, one every 2 s" in str(err)  # the limit that expired
        assert "seen by ssh:" in str(err)  # names the hop that noticed: the bastion
        assert not isinstance(err, InterpreterLost)
    finally:
        recv.close()
    assert bastion.call(rh.echo, "bastion fine") == "bastion fine"
