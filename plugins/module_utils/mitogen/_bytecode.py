# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compiled code sent beside a module's source, for a child that runs the same bytecode (private).

Owns: the code tag (``TAG``: what bytecode an interpreter runs, its
``importlib.util.MAGIC_NUMBER`` and ``sys.flags.optimize``), the code field of a
bundle entry (``(tag, marshalled code)``: its check, ``valid_field``), an
importer's code (``CodeStore``: what its parent sent, what it ran, how many modules
it compiled) and a responder's (``CodeServer``: which child runs what, and the
code field of an entry for it). ``_importer`` uses both; the zygote the store.

Why: a target's first module run compiled every module_util it was served
(``basic``'s closure: ~49 modules, ~69 ms of CPU) where ``marshal.loads`` of the
same code takes ~2 ms; once per interpreter: per host, and again per become user.

Rules it keeps:
- A child says its tag in its hello; its parent's responder sends code only to a
  child whose tag it knows and can serve (``CodeServer.accepts``), and is told it
  only over a link that crosses no network (``Transport.local_link``; compressed,
  code and source are ~2.8x the source alone: ~270 KB more for basic's closure,
  which costs a slow link more than the ~60 ms the child saves): the root
  compiles for a child whose magic number is its own, at the child's optimisation
  level (kept across processes by ``_derived.compiled``); an intermediary passes
  on code for its own tag only (what it was sent, or what it ran itself, marshalled
  on demand). Otherwise source only, as before.
- The source always travels with the code (tracebacks, ``linecache``,
  ``inspect``), and the code names the same file name (``master:<path>``) as the
  source: a code object that names another file is not run.
- Code is compiled with ``dont_inherit=True``: the compiling module's
  ``from __future__`` flags never leak into a module's code.
- A field that is not ``(str, bytes)`` is a malformed entry (the importer raises
  ``PeerProtocolError``); code that ``marshal`` cannot load is compiled from the
  source instead (said once, at debug).
"""

from __future__ import annotations

import importlib.util
import logging
import marshal
import sys
import threading
from types import CodeType
from typing import Any, Dict, List, Optional, Tuple

LOG = logging.getLogger("ns.mitogen.importer")

_MAGIC = importlib.util.MAGIC_NUMBER.hex()
#: What bytecode this interpreter runs: its magic number (hex) and optimisation level.
TAG = "%s-%d" % (_MAGIC, sys.flags.optimize)
_warned: List[str] = []  # a failing blob is said once per process


def valid_field(field: Any) -> bool:
    """Whether ``field`` is the shape of an entry's code field: ``(tag, marshalled code)``."""
    return isinstance(field, tuple) and len(field) == 2 and isinstance(field[0], str) and isinstance(field[1], bytes)


def optimize_for(tag: Any) -> Optional[int]:
    """The optimisation level to compile at for a child of ``tag``; None: it runs other bytecode."""
    if not isinstance(tag, str):
        return None
    magic, _sep, level = tag.partition("-")
    if magic != _MAGIC or level not in ("0", "1", "2"):
        return None
    return int(level)


def _load(name: str, blob: bytes, filename: str) -> Optional[CodeType]:
    """The code marshalled in ``blob`` for module ``name`` if it loads and names ``filename``; else None."""
    try:
        code = marshal.loads(blob)
    except Exception as exc:  # a damaged blob: the source is there to compile
        code, why = None, str(exc)
    else:
        why = "not code for %s" % filename
    if isinstance(code, CodeType) and code.co_filename == filename:
        return code
    if not _warned:
        _warned.append(name)
        LOG.debug("compiling %s from its source: its code does not load (%s)", name, why)
    return None


class CodeStore:
    """An importer's module code: sent by its parent for ``TAG``, or run here (target side)."""

    def __init__(self) -> None:
        self.tag = TAG
        self.sent: Dict[str, bytes] = {}  # module -> its code as the parent sent it, until it runs
        self.ran: Dict[str, CodeType] = {}  # module -> the module-level code it ran here
        self.counts = {"compiled": 0, "from_code": 0}  # modules compiled here, and run from sent code

    def __repr__(self) -> str:
        return "CodeStore(sent=%d, ran=%d)" % (len(self.sent), len(self.ran))

    def stored(self, name: str, field: Optional[Tuple[str, bytes]], changed: bool) -> None:
        """The parent sent module ``name`` (``changed``: another source than before), with code ``field`` or none."""
        if changed:
            self.ran.pop(name, None)
        if field is not None and field[0] == self.tag:
            self.sent[name] = field[1]
        else:
            self.sent.pop(name, None)

    def code_of(self, name: str, filename: str, text: str) -> CodeType:
        """The module-level code of ``name``: run here before, else sent by the parent, else compiled.

        Kept for this module's next import and for children of our tag
        (``marshalled``); the parent's blob, once loaded, is not.
        """
        code = self.ran.get(name)
        if code is not None:
            return code
        blob = self.sent.pop(name, None)
        if blob is not None:
            code = _load(name, blob, filename)
            if code is not None:
                self.counts["from_code"] += 1
        if code is None:
            # dont_inherit: this file's ``from __future__ import annotations`` must not
            # leak into served modules (their annotations would turn into strings).
            code = compile(text, filename, "exec", dont_inherit=True)
            self.counts["compiled"] += 1
        self.ran[name] = code
        return code

    def marshalled(self, name: str) -> Optional[bytes]:
        """The code of ``name`` for our tag, marshalled, if this context has it (sent, or run here)."""
        blob = self.sent.get(name)
        if blob is None:
            code = self.ran.get(name)
            blob = None if code is None else marshal.dumps(code)
        return blob


class CodeServer:
    """A responder's side: the tag each child said, and the code field of an entry for it.

    ``store``: the responder's own importer's (an intermediary passes on what it
    has, for its own tag only); None on the root, which compiles for a child of
    its magic number, once per source and level in this process (and across
    processes in ``cache``, ``_derived``).
    """

    def __init__(self, store: Optional[CodeStore]) -> None:
        self.store = store
        self.tags: Dict[int, str] = {}  # child id -> the code tag of its hello
        self._lock = threading.Lock()
        self._made: Dict[Tuple[str, int], Tuple[bytes, Optional[bytes]]] = {}  # root: (file, level) -> (source, code)

    def __repr__(self) -> str:
        return "CodeServer(children=%d, compiled=%d)" % (len(self.tags), len(self._made))

    def accepts(self, child: int, tag: Any) -> None:
        """``child`` said it runs code of ``tag``; not a short string: source only."""
        if isinstance(tag, str) and len(tag) <= 64:
            self.tags[child] = tag
        else:
            self.tags.pop(child, None)

    def field(self, child: int, name: str, entry: Tuple[Any, ...], cache: Any) -> Optional[Tuple[str, bytes]]:
        """The code field of module ``name``'s ``entry`` for ``child``; None: source only."""
        tag = self.tags.get(child)
        filename, source = entry[1], entry[2]
        if tag is None or not isinstance(source, bytes):
            return None
        if self.store is not None:  # an intermediary: what it has, for its own tag
            blob = self.store.marshalled(name) if tag == self.store.tag else None
            return None if blob is None else (tag, blob)
        level = optimize_for(tag)
        if level is None:
            return None
        with self._lock:
            found = self._made.get((filename, level))
        if found is None or found[0] is not source:
            from ._derived import compiled  # the controller only

            found = (source, compiled(cache, source, filename, level))
            with self._lock:
                self._made[(filename, level)] = found
        return None if found[1] is None else ("%s-%d" % (_MAGIC, level), found[1])
