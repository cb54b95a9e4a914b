"""Every trust rule of the core, one test each, decided in memory.

The routing decisions (``_routing.RouteTable``), the importer's allow-list
(``_allowlist.ImportPolicy``), the file service's registry (``_files``) and who
may use an intermediary's cache (``_hopcache``, the mux's ``RootSources``) take
no I/O: streams here are plain objects, and the table under test is the one a
real router holds. The real-process counterparts are in
tests/integration/test_core_local.py and test_core_ssh.py ("forged",
"refused", "sibling").

The context under test is 5, in the middle of a tree::

    1 (parent, over stream P)
    `- 5 (the table)
       |- 6 over stream A, with 8 behind it
       `- 7 over stream B
"""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _allowlist, _hopcache, _service
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._allowlist import EMPTY, FETCH, FILE, PROVIDED, REFUSE, SERVE
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import PeerProtocolError, RefusedError, StreamError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._files import FileService
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._hopcache import HopCache
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._routing import (
    Deliver,
    Drop,
    Forward,
    Refuse,
    ReplyError,
    RouteTable,
)
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import (
    ADD_ROUTE,
    ALLOCATE_ID,
    CACHE_SOURCE,
    CALL_FUNCTION,
    DEL_ROUTE,
    FLAG_ERROR,
    SHUTDOWN,
    Message,
)
from ansible_collections.ns.mitogen.plugins.plugin_utils._mux_hops import RootSources


