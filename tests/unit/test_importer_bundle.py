"""Module bundles cross hops compressed; a peer cannot make them inflate without bound."""

from __future__ import annotations

import zlib
from typing import Dict

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _codec
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import PeerProtocolError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._importer import Entry, pack_bundle, unpack_bundle


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
