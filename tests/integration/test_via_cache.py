"""What crosses the link to an intermediary: once per run, whatever the number of targets behind it.

Real testbed: h3 is reachable only through h2 (the bastion). Ten targets behind the
bastion (ten interpreters on h3, each a context of its own) import the same modules
and get the same files; each module, module source and file crosses the
controller->bastion link once, counted on the controller's side (the importer's
``Responder.sent``, the mux's ``stats``, and the bytes written on the controller's
stream to the bastion). Also: connections behind one bastion start concurrently.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
import time

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux, _mux_client
from tests.integration import remote_helpers as rh
from tests.integration.runner_support import full_args, make_request, module_path
from tests.testbed import Testbed
from tests.testbed.fixtures import _skip_if_unsupported

pytestmark = pytest.mark.testbed

HELPERS = "tests.integration.remote_helpers"
PY = "/usr/bin/python3"
TARGETS = 10


@pytest.fixture
def session():
    s = api.Session(allow_imports=[HELPERS], connect_timeout=60)
    try:
        yield s
    finally:
        s.close()


def _bastion(session, tb, host="h2"):
    return session.ssh(
        tb[host].address,
        username=tb.users.sudo.name,
        identity_file=str(tb.key),
        known_hosts_file=str(tb.known_hosts),
        python=PY,
    )


def _targets(session, tb, bastion, n=TARGETS):
    return [session.ssh(tb["h3"].address, username=tb.users.sudo.name, via=bastion, python=PY) for _n in range(n)]


def _bytes_to(session, ctx):
    return session.router.route_for(ctx.context_id).bytes_out


def _in_threads(fn, items):
    errors, results = [], {}

    def run(i, item):
        try:
            results[i] = fn(item)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, item)) for i, item in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(items))]


def test_ten_targets_behind_a_bastion_get_each_module_across_its_link_once(session, testbed):
    bastion = _bastion(session, testbed)
    before = _bytes_to(session, bastion)
    targets = _targets(session, testbed, bastion, 1)
    first = _bytes_to(session, bastion) - before  # the code that starts children, and the call
    targets += _targets(session, testbed, bastion, TARGETS - 1)
    rest = _bytes_to(session, bastion) - before - first
    assert rest * 10 < first, "the first start sent %d bytes to the bastion, the next 9 %d" % (first, rest)
    ids = _in_threads(lambda t: t.call(rh.identity)["id"], targets)  # all import the helpers at once
    assert ids == [t.context_id for t in targets]
    sent = session.responder.sent
    assert set(sent) == {bastion.context_id}, sent  # the controller served the bastion only
    assert HELPERS in sent[bastion.context_id]
    assert all(n == 1 for n in sent[bastion.context_id].values()), sent
    below = bastion.call(rh.stats)["modules_sent"]  # the bastion served each target itself
    assert {t.context_id for t in targets} <= set(below)
    assert all(HELPERS in below[t.context_id] for t in targets)


def _random_file(path, size):
    data = os.urandom(size)  # incompressible: the stream's zlib cannot hide a second copy
    with open(path, "wb") as fp:
        fp.write(data)
    return hashlib.sha256(data).hexdigest()


def test_a_file_copied_to_ten_targets_behind_a_bastion_crosses_its_link_once(session, testbed, tmp_path):
    size = 4 << 20
    src = str(tmp_path / "payload.bin")
    digest = _random_file(src, size)
    bastion = _bastion(session, testbed)
    targets = _targets(session, testbed, bastion)
    for t in targets:
        t.call(rh.echo, 1)  # started and warm: only the copies are counted
    before = _bytes_to(session, bastion)
    results = _in_threads(lambda t: session.push_file_cached(t, bastion, src, "/tmp/copy-%d.bin" % t.context_id, 0o640), targets)
    crossed = _bytes_to(session, bastion) - before
    assert all(r["sha256"] == digest and r["size"] == size and r["mode"] == 0o640 for r in results), results
    for t in targets:
        assert t.call(rh.sha256_of, "/tmp/copy-%d.bin" % t.context_id) == digest
    assert size <= crossed < size * 1.2, "%d bytes crossed for a %d-byte file" % (crossed, size)
    # The control: without the cache each copy crosses the link.
    before = _bytes_to(session, bastion)
    for t in targets[:2]:
        session.push_file(t, src, "/tmp/direct.bin")
    assert _bytes_to(session, bastion) - before >= 2 * size


def test_the_bastion_cache_is_bounded_private_and_removed_at_exit(session, testbed, tmp_path):
    bastion = _bastion(session, testbed)
    target = _targets(session, testbed, bastion, 1)[0]
    files = []
    for i in range(3):
        path = str(tmp_path / ("f%d.bin" % i))
        files.append((path, _random_file(path, 1 << 20)))
    limit = (5 << 20) // 2  # two of the three fit
    for path, digest in files:
        assert session.push_file_cached(target, bastion, path, "/tmp/one.bin", limit=limit)["sha256"] == digest
    dirs = glob.glob(os.path.join(str(testbed["h2"].tmp_dir), "ns-mitogen-hopcache-*"))
    assert len(dirs) == 1, dirs
    assert os.stat(dirs[0]).st_mode & 0o777 == 0o700
    kept = os.listdir(dirs[0])
    assert sorted(kept) == sorted(d for _p, d in files[1:]), kept  # the least recently used went
    too_big = str(tmp_path / "big.bin")
    digest = _random_file(too_big, 3 << 20)  # over the bound: pushed directly, not cached
    assert session.push_file_cached(target, bastion, too_big, "/tmp/big.bin", limit=limit)["sha256"] == digest
    assert digest not in os.listdir(dirs[0])
    bastion.shutdown()
    deadline = time.monotonic() + 10
    while os.path.exists(dirs[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(dirs[0])


# -- through the mux: stacks whose prefix is the bastion's ------------------------------
def _stacks(tb, n=TARGETS, bastion_host="h2", target_host="h3"):
    """The bastion's stack, and ``n`` target stacks behind it (distinct by name)."""
    bastion = {
        "method": "ssh",
        "hostname": tb[bastion_host].address,
        "username": tb.users.sudo.name,
        "identity_file": str(tb.key),
        "known_hosts_file": str(tb.known_hosts),
        "python": PY,
    }
    target = {"method": "ssh", "hostname": tb[target_host].address, "username": tb.users.sudo.name, "python": PY}
    return [bastion], [[bastion, dict(target, name="target-%d" % i)] for i in range(n)]


