"""The importer's line scan finds every import a parse finds, on real module_utils sources."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Set

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._modscan import imported_names

ansible = pytest.importorskip("ansible")
MODULE_UTILS = Path(ansible.__file__).parent / "module_utils"
OURS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "mitogen"


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    for child in ast.iter_child_nodes(tree):
        if _is_type_checking(child):
            assert isinstance(child, ast.If)
            for node in child.orelse:
                yield node
                yield from _runtime_nodes(node)
            continue
        yield child
        yield from _runtime_nodes(child)


def parsed_names(name: str, is_pkg: bool, source: bytes) -> Set[str]:
    """What ast sees: every Import / ImportFrom that can run, made absolute."""
    package = name if is_pkg else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                if node.level > 1:
                    parts = parts[: -(node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update("%s.%s" % (base, alias.name) for alias in node.names if alias.name != "*")
    return found


def _sources(root: Path, prefix: str):
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [prefix] + list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), is_pkg, path.read_bytes()


def test_scan_finds_everything_ast_finds_in_ansible_module_utils_and_ours():
    checked = 0
    for root, prefix in (
        (MODULE_UTILS, "ansible.module_utils"),
        (OURS, "ansible_collections.ns.mitogen.plugins.module_utils.mitogen"),
    ):
        for name, is_pkg, source in _sources(root, prefix):
            try:
                expected = parsed_names(name, is_pkg, source)
            except SyntaxError:
                continue
            missing = expected - imported_names(name, is_pkg, source)
            assert not missing, "%s: the scan misses %s" % (name, sorted(missing))
            checked += 1
    assert checked > 100


def test_scan_forms():
    source = b"""
import os, sys as system
from . import sibling, other as o
from .. import uncle
from .pkg.mod import (
    a,
    b as c,  # comment
)
from x.y import \\
    z
def f():
    import lazy.mod
from .more import (
    first,  # a comment (with parentheses) inside the list
    second,
)
"""
    found = imported_names("p.q.m", False, source)
    assert {"os", "sys", "p.q.sibling", "p.q.other", "p.uncle", "p.q.pkg.mod.a", "p.q.pkg.mod.b", "x.y.z", "lazy.mod"} <= found
    assert {"p.q.more.first", "p.q.more.second"} <= found  # a ")" in a comment ended the list


def test_imports_only_a_type_checker_follows_are_not_sent_along():
    """The core's typed shapes (_shapes) crossed to every target with _runner: ~1 KiB for nothing."""
    source = b"""
import os
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from ._shapes import RunLike

    import typing_only
else:
    import at_run_time
import json
def f():
    if typing.TYPE_CHECKING:  # any indentation
        import nested_typing_only
    import lazy
"""
    found = imported_names("p.q.m", False, source)
    assert {"os", "json", "at_run_time", "lazy"} <= found
    assert not {"p.q._shapes", "p.q._shapes.RunLike", "typing_only", "nested_typing_only"} & found
