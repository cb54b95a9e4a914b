"""Module bundles cross hops compressed; a peer cannot make them inflate without bound."""

from __future__ import annotations

import zlib
from typing import Dict, List

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _codec
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import PeerProtocolError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._modwire import (
    PACK_KEEP_MIN,
    Entry,
    Packer,
    closure,
    pack_bundle,
    unpack_bundle,
)


def test_round_trip_and_compression():
    bundle: Dict[str, Entry] = {"pkg.mod": (False, "master:/x/mod.py", b"def f():\n    return 1\n" * 500, ("pkg",))}
    data = pack_bundle(bundle)
    assert len(data) < len(_codec.encode(bundle)) / 10
    assert unpack_bundle(data, 1 << 20) == bundle


def test_inflation_is_bounded():
    bomb = zlib.compress(_codec.encode({"x": (False, "", b"\0" * (8 << 20), ())}))
    with pytest.raises(PeerProtocolError, match="inflates past"):
        unpack_bundle(bomb, 1 << 20)


@pytest.mark.parametrize("data", [b"not zlib", "a str", None])
def test_garbage_is_a_protocol_error(data):
    with pytest.raises(PeerProtocolError):
        unpack_bundle(data, 1 << 20)


class _Router:
    """As much of a router as a controller's ``Responder`` uses to be made."""

    def __init__(self) -> None:
        self.handlers: List[int] = []

    def add_handler(self, fn, handle, policy=None):
        self.handlers.append(handle)

    from_child_stream = None


def _responder():
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._importer import Responder

    return Responder(_Router(), ["ansible.module_utils"])  # type: ignore[arg-type]


BASIC = "ansible.module_utils.basic"


def test_a_bundle_sent_ahead_is_the_closure_a_request_gets():
    """``bundle_for`` (sent ahead of a run) and a request's answer are one closure."""
    ahead, asked = _responder(), _responder()
    bundle = ahead.bundle_for(6, [BASIC])
    assert BASIC in bundle and "ansible.module_utils.common.text.converters" in bundle
    assert bundle == asked._bundle(BASIC, 6)
    assert ahead.bundle_for(6, [BASIC]) == {}  # sent: never again to that child
    assert set(ahead._bundle(BASIC, 6)) == {BASIC}  # but what it asks for again, it gets


def test_what_the_parent_on_the_host_has_is_left_out():
    responder = _responder()
    login = responder.bundle_for(6, [BASIC])
    assert responder.bundle_for(8, [BASIC], also_has=list(login)) == {}  # the become one asks its login parent
    extra = "ansible.module_utils.facts.timeout"  # not in basic's closure
    assert extra not in login
    become = responder.bundle_for(8, [BASIC, extra], also_has=list(login))
    assert extra in become and not set(become) & set(login)


def test_a_large_bundle_is_compressed_once_and_the_last_few_kept():
    """``Packer``: a large bundle's compressed bytes are kept (the very same object comes
    back), the last 4 of them; a small one is compressed each time."""
    big = {"m%d" % i: (False, "f", b"x = %d\n" % i * 4000, ()) for i in range(5)}
    packer = Packer()
    first = packer.pack({"m0": big["m0"]})
    assert packer.pack({"m0": big["m0"]}) is first
    for name in ("m1", "m2", "m3", "m4"):
        packer.pack({name: big[name]})
    again = packer.pack({"m0": big["m0"]})
    assert again == first and again is not first  # evicted by the four after it: compressed anew
    assert unpack_bundle(first, 1 << 20) == {"m0": big["m0"]}
    small = {"s": (False, "f", b"y = 1\n", ())}
    assert len(_codec.encode(small)) < PACK_KEEP_MIN
    assert packer.pack(small) is not packer.pack(small)


def test_closure_follows_related_names_and_skips_what_it_is_told():
    entries: Dict[str, Entry] = {
        "a": (False, "a", b"", ("b", "c")),
        "b": (False, "b", b"", ("d",)),
        "c": (False, "c", b"", ()),
        "d": (False, "d", b"", ("a",)),  # a cycle back to the start
    }
    assert set(closure(["a"], entries.get, lambda name: False)) == {"a", "b", "c", "d"}
    assert set(closure(["a"], entries.get, lambda name: name == "b")) == {"a", "c"}  # and what only b brought
    assert closure(["missing"], entries.get, lambda name: False) == {}
