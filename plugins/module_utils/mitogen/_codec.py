# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe serializer for message bodies (private module).

Owns: turning Python values into bytes and back, and nothing else (no I/O).

Rules it keeps:
- Decoding is an allow-list. The peer chooses among a fixed set of tags (None, bool,
  int, float, str, bytes, list, tuple, dict, set) plus object types allowed by
  name, each rebuilt by its own ``from_wire`` that checks its state: the error
  classes marked ``@_errors.wire_error`` where they are defined, and the types
  ``register()``-ed here. No other
  class is ever constructed from peer data: there is no pickle here.
- Decoding never trusts a length: every count is checked against the bytes left,
  nesting is bounded, and any malformed input raises ``PeerProtocolError``.
- Encoding accepts subclasses of the plain types (str subclasses such as Ansible's
  unsafe text encode as plain str); anything else raises ``ProtocolError`` naming
  the type, because that is a bug on the sending side.

Format: one tag byte per value; lengths and counts are unsigned 32-bit big endian.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Tuple

from ._errors import WIRE_ERRORS, PeerProtocolError, ProtocolError

MAX_DEPTH = 64

_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

# name -> (class, decoder); class -> name
_BY_NAME: Dict[str, Tuple[type, Callable[[Any], Any]]] = {}
_BY_CLASS: Dict[type, str] = {}


def register(name: str, cls: type, from_wire: Callable[[Any], Any]) -> None:
    """Allow ``cls`` across the wire under ``name``.

    ``cls`` must have a ``to_wire()`` method returning plain encodable state;
    ``from_wire(state)`` must validate that state and raise ``PeerProtocolError`` on
    anything unexpected.
    """
    _BY_NAME[name] = (cls, from_wire)
    _BY_CLASS[cls] = name


