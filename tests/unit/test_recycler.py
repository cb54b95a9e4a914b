"""The interpreter limit's choices (``_recycler``): least recently used, idle, leaves only."""

from __future__ import annotations

import time

from ansible_collections.ns.mitogen.plugins.plugin_utils._recycler import Recycler

G = "login"


def started(r: Recycler, *ids: int, parent: int = 1) -> None:
    for cid in ids:
        r.starting(G, 1)
        r.make_room(G, 99)
        r.add(cid, "key%d" % cid, parent, G)
        r.starting(G, -1)
        time.sleep(0.001)  # distinct use times


def test_under_the_limit_nothing_is_retired():
    r = Recycler()
    r.add(1, "login", None, None)
    started(r, 10, 11)
    r.starting(G, 1)
    assert r.make_room(G, 3) == ([], 0)


def test_the_least_recently_used_goes_first_and_its_id_is_followed():
    r = Recycler()
    r.add(1, "login", None, None)
    started(r, 10, 11, 12)
    assert r.claim(10)
    r.release(10)  # 10 used last: 11 is now the least recently used
    r.starting(G, 1)
    room = r.make_room(G, 3)
    assert room.victims == [(11, "key11")] and room.over == 0
    assert not r.claim(11) and r.retired_key(11) == "key11"
    assert r.members(G) == [10, 12]


def test_a_call_in_flight_or_a_stacked_interpreter_keeps_it():
    r = Recycler()
    r.add(1, "login", None, None)
    started(r, 10, 11)
    r.add(20, "deeper", 10, "other")  # stacked on 10
    assert r.claim(11)  # in flight
    r.starting(G, 1)
    room = r.make_room(G, 2)
    assert room.victims == [] and room.over == 1
    r.release(11)
    assert r.make_room(G, 2).victims == [(11, "key11")]


def test_the_login_is_never_counted_nor_retired():
    r = Recycler()
    r.add(1, "login", None, None)
    r.starting(G, 1)
    assert r.make_room(G, 1) == ([], 0)
    assert 1 not in r.members(G)


def test_lost_contexts_leave_the_count():
    r = Recycler()
    started(r, 10, 11)
    r.lost({10, 11})
    r.starting(G, 1)
    assert r.make_room(G, 1) == ([], 0) and len(r) == 0
