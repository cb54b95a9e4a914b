# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A framed, non-blocking, buffered connection to one peer (private module).

Owns: ``Stream``, served by the ``_broker.Broker`` thread over a pair of
descriptors (pipes or a socket): framing in and out, write buffering,
back-pressure and optional compression.

Rules it keeps:
- Only the broker thread touches its descriptors and state; other threads send
  through ``Broker.defer()`` (the router does).
- Writes are buffered. When a stream's buffer passes ``HIGH_WATER`` the streams
  feeding it stop being read (the broker thread never blocks, never buffers without
  bound), and threads sending through it wait in ``Stream.wait_drained()`` until it
  falls below ``LOW_WATER``.
- A peer's protocol error or EOF ends that stream only, with a reason that the
  router turns into errors for everything pending on it.
- A stream that crosses a network may be compressed: one zlib stream each way for
  the life of the connection, flushed at every write, so that what repeats from one
  message to the next (module arguments, result keys) costs a few bytes, not its
  length. Inflating is done in bounded steps: a small input cannot make one step
  allocate more than ``INFLATE_STEP``.
- Compression gets out of the way of data it cannot shrink: on a compressed stream
  each write goes as one block, ``BLOCK`` (kind, length) then its bytes, of kind
  ``DEFLATED`` (the next piece of the zlib stream) or ``RAW`` (the bytes as they
  are, which the zlib stream never sees). A write of ``SAMPLE`` bytes or more whose
  first ``SAMPLE`` bytes deflate (level 1) to over ``RAW_RATIO`` of their size goes
  raw: random or already compressed file chunks cost no CPU at either end. Any
  other kind is a protocol error that ends the stream.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from typing import Any, Callable, Deque, Optional, Set

from ._broker import Broker, set_nonblocking
from ._errors import PeerProtocolError
from ._wire import FrameParser, Message, check_size

LOG = logging.getLogger("ns.mitogen.broker")

CHUNK = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1 * 1024 * 1024
INFLATE_STEP = 1024 * 1024
COMPRESS_LEVEL = 6
SPLIT_WRITE = 1024 * 1024  # bodies from this size are not copied behind their header
BLOCK = struct.Struct(">BI")  # a compressed stream's block: kind, length of what follows
DEFLATED = 1
RAW = 2
SAMPLE = 4096  # writes from this size have a sample of them deflated to decide
RAW_RATIO = 0.9  # a sample deflating to more than this fraction of its size: the write goes raw


