# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module bundles as they cross a hop: their entries, checks, packing and closure (private).

Owns: ``Entry`` and ``WireEntry`` (a module as the importer caches it, and as it
travels), ``pack_bundle``/``unpack_bundle`` (encoded with ``_codec``, then
compressed; inflating is bounded, so a peer cannot send a zip bomb),
``valid_entry`` (what a receiver accepts), ``Packer`` (compresses a large bundle
once per process and content) and ``closure`` (a set of modules and all they
import, as some lookup finds them). No sockets or files of its own (``Packer`` keeps
what it compressed across processes only through the ``_derived`` cache it is
handed, on the controller); ``_importer`` does the asking and answering.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from . import _bytecode, _codec
from ._errors import PeerProtocolError

# name -> (is_pkg, filename, source or None when absent, names of related modules)
Entry = Tuple[bool, str, Optional[bytes], Tuple[str, ...]]
#: An entry as it crosses a hop: an ``Entry``, or one with a code field after it,
#: ``(tag, marshalled code)`` (``_bytecode``), for a child that runs that tag.
WireEntry = Tuple[Any, ...]


def pack_bundle(bundle: Dict[str, Entry]) -> bytes:
    """A module bundle as it crosses a hop: encoded, then compressed (sources shrink ~4x)."""
    return zlib.compress(_codec.encode(bundle), 6)


#: A bundle encoded to at least this many bytes is compressed once per process and
#: content (``Packer``); smaller ones compress in well under a millisecond.
PACK_KEEP_MIN = 16384


def unpack_bundle(data: Any, limit: int) -> Any:
    """The bundle in ``data``; refuses to inflate past ``limit`` bytes (no zip bombs)."""
    if not isinstance(data, bytes):
        raise PeerProtocolError("GET_MODULE reply is not a compressed bundle")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise PeerProtocolError("GET_MODULE reply does not inflate: %s" % exc) from None
    if inflater.unconsumed_tail:
        raise PeerProtocolError("GET_MODULE reply inflates past %d bytes" % limit)
    return _codec.decode(raw)


def valid_entry(name: Any, entry: Any) -> bool:
    """Whether ``name: entry`` from a peer has the shape of a ``WireEntry`` (types only)."""
    return (
        isinstance(name, str)
        and isinstance(entry, tuple)
        and len(entry) in (4, 5)
        and (len(entry) == 4 or _bytecode.valid_field(entry[4]))
        and isinstance(entry[0], bool)
        and isinstance(entry[1], str)
        and (entry[2] is None or isinstance(entry[2], bytes))
        and isinstance(entry[3], tuple)
        and all(isinstance(r, str) for r in entry[3])
    )


class Packer:
    """``pack_bundle``, compressed once per process and content (any thread).

    Each host's first module run is sent the same bundle (~600 KB encoded, ~16 ms
    to compress): compressed for the first, remembered for the others (the last
    few), and kept across processes in ``cache`` (``_derived``) where one is
    given. The same bytes either way.
    """

    KEEP = 4

    def __init__(self) -> None:
        self._packed: Dict[str, bytes] = {}  # SHA-256 of an encoded bundle -> it compressed
        self._lock = threading.Lock()

    def pack(self, bundle: Dict[str, WireEntry], cache: Any = None) -> bytes:
        data = _codec.encode(bundle)
        if len(data) < PACK_KEEP_MIN:
            return zlib.compress(data, 6)
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            found = self._packed.get(digest)
        if found is None:
            if cache is not None:
                from ._derived import compressed  # the controller only

                found = compressed(cache, data, digest, 6)
            else:
                found = zlib.compress(data, 6)
            with self._lock:
                while len(self._packed) >= self.KEEP:
                    del self._packed[next(iter(self._packed))]
                self._packed[digest] = found
        return found


def closure(names: Sequence[str], lookup: Callable[[str], Optional[Entry]], skip: Callable[[str], bool]) -> Dict[str, Entry]:
    """``names`` and every module they import (transitively), as ``lookup`` finds them.

    ``skip(name)`` leaves a name out, and what only it would have brought in.
    """
    found: Dict[str, Entry] = {}
    todo = list(names)
    while todo:
        mod = todo.pop()
        if mod in found or skip(mod):
            continue
        entry = lookup(mod)
        if entry is not None:
            found[mod] = entry
            todo.extend(entry[3])
    return found