class S:
    """A stream, as far as routing cares: something to compare by identity."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


P, A, B = S("P"), S("A"), S("B")


def ran(msg: Message) -> None:
    raise AssertionError("a handler is never run by the table")


def table(down=()):
    t = RouteTable(5, "middle", connected=lambda s: s not in down)
    t.install_builtins({h: ran for h in RouteTable.BUILTIN})
    t.set_parent(P, 1)
    t.attach(A, 6, "a")
    t.routes[8] = A  # 8 reached 5 through 6's ADD_ROUTE
    t.names[8] = "a8"
    t.attach(B, 7, "b")
    return t


def msg(src, dst, handle, stream, error=False, body=None):
    m = Message.encoded(body, src_id=src, dst_id=dst, handle=handle, reply_to=99, flags=FLAG_ERROR if error else 0)
    m.stream = stream
    return m


def delivered(t, m):
    return isinstance(t.route(m), Deliver)


# -- routing --------------------------------------------------------------------
@pytest.mark.parametrize("handle", [CALL_FUNCTION, SHUTDOWN])
def test_calls_and_shutdown_come_only_from_the_parent(handle):
    t = table()
    assert delivered(t, msg(1, 5, handle, P))
    assert delivered(t, msg(5, 5, handle, None))  # this process
    assert t.route(msg(6, 5, handle, A)) == Refuse("handle %d does not accept messages from a" % handle)
    assert t.route(msg(8, 5, handle, A)) == Refuse("handle %d does not accept messages from a8" % handle)
    assert t.stats["refused"] == 2


def test_no_routing_from_a_child_into_another_subtree():
    t = table()
    refused = Refuse("a context may not send to b, which is not its ancestor")
    assert t.route(msg(6, 7, 1000, A)) == refused  # sibling
    assert t.route(msg(8, 7, 1000, A)) == refused  # a sibling's descendant
    assert t.route(msg(7, 8, 1000, B)) == Refuse("a context may not send to a8, which is not its ancestor")
    # upwards is the way
    assert t.route(msg(8, 1, 1000, A)) == Forward(P)
    assert t.route(msg(8, 0, 1000, A)) == Forward(P)
    # and the parent may send down into any subtree
    assert t.route(msg(1, 8, 1000, P)) == Forward(A)
    assert t.route(msg(1, 7, 1000, P)) == Forward(B)


def test_forged_source_id_is_dropped():
    t = table()
    dropped = Drop("source id is not behind that stream")
    assert t.route(msg(7, 1, 1000, A)) == dropped  # B's id over A
    assert t.route(msg(1, 1, 1000, A)) == dropped  # the parent's id from below
    assert t.route(msg(5, 5, CALL_FUNCTION, A)) == dropped  # our own id from below
    assert t.route(msg(42, 1, 1000, A)) == dropped  # an id nobody routed
    assert t.stats["forged"] == 4
    assert t.route(msg(6, 1, 1000, A)) == Forward(P)


def test_unknown_handle_is_refused():
    t = table()
    assert t.route(msg(1, 5, 4242, P)) == Refuse("no handle 4242 here")
    assert t.route(msg(6, 5, 4242, A)) == Refuse("no handle 4242 here")
    assert t.stats["refused"] == 2
    # our own late reply to a handle closed meanwhile: dropped quietly
    assert t.route(msg(5, 5, 4242, None)) == Drop("")


def test_message_back_where_it_came_from_is_dropped():
    t = table()
    back = Drop("it would go back where it came from")
    assert t.route(msg(1, 1, 1000, P)) == back  # to the parent, from it
    assert t.route(msg(1, 42, 1000, P)) == back  # unknown here: the default route is where it came from
    assert t.route(msg(5, 42, 1000, None)) == Forward(P)


def test_no_route_is_an_error_reply():
    t = table(down=(B,))
    assert t.route(msg(1, 7, 1000, P)) == ReplyError(StreamError("middle: no route to b"))
    root = RouteTable(0, "root")
    assert root.route(msg(0, 42, 1000, None)) == ReplyError(StreamError("root: no route to context 42"))
    assert t.stats["no_route"] == 1 and root.stats["no_route"] == 1


def test_a_handle_used_once_is_gone():
    t = table()
    handle = t.add_handler(ran, persist=False, respondent=1)
    assert delivered(t, msg(1, 5, handle, P))
    assert t.route(msg(1, 5, handle, P)) == Refuse("no handle %d here" % handle)


# -- handle policies --------------------------------------------------------------
def test_from_parent():
    t = table()
    handle = t.add_handler(ran)  # the default policy
    assert t.handlers[handle].policy == t.from_parent
    assert t.from_parent(msg(1, 5, handle, P)) and t.from_parent(msg(5, 5, handle, None))
    assert not t.from_parent(msg(6, 5, handle, A))
    assert delivered(t, msg(1, 5, handle, P))
    assert isinstance(t.route(msg(6, 5, handle, A)), Refuse)


def test_from_child_stream():
    t = table()
    assert t.from_child_stream(msg(6, 5, ADD_ROUTE, A))
    assert t.from_child_stream(msg(7, 5, ADD_ROUTE, B))
    assert not t.from_child_stream(msg(8, 5, ADD_ROUTE, A))  # a grandchild, not the child
    assert not t.from_child_stream(msg(1, 5, ADD_ROUTE, P))
    assert not t.from_child_stream(msg(5, 5, ADD_ROUTE, None))


def test_from_descendant():
    t = table()
    assert t.from_descendant(msg(6, 5, ALLOCATE_ID, A)) and t.from_descendant(msg(8, 5, ALLOCATE_ID, A))
    assert t.from_descendant(msg(5, 5, ALLOCATE_ID, None))
    assert not t.from_descendant(msg(1, 5, ALLOCATE_ID, P))
    assert delivered(t, msg(8, 5, ALLOCATE_ID, A))
    assert isinstance(t.route(msg(1, 5, ALLOCATE_ID, P)), Refuse)
    # admitted, but only the root allocates
    assert t.allocate_for() == Refuse("only the root allocates context ids")
    assert RouteTable(0).allocate_for() is None


def test_reply_policy_admits_the_respondent_and_errors_from_hops_to_it():
    t = table()
    policy = t.reply_policy(8)
    assert policy(msg(8, 5, 1000, A))
    assert policy(msg(6, 5, 1000, A, error=True))  # 6 says it cannot reach 8
    assert policy(msg(1, 5, 1000, P, error=True))  # so may an ancestor
    assert not policy(msg(6, 5, 1000, A))  # but only errors
    assert not policy(msg(1, 5, 1000, P))
    assert not policy(msg(7, 5, 1000, B, error=True))  # B is not on the way to 8
    handle = t.add_handler(ran, policy=policy, respondent=8)
    assert isinstance(t.route(msg(7, 5, handle, B)), Refuse)
    assert delivered(t, msg(8, 5, handle, A))


def test_service_policies_are_the_tables():
    t = table()
    assert _service._admits(_service.PARENT, t, msg(1, 5, 1000, P))
    assert not _service._admits(_service.PARENT, t, msg(6, 5, 1000, A))
    assert _service._admits(_service.CHILDREN, t, msg(8, 5, 1000, A))
    assert not _service._admits(_service.CHILDREN, t, msg(1, 5, 1000, P))
    assert not _service._admits("anyone", t, msg(1, 5, 1000, P))


# -- route changes ----------------------------------------------------------------
def test_add_and_del_route_only_from_the_child_that_owns_them():
    t = table()
    # only a direct child over its own stream reaches these handles
    for handle in (ADD_ROUTE, DEL_ROUTE):
        assert isinstance(t.route(msg(1, 5, handle, P)), Refuse)
        assert isinstance(t.route(msg(8, 5, handle, A)), Refuse)
        assert delivered(t, msg(6, 5, handle, A))
    # a child cannot take over another subtree's route, nor our own id
    assert t.add_route(msg(6, 5, ADD_ROUTE, A, body=(7, "mine"))) == Refuse("route to b is already held elsewhere")
    assert t.add_route(msg(6, 5, ADD_ROUTE, A, body=(5, "me"))) == Refuse("route to middle is already held elsewhere")
    assert t.routes[7] is B
    assert t.add_route(msg(6, 5, ADD_ROUTE, A, body=(9, "a9"))) is None
    assert t.routes[9] is A and t.name_of(9) == "a9"
    # nor remove one: only ids behind its own stream, and not its own
    lost, cause = t.del_route(msg(6, 5, DEL_ROUTE, A, body=([7, 1, 6, 8, 9], StreamError("gone"))))
    assert lost == {8, 9} and str(cause) == "gone"
    with pytest.raises(PeerProtocolError):
        t.add_route(msg(6, 5, ADD_ROUTE, A, body=("9", "a9")))
    with pytest.raises(PeerProtocolError):
        t.del_route(msg(6, 5, DEL_ROUTE, A, body=([9], "gone")))


def test_the_root_routes_only_ids_it_allocated():
    root = RouteTable(0, "root")
    root.attach(A, 1, "one")
    new = root.allocate()
    assert root.add_route(msg(1, 0, ADD_ROUTE, A, body=(new + 1, "forged"))) == Refuse(
        "context id %d was never allocated" % (new + 1)
    )
    assert root.add_route(msg(1, 0, ADD_ROUTE, A, body=(new, "fine"))) is None


def test_a_lost_stream_takes_its_routes_and_its_waiters():
    t = table()
    waiting = t.add_handler(ran, respondent=8)
    other = t.add_handler(ran, respondent=7)
    assert t.stream_lost(A) == {6, 8}
    assert t.route(msg(1, 8, 1000, P)) == Drop("it would go back where it came from")
    assert not t.from_child_stream(msg(6, 5, ADD_ROUTE, A))
    assert [h.respondent for h in t.take_waiting({6, 8})] == [8]
    assert waiting not in t.handlers and other in t.handlers


# -- imports ----------------------------------------------------------------------
PREFIXES = ["ansible_collections.ns.mitogen", "ansible_collections.*.*.plugins.module_utils"]


def test_only_allow_listed_modules_are_served():
    policy = _allowlist.ImportPolicy(PREFIXES)
    assert policy.request("os", None) == REFUSE
    assert policy.request("ansible_collections.ns.other.plugins.action", None) == REFUSE
    assert policy.request("ansible.module_utils.basic", None) == REFUSE
    assert policy.request("ansible_collections.x.y.plugins.modules.z", None) == REFUSE  # * is one segment
    assert policy.request("ansible_collections.x.y.plugins.module_utils.z", None) == SERVE
    assert policy.request("ansible_collections.ns.mitogen.plugins", None) == SERVE
    # an intermediary asks upwards for what it lacks, and only then
    assert policy.request("ansible_collections.ns.mitogen", {}) == FETCH
    assert policy.request("ansible_collections.ns.mitogen", {"ansible_collections.ns.mitogen": 1}) == SERVE
    assert policy.request("os", {}) == REFUSE
    with pytest.raises(PeerProtocolError):
        policy.request(b"os", None)


def test_a_context_asks_its_parent_only_for_allow_listed_modules():
    policy = _allowlist.ImportPolicy(PREFIXES)
    assert not policy.should_fetch("json", {})
    assert policy.should_fetch("ansible_collections.ns.mitogen.x", {})
    assert not policy.should_fetch("ansible_collections.ns.mitogen.x", {"ansible_collections.ns.mitogen.x": 1})


def test_an_ancestor_package_is_served_empty_unless_provided():
    policy = _allowlist.ImportPolicy(PREFIXES)
    assert policy.source_of("ansible_collections", ()) == EMPTY
    assert policy.source_of("ansible_collections.ns", ()) == EMPTY
    assert policy.source_of("ansible_collections.ns.mitogen", ()) == FILE
    assert policy.source_of("ansible_collections.ns", {"ansible_collections.ns"}) == PROVIDED


def test_only_allowed_related_modules_and_companions_go_along():
    policy = _allowlist.ImportPolicy(PREFIXES)
    imported = ["os", "ansible_collections.ns.mitogen.a.b", "ansible_collections.q.r.plugins.action.x"]
    related = policy.related("ansible_collections.ns.mitogen.a", imported)
    assert related == {
        "ansible_collections",
        "ansible_collections.ns",
        "ansible_collections.ns.mitogen",
        "ansible_collections.ns.mitogen.a.b",
        "ansible_collections.q",
        "ansible_collections.q.r",
        "ansible_collections.q.r.plugins",
    }
    assert policy.companions(["json", "ansible_collections.ns.mitogen.c"]) == ["ansible_collections.ns.mitogen.c"]


def test_the_allow_list_changes_only_to_a_well_formed_list():
    policy = _allowlist.ImportPolicy(PREFIXES)
    for bad in ("os", ["os", 1], ("os",), None):
        assert not policy.update(bad)
        assert policy.prefixes == PREFIXES
    assert policy.update(["os"])
    assert policy.prefixes == ["os"] and policy.request("os", None) == SERVE


def test_import_policy_is_taken_from_the_parent_only():
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import IMPORT_POLICY

    t = table()
    t.add_handler(ran, IMPORT_POLICY, policy=t.from_parent)  # as Importer registers it
    assert delivered(t, msg(1, 5, IMPORT_POLICY, P))
    assert isinstance(t.route(msg(6, 5, IMPORT_POLICY, A)), Refuse)


def test_modules_sent_ahead_are_taken_from_the_parent_only():
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._importer import Importer
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import LOAD_MODULES

    t = table()
    Importer(t, PREFIXES, {})  # type: ignore[arg-type]  # registers its LOAD_MODULES handle on the table
    assert delivered(t, msg(1, 5, LOAD_MODULES, P, body=b"x"))
    assert isinstance(t.route(msg(6, 5, LOAD_MODULES, A, body=b"x")), Refuse)  # a child may not
    assert isinstance(t.route(msg(8, 5, LOAD_MODULES, A, body=b"x")), Refuse)


# -- files ------------------------------------------------------------------------
def test_only_registered_files_are_served(tmp_path):
    files = FileService(table())  # type: ignore[arg-type]  # fetch names peers through it
    path = files.register(6, str(tmp_path / "d" / ".." / "f"))
    assert path == str(tmp_path / "f")
    assert files.allows(6, path)
    assert not files.allows(7, path)  # registered for 6, not for its sibling
    assert not files.allows(6, str(tmp_path / "d" / ".." / "f"))  # only the very path
    assert not files.allows(6, str(tmp_path / "g"))
    with pytest.raises(RefusedError, match="a may not read"):
        files.fetch(caller=6, path=str(tmp_path / "g"), handle=1000)
    files.unregister(6, path)
    assert not files.allows(6, path)


def test_file_registrations_are_counted_each_undone_once(tmp_path):
    """Two copies of one file to one intermediary's cache overlap: the first to end
    must not take the path away from the second."""
    files = FileService(table())  # type: ignore[arg-type]
    path = files.register(6, str(tmp_path / "f"))
    files.register(6, path)
    files.unregister(6, path)
    assert files.allows(6, path)
    files.unregister(6, path)
    assert not files.allows(6, path)
    files.unregister(6, path)  # one too many: no effect, no error
    assert not files.allows(6, path)


# -- intermediaries' caches ----------------------------------------------------------
def test_an_intermediary_cache_serves_only_contexts_below_it():
    t = table()
    for method in (HopCache.source, HopCache.file, RootSources.source):
        policy = method._nsm_exposed[0]  # type: ignore[attr-defined]
        assert _service._admits(policy, t, msg(8, 5, 1000, A))  # a grandchild
        assert not _service._admits(policy, t, msg(1, 5, 1000, P))  # never the parent


def test_an_intermediary_names_cached_files_only_by_a_sha256(tmp_path):
    """A child names the file it wants by SHA-256, which becomes a file name in the
    cache: anything else (a path) is refused before any I/O."""
    cache = HopCache(table())
    for bad in ("../../etc/passwd", "/etc/passwd", "A" * 64, "0" * 63, "0" * 64 + "\n"):
        with pytest.raises(RefusedError, match="is not a SHA-256"):
            cache.file(caller=8, path=str(tmp_path / "f"), sha256=bad, size=1, limit=10, handle=1000)
    assert cache._dir is None  # no directory made, nothing read or written


def test_only_the_parent_hands_an_intermediary_a_source_to_keep():
    t = table()
    HopCache(t)  # registers its CACHE_SOURCE handle on the table, as on a router
    assert delivered(t, msg(1, 5, CACHE_SOURCE, P, body=b"x"))
    assert isinstance(t.route(msg(6, 5, CACHE_SOURCE, A, body=b"x")), Refuse)  # a child may not
    assert isinstance(t.route(msg(8, 5, CACHE_SOURCE, A, body=b"x")), Refuse)


def test_a_module_source_from_a_parent_is_kept_only_if_its_sha1_matches():
    source = b"print('hi')\n"
    good = hashlib.sha1(source).hexdigest()
    assert _hopcache.checked_source(good, source) == source
    assert _hopcache.checked_source(good, source + b"# changed\n") is None
    assert _hopcache.checked_source(good, None) is None  # the parent had none
    assert _hopcache.checked_source(good, source.decode()) is None  # not bytes
