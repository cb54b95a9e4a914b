# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Message framing (private module). Does no I/O.

Owns: the ``Message`` type, its fixed binary header, and the incremental frame
parser that turns a byte stream into messages.

Header (24 bytes, big endian)::

    magic "nM" | version u8 | flags u8 | dst u32 | src u32 | handle u32 | reply_to u32 | length u32

Rules it keeps:
- A frame whose magic or version is wrong, or whose length exceeds the stream's
  maximum, raises ``PeerProtocolError``: the caller drops that stream, nothing else.
- The body is opaque here; it is decoded only by the final receiver (routers that
  merely forward a message never decode it).
- A frame over the maximum never reaches the wire: the peer would drop the whole
  stream (every context behind it) for it. ``check_size`` is what a sender asks
  before sending; the caller turns a ``ProtocolError`` from it into an error for
  the one call concerned.
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional

from . import _codec
from ._errors import Error, PeerProtocolError, ProtocolError

MAGIC = b"nM"
VERSION = 1
HEADER = struct.Struct(">2sBBIIIII")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
# The oldest Python either end of a stream runs (the core's source is lowered for 3.6
# and 3.7 by ``_lower``). Here, with the framing every process of ours loads, rather
# than in ``_transports``, which an Ansible worker would load for this constant alone.
CORE_MIN_PYTHON = (3, 6)

FLAG_ERROR = 0x01  # body is a CallError (a failed call, or a dead route)
FLAG_LAST = 0x02  # the sender will send no more messages to this handle
_KNOWN_FLAGS = FLAG_ERROR | FLAG_LAST

# Well-known handles. Dynamic handles start at FIRST_DYNAMIC_HANDLE.
CALL_FUNCTION = 1
SHUTDOWN = 2
ADD_ROUTE = 3
DEL_ROUTE = 4
GET_MODULE = 5
LOAD_MODULES = 6  # a module bundle for the importer's cache, sent ahead of the run needing it (_importer)
FORWARD_LOG = 7
CALL_SERVICE = 8
ALLOCATE_ID = 9
IMPORT_POLICY = 10
CACHE_SOURCE = 11  # a module source for an intermediary to keep for its children (_hopcache)
KEEP_SOURCE = 12  # a module source sent ahead of the run that will need it (_sources)
FIRST_DYNAMIC_HANDLE = 1000


class Message:
    """One framed message. ``data`` is the encoded body; use ``decode()`` to read it.

    ``stream`` is set on arrival to the stream the message came in on (local only,
    never sent).
    """

    __slots__ = ("dst_id", "src_id", "handle", "reply_to", "flags", "data", "stream")

    def __init__(
        self,
        dst_id: int = 0,
        src_id: int = 0,
        handle: int = 0,
        reply_to: int = 0,
        data: bytes = b"",
        flags: int = 0,
    ) -> None:
        self.dst_id = dst_id
        self.src_id = src_id
        self.handle = handle
        self.reply_to = reply_to
        self.flags = flags
        self.data = data
        self.stream: Any = None

    @classmethod
    def encoded(cls, value: Any, **kwargs: Any) -> "Message":
        """A message whose body is ``value`` encoded with the safe codec."""
        return cls(data=_codec.encode(value), **kwargs)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    def decode(self) -> Any:
        """Return the decoded body; raise ``CallError`` if this message carries one."""
        value = _codec.decode(self.data)
        if self.flags & FLAG_ERROR:
            if isinstance(value, Error):  # decoded: one of _errors.WIRE_ERRORS
                raise value
            raise PeerProtocolError("error flag set on a body that is not an error")
        return value

    def header(self) -> bytes:
        """The frame's header: ``pack()`` without the body."""
        return HEADER.pack(MAGIC, VERSION, self.flags, self.dst_id, self.src_id, self.handle, self.reply_to, len(self.data))

    def pack(self) -> bytes:
        return self.header() + bytes(self.data)

    def reply_message(self, value: Any, flags: int = 0) -> "Message":
        """A message carrying ``value`` back to this message's sender."""
        return Message.encoded(value, dst_id=self.src_id, handle=self.reply_to, flags=flags)

    def __repr__(self) -> str:
        return "Message(%d->%d handle=%d reply_to=%d flags=%#x len=%d)" % (
            self.src_id,
            self.dst_id,
            self.handle,
            self.reply_to,
            self.flags,
            len(self.data),
        )


def too_large(what: str, size: int, limit: int) -> str:
    """The words for ``what`` of ``size`` bytes that does not fit a frame of ``limit``."""
    return "%s is %d bytes (%.1f MiB), over the frame limit of %d bytes (%d MiB)" % (
        what,
        size,
        size / 1048576.0,
        limit,
        limit // 1048576,
    )


def check_size(msg: Message, limit: int) -> None:
    """Raise ``ProtocolError`` if ``msg`` is over ``limit``: the peer would drop the stream."""
    if len(msg.data) > limit:
        raise ProtocolError("cannot send %r: %s" % (msg, too_large("its body", len(msg.data), limit)))


class FrameParser:
    """Incremental parser: ``feed(bytes)`` returns the complete messages so far."""

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._need: Optional[tuple] = None  # parsed header of the frame in progress

    def __repr__(self) -> str:
        return "FrameParser(buffered=%d)" % len(self._buf)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> List[Message]:
        self._buf += data
        out: List[Message] = []
        buf = self._buf
        pos = 0
        while True:
            if self._need is None:
                if len(buf) - pos < HEADER_SIZE:
                    break
                self._need = self._check_header(HEADER.unpack_from(buf, pos))
                pos += HEADER_SIZE
            length = self._need[7]
            if len(buf) - pos < length:
                break
            _unused, _unused, flags, dst, src, handle, reply_to, _unused = self._need
            # one copy of the body (a bytearray slice would be a second one)
            out.append(Message(dst, src, handle, reply_to, bytes(memoryview(buf)[pos : pos + length]), flags))
            pos += length
            self._need = None
        if pos:
            del buf[:pos]
        return out

    def _check_header(self, fields: tuple) -> tuple:
        magic, version, flags, _dst, _src, _handle, _reply, length = fields
        if magic != MAGIC:
            raise PeerProtocolError("bad frame magic %r (stream is not ns.mitogen or is corrupt)" % magic)
        if version != VERSION:
            raise PeerProtocolError("peer speaks protocol version %d, this side speaks %d" % (version, VERSION))
        if flags & ~_KNOWN_FLAGS:
            raise PeerProtocolError("unknown frame flags %#x" % flags)
        if length > self.max_message:
            raise PeerProtocolError("frame of %d bytes exceeds the maximum of %d" % (length, self.max_message))
        return fields
