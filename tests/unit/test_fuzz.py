"""Fuzzing the decoder and the frame parser: garbage never crashes or hangs them.

Seeded, so a failure reproduces. Every input must either decode or raise
``PeerProtocolError``; nothing else may escape.
"""

from __future__ import annotations

import random
import time

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _codec
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError, PeerProtocolError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import HEADER, MAGIC, VERSION, FrameParser, Message


def random_value(rng: random.Random, depth: int = 0):
    kinds = ["none", "bool", "int", "big", "float", "str", "bytes"] + (["list", "tuple", "dict", "err"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == "big":
        return rng.randint(-(2**300), 2**300)
    if kind == "float":
        return rng.uniform(-1e9, 1e9)
    if kind == "str":
        return "".join(chr(rng.randint(0, 0x2FF)) for _n in range(rng.randint(0, 20)))
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 40))
    if kind == "err":
        return CallError("E", "m", "tb", "ctx")
    items = [random_value(rng, depth + 1) for _n in range(rng.randint(0, 5))]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    return dict(enumerate(items))


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _n in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 1 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif op == 2:
            buf[rng.randrange(len(buf) + 1) : 0] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and len(buf) > 4:
            i = rng.randrange(len(buf) - 4)
            buf[i : i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00"])
    return bytes(buf)


def test_decoder_survives_20000_generated_bodies():
    rng = random.Random(20261124)
    decoded = rejected = 0
    start = time.monotonic()
    for i in range(20000):
        if i % 2:
            data = rng.randbytes(rng.randint(0, 64))
        else:
            data = mutate(rng, _codec.encode(random_value(rng)))
        try:
            _codec.decode(data)
            decoded += 1
        except PeerProtocolError:
            rejected += 1
    assert decoded + rejected == 20000 and rejected > 5000 and decoded > 100
    assert time.monotonic() - start < 60


def _plain(value):
    """Comparable form: CallError compares by identity, so use its wire state."""
    if isinstance(value, CallError):
        return ("CallError", value.to_wire())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_valid_values_always_round_trip():
    rng = random.Random(7)
    for _n in range(3000):
        value = random_value(rng)
        assert _plain(_codec.decode(_codec.encode(value))) == _plain(value)


def test_frame_parser_survives_10000_generated_frames():
    rng = random.Random(99)
    outcomes = {"messages": 0, "errors": 0}
    for _n in range(10000):
        parser = FrameParser(max_message=4096)
        good = Message.encoded(random_value(rng), dst_id=rng.randrange(2**32), src_id=rng.randrange(2**32)).pack()
        data = mutate(rng, good) if rng.random() < 0.7 else HEADER.pack(MAGIC, VERSION, 0, 1, 2, 3, 4, rng.randrange(2**32))
        try:
            for i in range(0, len(data), 7):
                outcomes["messages"] += len(parser.feed(data[i : i + 7]))
        except PeerProtocolError:
            outcomes["errors"] += 1
    assert outcomes["messages"] > 1000 and outcomes["errors"] > 1000