class Encoded:
    """A value ``encode()`` already made, emitted as is where it stands in a larger one.

    Lets a relay pass on what it need not read (the mux forwards a call's arguments
    without decoding them). The receiver decodes the value itself: nothing of this
    class crosses the wire, and the bytes are checked there as any others.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)


def _enc_int(v: int, out: List[bytes]) -> None:
    if -(1 << 63) <= v < (1 << 63):
        out.append(b"i" + _I64.pack(v))
    else:
        raw = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
        out.append(b"I" + _U32.pack(len(raw)) + raw)


def _enc_str(v: str, out: List[bytes]) -> None:
    raw = v.encode("utf-8", "surrogatepass")
    out.append(b"s" + _U32.pack(len(raw)))
    out.append(raw)


def _enc_bytes(v: bytes, out: List[bytes]) -> None:
    out.append(b"b" + _U32.pack(len(v)))
    out.append(bytes(v))


def _encode(v: Any, out: List[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested deeper than %d levels" % MAX_DEPTH)
    tp = type(v)
    if v is None:
        out.append(b"N")
    elif v is True:
        out.append(b"T")
    elif v is False:
        out.append(b"F")
    elif tp is str:
        _enc_str(v, out)
    elif tp is int:
        _enc_int(v, out)
    elif tp is bytes or tp is bytearray or tp is memoryview:
        _enc_bytes(v, out)
    elif tp is dict:
        out.append(b"D" + _U32.pack(len(v)))
        for k, item in v.items():
            _encode(k, out, depth + 1)
            _encode(item, out, depth + 1)
    elif tp is list or tp is tuple:
        out.append((b"L" if tp is list else b"U") + _U32.pack(len(v)))
        for item in v:
            _encode(item, out, depth + 1)
    elif tp is float:
        out.append(b"d" + _F64.pack(v))
    elif tp is Encoded:
        out.append(v.data)
    elif tp in _BY_CLASS or WIRE_ERRORS.get(tp.__name__) is tp:
        raw = _BY_CLASS.get(tp, tp.__name__).encode("utf-8")
        out.append(b"O" + _U32.pack(len(raw)) + raw)
        _encode(v.to_wire(), out, depth + 1)
    else:
        _encode_subclass(v, out, depth)


def _encode_subclass(v: Any, out: List[bytes], depth: int) -> None:
    # Subclasses of plain types (e.g. Ansible's AnsibleUnsafeText) travel as the
    # plain type; the receiver never learns the subclass.
    if isinstance(v, bool):
        out.append(b"T" if v else b"F")
    elif isinstance(v, str):
        _enc_str(str.__str__(v), out)
    elif isinstance(v, int):
        _enc_int(int(v), out)
    elif isinstance(v, (bytes, bytearray)):
        _enc_bytes(bytes(v), out)
    elif isinstance(v, float):
        out.append(b"d" + _F64.pack(float(v)))
    elif isinstance(v, dict):
        _encode(dict(v), out, depth)
    elif isinstance(v, (list, tuple)):
        _encode(list(v) if isinstance(v, list) else tuple(v), out, depth)
    elif isinstance(v, (set, frozenset)):
        out.append(b"S" + _U32.pack(len(v)))
        for item in v:
            _encode(item, out, depth + 1)
    else:
        raise ProtocolError("cannot encode a value of type %s.%s" % (type(v).__module__, type(v).__qualname__))


def encode(value: Any) -> bytes:
    """Return ``value`` as bytes; raise ``ProtocolError`` for an unencodable type."""
    out: List[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


_unpack_u32 = _U32.unpack_from
_unpack_i64 = _I64.unpack_from
_unpack_f64 = _F64.unpack_from
# Tags as the integers indexing a buffer gives.
_N, _T, _F, _S, _I, _D, _L, _U, _B, _BIG, _FLOAT, _SET, _OBJ = b"NTFsiDLUbIdSO"


class _Decoder:
    """One message body; ``value()`` reads the next value (one tag, its payload).

    Written for speed (every request and reply crosses it, several times on its
    way): tags are read as integers, lengths with ``unpack_from``, and the common
    types are handled inline; every count is still checked against the bytes left.
    """

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes) -> None:
        self.buf = memoryview(buf)
        self.pos = 0
        self.end = len(self.buf)

    def fail(self, why: str) -> PeerProtocolError:
        return PeerProtocolError("malformed message body at offset %d: %s" % (self.pos, why))

    def _u32(self) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise self.fail("length %d runs past the end" % 4)
        self.pos = pos + 4
        return int(_unpack_u32(self.buf, pos)[0])

    def _length(self) -> int:
        """A u32 length at ``pos`` (consumed) whose bytes must all be there."""
        n = self._u32()
        if n > self.end - self.pos:
            raise self.fail("length %d runs past the end" % n)
        return n

    def count(self) -> int:
        n = self._u32()
        if n > self.end - self.pos:  # every item needs at least one byte
            raise self.fail("count %d exceeds the bytes left" % n)
        return n

    def string(self) -> str:
        n = self._length()
        pos = self.pos
        try:
            text = str(self.buf[pos : pos + n], "utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise self.fail("invalid UTF-8 (%s)" % exc) from None
        self.pos = pos + n
        return text

    def fixed(self, n: int) -> int:
        """The position of ``n`` bytes at ``pos`` (consumed)."""
        pos = self.pos
        if n > self.end - pos:
            raise self.fail("length %d runs past the end" % n)
        self.pos = pos + n
        return pos

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail("nested deeper than %d levels" % MAX_DEPTH)
        pos = self.pos
        if pos >= self.end:
            raise self.fail("length 1 runs past the end")
        buf = self.buf
        tag = buf[pos]
        pos += 1
        self.pos = pos
        if tag == _S:  # inline: most values are strings
            if pos + 4 > self.end:
                raise self.fail("length %d runs past the end" % 4)
            (n,) = _unpack_u32(buf, pos)
            pos += 4
            self.pos = pos
            if n > self.end - pos:
                raise self.fail("length %d runs past the end" % n)
            try:
                text = str(buf[pos : pos + n], "utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise self.fail("invalid UTF-8 (%s)" % exc) from None
            self.pos = pos + n
            return text
        if tag == _D:
            return _d_dict(self, depth)
        if tag == _N:
            return None
        if tag == _T:
            return True
        if tag == _F:
            return False
        if tag == _I:
            return _unpack_i64(buf, self.fixed(8))[0]
        if tag == _L:
            return [self.value(depth + 1) for _n in range(self.count())]
        if tag == _U:
            return tuple([self.value(depth + 1) for _n in range(self.count())])
        if tag == _B:
            n = self._length()
            pos = self.pos
            self.pos = pos + n
            return bytes(self.buf[pos : pos + n])
        if tag == _FLOAT:
            return _unpack_f64(buf, self.fixed(8))[0]
        if tag == _BIG:
            n = self._length()
            pos = self.pos
            self.pos = pos + n
            return int.from_bytes(self.buf[pos : pos + n], "big", signed=True)
        if tag == _SET:
            return _d_set(self, depth)
        if tag == _OBJ:
            return _d_object(self, depth)
        self.pos = pos - 1
        raise self.fail("unknown tag %r" % bytes([tag]))


def _d_dict(d: _Decoder, depth: int) -> dict:
    n = d.count()
    out = {}
    value = d.value
    depth += 1
    for _n in range(n):
        k = value(depth)
        try:
            out[k] = value(depth)
        except TypeError:
            raise d.fail("unhashable dict key of type %s" % type(k).__name__) from None
    return out


def _d_set(d: _Decoder, depth: int) -> set:
    try:
        return {d.value(depth + 1) for _n in range(d.count())}
    except TypeError:
        raise d.fail("unhashable set member") from None


def _d_object(d: _Decoder, depth: int) -> Any:
    name = d.string()
    entry = _BY_NAME.get(name)
    error = WIRE_ERRORS.get(name)
    if entry is not None:
        from_wire = entry[1]
    elif error is not None:
        from_wire = error.from_wire  # type: ignore[attr-defined] # checked by wire_error
    else:
        raise d.fail("object type %r is not on the allow-list" % name)
    state = d.value(depth + 1)
    try:
        return from_wire(state)
    except PeerProtocolError:
        raise
    except Exception as exc:  # a from_wire that did not expect this state
        raise d.fail("bad state for %s: %s" % (name, exc)) from None


def decode(data: bytes) -> Any:
    """Return the value encoded in ``data``; raise ``PeerProtocolError`` if malformed."""
    d = _Decoder(data)
    try:
        value = d.value(0)
    except PeerProtocolError:
        raise
    except (struct.error, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        raise d.fail(str(exc)) from None
    if d.pos != d.end:
        raise d.fail("%d trailing bytes" % (d.end - d.pos))
    return value