@pytest.fixture
def client(playbook):
    client = _mux_client.connect_client(playbook.pid, [])
    try:
        yield client
    finally:
        client.close()


def test_through_the_mux_ten_targets_share_one_bastion_and_each_source_crosses_once(client, testbed, tmp_path):
    bastion_stack, stacks = _stacks(testbed)
    path = module_path("ping")
    request = make_request(path, full_args({"data": "x"}, "ping", "/tmp"), name="ansible.modules.ping", send_source=False)
    request.pop("source_path", None)
    for stack in stacks:
        reply = client.call(stack, _mux.RUN_MODULE, (request,), source_id=request["source_id"], source_path=path, login_hops=2)
        assert reply.get("rc") == 0 and b'"ping": "x"' in reply["stdout"], reply
    bastion_id = client.request("connect", stack=bastion_stack)["context_id"]
    ids = {client.request("connect", stack=stack, login_hops=2)["context_id"] for stack in stacks}
    assert len(ids) == TARGETS and bastion_id not in ids  # one interpreter per target, one bastion for all
    assert client.request("ping")["contexts"] == TARGETS + 1  # the bastion's stack is every target's prefix
    stats = client.request("stats")
    # The mux gave the bastion the source once, ahead of the first run; nobody asked it since.
    assert stats["sources_given"] == {bastion_id: {request["source_id"]: 1}}, stats
    assert stats["sources_served"] == {}, stats
    assert set(stats["modules_sent"]) == {bastion_id}, stats["modules_sent"]
    assert all(n == 1 for n in stats["modules_sent"][bastion_id].values()), stats["modules_sent"]
    # Each target asked the bastion once for its first run's modules, as one not behind it
    # asks the mux: the bastion sends along what the mux sent with them (companions).
    for stack in stacks:
        assert client.call(stack, (_mux.CORE + "._child", "stats"), (), login_hops=2)["import_requests"] == 1
    # A file copied to each crosses the link to the bastion once.
    size = 2 << 20
    src = str(tmp_path / "copy.bin")
    digest = _random_file(src, size)
    before = stats["bytes_out"][bastion_id]
    for stack in stacks:
        context_id = client.request("connect", stack=stack, login_hops=2)["context_id"]
        pushed = client.request("push_file", context_id=context_id, local_path=src, remote_path="/tmp/copy-%d" % context_id)
        assert pushed["sha256"] == digest
    after = client.request("stats")
    assert after["cached_pushes"] == TARGETS
    crossed = after["bytes_out"][bastion_id] - before
    assert size <= crossed < size * 1.2, "%d bytes crossed for a %d-byte file" % (crossed, size)
    # hop_cache_size 0: straight through, as before.
    context_id = client.request("connect", stack=stacks[1], login_hops=2)["context_id"]
    client.request("push_file", context_id=context_id, local_path=src, remote_path="/tmp/direct", cache_size=0)
    assert client.request("stats")["cached_pushes"] == TARGETS
    # A reset of one target's stack shuts its interpreter only, never the shared bastion.
    assert client.request("reset", stack=stacks[0]) == 1
    assert client.request("ping")["contexts"] == TARGETS


