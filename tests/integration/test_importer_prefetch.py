"""Module sources ahead of need: the controller's cache warmed before the first request
(what the mux does while the first ssh login is under way), and the modules a first
module run imports sent along with the runner, so that run asks for nothing more.
Real local target interpreters."""

from __future__ import annotations

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _bootstrap, _child, _modscan, _runner, api
from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux
from tests.integration import remote_helpers as rh
from tests.integration.runner_support import decode, full_args, make_request, module_path

ALLOW = ["ansible.module_utils", "tests.integration.remote_helpers"]


def served_to_a_child(session: api.Session) -> dict:
    """What a fresh child receives when it imports ansible.module_utils.basic."""
    ctx = session.local()
    assert ctx.call(rh.import_module, "ansible.module_utils.basic") == "ansible.module_utils.basic"
    return dict(session.responder.sent[ctx.context_id])


def test_warm_reads_basics_closure_ahead_and_serves_the_same(monkeypatch):
    with api.Session(allow_imports=ALLOW) as cold:
        expected = served_to_a_child(cold)
    with api.Session(allow_imports=ALLOW) as warm:
        count = warm.responder.warm(_mux.FIRST_RUN_MODULES)
        warmed = set(warm.responder._local)
        assert count == len(warmed) >= 40 and "ansible.module_utils.common.text.converters" in warmed
        located = []
        real_locate = _modscan.locate

        def locate(name):
            located.append(name)
            return real_locate(name)

        monkeypatch.setattr(_modscan, "locate", locate)
        assert served_to_a_child(warm) == expected
    assert located, "the child's own helper module is located on demand"
    assert not [n for n in located if n in warmed], "warmed modules were located again on the first request"


def test_warm_skips_what_is_not_allowed_or_absent():
    with api.Session(allow_imports=["ansible.module_utils"]) as session:
        assert session.responder.warm(["os", "ansible.module_utils.nsm_no_such_module"]) == 1
        assert session.responder._local["ansible.module_utils.nsm_no_such_module"][2] is None
        assert "os" not in session.responder._local


def test_a_first_module_run_asks_only_for_the_runner():
    """Basic's tree, the 2.19 loader and its JSON profiles come with the runner."""
    with api.Session(allow_imports=ALLOW) as session:
        session.responder.companions[_mux.RUNNER] = _mux.RUNNER_COMPANIONS
        ctx = session.local()
        before = ctx.call(rh.stats)["import_requests"]  # the helper module itself, and what it imports
        assert _mux.RUNNER not in session.responder.sent[ctx.context_id], "the helper module brought the runner along"
        request = make_request(module_path("command"), full_args({"_raw_params": "echo hi"}, "command", "/tmp"))
        reply = ctx.call(_runner.run_module, request)
        assert reply["rc"] == 0 and decode(reply["stdout"])["stdout"] == "hi", reply
        assert ctx.call(rh.stats)["import_requests"] - before == 1


def test_without_companions_the_same_run_takes_a_request_per_tree():
    """The counterpart: what the hint saves (one round trip each tree the runner
    imports by computed names; how many depends on what the runner imports by name)."""
    with api.Session(allow_imports=ALLOW) as session:
        ctx = session.local()
        before = ctx.call(rh.stats)["import_requests"]
        request = make_request(module_path("command"), full_args({"_raw_params": "echo hi"}, "command", "/tmp"))
        assert ctx.call(_runner.run_module, request)["rc"] == 0
        assert ctx.call(rh.stats)["import_requests"] - before >= 3  # with the hint: 1


def test_companions_outside_the_allow_list_are_not_served():
    with api.Session(allow_imports=ALLOW) as session:
        session.responder.companions[_mux.RUNNER] = ["json", "ansible.module_utils.basic"]
        bundle = session.responder._bundle(_mux.RUNNER, 12345)
        assert "ansible.module_utils.basic" in bundle and "json" not in bundle


def test_a_child_never_receives_again_what_its_boot_payload_held():
    """The runner imports the core a child boots with: only the rest goes (~20 KB less
    per target); an intermediary starts its own children with its payload, and
    fetches the code that starts them (bootstrap, transports) only then."""
    _data, booted = _bootstrap.payload()
    assert _bootstrap.PACKAGE + "._router" in booted and _bootstrap.PACKAGE + "._bootstrap" not in booted
    with api.Session(allow_imports=ALLOW) as session:
        a = session.local()
        assert a.call(_runner.stats)["runs"] == 0
        sent = set(session.responder.sent[a.context_id])
        assert _mux.RUNNER in sent and not sent & booted, sorted(sent & booted)
        b = session.local(via=a)
        c = session.local(via=b)
        assert c.call(rh.echo, "deep") == "deep"
        sent = set(session.responder.sent[a.context_id])
        assert _bootstrap.PACKAGE + "._bootstrap" in sent and not sent & booted, sorted(sent & booted)
        # a relays to b what b lacks, never b's own boot modules either
        b_got = set(a.call(_child.stats)["modules_sent"].get(b.context_id, {}))
        assert _bootstrap.PACKAGE + "._bootstrap" in b_got and not b_got & booted, sorted(b_got & booted)
