"""The safe codec: round trips, the allow-list, and malformed input."""

from __future__ import annotations

import struct

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _codec, _errors
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import (
    CallError,
    ConnectError,
    Error,
    InterpreterLost,
    PeerProtocolError,
    ProtocolError,
    StreamError,
)

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**200,
    -(2**200),
    1.5,
    float("inf"),
    "",
    "héllo \udcff",
    b"",
    b"\x00\xff" * 1000,
    [],
    [1, [2, [3]]],
    (),
    (1, "a", b"b"),
    {},
    {"a": 1, 2: [3], (1, 2): {"x": None}},
    {1, 2, 3},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(value):
    assert _codec.decode(_codec.encode(value)) == value


def test_subclasses_travel_as_plain_types():
    class Unsafe(str):
        pass

    out = _codec.decode(_codec.encode({"k": Unsafe("v")}))
    assert out == {"k": "v"} and out["k"].__class__ is str


def test_call_error_is_on_the_allow_list():
    err = _codec.decode(_codec.encode(CallError("ValueError", "boom", "tb", "ctx")))
    assert isinstance(err, CallError) and err.type_name == "ValueError" and "boom" in str(err)


@pytest.mark.parametrize(
    "err",
    [StreamError("gone"), InterpreterLost("killed", 137), ConnectError("h", "no", "spawn", "out", "hint")],
    ids=lambda e: type(e).__name__,
)
def test_wire_errors_cross_as_themselves(err):
    out = _codec.decode(_codec.encode(err))
    assert type(out) is type(err) and str(out) == str(err)


def _object(name: str, state: object) -> bytes:
    raw = name.encode()
    return b"O" + struct.pack(">I", len(raw)) + raw + _codec.encode(state)


def test_an_error_class_registers_where_it_is_defined():
    """@wire_error alone puts a new error on the codec's allow-list; without it, it is refused."""

    class Plain(Error):
        def to_wire(self) -> str:
            return str(self)

        @classmethod
        def from_wire(cls, state: object) -> "Plain":
            return cls(state)

    with pytest.raises(ProtocolError, match="cannot encode"):
        _codec.encode(Plain("x"))
    with pytest.raises(PeerProtocolError, match="not on the allow-list"):
        _codec.decode(_object("Plain", "x"))

    @_errors.wire_error
    class Registered(Plain):
        pass

    try:
        out = _codec.decode(_codec.encode(Registered("x")))
        assert isinstance(out, Registered) and str(out) == "x"
        with pytest.raises(PeerProtocolError, match="not on the allow-list"):
            _codec.decode(_object("Plain", "x"))  # its undecorated base still is not
    finally:
        del _errors.WIRE_ERRORS["Registered"]


def test_wire_error_names_are_unique_and_need_their_wire_methods():
    with pytest.raises(ValueError, match="CallError"):
        _errors.wire_error(type("CallError", (CallError,), {}))
    with pytest.raises(TypeError, match="to_wire"):
        _errors.wire_error(type("NoState", (Error,), {}))
    assert _errors.WIRE_ERRORS["CallError"] is CallError


def test_unregistered_object_refused_on_encode():
    with pytest.raises(ProtocolError, match="cannot encode"):
        _codec.encode(object())


def test_unregistered_object_refused_on_decode():
    # An 'O' tag naming a class that is not on the allow-list.
    data = b"O\x00\x00\x00\x09os.system" + b"N"
    with pytest.raises(PeerProtocolError, match="not on the allow-list"):
        _codec.decode(data)


def test_bad_state_for_allowed_type_is_a_protocol_error():
    data = b"O\x00\x00\x00\x09CallError" + _codec.encode(("only", "three", "items"))
    with pytest.raises(PeerProtocolError):
        _codec.decode(data)


@pytest.mark.parametrize(
    "data,why",
    [
        (b"", "past the end"),
        (b"Z", "unknown tag"),
        (b"s\xff\xff\xff\xff", "past the end"),
        (b"L\x7f\xff\xff\xff", "exceeds the bytes left"),
        (b"s\x00\x00\x00\x02\xff\xfe", "invalid UTF-8"),
        (b"NN", "trailing"),
        (b"D\x00\x00\x00\x01L\x00\x00\x00\x00N", "unhashable"),
    ],
)
def test_malformed(data, why):
    with pytest.raises(PeerProtocolError, match=why):
        _codec.decode(data)


def test_depth_is_bounded_both_ways():
    deep: list = []
    for _n in range(_codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ProtocolError):
        _codec.encode(deep)
    with pytest.raises(PeerProtocolError, match="nested deeper"):
        _codec.decode(b"L\x00\x00\x00\x01" * 200 + b"N")


def test_an_encoded_value_is_emitted_as_is_and_decodes_in_place():
    """What the mux does with a call's arguments: relay the worker's bytes unread."""
    args = ({"request": "x" * 100, "n": [1, 2.5, None]},)
    relayed = _codec.encode((("mod", "fn"), _codec.Encoded(_codec.encode(args)), {"source": b"src"}))
    assert relayed == _codec.encode((("mod", "fn"), args, {"source": b"src"}))
    assert _codec.decode(relayed) == (("mod", "fn"), args, {"source": b"src"})
    with pytest.raises(PeerProtocolError):  # the bytes are checked where they are decoded
        _codec.decode(_codec.encode((_codec.Encoded(b"s\x00\x00\x00\x09short"),)))
