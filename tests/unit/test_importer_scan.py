"""The importer's line scan finds every import a parse finds, on real module_utils sources."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Set

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._importer import imported_names

ansible = pytest.importorskip("ansible")
MODULE_UTILS = Path(ansible.__file__).parent / "module_utils"
OURS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "mitogen"


def parsed_names(name: str, is_pkg: bool, source: bytes) -> Set[str]:
    """What ast sees: every Import / ImportFrom anywhere, made absolute."""
    package = name if is_pkg else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(source)):
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
"""
    found = imported_names("p.q.m", False, source)
    assert {"os", "sys", "p.q.sibling", "p.q.other", "p.uncle", "p.q.pkg.mod.a", "p.q.pkg.mod.b", "x.y.z", "lazy.mod"} <= found
