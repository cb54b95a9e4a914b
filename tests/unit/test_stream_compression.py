"""Compressed streams: messages survive, repetition costs little, bad input ends the stream.

Two real ``Stream`` objects on one real ``Broker`` thread, over a socketpair.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import zlib
from typing import Any, List, Tuple

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _stream
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._broker import Broker
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._stream import Stream
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import HEADER, MAGIC, VERSION, Message

MAX_MESSAGE = 4 * 1024 * 1024


class Pair:
    """A broker and two connected streams, ``a`` and ``b``; what ``b`` receives is queued."""

    def __init__(self, compress_a: bool, compress_b: bool) -> None:
        self.broker = Broker("test")
        self.broker.start()
        self.received: "queue.Queue[Message]" = queue.Queue()
        self.back: "queue.Queue[Message]" = queue.Queue()
        self.lost: "queue.Queue[Tuple[str, str]]" = queue.Queue()
        sa, sb = socket.socketpair()
        fa, fb = sa.detach(), sb.detach()
        self.a = self._stream(fa, "a", compress_a)
        self.b = self._stream(fb, "b", compress_b)
        ready = threading.Event()

        def start() -> None:
            self.a.start()
            self.b.start()
            ready.set()

        self.broker.defer(start)
        assert ready.wait(5)

    def _stream(self, fd: int, name: str, compress: bool) -> Stream:
        return Stream(
            self.broker,
            fd,
            fd,
            name,
            on_message=lambda stream, msg: (self.received if stream.name == "b" else self.back).put(msg),
            on_disconnect=lambda stream, reason: self.lost.put((stream.name, reason)),
            max_message=MAX_MESSAGE,
            compress=compress,
        )

    def send(self, msgs: List[Message]) -> None:
        for msg in msgs:
            self.broker.defer(self.a.send, msg)

    def send_back(self, msgs: List[Message]) -> None:
        """From ``b`` to ``a``: what ``a`` receives is queued in ``back``."""
        for msg in msgs:
            self.broker.defer(self.b.send, msg)

    def send_raw(self, data: bytes) -> None:
        """Bytes to ``b`` exactly as given (``a`` must not compress)."""
        self.broker.defer(self.a.write, data)

    def close(self) -> None:
        self.broker.shutdown()
        self.broker.join(5)


@pytest.fixture
def pair_factory():
    made: List[Pair] = []

    def make(compress_a: bool = True, compress_b: bool = True) -> Pair:
        made.append(Pair(compress_a, compress_b))
        return made[-1]

    yield make
    for pair in made:
        pair.close()


def _module_request(i: int) -> Message:
    """What a module run looks like on the wire: mostly the same keys every time."""
    args = {"_raw_params": "hostname", "_ansible_check_mode": False, "_ansible_no_log": False, "_ansible_verbosity": 0}
    body: Any = {"name": "ansible.modules.command", "source_id": "%040x" % 12345, "args": repr(args), "n": i}
    return Message.encoded(body, handle=1000 + i)


def test_messages_arrive_intact_and_repetition_is_cheap(pair_factory):
    pair = pair_factory()
    msgs = [_module_request(i) for i in range(200)]
    plain = sum(len(m.pack()) for m in msgs)
    pair.send(msgs)
    got = [pair.received.get(timeout=5) for _n in msgs]
    assert [m.handle for m in got] == [m.handle for m in msgs]
    assert [m.decode() for m in got] == [m.decode() for m in msgs]
    assert pair.b.bytes_in == pair.a.bytes_out
    # Each message shares nearly everything with the previous one.
    assert pair.a.bytes_out < plain / 5, (pair.a.bytes_out, plain)


def test_large_incompressible_message_survives(pair_factory):
    pair = pair_factory()
    data = os.urandom(3 * 1024 * 1024)
    pair.send([Message(handle=7, data=data)])
    msg = pair.received.get(timeout=20)
    assert msg.data == data


def test_corrupt_compressed_input_ends_the_stream_with_a_reason(pair_factory):
    pair = pair_factory(compress_a=False, compress_b=True)
    pair.send([_module_request(0)])  # plain frame bytes are not a zlib stream
    name, reason = pair.lost.get(timeout=5)
    assert name == "b" and "corrupt compressed stream" in reason
    assert pair.received.empty()


def test_inflate_bomb_is_refused_in_bounded_steps(pair_factory, monkeypatch):
    pair = pair_factory(compress_a=False, compress_b=True)
    seen: List[int] = []
    real_feed = pair.b.parser.feed

    def feed(data: bytes) -> Any:
        seen.append(len(data))
        return real_feed(data)

    monkeypatch.setattr(pair.b.parser, "feed", feed)
    # A header announcing a frame over the limit, then 64 MiB of zeros: ~64 KiB compressed.
    header = HEADER.pack(MAGIC, VERSION, 0, 0, 0, 0, 0, MAX_MESSAGE * 16)
    bomb = zlib.compressobj(9)
    blob = bomb.compress(header) + bomb.compress(b"\0" * (64 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(blob) < 128 * 1024
    pair.send_raw(_stream.BLOCK.pack(_stream.DEFLATED, len(blob)) + blob)
    name, reason = pair.lost.get(timeout=10)
    assert name == "b" and "protocol error" in reason
    assert seen and max(seen) <= _stream.INFLATE_STEP


# -- compression that gets out of the way: raw blocks for what does not shrink ---------------
def _chunk(i: int, compressible: bool) -> Message:
    """A file chunk as ``_files`` sends it: 256 KiB of text, or of random bytes."""
    data = (b"line %d of a log file, much like the one before it\n" % i) * 5000 if compressible else os.urandom(256 * 1024)
    return Message(handle=2000 + i, data=data)


def test_incompressible_chunks_go_raw_both_ways(pair_factory):
    pair = pair_factory()
    there = [_chunk(i, compressible=False) for i in range(8)]
    back = [_chunk(i, compressible=False) for i in range(8)]
    pair.send(there)
    pair.send_back(back)
    assert [pair.received.get(timeout=10).data for _m in there] == [m.data for m in there]
    assert [pair.back.get(timeout=10).data for _m in back] == [m.data for m in back]
    for stream, sent in ((pair.a, there), (pair.b, back)):
        assert stream.blocks_out == {_stream.DEFLATED: 0, _stream.RAW: 8}
        plain = sum(len(m.pack()) for m in sent)
        assert stream.bytes_out == plain + 8 * _stream.BLOCK.size  # not one byte of deflate's overhead


def test_mixed_chunks_each_take_their_own_way_and_the_zlib_stream_stays_whole(pair_factory):
    pair = pair_factory()
    msgs = []
    for i in range(12):
        msgs.append(_chunk(i, compressible=i % 3 != 0))
        msgs.append(_module_request(i))  # small: always deflated, sharing the one zlib stream
    pair.send(msgs)
    got = [pair.received.get(timeout=10) for _m in msgs]
    assert [(m.handle, m.data) for m in got] == [(m.handle, m.data) for m in msgs]
    assert pair.a.blocks_out == {_stream.DEFLATED: 20, _stream.RAW: 4}
    plain = sum(len(m.pack()) for m in msgs)
    assert pair.a.bytes_out < 4 * 256 * 1024 + (plain - 4 * 256 * 1024) / 20


def test_blocks_split_across_reads_are_reassembled(pair_factory):
    pair = pair_factory(compress_a=False, compress_b=True)
    deflate = zlib.compressobj()
    first = _module_request(1).pack()
    deflated = deflate.compress(first) + deflate.flush(zlib.Z_SYNC_FLUSH)
    chunk = _chunk(2, compressible=False)
    raw = chunk.pack()
    wire = _stream.BLOCK.pack(_stream.DEFLATED, len(deflated)) + deflated + _stream.BLOCK.pack(_stream.RAW, len(raw)) + raw
    cut = len(deflated) + 2 * _stream.BLOCK.size + 8
    for i in range(cut):  # one byte at a time past the second header: headers and blocks cut anywhere
        pair.send_raw(wire[i : i + 1])
    pair.send_raw(wire[cut:])
    assert pair.received.get(timeout=10).decode() == _module_request(1).decode()
    assert pair.received.get(timeout=10).data == chunk.data


@pytest.mark.parametrize("kind", [0, 3, 255])
def test_a_corrupt_block_kind_ends_the_stream_with_a_reason(pair_factory, kind):
    pair = pair_factory(compress_a=False, compress_b=True)
    body = _module_request(0).pack()
    pair.send_raw(_stream.BLOCK.pack(kind, len(body)) + body)
    name, reason = pair.lost.get(timeout=5)
    assert name == "b" and "unknown block kind %d" % kind in reason
    assert pair.received.empty()
