# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller derives from the core's and module_utils' sources, kept across processes (private).

Owns: the protocol of the cache that keeps it, and the derivations the importer's
responder makes: per source served, a core module lowered (``lowered``: ``_lower``,
an ``ast.parse`` each), what a module imports (``imported``: ``_modscan``'s line
scan) and its compiled code for a target of this Python's magic number
(``compiled``: ~70 ms for ``basic``'s closure, ``_bytecode``); per bundle sent, its
compressed bytes (``compressed``: ~16 ms for the first module run's). ``_payload``
keeps the boot payload through it too. Together ~0.3 s of CPU in every
multiplexer, on the first task's path.

The cache is any object with ``get(key) -> bytes or None`` and ``put(key, files,
data)``, given by whoever starts the responder (the multiplexer's is
``plugin_utils._file_cache``: the private per-user code cache); this module never
knows where it keeps things. Its contract: ``get`` answers only what ``put`` stored
under ``key`` while each of ``files`` is unchanged since; a damaged, stale or
foreign entry is a miss. Keys here name what the value is derived from - the
source's SHA-256 - and ``files`` the core module whose code derives it, so a
changed source is another key and a changed ``_lower`` or ``_modscan`` a miss
(compressed data: zlib's version and level are in the key; compiled code: the
optimisation level and file name, the compiler being the Python's own, whose magic
number the cache keys its entries by).
The values are the same bytes either way: targets cannot tell a kept one.

Every failure of the cache is a miss (a ``put`` that fails is forgotten): it is
only an optimisation. Controller only: no target imports it.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import zlib
from typing import Any, Optional, Sequence, Set

HERE = os.path.dirname(os.path.abspath(__file__))


def cached(cache: Any, key: str) -> Optional[bytes]:
    """What ``cache`` keeps under ``key``, or None (no cache, a miss, or a failing cache)."""
    if cache is None:
        return None
    try:
        found = cache.get(key)
    except Exception:  # an optimisation: a failing cache is a miss
        return None
    return found if isinstance(found, bytes) else None


def keep(cache: Any, key: str, files: Sequence[str], data: bytes) -> None:
    """Have ``cache`` keep ``data`` under ``key`` while ``files`` are unchanged (if there is a cache)."""
    if cache is not None:
        try:
            cache.put(key, list(files), data)
        except Exception:  # an optimisation: made again next time
            pass


def lowered(cache: Any, source: bytes, origin: str) -> bytes:
    """A core module's ``source`` (read from ``origin``) lowered for every target Python."""
    key = "lower\0%s\0%s" % (origin, hashlib.sha256(source).hexdigest())
    found = cached(cache, key)
    if found is not None:
        return found
    from ._lower import lower_source

    made = lower_source(source, origin)
    keep(cache, key, [os.path.join(HERE, "_lower.py")], made)
    return made


def imported(cache: Any, name: str, is_pkg: bool, source: bytes) -> Set[str]:
    """The names module ``name``'s ``source`` may import (``_modscan.imported_names``)."""
    key = "scan\0%s\0%d\0%s" % (name, is_pkg, hashlib.sha256(source).hexdigest())
    found = cached(cache, key)
    if found is not None:
        try:
            names = marshal.loads(found)
        except (EOFError, ValueError, TypeError):
            names = None
        if isinstance(names, tuple) and all(isinstance(n, str) for n in names):
            return set(names)
    from ._modscan import imported_names

    made = imported_names(name, is_pkg, source)
    keep(cache, key, [os.path.join(HERE, "_modscan.py")], marshal.dumps(tuple(sorted(made))))
    return made


def compressed(cache: Any, data: bytes, digest: str, level: int) -> bytes:
    """``zlib.compress(data, level)``; ``digest`` is ``data``'s SHA-256 (hex)."""
    key = "zlib\0%s\0%d\0%s" % (zlib.ZLIB_RUNTIME_VERSION, level, digest)
    found = cached(cache, key)
    if found is not None:
        return found
    made = zlib.compress(data, level)
    keep(cache, key, [], made)
    return made


def compiled(cache: Any, source: bytes, filename: str, level: int) -> Optional[bytes]:
    """The marshalled code of ``source`` named ``filename``, at optimisation ``level``; None if it does not compile.

    The cache's entries are this Python's own (its magic number): only a child of
    the same magic number is sent it (``_bytecode``).
    """
    key = "code\0%d\0%s\0%s" % (level, filename, hashlib.sha256(source).hexdigest())
    found = cached(cache, key)
    if found is not None:
        return found
    try:
        code = compile(source.decode("utf-8"), filename, "exec", dont_inherit=True, optimize=level)
    except Exception:  # the child compiles it, and reports what is wrong as an import would
        return None
    made = marshal.dumps(code)
    keep(cache, key, [], made)
    return made
