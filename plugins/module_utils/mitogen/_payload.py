# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot payload a child starts from (private module).

Owns: the first stage (a few lines passed with ``python -c``, see ``first_stage``),
and the payload: the core modules a child needs to start, lowered for old target
Pythons, stripped and compressed once per process (``payload()``). How they are
used to start a child is ``_bootstrap``'s docstring.

Making the payload costs ~0.12 s of CPU (an ``ast.parse``, lowering and unparsing
per module). A controller may keep it across processes: ``use_cache(cache)``, a
cache as ``_derived`` describes; the entry lasts while the modules in it, this
module and ``_lower`` are unchanged. Either way the payload's bytes are the same.
"""

from __future__ import annotations

import ast
import marshal
import os
import threading
import zlib
from typing import Any, Dict, FrozenSet, List, NamedTuple, Optional, Tuple

from . import _transports
from ._state import STATE

PACKAGE = __name__.rpartition(".")[0]
READY = b"NSM-READY\n"
ERR = b"NSM-ERR "

# Must parse on Python 2.7 and 3.x: only the version check may run on old ones. It
# refuses what the core cannot run, naming the Python the caller wants (see
# first_stage()).
_FIRST_STAGE = (
    "import os,sys,zlib\n"
    "V=sys.version_info\n"
    "if V<CORE:\n"
    " os.write(1,('NSM-ERR found Python %d.%d.%d at %s; ns.mitogen needs Python WANTED or newer\\n'"
    "%(V[0],V[1],V[2],sys.executable)).encode('ascii','replace'));sys.exit(1)\n"
    "os.write(1,b'NSM-READY\\n')\n"
    "def R(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c:sys.exit(1)\n"
    "  b+=c\n"
    " return b\n"
    "P=R(int.from_bytes(R(4),'big'))\n"
    "exec(compile(zlib.decompress(P),'<ns.mitogen.boot>','exec'),{'__name__':'__nsm_boot__','PAYLOAD':P})\n"
)


def first_stage(wanted: str) -> str:
    """The first stage for a caller that wants Python ``wanted`` ("3.N") or newer."""
    return _FIRST_STAGE.replace("CORE", repr(_transports.CORE_MIN_PYTHON).replace(" ", "")).replace("WANTED", wanted)


BOOT = """
import sys
def _nsm_boot(modules, payload):
    import importlib.machinery as m
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name not in modules:
                return None
            return m.ModuleSpec(name, self, origin="<ns.mitogen>/" + name, is_package=modules[name][0])
        def create_module(self, spec):
            return None
        def exec_module(self, mod):
            is_pkg, src = modules[mod.__spec__.name]
            if is_pkg:
                mod.__path__ = []
            mod.__file__ = mod.__spec__.origin
            exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    finder = Finder()
    sys.meta_path.insert(0, finder)
    try:
        child = __import__(PACKAGE + "._child", fromlist=["main"])
    finally:
        sys.meta_path.remove(finder)
    child.main(modules, payload)
_nsm_boot(MODULES, PAYLOAD)
"""

#: the compressed boot program, and the names of the modules in it
#: (the functional form: the class form is refused by _lower, 3.6 targets run this)
Payload = NamedTuple("Payload", [("data", bytes), ("modules", FrozenSet[str])])  # noqa: UP014

_payload: Optional[Payload] = None
_payload_lock = threading.Lock()
_cache: Any = None  # see use_cache()


def _unparse_stripped(tree: ast.Module) -> str:
    """``tree`` as source without docstrings, comments or blank lines (changes ``tree``;
    ``ast.unparse`` needs Python 3.9+, the controller's)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                body.pop(0)
                if not body:
                    body.append(ast.Pass())
    return ast.unparse(tree) + "\n"  # type: ignore[attr-defined,unused-ignore]


def _core_imports(tree: ast.Module) -> List[str]:
    """Sibling core modules a module imports at its top level (``from . import x``, ``from ._x import``)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append(node.module)
            else:
                found.extend(alias.name for alias in node.names)
    return found


def core_modules() -> Dict[str, Tuple[bool, str]]:
    """The modules a child needs to start, plus empty ancestor packages.

    Each is lowered for every supported target Python (``_lower``), then stripped.

    Only what ``_child`` imports, transitively, travels in the payload; the rest of
    the core (runner, files, this module and the transports, ...) is fetched through
    the importer on first use, so a context that never runs a module never receives
    the module runner, and one that never starts a child never receives the code
    that starts children.
    """
    from ._lower import lower_source  # controller only: no intermediary needs it

    here = os.path.dirname(os.path.abspath(__file__))
    modules: Dict[str, Tuple[bool, str]] = {}
    parts = PACKAGE.split(".")
    for i in range(1, len(parts)):
        modules[".".join(parts[:i])] = (True, "")
    modules[PACKAGE] = (True, "")
    todo, seen = ["_child"], set()
    while todo:
        short = todo.pop()
        if short in seen:
            continue
        seen.add(short)
        path = os.path.join(here, short + ".py")
        with open(path, "rb") as fp:
            tree = ast.parse(lower_source(fp.read(), path), path)
        todo.extend(_core_imports(tree))
        modules["%s.%s" % (PACKAGE, short)] = (False, _unparse_stripped(tree))
    return modules


def build_payload(modules: Optional[Dict[str, Tuple[bool, str]]] = None) -> bytes:
    """The compressed boot program: the core modules and the code that loads them."""
    source = "MODULES = %r\nPACKAGE = %r\n%s" % (core_modules() if modules is None else modules, PACKAGE, BOOT)
    return zlib.compress(source.encode("utf-8"), 9)


def use_cache(cache: Any) -> None:
    """Keep the payload in ``cache`` across processes (see the module docstring; None: not)."""
    global _cache
    _cache = cache


def _cache_key() -> str:
    return "payload\0%s\0%s\0%s" % (os.path.dirname(os.path.abspath(__file__)), PACKAGE, zlib.ZLIB_RUNTIME_VERSION)


def _from_cache(cache: Any) -> Optional[Payload]:
    """The payload ``cache`` kept, or None (none, or not one this module made)."""
    from ._derived import cached  # controller only

    blob = cached(cache, _cache_key())
    try:
        data, names = marshal.loads(blob) if blob is not None else (None, None)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(data, bytes) or not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
        return None
    return Payload(data, frozenset(names))


def _to_cache(cache: Any, made: Payload) -> None:
    """Keep ``made`` while the modules in it, this module and ``_lower`` are unchanged."""
    from ._derived import keep  # controller only

    here = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.join(here, n[len(PACKAGE) + 1 :] + ".py") for n in sorted(made.modules) if n.startswith(PACKAGE + ".")]
    files += [os.path.abspath(__file__), os.path.join(here, "_lower.py")]
    keep(cache, _cache_key(), files, marshal.dumps((made.data, tuple(sorted(made.modules)))))


def payload() -> Payload:
    """The payload and the modules in it, made once per process (or kept: ``use_cache``).

    A child context (an intermediary) has no source tree to build one from: it
    passes on the payload it was itself started with.
    """
    global _payload
    with _payload_lock:
        if _payload is None:
            if STATE.payload is not None:
                _payload = Payload(STATE.payload, STATE.boot_modules)
            else:
                cache = _cache
                _payload = _from_cache(cache) if cache is not None else None
                if _payload is None:
                    modules = core_modules()
                    _payload = Payload(build_payload(modules), frozenset(modules))
                    if cache is not None:
                        _to_cache(cache, _payload)
        return _payload
