"""The collection's import boundaries, read from the source with ast (no imports, no processes).

- Plugins and plugin_utils use the core (``module_utils/mitogen``) through ``api``
  and ``_errors`` only: its other modules can change behind that boundary.
- No import cycle among the collection's modules (function-level imports included).
- The core never imports Ansible: it is target code, and the target has no Ansible.
- ansible-core's private API is used in ``plugin_utils/_compat.py`` (and its
  ``_compat_hooks.py``, the hooks on ansible-core's classes) alone (the rule
  is written at the top of that file); what ast can see of it is checked here:
  modules under ``ansible.executor`` or with a ``_``-prefixed part, ``_``-prefixed
  names imported from ansible, and ``_``-prefixed attributes of a name bound by an
  ansible import (``C.config._parsers``, ``module_common._MODULE_UTILS_PATH``,
  ``ActionBase._configure_module``).

Each check is a pure function over ``{module name: source}``, so the tests below
also feed each one a bad import and see it fail.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = "ansible_collections.ns.mitogen"
CORE = PREFIX + ".plugins.module_utils.mitogen"
COMPAT = PREFIX + ".plugins.plugin_utils._compat"
COMPAT_MODULES = (COMPAT, COMPAT + "_hooks")
CORE_BOUNDARY = {CORE + ".api", CORE + "._errors"}


def collection_sources() -> Dict[str, str]:
    """Module name -> source of every .py under plugins/."""
    found: Dict[str, str] = {}
    base = os.path.join(ROOT, "plugins")
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[: -len(".py")].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            with open(os.path.join(dirpath, name), encoding="utf-8") as fp:
                found[".".join([PREFIX] + rel)] = fp.read()
    return found


def _is_package(name: str, sources: Dict[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in sources)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _walk(tree: ast.AST, runtime_only: bool) -> Iterator[ast.AST]:
    """``ast.walk``, without the bodies of ``if TYPE_CHECKING:`` when ``runtime_only``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if runtime_only and _is_type_checking(node):
            todo.extend(getattr(node, "orelse", []))
            continue
        todo.extend(ast.iter_child_nodes(node))


def imports(name: str, source: str, sources: Dict[str, str], runtime_only: bool = False) -> Iterator[Tuple[str, List[str], int]]:
    """(module, names imported from it, line) for every import in ``source``, at any depth.

    Relative imports are made absolute; ``from package import module`` also yields
    the module itself (with no names). ``runtime_only``: not the imports under
    ``if TYPE_CHECKING:`` (annotations only, never run).
    """
    package = name if _is_package(name, sources) else name.rpartition(".")[0]
    for node in _walk(ast.parse(source), runtime_only):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            names = [alias.name for alias in node.names]
            yield module, names, node.lineno
            for imported in names:
                if module + "." + imported in sources:
                    yield module + "." + imported, [], node.lineno


def core_boundary_violations(sources: Dict[str, str]) -> List[str]:
    """Imports of the core's private modules (all but api and _errors) from outside the core."""
    bad = set()
    for name, source in sources.items():
        if name == CORE or name.startswith(CORE + "."):
            continue
        for module, names, line in imports(name, source, sources):
            targets = [module + "." + n for n in names] if module == CORE else [module]
            for target in targets:
                if target.startswith(CORE + ".") and target.split(".")[len(CORE.split("."))].startswith("_"):
                    if ".".join(target.split(".")[: len(CORE.split(".")) + 1]) not in CORE_BOUNDARY:
                        bad.add("%s:%d imports %s" % (name, line, target))
    return sorted(bad)


def import_cycles(sources: Dict[str, str]) -> List[List[str]]:
    """Every strongly connected set of more than one module (or a module importing itself).

    Imports that run count, at any depth (a function's too); ``if TYPE_CHECKING:`` ones do not.
    """
    graph: Dict[str, Set[str]] = {name: set() for name in sources}
    for name, source in sources.items():
        for module, _names, _line in imports(name, source, sources, runtime_only=True):
            if module in sources:
                graph[name].add(module)
    # Tarjan's algorithm, iteratively.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1 or node in graph[node]:
                    cycles.append(sorted(members))
    return cycles


def ansible_in_core(sources: Dict[str, str]) -> List[str]:
    """Imports of Ansible (``ansible``, ``ansible_collections`` outside the core) from the core."""
    bad = []
    for name, source in sources.items():
        if not (name == CORE or name.startswith(CORE + ".")):
            continue
        for module, _names, line in imports(name, source, sources):
            ours = module == CORE or module.startswith(CORE + ".")
            if _is_ansible(module) or (module.startswith("ansible_collections") and not ours):
                bad.append("%s:%d imports %s" % (name, line, module))
    return bad


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_ansible(module: str) -> bool:
    return module == "ansible" or module.startswith("ansible.")


