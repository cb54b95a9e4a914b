# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding modules in the controller's files, for the importer's ``Responder`` (private).

Owns: ``locate`` (a module's spec on ``sys.path`` without importing its parent
packages: serving a tree must not run its ``__init__`` on the controller) and
``imported_names`` (what a source may import, by a line scan). The process that
reads sources from its own files (the controller) imports it, and a target only to
fetch an async job's whole closure ahead (``_zygote``): it is never part of a
child's boot payload.
"""

from __future__ import annotations

import importlib.machinery
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

# ``from <dots><module> import <names>`` (names possibly in parentheses over several
# lines) and ``import <modules>``, at any indentation; ``\`` continuations joined.
_IMPORT_RE = re.compile(
    rb"^[ \t]*(?:from[ \t]+(\.*)[ \t]*([\w.]*)[ \t]+import[ \t]*(\([^)]*\)|[^\n#;]*)|import[ \t]+([^\n#;]+))",
    re.M,
)
_COMMENT_RE = re.compile(rb"#[^\n]*")
# ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) and the lines indented below it:
# imports only a type checker follows, never sent along.
_TYPE_CHECKING_RE = re.compile(
    rb"^([ \t]*)if[ \t]+(?:typing\.)?TYPE_CHECKING[ \t]*:[^\n]*\n(?:(?:\1[ \t]+[^\n]*|[ \t]*)\n)*", re.M
)


def imported_names(name: str, is_pkg: bool, source: bytes) -> Set[str]:
    """Absolute names ``source`` (module ``name``) may import: modules and ``from`` targets."""
    package = name if is_pkg else name.rpartition(".")[0]
    found: Set[str] = set()
    # comments go first: a ")" in one would end a parenthesised list of names early
    text = _COMMENT_RE.sub(b"", source.replace(b"\\\n", b" "))
    for match in _IMPORT_RE.finditer(_TYPE_CHECKING_RE.sub(b"", text)):
        dots, module, names, plain = match.groups()
        if plain is not None:
            found.update(_names(plain))
            continue
        base = module.decode("ascii", "replace")
        if dots:
            parts = package.split(".")
            if len(dots) > 1:
                parts = parts[: -(len(dots) - 1)]
            base = ".".join(parts + ([base] if base else []))
        if base:
            found.add(base)
            found.update("%s.%s" % (base, leaf) for leaf in _names(names))
    return found


def locate(name: str, first: Optional[Dict[str, List[str]]] = None) -> Optional[importlib.machinery.ModuleSpec]:
    """``name``'s spec found on ``sys.path`` without importing its parent packages.

    (``importlib.util.find_spec`` would run every parent ``__init__``: serving a
    tree must not execute it on the controller.) ``first``: package name ->
    directories searched for its submodules before its own (a playbook's
    ``module_utils/`` for ``ansible.module_utils``).
    """
    parts = name.split(".")
    path: Optional[List[str]] = None
    spec = None
    for i in range(len(parts)):
        prefix = ".".join(parts[: i + 1])
        entries = sys.path if path is None else path
        if i < len(parts) - 1:
            spec = _find_package(prefix, entries)
        else:
            spec = _find_on(prefix, entries)
        if spec is None:
            return None
        if i < len(parts) - 1:
            if spec.submodule_search_locations is None:
                return None
            path = list((first or {}).get(prefix, ())) + list(spec.submodule_search_locations)
    return spec


#: (package, the directories searched) -> its spec: each name served looks its
#: packages up again (``ansible``, ``ansible.module_utils``, ...: ~60% of locating
#: ``basic``'s closure). Only packages, found as directories with an ``__init__``
#: or as namespace portions; a package is not expected to move while a process
#: serves it (a module in it is looked up afresh each time).
_packages: Dict[Tuple[str, Tuple[str, ...]], importlib.machinery.ModuleSpec] = {}


def _find_package(fullname: str, entries: Sequence[Any]) -> Optional[importlib.machinery.ModuleSpec]:
    key = (fullname, tuple(e for e in entries if isinstance(e, str)))
    spec = _packages.get(key)
    if spec is None:
        spec = _find_on(fullname, entries)
        if spec is not None and spec.submodule_search_locations is not None:
            _packages[key] = spec
    return spec


# Plain file finders, as in a process with no import hooks: the mux is forked from
# ansible-playbook, whose collection loader hooks every sys.path entry.
_FILE_LOADERS = [
    (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
    (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
]
_finders: Dict[str, importlib.machinery.FileFinder] = {}


def _find_on(fullname: str, entries: Sequence[Any]) -> Optional[importlib.machinery.ModuleSpec]:
    """What ``PathFinder.find_spec(fullname, entries)`` finds in directories, hooks aside.

    A module or regular package in the first entry that has it; else a namespace
    package made of every entry's portion.
    """
    portions: List[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            continue
        finder = _finders.get(entry)
        if finder is None:
            finder = _finders.setdefault(entry, importlib.machinery.FileFinder(entry, *_FILE_LOADERS))
        spec = finder.find_spec(fullname)
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions.extend(spec.submodule_search_locations or ())
    if not portions:
        return None
    spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
    spec.submodule_search_locations = portions
    return spec


def _names(text: bytes) -> List[str]:
    """``a, b as c, (d,\n e)`` -> ``["a", "b", "d", "e"]`` (identifiers only)."""
    out = []
    text = _COMMENT_RE.sub(b"", text)
    for item in text.decode("ascii", "replace").strip("() \t\r\n").split(","):
        word = item.strip().split(" as ")[0].strip()
        if word and all(part.isidentifier() for part in word.split(".")):
            out.append(word)
    return out
