"""Framing: headers, incremental parsing, and the limits a peer cannot break."""

from __future__ import annotations

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._errors import CallError, PeerProtocolError
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import (
    FLAG_ERROR,
    HEADER_SIZE,
    FrameParser,
    Message,
)


def test_round_trip_byte_by_byte():
    msgs = [Message.encoded({"n": i}, dst_id=i, src_id=7, handle=1000 + i, reply_to=5) for i in range(5)]
    data = b"".join(m.pack() for m in msgs)
    parser = FrameParser()
    out = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert [(m.dst_id, m.src_id, m.handle, m.reply_to, m.decode()) for m in out] == [
        (i, 7, 1000 + i, 5, {"n": i}) for i in range(5)
    ]
    assert parser.buffered == 0


def test_error_flag_raises_call_error():
    msg = Message.encoded(CallError("KeyError", "'x'"), flags=FLAG_ERROR)
    (back,) = FrameParser().feed(msg.pack())
    with pytest.raises(CallError, match="KeyError"):
        back.decode()


def test_error_flag_on_plain_body_is_a_protocol_error():
    (back,) = FrameParser().feed(Message.encoded("x", flags=FLAG_ERROR).pack())
    with pytest.raises(PeerProtocolError):
        back.decode()


def test_bad_magic():
    with pytest.raises(PeerProtocolError, match="magic"):
        FrameParser().feed(b"XX" + b"\x00" * (HEADER_SIZE - 2))


def test_wrong_version():
    data = bytearray(Message().pack())
    data[2] = 99
    with pytest.raises(PeerProtocolError, match="version 99"):
        FrameParser().feed(bytes(data))


def test_unknown_flags():
    data = bytearray(Message().pack())
    data[3] = 0x80
    with pytest.raises(PeerProtocolError, match="flags"):
        FrameParser().feed(bytes(data))


def test_oversized_frame_rejected_from_header_alone():
    parser = FrameParser(max_message=1024)
    big = Message(data=b"x" * 2048).pack()
    with pytest.raises(PeerProtocolError, match="exceeds the maximum"):
        parser.feed(big[:HEADER_SIZE])  # refused before the body is buffered