# -- parallel setup -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def far_bastion():
    """h1 20 ms from the controller, h2 behind it 60 ms further."""
    _skip_if_unsupported()
    tb = Testbed(hosts=2, rtt_ms=20, host_rtt_ms={"h2": 60}, private={"h2": "h1"})
    try:
        tb.start()
        yield tb
    finally:
        tb.close()


def test_ten_targets_behind_a_bastion_with_latency_start_concurrently(far_bastion):
    """Each start behind the bastion pays the bastion->target latency (ssh's round
    trips, the boot): ten at once must cost about one, not ten."""
    tb = far_bastion
    with api.Session(allow_imports=[HELPERS], connect_timeout=60) as session:
        bastion = _bastion(session, tb, "h1")

        def start(_i=0):
            return session.ssh(tb["h2"].address, username=tb.users.sudo.name, via=bastion, python=PY)

        start()
        _in_threads(start, range(10))
        peak = bastion.call(rh.stats)["calls_peak"]
    # each start holds a call on the bastion for its whole handshake (60 ms away):
    # ten of them at once is the proof, not a time
    assert peak >= 10, "the bastion ran at most %d starts at once" % peak


def test_through_the_mux_ten_targets_behind_a_bastion_start_concurrently(far_bastion, playbook):
    bastion_stack, stacks = _stacks(far_bastion, 11, "h1", "h2")
    clients = [_mux_client.connect_client(playbook.pid, []) for _n in range(11)]
    try:
        clients[0].request("connect", stack=bastion_stack)
        clients[0].request("connect", stack=stacks[0], login_hops=2)
        _in_threads(lambda i: clients[i].request("connect", stack=stacks[i], login_hops=2), range(1, 11))
        stats = clients[0].request("stats")
    finally:
        for c in clients:
            c.close()
    assert stats["peak_starts"] >= 10, "the mux ran at most %d starts at once" % stats["peak_starts"]


