"""The snapshots of module_utils and the standard library (``_snapshots``): what is stdlib, what is compared."""

from __future__ import annotations

import os
import sys
import tempfile
import types
from importlib.machinery import ModuleSpec
from typing import Any

from ansible_collections.ns.mitogen.plugins.module_utils.mitogen import _snapshots


def _module(name: str, origin: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = ModuleSpec(name, None, origin=origin)
    return module


def test_a_module_served_by_the_controller_is_not_stdlib_even_when_the_cwd_is_gone():
    """Our modules' origins ("master:<path>") are not paths: resolving one against a
    removed cwd failed every module run of a become user whose cwd was gone."""
    here = os.getcwd()
    gone = tempfile.mkdtemp()
    os.chdir(gone)
    os.rmdir(gone)
    try:
        assert _snapshots._is_stdlib("served", _module("served", "master:/x/ansible/module_utils/basic.py")) is False
        assert _snapshots._is_stdlib("json", __import__("json")) is True
    finally:
        os.chdir(here)


def test_a_changed_dunder_name_leaves_later_runs_on_the_one_comparison_path(monkeypatch):
    """six's importer sets ``collections.abc.__spec__`` in a module's first run; dunder
    names are never put back, so the saved namespace kept the old one and every later
    run compared each of ~800 stdlib namespaces on its own (a third of a run's CPU)."""
    name = "nsm_test_snapshots_fake"
    module: Any = _module(name, "/nowhere/%s.py" % name)

    class Kind:
        value = 1

    Kind.__module__ = name
    module.Kind = Kind
    module.value = 1
    monkeypatch.setitem(sys.modules, name, module)
    kind = _snapshots._Snapshots(lambda n, m: n == name)
    taken = kind.take()
    assert len(taken.live) == 2 and taken.live == taken.saved
    module.__spec__ = ModuleSpec(name, None, origin="elsewhere")  # what six does
    module.__warningregistry__ = {"version": 1}  # what a warning does
    assert _snapshots._restore(taken) == []  # nothing to put back ...
    assert module.__spec__.origin == "elsewhere"  # ... and dunder names are not put back
    assert taken.live == taken.saved  # the next run's one comparison finds it unchanged
    assert kind.take() is taken
    module.value, Kind.value = 2, 3  # a real change is still undone
    assert sorted(_snapshots._restore(taken)) == ["%s.Kind.value" % name, "%s.value" % name]
    assert (module.value, Kind.value) == (1, 1)
