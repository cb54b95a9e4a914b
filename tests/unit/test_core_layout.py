"""The core's modules use each other through public names, without import cycles.

Read from the source (ast), so it holds for imports under ``TYPE_CHECKING`` and in
functions too: a cycle there is still a tangle for the reader, and the type checker.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

from ansible_collections.ns.mitogen.plugins.module_utils import mitogen
from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _shapes, _state

CORE = {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(Path(mitogen.__file__).parent.glob("*.py"))}


def _sibling_imports(tree: ast.Module) -> Dict[str, Set[str]]:
    """Sibling module -> names imported from it (``from ._x import a``; ``from . import _x`` gives ``{}``)."""
    found: Dict[str, Set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.setdefault(node.module, set()).update(a.name for a in node.names)
            else:
                for alias in node.names:
                    found.setdefault(alias.name, set())
    return found


def test_no_import_cycle_among_core_modules() -> None:
    graph = {name: set(_sibling_imports(tree)) & set(CORE) for name, tree in CORE.items()}
    cycles: List[List[str]] = []
    done: Set[str] = set()

    def walk(name: str, path: List[str]) -> None:
        for dep in sorted(graph[name]):
            if dep in path:
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in done:
                walk(dep, path + [dep])
        done.add(name)

    for name in graph:
        walk(name, [name])
    assert not cycles, cycles


def test_no_core_module_uses_a_private_name_of_another() -> None:
    used = []
    for name, tree in CORE.items():
        imports = _sibling_imports(tree)
        for module, names in imports.items():
            used += ["%s: from .%s import %s" % (name, module, n) for n in names if n.startswith("_")]
        modules = {m for m, names in imports.items() if not names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                if node.attr.startswith("_") and not node.attr.startswith("__"):
                    used.append("%s: %s.%s (line %d)" % (name, node.value.id, node.attr, node.lineno))
    assert not used, used


def test_state_and_shapes_import_no_core_module_at_run_time() -> None:
    """Everything may import them; they import nothing back (``_shapes``: annotations only)."""
    for name in ("_state", "_shapes"):
        top = [n for n in CORE[name].body if isinstance(n, ast.ImportFrom) and n.level == 1]
        assert not top, name
    assert not [v for v in vars(_shapes).values() if isinstance(v, type)], "_shapes defines classes at run time"
    assert _state.STATE.router is None  # the controller is no child context
