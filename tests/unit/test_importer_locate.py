"""Where the importer's responder finds sources: on sys.path, whatever import hooks are installed.

The multiplexer is forked from ansible-playbook, whose collection loader puts a path
hook before the standard ones; the responder must still find each allowed module
where a plain interpreter would.
"""

from __future__ import annotations

import importlib.machinery
import sys

import pytest

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _modscan


class _Blind:
    """A path entry finder that finds nothing (as a foreign loader's hook may)."""

    def find_spec(self, fullname, target=None):
        return None


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """``nsp``: a namespace package in two entries; ``nsp.pkg`` a package; a module in each."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "nsp").mkdir(parents=True)
    (first / "nsp" / "alone.py").write_text("A = 1\n")
    (second / "nsp" / "pkg").mkdir(parents=True)
    (second / "nsp" / "pkg" / "__init__.py").write_text("")
    (second / "nsp" / "pkg" / "mod.py").write_text("B = 2\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second)] + sys.path)
    return first, second


def _origin(name):
    spec = _modscan.locate(name)
    assert spec is not None, name
    return spec.origin


def _entry(session, name):
    entry = session.responder._load_local(name)
    assert entry is not None, name
    return entry


def test_locate_finds_modules_packages_and_namespace_portions(tree):
    first, second = tree
    namespace = _modscan.locate("nsp")
    assert namespace is not None and namespace.loader is None
    assert list(namespace.submodule_search_locations or ()) == [str(first / "nsp"), str(second / "nsp")]
    assert _origin("nsp.alone") == str(first / "nsp" / "alone.py")
    package = _modscan.locate("nsp.pkg")
    assert package is not None
    assert package.origin == str(second / "nsp" / "pkg" / "__init__.py") and package.submodule_search_locations
    assert _origin("nsp.pkg.mod") == str(second / "nsp" / "pkg" / "mod.py")
    assert _modscan.locate("nsp.missing") is None
    assert _modscan.locate("nsp.alone.attribute") is None  # not a package


def test_locate_ignores_the_processs_path_hooks(tree, monkeypatch):
    monkeypatch.setattr(sys, "path_hooks", [lambda entry: _Blind()] + sys.path_hooks)
    monkeypatch.setattr(sys, "path_importer_cache", {})
    assert importlib.machinery.PathFinder.find_spec("nsp") is None  # what the hook does to the standard finder
    first, second = tree
    assert _origin("nsp.pkg.mod") == str(second / "nsp" / "pkg" / "mod.py")
    assert _origin("nsp.alone") == str(first / "nsp" / "alone.py")


@pytest.fixture
def responder():
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Session

    with Session(allow_imports=["nsp.pkg"]) as session:
        yield session.responder


def test_ancestor_package_served_empty_unless_provided(tree, responder):
    """``nsp`` is an ancestor of the allowed ``nsp.pkg``: its own text never travels."""
    assert responder._load_local("nsp")[:3] == (True, "<ns.mitogen:nsp>", b"")
    responder.provide("nsp", b"__version__ = '1'\n")
    assert responder._load_local("nsp")[:3] == (True, "<ns.mitogen:nsp>", b"__version__ = '1'\n")
    assert responder._load_local("nsp.pkg.mod")[2] == b"B = 2\n"


def test_namespace_package_in_an_allowed_tree_is_served_empty(tree):
    """A directory without __init__.py (a collection's module_utils/, or one below it)."""
    from ansible_collections.ns.mitogen.plugins.module_utils.mitogen.api import Session

    with Session(allow_imports=["nsp"]) as session:
        assert _entry(session, "nsp")[:3] == (True, "<ns.mitogen:nsp>", b"")
        assert _entry(session, "nsp.alone")[2] == b"A = 1\n"
        assert _entry(session, "nsp.missing")[2] is None


def test_locate_searches_directories_given_for_a_package_first(tree, tmp_path):
    """A playbook's module_utils/ for ansible.module_utils: its names win, others stay found."""
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "mod.py").write_text("B = 'custom'\n")
    (custom / "extra.py").write_text("C = 3\n")
    first = {"nsp.pkg": [str(custom)]}
    mod, extra = _modscan.locate("nsp.pkg.mod", first), _modscan.locate("nsp.pkg.extra", first)
    assert mod is not None and mod.origin == str(custom / "mod.py")
    assert extra is not None and extra.origin == str(custom / "extra.py")
    assert _modscan.locate("nsp.pkg.extra") is None
    assert _origin("nsp.pkg.mod") == str(tree[1] / "nsp" / "pkg" / "mod.py")