class Stream:
    """A framed connection to one peer over ``rfd``/``wfd`` (may be the same fd).

    ``on_message(stream, msg)`` is called for each message, ``on_disconnect(stream,
    reason)`` once when the stream ends. ``remote_id`` and ``name`` describe the peer
    for routing and error messages; ``owner`` is whatever created it (e.g. a child
    process handle, closed on disconnect).
    """

    def __init__(
        self,
        broker: Broker,
        rfd: int,
        wfd: int,
        name: str,
        on_message: Callable[["Stream", Message], Any],
        on_disconnect: Callable[["Stream", str], Any],
        max_message: int,
        owner: Any = None,
        initial: bytes = b"",
        compress: bool = False,
    ) -> None:
        self.broker = broker
        self.rfd = rfd
        self.wfd = wfd
        self.name = name
        self.remote_id = -1
        self.owner = owner
        self.parser = FrameParser(max_message)
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._out: Deque[memoryview] = deque()
        self.buffered = 0
        self.queued = 0  # bytes other threads handed to the broker, not yet buffered
        self.connected = True
        self.closing = False
        self.lost_by_peer = False  # ended by the peer's end of file or an I/O error, not by us
        self._blocked: Set["Stream"] = set()  # streams not read while we are full
        self._paused = False
        self._cond = threading.Condition()
        self.bytes_in = 0  # on the wire (compressed, if the stream is)
        self.bytes_out = 0
        self._initial = initial
        self._deflate = zlib.compressobj(COMPRESS_LEVEL) if compress else None
        self._inflate = zlib.decompressobj() if compress else None
        self._block_head = b""  # the part of a block header read so far
        self._block_kind = 0  # of the block being read (0: a header is next)
        self._block_left = 0  # its bytes still to read
        self.blocks_out = {DEFLATED: 0, RAW: 0}  # how many writes went each way (tests)

    def __repr__(self) -> str:
        return "Stream(%s, id=%d, buffered=%d%s%s)" % (
            self.name,
            self.remote_id,
            self.buffered,
            ", compressed" if self._deflate is not None else "",
            "" if self.connected else ", disconnected",
        )

    def start(self) -> None:
        """Register with the broker (broker thread)."""
        set_nonblocking(self.rfd)
        if self.wfd != self.rfd:
            set_nonblocking(self.wfd)
        self.broker.streams.add(self)
        self.broker.add_reader(self.rfd, self._on_readable)
        if self._initial:
            initial, self._initial = self._initial, b""
            self._feed(initial)

    # -- reading ------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self.rfd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self.lost_by_peer = True
            self.disconnect("read failed: %s" % exc)
            return
        if not data:
            self.lost_by_peer = True
            self.disconnect("connection closed by peer")
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self._inflate is None:
            self._parse(data)
            return
        view = memoryview(data)
        while view and self.connected:
            if not self._block_kind:
                need = BLOCK.size - len(self._block_head)
                self._block_head += bytes(view[:need])
                view = view[need:]
                if len(self._block_head) < BLOCK.size:
                    return
                kind, self._block_left = BLOCK.unpack(self._block_head)
                self._block_head = b""
                if kind not in (DEFLATED, RAW):
                    LOG.error("%r: corrupt compressed stream (block kind %d), dropping it", self, kind)
                    self.disconnect("protocol error: corrupt compressed stream (unknown block kind %d)" % kind)
                    return
                self._block_kind = kind
            piece = view[: self._block_left]
            view = view[len(piece) :]
            self._block_left -= len(piece)
            kind = self._block_kind
            if not self._block_left:
                self._block_kind = 0
            if kind == RAW:
                self._parse(bytes(piece))
            else:
                self._inflate_piece(bytes(piece))

    def _inflate_piece(self, data: bytes) -> None:
        inflate = self._inflate
        if inflate is None:
            return
        try:
            while data and self.connected:
                plain = inflate.decompress(data, INFLATE_STEP)
                data = inflate.unconsumed_tail
                self._parse(plain)
        except zlib.error as exc:
            LOG.error("%r: corrupt compressed stream, dropping it: %s", self, exc)
            self.disconnect("protocol error: corrupt compressed stream (%s)" % exc)

    def _parse(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except PeerProtocolError as exc:
            LOG.error("%r: protocol error, dropping stream: %s", self, exc)
            self.disconnect("protocol error: %s" % exc)
            return
        for msg in messages:
            msg.stream = self
            self._on_message(self, msg)
            if not self.connected:
                return

    def pause(self, full: "Stream") -> None:
        """Stop reading until ``full`` drains (back-pressure from a forward)."""
        if not self._paused and self.connected:
            self._paused = True
            self.broker.remove_reader(self.rfd)
        full._blocked.add(self)

    def _resume(self) -> None:
        if self._paused and self.connected:
            self._paused = False
            self.broker.add_reader(self.rfd, self._on_readable)

    # -- writing ------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Queue ``msg`` for the peer (broker thread).

        Raises ``ProtocolError`` (nothing sent) for a message over the stream's
        maximum: the peer's parser would drop the stream for it. The maximum is
        this side's own receive limit; both ends of a stream share it.
        """
        check_size(msg, self.parser.max_message)
        if len(msg.data) < SPLIT_WRITE:
            self.write(msg.pack())
        else:  # no copy of a large body: header and body go as two writes
            self.write(msg.header())
            self.write(msg.data)

    def write(self, data: bytes) -> None:
        if not self.connected:
            return
        if self._deflate is None:
            self._write(data)
        elif len(data) >= SAMPLE and len(zlib.compress(data[:SAMPLE], 1)) > SAMPLE * RAW_RATIO:
            self.blocks_out[RAW] += 1
            self._write(BLOCK.pack(RAW, len(data)))
            self._write(data)
        else:
            self.blocks_out[DEFLATED] += 1
            deflated = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self._write(BLOCK.pack(DEFLATED, len(deflated)) + deflated)

    def _write(self, data: bytes) -> None:
        if not self.connected:
            return
        self.bytes_out += len(data)
        rest = memoryview(data)
        if not self._out:
            try:
                n = os.write(self.wfd, data)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self.lost_by_peer = True
                self.disconnect("write failed: %s" % exc)
                return
            if n == len(data):
                return
            rest = rest[n:]  # not a copy of it
            self.broker.add_writer(self.wfd, self._on_writable)
        self._out.append(rest)
        self.buffered += len(rest)

    @property
    def full(self) -> bool:
        return self.buffered + self.queued > HIGH_WATER

    def reserve(self, n: int) -> None:
        """Count ``n`` bytes another thread is handing to the broker for this stream."""
        with self._cond:
            self.queued += n

    def release(self, n: int) -> None:
        """The broker took the reserved bytes (they are now buffered or written)."""
        with self._cond:
            self.queued -= n
            if not self.full:
                self._cond.notify_all()

    def _on_writable(self) -> None:
        while self._out:
            chunk = self._out[0]
            try:
                n = os.write(self.wfd, chunk)
            except BlockingIOError:
                break
            except OSError as exc:
                self.lost_by_peer = True
                self.disconnect("write failed: %s" % exc)
                return
            self.buffered -= n
            if n == len(chunk):
                self._out.popleft()
            else:
                self._out[0] = chunk[n:]
                break
        if not self._out:
            self.broker.remove_writer(self.wfd)
            if self.closing:
                self.disconnect(self._close_reason)
                return
        if self.buffered <= LOW_WATER:
            self._drained()

    def _drained(self) -> None:
        blocked, self._blocked = self._blocked, set()
        for stream in blocked:
            stream._resume()
        with self._cond:
            self._cond.notify_all()

    def wait_drained(self, timeout: Optional[float] = None) -> bool:
        """Block a non-broker thread while this stream is over its high-water mark."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.connected and self.full:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
        return True

    # -- ending -------------------------------------------------------------------
    def close_soon(self, reason: str) -> None:
        """Disconnect once queued output is flushed (broker thread)."""
        self._close_reason = reason
        self.closing = True
        if not self._out:
            self.disconnect(reason)

    def disconnect(self, reason: str) -> None:
        """End the stream now: close descriptors, report ``reason`` once."""
        if not self.connected:
            return
        self.connected = False
        self.broker.remove_reader(self.rfd)
        self.broker.remove_writer(self.wfd)
        self.broker.streams.discard(self)
        for fd in sorted({self.rfd, self.wfd}):  # once each, even when they are one fd
            try:
                os.close(fd)
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    LOG.debug("%r: close(%d): %s", self, fd, exc)
        self._out.clear()
        self.buffered = 0
        self._drained()
        try:
            self._on_disconnect(self, reason)
        except Exception:
            LOG.exception("%r: disconnect handler failed", self)