def private_ansible_uses(sources: Dict[str, str]) -> List[str]:
    """Uses of ansible-core's private API outside ``_compat`` that ast can see."""
    bad = []
    for name, source in sources.items():
        if name in COMPAT_MODULES or name == CORE or name.startswith(CORE + "."):
            continue  # the core never imports ansible (ansible_in_core)
        bound: Set[str] = set()  # names an ansible import binds here
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_ansible(alias.name):
                        if _private_module(alias.name):
                            bad.append("%s:%d imports %s" % (name, node.lineno, alias.name))
                        bound.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and not node.level and _is_ansible(node.module or ""):
                if _private_module(node.module or ""):
                    bad.append("%s:%d imports %s" % (name, node.lineno, node.module))
                for alias in node.names:
                    if _private(alias.name):
                        bad.append("%s:%d imports %s from %s" % (name, node.lineno, alias.name, node.module))
                    bound.add(alias.asname or alias.name)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute):
                chain, root = [node.attr], node.value
                while isinstance(root, ast.Attribute):
                    chain.append(root.attr)
                    root = root.value
                if isinstance(root, ast.Name) and root.id in bound and _private(node.attr):
                    bad.append("%s:%d uses %s.%s" % (name, node.lineno, root.id, ".".join(reversed(chain))))
    return bad


def _private_module(module: str) -> bool:
    parts = module.split(".")
    return parts[:2] == ["ansible", "executor"] or any(_private(p) for p in parts)


# -- the tree as it is ------------------------------------------------------------------------
def test_plugins_use_the_core_through_api_and_errors_only():
    assert core_boundary_violations(collection_sources()) == []


def test_no_import_cycles_among_the_collections_modules():
    assert import_cycles(collection_sources()) == []


def test_the_core_never_imports_ansible():
    assert ansible_in_core(collection_sources()) == []


def test_ansible_cores_private_api_is_used_in_compat_only():
    assert private_ansible_uses(collection_sources()) == []


# -- each check fails on what it is for --------------------------------------------------------
PU = PREFIX + ".plugins.plugin_utils"


def _with(name: str, source: str) -> Dict[str, str]:
    sources = collection_sources()
    sources[name] = sources.get(name, "") + "\n" + source
    return sources


def test_a_private_core_import_from_plugin_utils_fails_the_check():
    for bad in (
        "from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _router\n",
        "from ansible_collections.ns.mitogen.plugins.module_utils.mitogen._wire import Message\n",
        "def f():\n    import ansible_collections.ns.mitogen.plugins.module_utils.mitogen._codec\n",
    ):
        found = core_boundary_violations(_with(PU + "._fetch", bad))
        assert len(found) == 1 and found[0].startswith(PU + "._fetch:"), (bad, found)
    assert core_boundary_violations(_with(PU + "._fetch", "from ..module_utils.mitogen import _bootstrap\n"))
    assert not core_boundary_violations(
        _with(PU + "._fetch", "from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import api, _errors\n")
    )


def test_a_function_level_import_cycle_fails_the_check():
    cycles = import_cycles(
        _with(PU + "._mux", "def f():\n    from ansible_collections.ns.mitogen.plugins.plugin_utils import _mux_client\n")
    )
    assert any(PU + "._mux" in c and PU + "._mux_client" in c for c in cycles), cycles
    annotations_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import _mux_client\n"
    assert not import_cycles(_with(PU + "._mux", annotations_only))


def test_an_ansible_import_in_the_core_fails_the_check():
    found = ansible_in_core(_with(CORE + "._codec", "def f():\n    from ansible.module_utils import basic\n"))
    assert found == [
        CORE + "._codec:%d imports ansible.module_utils" % (len(collection_sources()[CORE + "._codec"].splitlines()) + 3)
    ]


def test_a_private_ansible_name_outside_compat_fails_the_check():
    for bad in (
        "from ansible.executor import module_common\n",
        "from ansible._internal._ssh import _ssh_agent\n",
        "from ansible.module_utils.basic import _load_params\n",
        "import ansible.constants as C\nx = C.config._parsers\n",
        "from ansible.plugins.action import ActionBase\nActionBase._configure_module = None\n",
    ):
        found = private_ansible_uses(_with(PU + "._fetch", bad))
        assert found and all(f.startswith(PU + "._fetch:") for f in found), (bad, found)
    # the same in _compat is its job
    assert not private_ansible_uses(_with(COMPAT, "from ansible.executor import module_common\n"))


def test_importing_plugin_utils_changes_nothing_global():
    """Only ``plugin_utils.install()`` (called by every plugin) hooks anything: importing does not."""
    pytest.importorskip("ansible")
    from ansible.plugins.action import ActionBase

    before = (list(sys.meta_path), ActionBase._configure_module)
    for name in sorted(collection_sources()):
        if name.startswith(PU):
            importlib.import_module(name)
    assert (list(sys.meta_path), ActionBase._configure_module) == before
    assert not hasattr(ActionBase._configure_module, "_ns_mitogen_hook")