# -- a large file through the cache ------------------------------------------------------------
@pytest.mark.slow
def test_one_gib_through_a_far_bastion_cache_keeps_its_memory_bounded(make_testbed, tmp_path):
    """The bastion (50 ms from the controller) writes the file to its cache on disk
    and streams it on from there: its RSS grows by the transfer windows, not the file."""
    tb = make_testbed(hosts=2, host_rtt_ms={"h1": 50}, private={"h2": "h1"})
    size = 1 << 30
    src = "/var/tmp/nsm-via-1gib-%d.bin" % os.getpid()
    digest = hashlib.sha256()
    try:
        with open(src, "wb") as fp:
            block = os.urandom(1 << 20)
            for i in range(size >> 20):
                chunk = block[:-8] + i.to_bytes(8, "big")  # no two blocks alike
                digest.update(chunk)
                fp.write(chunk)
        with api.Session(allow_imports=[HELPERS], connect_timeout=60) as session:
            bastion = _bastion(session, tb, "h1")
            target = session.ssh(tb["h2"].address, username=tb.users.sudo.name, via=bastion, python=PY)
            target.call(rh.echo, 1)
            bastion.call(rh.peak_rss_reset)
            base = bastion.call(rh.peak_rss)
            pushed = session.push_file_cached(target, bastion, src, "/tmp/big.bin", limit=size, timeout=300)
            assert pushed["sha256"] == digest.hexdigest()
            assert target.call(rh.sha256_of, "/tmp/big.bin") == digest.hexdigest()
            grew = bastion.call(rh.peak_rss) - base
            cached = glob.glob(os.path.join(str(tb["h1"].tmp_dir), "ns-mitogen-hopcache-*", digest.hexdigest()))
            assert len(cached) == 1, "not through the bastion's cache"
        assert grew < 64 << 20, "bastion RSS grew by %d MiB" % (grew >> 20)
    finally:
        for path in (src, os.path.join(str(tb["h2"].tmp_dir), "big.bin")):
            if os.path.exists(path):
                os.unlink(path)


def test_the_pool_size_bounds_how_many_start_at_once(client, playbook, testbed):
    """``pool_size`` (MITOGEN_POOL_SIZE): at most that many starts at once, the rest wait."""
    bastion_stack, stacks = _stacks(testbed, 6)
    clients = [client] + [_mux_client.connect_client(playbook.pid, []) for _n in range(5)]
    try:
        clients[0].request("connect", stack=bastion_stack, pool_size=2)
        _in_threads(lambda i: clients[i].request("connect", stack=stacks[i], login_hops=2, pool_size=2), range(6))
        stats = client.request("stats")
    finally:
        for c in clients[1:]:
            c.close()
    assert stats["pool_size"] == 2
    assert stats["peak_starts"] == 2, stats  # reached, never passed


def test_a_file_that_changed_since_its_checksum_is_refused_by_the_bastion(session, testbed, tmp_path):
    """The bastion keeps a file under the SHA-256 the controller named only if what it
    received has it: a file changed in place (same size and times) fails the copy,
    and the target's destination keeps its old content."""
    src = tmp_path / "changing.bin"
    _random_file(str(src), 1 << 16)
    st = os.stat(src)
    session._sha256(str(src), st)  # as a first copy would have computed it
    src.write_bytes(os.urandom(1 << 16))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and times: the same key
    bastion = _bastion(session, testbed)
    target = _targets(session, testbed, bastion, 1)[0]
    target.call(rh.write_file, "/tmp/kept.txt", "old")
    with pytest.raises(api.CallError, match="changed on the controller"):
        session.push_file_cached(target, bastion, str(src), "/tmp/kept.txt")
    assert target.call(rh.sha256_of, "/tmp/kept.txt") == hashlib.sha256(b"old").hexdigest()


def test_a_bastion_that_cannot_cache_lets_the_file_go_straight_through(session, testbed, tmp_path, caplog):
    first, second = str(tmp_path / "f1.bin"), str(tmp_path / "f2.bin")
    _random_file(first, 1 << 16)
    digest = _random_file(second, 1 << 16)
    bastion = _bastion(session, testbed)
    target = _targets(session, testbed, bastion, 1)[0]
    session.push_file_cached(target, bastion, first, "/tmp/first.bin")  # makes the cache directory
    (cache,) = glob.glob(os.path.join(str(testbed["h2"].tmp_dir), "ns-mitogen-hopcache-*"))
    os.chmod(cache, 0o500)  # as a full disk would: the bastion cannot write there any more
    try:
        pushed = session.push_file_cached(target, bastion, second, "/tmp/through.bin")
    finally:
        os.chmod(cache, 0o700)
    assert pushed["sha256"] == digest
    assert target.call(rh.sha256_of, "/tmp/through.bin") == digest
    assert digest not in os.listdir(cache)
    assert "cannot cache a file" in caplog.text and "directly" in caplog.text
